package lake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/caracal-sec/caracal/plugins/claim"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// Record is one row to write and where it came from: decoded (Value), or
// for events as the JSON they arrived in (Raw).
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Value     map[string]any
	Raw       []byte
	// Time is when the broker received the record: a record kept in the
	// failures table is partitioned by it, the same on every replay.
	Time time.Time
	// Turn is the record's batch's place among those read under the
	// consumer's claim on the partition: batches are taken in turn, and
	// once the claim ends the record's file is not stored (package claim).
	// None: always stored, in any order.
	Turn claim.Turn
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

// LogTypes lists the log types that have a table, sorted.
func (t *Tables) LogTypes() []string {
	return slices.Sorted(maps.Keys(t.logs))
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

// For picks the table for a record and shapes its row; a nil table (and no
// error) means the record is a control record with no place in the lake.
func (t *Tables) For(r *Record) (*Table, map[string]any, error) {
	v := r.Value
	switch r.Topic {
	case envelope.TopicEvents:
		lt, _ := v[envelope.FieldLogType].(string)
		tab, err := t.logTable(lt)
		if err != nil {
			return nil, nil, err
		}
		return tab, v, nil
	case envelope.TopicFailures:
		return t.failures, v, nil
	case envelope.TopicRuleMatches, envelope.TopicMatches: // the latter: lake pipelines of before p_alert_id
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
		return tab, alertRow(v), nil
	case envelope.TopicDeliveries:
		return t.delivery, v, nil
	}
	return nil, nil, fmt.Errorf("no lake table for topic %q", r.Topic)
}

// logTable is the table of an event's log type.
func (t *Tables) logTable(logType string) (*Table, error) {
	if tab := t.logs[logType]; tab != nil {
		return tab, nil
	}
	return nil, fmt.Errorf("event of log type %q has no schema", logType)
}

// alertRow is an alert with the indicators of the events it carries, each
// value once, so that an alert is found by what its events mention.
func alertRow(v map[string]any) map[string]any {
	events, _ := v["events"].([]any)
	if len(events) == 0 {
		return v
	}
	row := maps.Clone(v)
	for _, f := range envelope.IndicatorFields {
		var vals []string
		for _, e := range events {
			ev, _ := e.(map[string]any)
			list, _ := ev[f].([]any)
			for _, x := range list {
				if s, ok := x.(string); ok && !slices.Contains(vals, s) {
					vals = append(vals, s)
				}
			}
		}
		if len(vals) > 0 {
			slices.Sort(vals)
			row[f] = vals
		}
	}
	return row
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

// fileKey groups rows into files: one per table, hour and source partition,
// and per claim on it, so that the rows read before the partition went and
// after it came back are stored or dropped apart.
type fileKey struct {
	table     string
	hour      time.Time
	topic     string
	partition int32
	claim     *claim.Claim
}

// openFile is a Parquet file being written: rows are encoded as they
// arrive, so a roll holds compressed pages and one row group's column
// buffers per file rather than every decoded event.
type openFile struct {
	table *Table
	key   fileKey
	buf   bytes.Buffer
	// pw's own row group takes the rows (ColumnWriters, Flush): a row
	// group begun beside it (BeginRowGroup) made a second set of column
	// buffers, 680 KiB an open CloudTrail file where 370 do.
	pw    *parquet.GenericWriter[any]
	first int64 // lowest offset among the rows; -1 while none
	// cols holds the values of the pending rows, column by column; they go
	// to the column writers in groups (one call per row costs a third of
	// the encoding time).
	cols    [][]parquet.Value
	mark    []int // repeated columns' lengths before the row being encoded
	pending int   // rows in cols
	rgRows  int64 // rows in the current row group
	maxRows int64
	closed  bool // footer written; only storing is left
}

const pendingRows = 64

// zstdCodec is shared by every file: a codec keeps its own pool of
// encoders, each with a 16 MB history, and one per open file held more
// memory than all the rows being written.
// Its fastest level: with the indicator lists dictionary encoded, the
// pages left to compress differ little between levels, and in four
// alternating lakebench runs it wrote 200,000 CloudTrail events 5–19%
// faster (53,732–57,125 rows/s against 47,894–53,311) for a lake 1%
// larger (10.3 MB against 10.2 MB). Before the dictionaries it cost 4%.
var zstdCodec = &zstd.Codec{Level: zstd.SpeedFastest}

// newOpenFile starts a file with a writer of its own. Reusing a stored
// file's writer (GenericWriter.Reset) would save it growing its column
// buffers again, but parquet-go v0.32.0's Reset empties every column
// chunk's path_in_schema in the files written after it, which Athena and
// Spark cannot read (parquet-go/parquet-go#602, open; reproduced here).
func newOpenFile(tab *Table, key fileKey, maxRows int64) *openFile {
	f := &openFile{table: tab, key: key, first: -1, maxRows: maxRows,
		cols: make([][]parquet.Value, tab.Columns()), mark: make([]int, len(tab.repeated))}
	opts := append([]parquet.WriterOption{tab.Schema, parquet.Compression(zstdCodec),
		parquet.CreatedBy("caracal", "1", ""),
		parquet.BloomFilters(tab.blooms...)}, tab.skipBounds...)
	f.pw = parquet.NewGenericWriter[any](&f.buf, opts...)
	return f
}

// rowEncoder encodes one row into per-column value slices.
type rowEncoder interface {
	encode(cols [][]parquet.Value) error
}

// mapRow is a row given as a decoded event.
type mapRow struct {
	tab *Table
	row map[string]any
}

func (e mapRow) encode(cols [][]parquet.Value) error { return e.tab.EncodeColumns(cols, e.row) }

// add encodes one row; a row that fails leaves no trace in the file.
func (f *openFile) add(row rowEncoder) error {
	f.markRow()
	if err := row.encode(f.cols); err != nil {
		f.dropRow()
		return err
	}
	f.keepRow()
	return nil
}

// markRow notes where the row about to be encoded starts. A column that
// does not repeat takes one value a row, so only the repeated columns'
// lengths need noting (17 of CloudTrail's 75).
func (f *openFile) markRow() {
	for i, c := range f.table.repeated {
		f.mark[i] = len(f.cols[c])
	}
}

// dropRow removes the values encoded since markRow.
func (f *openFile) dropRow() {
	m := 0 // the next repeated column
	for i := range f.cols {
		n := f.pending // the rows kept, one value each
		if m < len(f.mark) && f.table.repeated[m] == i {
			n = f.mark[m]
			m++
		}
		clear(f.cols[i][n:])
		f.cols[i] = f.cols[i][:n]
	}
}

// keepRow counts the row encoded since markRow.
func (f *openFile) keepRow() {
	f.pending++
	f.rgRows++
}

func (f *openFile) maybeFlush() error {
	if f.pending >= pendingRows || f.rgRows >= f.maxRows {
		return f.flushPending()
	}
	return nil
}

// flushPending hands the pending rows to the column writers and commits
// the row group once it holds maxRows.
func (f *openFile) flushPending() error {
	if f.pending > 0 {
		for i, w := range f.pw.ColumnWriters() {
			if _, err := w.WriteRowValues(f.cols[i]); err != nil {
				return fmt.Errorf("table %s: %w", f.table.Name, err)
			}
			// Not cleared: the values point into events that the roll
			// holds until it is stored (acknowledged only then), and the
			// next rows overwrite them; clearing cost 2% of writing.
			f.cols[i] = f.cols[i][:0]
		}
		f.pending = 0
	}
	if f.rgRows >= f.maxRows {
		return f.commitRowGroup()
	}
	return nil
}

func (f *openFile) commitRowGroup() error {
	if f.rgRows == 0 {
		return nil
	}
	if err := f.pw.Flush(); err != nil {
		return fmt.Errorf("table %s: %w", f.table.Name, err)
	}
	f.rgRows = 0
	return nil
}

// close writes what is pending and the file's footer, once.
func (f *openFile) close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	if err := f.flushPending(); err != nil {
		return err
	}
	if err := f.commitRowGroup(); err != nil {
		return err
	}
	if err := f.pw.Close(); err != nil {
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
	// MaxOpenFiles bounds the files a batch holds open (default 128): each
	// takes about 5 KiB per column before its first row, 370 KiB for
	// CloudTrail, and a backfill spans thousands of hours.
	MaxOpenFiles int
	// OnError receives records that cannot be written (kept out of the file
	// rather than failing the whole batch forever).
	OnError func(r *Record, err error)
}

// Batch gathers records into open files until Commit stores them.
type Batch struct {
	w       *Writer
	files   map[fileKey]*openFile
	rows    int
	last    *openFile // the file of the previous row (see addRaw)
	keeping bool      // placing a failure row (see fail)
}

// NewBatch starts an empty batch.
func (w *Writer) NewBatch() *Batch { return &Batch{w: w, files: map[fileKey]*openFile{}} }

// Rows is the number of rows added.
func (b *Batch) Rows() int { return b.rows }

// Add encodes records into their files. A record that cannot be written
// (no table, bad time) is reported through OnError and left out.
func (b *Batch) Add(recs []*Record) error {
	for _, r := range recs {
		if r.Value == nil && r.Topic == envelope.TopicEvents {
			if err := b.addRaw(r); err != nil {
				return err
			}
			continue
		}
		if r.Value == nil {
			v, err := envelope.DecodeObject(r.Raw)
			if err != nil {
				if err := b.fail(r, err); err != nil {
					return err
				}
				continue
			}
			r.Value = v
		}
		tab, row, err := b.w.Tables.For(r)
		if err != nil {
			if err := b.fail(r, err); err != nil {
				return err
			}
			continue
		}
		if tab == nil {
			continue // a control record, not data
		}
		hour, err := partitionHour(row[tab.TimeField])
		if err := b.place(r, tab, hour, err, mapRow{tab, row}); err != nil {
			return err
		}
	}
	return nil
}

// AddUntilFull adds records as Add does until the batch holds
// MaxOpenFiles files; rest are the records it did not take.
func (b *Batch) AddUntilFull(recs []*Record) (rest []*Record, err error) {
	for i := range recs {
		if b.Full() {
			return recs[i:], nil
		}
		if err := b.Add(recs[i : i+1]); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// Full reports that the batch holds as many files as it may.
func (b *Batch) Full() bool {
	max := b.w.MaxOpenFiles
	if max <= 0 {
		max = DefaultMaxOpenFiles
	}
	return len(b.files) >= max
}

// DefaultMaxOpenFiles is Writer.MaxOpenFiles when unset.
const DefaultMaxOpenFiles = 128

// place encodes a row into its file (by table, hour and source
// partition); a row whose hour is an error, or that cannot be encoded, is
// reported through OnError and left out. Only a failing column writer is
// an error.
func (b *Batch) place(r *Record, tab *Table, hour time.Time, err error, row rowEncoder) error {
	if err != nil {
		return b.fail(r, fmt.Errorf("%s: %w", tab.TimeField, err))
	}
	k := fileKey{table: tab.Name, hour: hour, topic: r.Topic, partition: r.Partition, claim: r.Turn.Claim()}
	f := b.files[k]
	if f == nil {
		if !envelope.ValidTableName(tab.Name) {
			return b.fail(r, fmt.Errorf("table name %q", tab.Name))
		}
		f = newOpenFile(tab, k, b.w.rowGroupRows())
		b.files[k] = f
	}
	if err := f.add(row); err != nil {
		return b.fail(r, err)
	}
	return b.added(f, r)
}

// added accounts for a row just added to f.
func (b *Batch) added(f *openFile, r *Record) error {
	if f.first < 0 || r.Offset < f.first {
		f.first = r.Offset
	}
	b.rows++
	b.last = f
	return f.maybeFlush()
}

// Commit closes every file and stores it; it returns once all are durable.
// A failure to store (see StoreError) leaves the files not yet stored in
// the batch, so calling Commit again stores only those. Files of a claim
// that ended are dropped: the partition's new owner writes those rows.
func (b *Batch) Commit(ctx context.Context) error {
	keys := make([]fileKey, 0, len(b.files))
	for k, f := range b.files {
		if f.first < 0 {
			delete(b.files, k) // every row failed: no file
			continue
		}
		if err := f.close(); err != nil {
			return err
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].table < keys[j].table || (keys[i].table == keys[j].table && keys[i].hour.Before(keys[j].hour))
	})
	for _, k := range keys {
		if err := b.store(ctx, k); err != nil {
			return &StoreError{Err: err}
		}
		delete(b.files, k)
	}
	return nil
}

// store puts one file, unless its claim ended.
func (b *Batch) store(ctx context.Context, k fileKey) error {
	if !k.claim.Begin() {
		return nil
	}
	defer k.claim.Done()
	f := b.files[k]
	return b.w.Storage.Put(ctx, ObjectKey(k.table, k.hour, k.topic, k.partition, f.first), f.buf.Bytes())
}

// StoreError is a failure of the storage (a full disk, object storage out
// of reach) rather than of the rows: writing the same files again may
// succeed.
type StoreError struct{ Err error }

func (e *StoreError) Error() string { return e.Err.Error() }
func (e *StoreError) Unwrap() error { return e.Err }

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

// fail deals with a record that cannot be written to its table: it is
// reported through OnError and, unless it is a failure record itself,
// kept in the failures table with the reason and its bytes, so nothing
// the broker acknowledged is lost (a schema removed while its events were
// in flight, a record from another writer). Only a failing column writer
// is an error.
func (b *Batch) fail(r *Record, cause error) error {
	if b.w.OnError != nil {
		b.w.OnError(r, cause)
	}
	if b.keeping || r.Topic == envelope.TopicFailures || b.w.Tables == nil || b.w.Tables.failures == nil {
		return nil
	}
	at := r.Time
	if at.IsZero() {
		at = time.Now()
	}
	f := envelope.ClassificationFailure{Tried: []string{},
		ReceivedAt: envelope.FormatTime(at), FailedAt: envelope.FormatTime(at)}
	raw, ev := r.Raw, r.Value
	if raw == nil && ev != nil {
		raw, _ = envelope.EncodeEvent(ev)
	}
	if ev == nil {
		ev, _ = envelope.DecodeObject(raw)
	}
	f.SetRaw(raw)
	logType := ""
	if ev != nil {
		str := func(k string) string { s, _ := ev[k].(string); return s }
		f.SourceID, f.SourceLabel, f.RowID, logType = str(envelope.FieldSourceID), str(envelope.FieldSourceLabel), str(envelope.FieldRowID), str(envelope.FieldLogType)
	}
	if logType != "" {
		f.Tried = []string{logType}
	}
	f.Reasons = []envelope.FailureReason{{LogType: logType, Reason: fmt.Sprintf("lake: %s record %d/%d not written: %v", r.Topic, r.Partition, r.Offset, cause)}}
	row, err := json.Marshal(f)
	if err != nil {
		return nil
	}
	tab := b.w.Tables.failures // partitioned by received_at: at
	b.keeping = true
	defer func() { b.keeping = false }()
	return b.place(r, tab, hourOf(at), nil, rawRow{tab, row})
}

func partitionHour(v any) (time.Time, error) {
	t, err := asTime(v)
	if err != nil {
		return time.Time{}, err
	}
	return hourOf(t), nil
}

// hourOf is the UTC hour a time falls in: its partition.
func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }
