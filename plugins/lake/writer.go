package lake

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// Record is one row to write and where it came from.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Value     map[string]any
}

// Tables resolves the table for a record.
type Tables struct {
	logs     map[string]*Table // by log type
	failures *Table
	matches  *Table
	errors   *Table
	alerts   *Table
	sysErrs  *Table
	delivery *Table
}

// NewTables builds every table: one per log schema plus the fixed ones.
func NewTables(schemas []*schema.Schema) (*Tables, error) {
	t := &Tables{
		logs:     map[string]*Table{},
		failures: FailuresTable(),
		matches:  MatchesTable(envelope.TableRuleMatches),
		errors:   MatchesTable(envelope.TableRuleErrors),
		alerts:   AlertsTable(envelope.TableAlerts),
		sysErrs:  AlertsTable(envelope.TableSystemErrors),
		delivery: DeliveriesTable(),
	}
	for _, s := range schemas {
		lt, err := LogTable(s)
		if err != nil {
			return nil, err
		}
		t.logs[s.Schema] = lt
	}
	return t, nil
}

// Names lists every table, sorted.
func (t *Tables) Names() []string {
	var out []string
	for _, tab := range t.all() {
		out = append(out, tab.Name)
	}
	sort.Strings(out)
	return out
}

// Table returns the table of that name, or nil.
func (t *Tables) Table(name string) *Table {
	for _, tab := range t.all() {
		if tab.Name == name {
			return tab
		}
	}
	return nil
}

func (t *Tables) all() []*Table {
	out := []*Table{t.failures, t.matches, t.errors, t.alerts, t.sysErrs, t.delivery}
	for _, tab := range t.logs {
		out = append(out, tab)
	}
	return out
}

var tableNameRe = regexp.MustCompile(`^[a-z0-9_]+$`)

// For picks the table for a record and shapes its row; a nil table (and no
// error) means the record is a control record with no place in the lake.
func (t *Tables) For(r *Record) (*Table, map[string]any, error) {
	v := r.Value
	switch r.Topic {
	case envelope.TopicEvents:
		lt, _ := v[envelope.FieldLogType].(string)
		tab := t.logs[lt]
		if tab == nil {
			return nil, nil, fmt.Errorf("event of log type %q has no schema", lt)
		}
		return tab, v, nil
	case envelope.TopicFailures:
		return t.failures, v, nil
	case envelope.TopicMatches:
		if v[envelope.FieldControl] != nil {
			return nil, nil, nil // e.g. an unsuppress command for the alert stage
		}
		tab := t.matches
		if v[envelope.FieldMatchType] == envelope.TypeRuleError {
			tab = t.errors
		}
		return tab, matchRow(v), nil
	case envelope.TopicAlerts, envelope.TopicSystemError:
		tab := t.alerts
		if v["type"] == envelope.TypeSystemError {
			tab = t.sysErrs
		}
		return tab, v, nil
	case envelope.TopicDeliveries:
		return t.delivery, v, nil
	}
	return nil, nil, fmt.Errorf("no lake table for topic %q", r.Topic)
}

// matchRow keeps p_* fields as columns and nests the rest as "event".
func matchRow(v map[string]any) map[string]any {
	row := map[string]any{}
	event := map[string]any{}
	for k, x := range v {
		if strings.HasPrefix(k, "p_") {
			row[k] = x
		} else {
			event[k] = x
		}
	}
	row["event"] = event
	return row
}

// fileKey groups rows into files: one per table, hour and source partition.
type fileKey struct {
	table     string
	hour      time.Time
	topic     string
	partition int32
}

// openFile is a Parquet file being written: rows are encoded as they
// arrive, so a roll holds compressed pages and one row group's column
// buffers per file rather than every decoded event.
type openFile struct {
	table *Table
	buf   bytes.Buffer
	pw    *parquet.GenericWriter[any]
	first int64
	// pending rows go to the writer in groups: one WriteRows call per row
	// costs a third of the encoding time.
	pending []parquet.Row
}

const pendingRows = 256

func (f *openFile) flushPending() error {
	if len(f.pending) == 0 {
		return nil
	}
	_, err := f.pw.WriteRows(f.pending)
	clear(f.pending)
	f.pending = f.pending[:0]
	if err != nil {
		return fmt.Errorf("table %s: %w", f.table.Name, err)
	}
	return nil
}

