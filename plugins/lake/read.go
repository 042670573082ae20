package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/suggest"
)

// Reader is the read side of a Storage: listing objects and opening one for
// random access (Parquet reads its footer first, then only the column
// chunks a query needs).
type Reader interface {
	List(ctx context.Context, prefix string, fn func(key string, size int64) error) error
	Open(ctx context.Context, key string) (io.ReaderAt, io.Closer, error)
}

// List implements Reader.
func (l *LocalStorage) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	root := filepath.Join(l.Dir, filepath.FromSlash(prefix))
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".parquet") {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(l.Dir, p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel), info.Size())
	})
	return err
}

// Open implements Reader.
func (l *LocalStorage) Open(_ context.Context, key string) (io.ReaderAt, io.Closer, error) {
	if err := CheckKey(key); err != nil {
		return nil, nil, err
	}
	f, err := os.Open(filepath.Join(l.Dir, filepath.FromSlash(key)))
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}

var hourRe = regexp.MustCompile(`/year=(\d{4})/month=(\d{2})/day=(\d{2})/hour=(\d{2})/`)

// keyHour is the hour partition of an object key.
func keyHour(key string) (time.Time, bool) {
	m := hourRe.FindStringSubmatch(key)
	if m == nil {
		return time.Time{}, false
	}
	t, err := time.Parse("2006010215", m[1]+m[2]+m[3]+m[4])
	return t, err == nil
}

// Scan is what to read: tables (empty: all the lake has), a time range on
// the tables' time fields (zero: open), and an optional row-group filter.
type Scan struct {
	Tables []string
	Since  time.Time
	Until  time.Time
	// Column and Value, when set, keep only rows whose list column
	// (a p_any_* indicator field) holds Value; row groups whose bloom
	// filter rules the value out are not read.
	Column, Value string
	// OnUnreadable, when set, hears of each file that cannot be read (not
	// Parquet, truncated, or a read that failed), which is then skipped:
	// one bad object (another tool's, a copy cut short) must not hide the
	// rest of the lake from a search. Unset, such a file ends the scan.
	OnUnreadable func(key string, err error)
}

// ScanStats says how much of the lake a scan touched.
type ScanStats struct {
	Files, FilesPruned int
	// RowGroupsPruned of RowGroups were skipped unread: their indicator
	// column has no such value by its bloom filter, holds only nulls, or
	// is missing from the file.
	RowGroups, RowGroupsPruned int
	Rows, Matched              int
	Bytes                      int64
	Unreadable                 int // files skipped (Scan.OnUnreadable)
}

// unreadable is a failure to read a file, as opposed to one of the
// caller's (its callback's, or its context ending).
type unreadable struct{ err error }

func (u unreadable) Error() string { return u.err.Error() }
func (u unreadable) Unwrap() error { return u.err }

// ScanLake reads matching rows, decoded back into events (timestamps as RFC
// 3339 strings, json columns as values, nulls dropped), and calls fn with
// the table name and row. Files outside the time range are pruned by their
// hour partition.
func ScanLake(ctx context.Context, r Reader, tables *Tables, sc Scan, fn func(table string, row map[string]any) error) (ScanStats, error) {
	var st ScanStats
	names := sc.Tables
	if len(names) == 0 {
		names = tables.Names()
	}
	for _, name := range names {
		tab := tables.Table(name)
		if tab == nil {
			return st, fmt.Errorf("unknown table %q%s", name, suggest.Hint(name, tables.Names()))
		}
		var keys []string
		var sizes []int64
		err := r.List(ctx, name+"/", func(key string, size int64) error {
			if h, ok := keyHour(key); ok {
				// The hour [h, h+1h) must overlap [Since, Until).
				if (!sc.Since.IsZero() && !h.Add(time.Hour).After(sc.Since)) || (!sc.Until.IsZero() && !h.Before(sc.Until)) {
					st.FilesPruned++
					return nil
				}
			}
			keys, sizes = append(keys, key), append(sizes, size)
			return nil
		})
		if err != nil {
			return st, err
		}
		sort.Strings(keys)
		for i, key := range keys {
			st.Files++
			st.Bytes += sizes[i]
			err := scanFile(ctx, r, tab, key, sizes[i], sc, &st, fn)
			var bad unreadable
			if errors.As(err, &bad) && sc.OnUnreadable != nil {
				st.Unreadable++
				sc.OnUnreadable(key, bad.err)
				continue
			}
			if err != nil {
				return st, fmt.Errorf("%s: %w", key, err)
			}
		}
	}
	return st, nil
}

// mayHold reports whether an indicator column chunk may hold want: it
// holds some value (its statistics count fewer nulls than values; a
// writer that counts none leaves this to the bloom filter), and its bloom
// filter, when it has one, does not rule want out. A chunk of nulls only
// has an empty dictionary and so no bloom filter.
func mayHold(cc parquet.ColumnChunk, want parquet.Value) bool {
	if fc, ok := cc.(*parquet.FileColumnChunk); ok && fc.NullCount() >= fc.NumValues() {
		return false
	}
	if bf := cc.BloomFilter(); bf != nil {
		if ok, err := bf.Check(want); err == nil && !ok {
			return false
		}
	}
	return true
}

