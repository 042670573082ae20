package lake

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// Events reach the lake as JSON. They are encoded into columns in one pass
// over their bytes, with the same conversions as EncodeColumns: no parse
// tree (building, holding and resetting fastjson's trees was a third of
// the lake stage's time) and no copy of a string without escapes, whose
// column value points into the event until the pending rows reach the
// column writers (which copy them). The event's bytes stay unchanged and
// referenced until then.

// EncodeJSON appends a row given as a JSON object to per-column value
// slices; see EncodeColumns. A key repeated in one object counts once (its
// first value), as fastjson reads it.
func (t *Table) EncodeJSON(cols [][]parquet.Value, raw []byte) error {
	s := jsonRow{Scanner: envelope.NewScanner(raw), cols: cols}
	defer s.Release()
	if s.Next() != '{' {
		return errors.New("not a JSON object")
	}
	if err := s.object(t.root, 0, 0, 0, 0); err != nil {
		return err
	}
	if !s.AtEnd() {
		return envelope.ErrSyntax
	}
	return nil
}

// jsonRow is the read position in one event and the columns it goes to.
type jsonRow struct {
	envelope.Scanner
	cols [][]parquet.Value
}

// object encodes the object at the read position into group g's columns;
// fields it lacks are nulls.
func (s *jsonRow) object(g *col, r, d, rep, depth int) error {
	if depth > envelope.MaxDepth {
		return envelope.ErrTooDeep
	}
	var small [128]bool
	seen := g.seen(&small)
	s.Expect('{')
	prev := -1   // the previous key's place in g's order
	present := 0 // children seen
	for more := !s.Expect('}'); more; {
		place, i, ok, err := s.OrderedKey(g.order, prev)
		if err != nil {
			return err
		}
		if prev = place; ok && !seen[i] {
			seen[i] = true
			present++
			err = s.value(g.children[i], r, d, rep, depth+1)
		} else {
			_, err = s.Skip(depth + 1)
		}
		if err != nil {
			return err
		}
		if more, err = s.More('}'); err != nil {
			return err
		}
	}
	if present == len(g.children) {
		return nil
	}
	if r <= g.maxRep && d <= g.maxDef {
		// The missing children's leaves take their nulls at g's levels:
		// one pass over g's leaves rather than a call per child (most of
		// a wide schema's are missing from an event).
		row := g.nullRows[r*(g.maxDef+1)+d][:len(g.leafCols)]
		child := g.leafChild[:len(g.leafCols)]
		for i, idx := range g.leafCols {
			if !seen[child[i]] {
				*grow(s.cols, idx) = row[i]
			}
		}
		return nil
	}
	for i, c := range g.children {
		if !seen[i] {
			nulls(s.cols, c, r, d)
		}
	}
	return nil
}

// value encodes the next value into optional node c; d is the parent's
// definition level, rep the number of repeated ancestors (see encode).
func (s *jsonRow) value(c *col, r, d, rep, depth int) error {
	first := s.Next()
	if first == 'n' {
		if err := s.Literal("null"); err != nil {
			return err
		}
		nulls(s.cols, c, r, d)
		return nil
	}
	switch c.shape {
	case groupShape:
		if first != '{' {
			if _, err := s.Skip(depth); err != nil {
				return err
			}
			nulls(s.cols, c, r, d)
			return nil
		}
		return s.object(c, r, d+1, rep, depth)
	case listShape:
		// As encodeItems: a lone value is a list of one; an empty list is
		// a null element one level down.
		item := c.children[0]
		if first != '[' {
			return s.value(item, r, d+2, rep+1, depth)
		}
		s.Expect('[')
		if s.Expect(']') {
			nulls(s.cols, item, r, d+1)
			return nil
		}
		for n, more := 0, true; more; n++ {
			ri := r
			if n > 0 {
				ri = rep + 1
			}
			if err := s.value(item, ri, d+2, rep+1, depth+1); err != nil {
				return err
			}
			var err error
			if more, err = s.More(']'); err != nil {
				return err
			}
		}
		return nil
	}
	if c.leaf == stringLeaf && first == '"' { // most leaves: spared leaf's calls
		raw, escaped, err := s.Str()
		if err != nil {
			return err
		}
		if escaped {
			raw = s.Unescape(raw)
		}
		putLeaf(s.cols, c, parquet.ByteArrayValue(raw), r, d)
		return nil
	}
	val, err := s.leaf(c.leaf, first, depth)
	if err == envelope.ErrSyntax || err == envelope.ErrTooDeep {
		return err
	}
	return appendLeaf(s.cols, c, val, err, r, d)
}

// jsonType names the JSON type a value starting with c has, for errors.
func jsonType(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

// leaf reads a leaf value of the given kind; first is its first byte.
func (s *jsonRow) leaf(kind leafKind, first byte, depth int) (parquet.Value, error) {
	switch kind {
	case stringLeaf:
		if first == '"' {
			b, err := s.Text()
			return parquet.ByteArrayValue(b), err
		}
		b, err := s.Skip(depth)
		return parquet.ByteArrayValue(b), err
	case jsonLeaf:
		b, err := s.Skip(depth)
		return parquet.ByteArrayValue(b), err
	case intLeaf, smallIntLeaf:
		b, err := s.numberOf("an integer", first, depth)
		if err != nil {
			return parquet.Value{}, err
		}
		text := unsafe.String(unsafe.SliceData(b), len(b))
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil { // a fraction or an exponent: as EncodeColumns, truncate
			f, ferr := strconv.ParseFloat(text, 64)
			if ferr != nil {
				return parquet.Value{}, fmt.Errorf("%q is not a number", string(b))
			}
			n = int64(f)
		}
		if kind == smallIntLeaf {
			return parquet.Int32Value(int32(n)), nil
		}
		return parquet.Int64Value(n), nil
	case floatLeaf:
		b, err := s.numberOf("a number", first, depth)
		if err != nil {
			return parquet.Value{}, err
		}
		f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 64)
		if err != nil {
			return parquet.Value{}, fmt.Errorf("%q is not a number", string(b))
		}
		return parquet.DoubleValue(f), nil
	case booleanLeaf:
		switch first {
		case 't':
			return parquet.BooleanValue(true), s.Literal("true")
		case 'f':
			return parquet.BooleanValue(false), s.Literal("false")
		}
		return parquet.Value{}, s.wrongType("a boolean", first, depth)
	case timestampLeaf:
		if first != '"' {
			return parquet.Value{}, s.wrongType("a timestamp", first, depth)
		}
		b, err := s.Text()
		if err != nil {
			return parquet.Value{}, err
		}
		tm, err := envelope.ParseTime(unsafe.String(unsafe.SliceData(b), len(b)))
		if err != nil { // the error must not keep the event's bytes
			return parquet.Value{}, fmt.Errorf("%q is not an RFC 3339 time", string(b))
		}
		return parquet.Int64Value(tm.UnixMicro()), nil
	}
	return parquet.Value{}, fmt.Errorf("unknown column kind %d", kind)
}

// numberOf reads a number where one is wanted.
func (s *jsonRow) numberOf(want string, first byte, depth int) ([]byte, error) {
	if first != '-' && (first < '0' || first > '9') {
		return nil, s.wrongType(want, first, depth)
	}
	return s.Number()
}

// wrongType skips a value of the wrong type and says what was wanted; a
// malformed value is a syntax error instead.
func (s *jsonRow) wrongType(want string, first byte, depth int) error {
	if _, err := s.Skip(depth); err != nil {
		return err
	}
	return fmt.Errorf("want %s, got %s", want, jsonType(first))
}

// topStrings returns the string values of two top-level keys of a JSON
// object (nil when absent or not strings), reading no further than it
// needs to.
func topStrings(raw []byte, k1, k2 string) (v1, v2 []byte, err error) {
	s := envelope.NewScanner(raw)
	defer s.Release()
	if !s.Expect('{') {
		return nil, nil, errors.New("not a JSON object")
	}
	found1, found2 := false, false
	for more := !s.Expect('}'); more && (!found1 || !found2); {
		key, err := s.Key()
		if err != nil {
			return nil, nil, err
		}
		var dst *[]byte
		switch {
		case !found1 && string(key) == k1:
			dst, found1 = &v1, true
		case !found2 && string(key) == k2:
			dst, found2 = &v2, true
		}
		if dst != nil && s.Next() == '"' {
			if *dst, err = s.Text(); err != nil {
				return nil, nil, err
			}
		} else if _, err := s.Skip(0); err != nil {
			return nil, nil, err
		}
		if more, err = s.More('}'); err != nil {
			return nil, nil, err
		}
	}
	return v1, v2, nil
}

// addRaw encodes an event given as JSON into its file. A partition's
// events mostly share a log type and an hour, so it is first encoded
// straight into the previous row's file and kept if its own p_log_type
// and hour columns say it belongs there. Otherwise (or if that fails) its
// log type and time are read first and it is placed as any row is.
func (b *Batch) addRaw(r *Record) error {
	if f := b.last; f != nil && f.key.topic == r.Topic && f.key.partition == r.Partition && f.table.logTypeCol >= 0 {
		f.markRow()
		if err := f.table.EncodeJSON(f.cols, r.Raw); err == nil && f.table.rowBelongs(f.cols, f.key.hour) {
			f.keepRow()
			return b.added(f, r)
		}
		f.dropRow()
	}
	// Log tables are partitioned by p_event_time (LogTable).
	logType, at, err := topStrings(r.Raw, envelope.FieldLogType, envelope.FieldEventTime)
	if err != nil {
		return b.fail(r, fmt.Errorf("not a JSON object: %w", err))
	}
	tab, err := b.w.Tables.logTable(string(logType))
	if err != nil {
		return b.fail(r, err)
	}
	hour, err := rawHour(at)
	return b.place(r, tab, hour, err, rawRow{tab, r.Raw})
}

// rawHour is partitionHour for a time given as JSON string content.
func rawHour(at []byte) (time.Time, error) {
	if at == nil {
		return partitionHour(nil)
	}
	t, err := envelope.ParseTime(unsafe.String(unsafe.SliceData(at), len(at)))
	if err != nil {
		return partitionHour(string(at)) // the same error, on a copy
	}
	return hourOf(t), nil
}

// rawRow is a row given as JSON.
type rawRow struct {
	tab *Table
	raw []byte
}

func (e rawRow) encode(cols [][]parquet.Value) error { return e.tab.EncodeJSON(cols, e.raw) }

// rowBelongs reports whether the row just encoded (the last value of each
// top-level column) has the table's log type and a time in that hour.
func (t *Table) rowBelongs(cols [][]parquet.Value, hour time.Time) bool {
	lt, at := cols[t.logTypeCol], cols[t.timeCol]
	if len(lt) == 0 || len(at) == 0 {
		return false
	}
	l, a := lt[len(lt)-1], at[len(at)-1]
	return !l.IsNull() && string(l.ByteArray()) == t.LogType &&
		!a.IsNull() && hourOf(time.UnixMicro(a.Int64())).Equal(hour)
}