// ObjectKey is where a file goes: <table>/year=/month=/day=/hour=/<topic>-
// <partition>-<first offset>.parquet. Naming by the first row's offset (not
// the batch's) is what makes a replay after a crash overwrite the same files
// even when the replayed batches are cut differently: the batch holding that
// row again starts this file with it.
func ObjectKey(table string, hour time.Time, topic string, partition int32, first int64) string {
	return fmt.Sprintf("%s/year=%04d/month=%02d/day=%02d/hour=%02d/%s-%d-%020d.parquet",
		table, hour.Year(), hour.Month(), hour.Day(), hour.Hour(), strings.ReplaceAll(topic, ".", "_"), partition, first)
}

// Writer encodes batches of records into Parquet files in storage.
type Writer struct {
	Tables  *Tables
	Storage Storage
	// RowGroupRows bounds a row group, so scans can skip by statistics.
	RowGroupRows int64
	// OnError receives records that cannot be written (kept out of the file
	// rather than failing the whole batch forever).
	OnError func(r *Record, err error)
}

// Batch gathers records into open files until Commit stores them.
type Batch struct {
	w     *Writer
	files map[fileKey]*openFile
	rows  int
}

// NewBatch starts an empty batch.
func (w *Writer) NewBatch() *Batch { return &Batch{w: w, files: map[fileKey]*openFile{}} }

// Rows is the number of rows added.
func (b *Batch) Rows() int { return b.rows }

// Add encodes records into their files. A record that cannot be written
// (no table, bad time) is reported through OnError and left out.
func (b *Batch) Add(recs []*Record) error {
	for _, r := range recs {
		tab, row, err := b.w.Tables.For(r)
		if err != nil {
			b.w.fail(r, err)
			continue
		}
		if tab == nil {
			continue // a control record, not data
		}
		hour, err := partitionHour(row[tab.TimeField])
		if err != nil {
			b.w.fail(r, fmt.Errorf("%s: %w", tab.TimeField, err))
			continue
		}
		if !tableNameRe.MatchString(tab.Name) {
			b.w.fail(r, fmt.Errorf("table name %q", tab.Name))
			continue
		}
		prow, err := tab.Encode(row)
		if err != nil {
			b.w.fail(r, err)
			continue
		}
		k := fileKey{table: tab.Name, hour: hour, topic: r.Topic, partition: r.Partition}
		f := b.files[k]
		if f == nil {
			f = &openFile{table: tab, first: r.Offset}
			f.pw = parquet.NewGenericWriter[any](&f.buf, tab.Schema, parquet.MaxRowsPerRowGroup(b.w.rowGroupRows()),
				parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault}),
				parquet.CreatedBy("caracal", "1", ""),
				parquet.BloomFilters(tab.blooms...))
			b.files[k] = f
		}
		if r.Offset < f.first {
			f.first = r.Offset
		}
		f.pending = append(f.pending, prow)
		if len(f.pending) >= pendingRows {
			if err := f.flushPending(); err != nil {
				return err
			}
		}
		b.rows++
	}
	return nil
}

// Commit closes every file and stores it; it returns once all are durable.
func (b *Batch) Commit(ctx context.Context) error {
	keys := make([]fileKey, 0, len(b.files))
	for k := range b.files {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].table < keys[j].table || (keys[i].table == keys[j].table && keys[i].hour.Before(keys[j].hour))
	})
	for _, k := range keys {
		f := b.files[k]
		if err := f.flushPending(); err != nil {
			return err
		}
		if err := f.pw.Close(); err != nil {
			return fmt.Errorf("table %s: %w", k.table, err)
		}
		if err := b.w.Storage.Put(ctx, ObjectKey(k.table, k.hour, k.topic, k.partition, f.first), f.buf.Bytes()); err != nil {
			return err
		}
		delete(b.files, k)
	}
	return nil
}

// Write writes every record; it returns once all files are stored.
func (w *Writer) Write(ctx context.Context, recs []*Record) error {
	b := w.NewBatch()
	if err := b.Add(recs); err != nil {
		return err
	}
	return b.Commit(ctx)
}

func (w *Writer) rowGroupRows() int64 {
	if w.RowGroupRows <= 0 {
		return 32 * 1024
	}
	return w.RowGroupRows
}

func (w *Writer) fail(r *Record, err error) {
	if w.OnError != nil {
		w.OnError(r, err)
	}
}

func partitionHour(v any) (time.Time, error) {
	t, err := asTime(v)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC().Truncate(time.Hour), nil
}