// scanFile reads one file; a failure of the file itself is unreadable, one
// of fn or ctx is returned as it is.
func scanFile(ctx context.Context, r Reader, tab *Table, key string, size int64, sc Scan, st *ScanStats, fn func(string, map[string]any) error) error {
	ra, closer, err := r.Open(ctx, key)
	if err != nil {
		return unreadable{err}
	}
	defer closer.Close()
	f, err := parquet.OpenFile(ra, size, parquet.SkipPageIndex(true))
	if err != nil {
		return unreadable{err}
	}
	leaf := -1
	if sc.Column != "" {
		col, ok := f.Schema().Lookup(sc.Column, "list", "element")
		if !ok {
			// An older file without this column holds no such value.
			st.RowGroups += len(f.RowGroups())
			st.RowGroupsPruned += len(f.RowGroups())
			return nil
		}
		leaf = col.ColumnIndex
	}
	want := parquet.ValueOf(sc.Value)
	for _, rg := range f.RowGroups() {
		st.RowGroups++
		if leaf >= 0 && !mayHold(rg.ColumnChunks()[leaf], want) {
			st.RowGroupsPruned++
			continue
		}
		if leaf >= 0 {
			// Read the indicator column alone, then only the rows holding
			// the value: a row group has thousands of rows, and decoding
			// all of them would cost far more than the column scan.
			idx, err := rowsWithValue(rg.ColumnChunks()[leaf], sc.Value)
			if err != nil {
				return unreadable{err}
			}
			var callerErr error
			if err := readRows(ctx, f.Schema(), rg, idx, func(m map[string]any) error {
				st.Rows++
				callerErr = emit(tab, sc, st, m, fn)
				return callerErr
			}); err != nil {
				if callerErr != nil || ctx.Err() != nil {
					return err
				}
				return unreadable{err}
			}
			continue
		}
		rows := parquet.NewRowGroupReader(rg)
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			m := map[string]any{}
			if err := rows.Read(&m); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return unreadable{err}
			}
			st.Rows++
			if err := emit(tab, sc, st, m, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func emit(tab *Table, sc Scan, st *ScanStats, m map[string]any, fn func(string, map[string]any) error) error {
	ev := tab.Decode(m)
	if !sc.inRange(tab, ev) || (sc.Column != "" && !holds(ev[sc.Column], sc.Value)) {
		return nil
	}
	st.Matched++
	return fn(tab.Name, ev)
}

// rowsWithValue returns the indexes of the rows whose values in a list
// column chunk include v (a new row starts at repetition level 0).
func rowsWithValue(cc parquet.ColumnChunk, v string) ([]int64, error) {
	pages := cc.Pages()
	defer pages.Close()
	var out []int64
	row := int64(-1)
	buf := make([]parquet.Value, 1024)
	for {
		p, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		vals := p.Values()
		for {
			n, err := vals.ReadValues(buf)
			for _, x := range buf[:n] {
				if x.RepetitionLevel() == 0 {
					row++
				}
				if !x.IsNull() && string(x.ByteArray()) == v && (len(out) == 0 || out[len(out)-1] != row) {
					out = append(out, row)
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				parquet.Release(p)
				return nil, err
			}
		}
		parquet.Release(p)
	}
}

// readRows decodes the rows at the given (ascending) indexes of a row group.
func readRows(ctx context.Context, s *parquet.Schema, rg parquet.RowGroup, idx []int64, fn func(map[string]any) error) error {
	if len(idx) == 0 {
		return nil
	}
	rows := rg.Rows()
	defer rows.Close()
	buf := make([]parquet.Row, 1)
	for _, i := range idx {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := rows.SeekToRow(i); err != nil {
			return err
		}
		n, err := rows.ReadRows(buf)
		if n == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("row %d missing", i)
			}
			return err
		}
		m := map[string]any{}
		if err := s.Reconstruct(&m, buf[0]); err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

func (sc Scan) inRange(tab *Table, ev map[string]any) bool {
	if sc.Since.IsZero() && sc.Until.IsZero() {
		return true
	}
	s, _ := ev[tab.TimeField].(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return false
	}
	return (sc.Since.IsZero() || !t.Before(sc.Since)) && (sc.Until.IsZero() || t.Before(sc.Until))
}

func holds(list any, v string) bool {
	l, _ := list.([]any)
	for _, e := range l {
		if e == v {
			return true
		}
	}
	return false
}

// Decode turns a row read back from Parquet into the event it was written
// from: nulls dropped, timestamps (micros) as RFC 3339 UTC strings, json
// columns parsed. Columns the table does not know (an older or newer
// schema) are kept as read.
func (t *Table) Decode(m map[string]any) map[string]any {
	return decodeGroup(t.root, m)
}

func decodeGroup(c *col, m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	kids := map[string]*col{}
	if c != nil {
		for _, k := range c.children {
			kids[k.name] = k
		}
	}
	for k, v := range m {
		if v == nil {
			continue
		}
		if d := decodeValue(kids[k], v); d != nil {
			out[k] = d
		}
	}
	return out
}

func decodeValue(c *col, v any) any {
	if v == nil {
		return nil
	}
	kind := ""
	if c != nil {
		kind = c.kind
	}
	switch kind {
	case "group":
		if m, ok := v.(map[string]any); ok {
			return decodeGroup(c, m)
		}
	case "list":
		if l, ok := v.([]any); ok {
			out := make([]any, 0, len(l))
			for _, e := range l {
				if d := decodeValue(c.children[0], e); d != nil {
					out = append(out, d)
				}
			}
			return out
		}
	case "timestamp":
		switch x := v.(type) {
		case int64:
			return envelope.FormatTime(time.UnixMicro(x))
		case time.Time:
			return envelope.FormatTime(x)
		}
	case "json":
		if s, ok := v.(string); ok {
			var d any
			if json.Unmarshal([]byte(s), &d) == nil {
				return d
			}
		}
	case "int", "bigint", "smallint":
		switch x := v.(type) {
		case int32:
			return int64(x)
		case string:
			if n, err := strconv.ParseInt(x, 10, 64); err == nil {
				return n
			}
		}
	}
	return v
}
