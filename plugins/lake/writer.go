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

var tableNameRe = regexp.MustCompile(`^[a-z0-9_]+$`)

// For picks the table for a record and shapes its row.
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

type fileRows struct {
	table *Table
	first int64
	last  int64
	rows  []parquet.Row
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

// Write writes every record; it returns once all files are stored.
func (w *Writer) Write(ctx context.Context, recs []*Record) error {
	files := map[fileKey]*fileRows{}
	for _, r := range recs {
		tab, row, err := w.Tables.For(r)
		if err != nil {
			w.fail(r, err)
			continue
		}
		hour, err := partitionHour(row[tab.TimeField])
		if err != nil {
			w.fail(r, fmt.Errorf("%s: %w", tab.TimeField, err))
			continue
		}
		if !tableNameRe.MatchString(tab.Name) {
			w.fail(r, fmt.Errorf("table name %q", tab.Name))
			continue
		}
		prow, err := tab.Encode(row)
		if err != nil {
			w.fail(r, err)
			continue
		}
		k := fileKey{table: tab.Name, hour: hour, topic: r.Topic, partition: r.Partition}
		f := files[k]
		if f == nil {
			f = &fileRows{table: tab, first: r.Offset}
			files[k] = f
		}
		if r.Offset < f.first {
			f.first = r.Offset
		}
		if r.Offset > f.last {
			f.last = r.Offset
		}
		f.rows = append(f.rows, prow)
	}
	keys := make([]fileKey, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].table < keys[j].table || (keys[i].table == keys[j].table && keys[i].hour.Before(keys[j].hour))
	})
	for _, k := range keys {
		f := files[k]
		data, err := w.encodeFile(f)
		if err != nil {
			return fmt.Errorf("table %s: %w", k.table, err)
		}
		if err := w.Storage.Put(ctx, ObjectKey(k.table, k.hour, k.topic, k.partition, f.first), data); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) fail(r *Record, err error) {
	if w.OnError != nil {
		w.OnError(r, err)
	}
}

func (w *Writer) encodeFile(f *fileRows) ([]byte, error) {
	var buf bytes.Buffer
	rg := w.RowGroupRows
	if rg <= 0 {
		rg = 128 * 1024
	}
	pw := parquet.NewGenericWriter[any](&buf, f.table.Schema, parquet.MaxRowsPerRowGroup(rg),
		parquet.Compression(&zstd.Codec{Level: zstd.SpeedDefault}),
		parquet.CreatedBy("caracal", "1", ""))
	if _, err := pw.WriteRows(f.rows); err != nil {
		return nil, err
	}
	if err := pw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func partitionHour(v any) (time.Time, error) {
	t, err := asTime(v)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC().Truncate(time.Hour), nil
}
