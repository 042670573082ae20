package lake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/caracal-sec/caracal/plugins/claim"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/lake/laketest"
	"github.com/caracal-sec/caracal/plugins/parse"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

func tables(t testing.TB) *Tables {
	t.Helper()
	tb, err := NewTables(shippedSchemas(t))
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func shippedSchemas(t testing.TB) []*schema.Schema {
	t.Helper()
	schemas, err := schema.LoadDir("../../schemas")
	if err != nil {
		t.Fatal(err)
	}
	return schemas
}

// shippedClassifier is the process stage's parser over the shipped schemas.
func shippedClassifier(t testing.TB) *parse.Classifier {
	t.Helper()
	c, err := parse.NewClassifier(shippedSchemas(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func event(id string, hour int) map[string]any {
	return map[string]any{
		"p_log_type": "AWS.CloudTrail", "p_event_time": fmt.Sprintf("2026-11-23T%02d:04:05.000000000Z", hour),
		"p_parse_time": "2026-11-24T00:00:00.000000000Z", "p_row_id": "r-" + id, "p_source_id": "demo",
		"p_any_ip_addresses": []any{"198.51.100.23", "10.0.0.1"}, "p_schema_version": int64(0),
		"eventID": id, "eventName": "ConsoleLogin", "eventTime": fmt.Sprintf("2026-11-23T%02d:04:05.000000000Z", hour),
		"readOnly": false, "awsRegion": "us-east-1", "eventVersion": "1.08", "eventSource": "signin.amazonaws.com",
		"userIdentity": map[string]any{"type": "Root", "accountId": "111122223333",
			"sessionContext": map[string]any{"attributes": map[string]any{"mfaAuthenticated": "false"}}},
		"resources":         []any{map[string]any{"ARN": "arn:aws:s3:::b", "type": "AWS::S3::Bucket"}, map[string]any{"ARN": "arn:aws:s3:::c"}},
		"responseElements":  map[string]any{"ConsoleLogin": "Success"},
		"requestParameters": nil,
	}
}

func recs(topic string, partition int32, from int64, values ...map[string]any) []*Record {
	var out []*Record
	for i, v := range values {
		out = append(out, &Record{Topic: topic, Partition: partition, Offset: from + int64(i), Value: v})
	}
	return out
}

func TestWriteReadBackWithPyarrow(t *testing.T) {
	dir := t.TempDir()
	w := &Writer{Tables: tables(t), Storage: &LocalStorage{Dir: dir}}
	var failed []error
	w.OnError = func(_ *Record, err error) { failed = append(failed, err) }
	in := recs(envelope.TopicEvents, 2, 100, event("a", 21), event("b", 21), event("c", 22))
	in = append(in, recs(envelope.TopicFailures, 1, 7, map[string]any{
		"raw": "garbage", "raw_encoding": "utf8", "p_source_id": "demo", "p_row_id": "f1",
		"log_types_tried": []any{"AWS.CloudTrail"}, "reasons": []any{map[string]any{"log_type": "AWS.CloudTrail", "reason": "not a JSON object"}},
		"received_at": "2026-11-24T00:10:00.000000000Z", "failed_at": "2026-11-24T00:10:00.100000000Z",
	})...)
	in = append(in, recs(envelope.TopicAlerts, 0, 3, map[string]any{
		"id": "R", "alertId": "x1", "createdAt": "2026-11-24T00:11:00Z", "updatedAt": "2026-11-24T00:11:00Z",
		"type": "SYSTEM_ERROR", "tags": []any{}, "eventCount": int64(1), "alertContext": map[string]any{},
	}, map[string]any{
		"id": "AWS.CloudTrail.RootConsoleLogin", "alertId": "a1", "createdAt": "2026-11-24T00:12:00Z", "updatedAt": "2026-11-24T00:12:00Z",
		"type": "RULE", "tags": []any{}, "eventCount": int64(2), "alertContext": map[string]any{},
		"events": []any{event("a", 21), map[string]any{"eventID": "d", "p_any_ip_addresses": []any{"192.0.2.9", "10.0.0.1"}}},
	})...)
	if err := w.Write(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if len(failed) > 0 {
		t.Fatal(failed)
	}
	rows := laketest.ReadTable(t, filepath.Join(dir, "aws_cloudtrail"))
	if len(rows) != 3 {
		t.Fatalf("%d CloudTrail rows, want 3", len(rows))
	}
	byID := map[string]map[string]any{}
	for _, r := range rows {
		byID[r["eventID"].(string)] = r
	}
	a := byID["a"]
	if a["p_event_time"] != "2026-11-23T21:04:05Z" || a["readOnly"] != false || a["eventName"] != "ConsoleLogin" {
		t.Errorf("row a scalars: %v %v %v", a["p_event_time"], a["readOnly"], a["eventName"])
	}
	if fmt.Sprint(a["p_any_ip_addresses"]) != "[198.51.100.23 10.0.0.1]" {
		t.Errorf("list column: %v", a["p_any_ip_addresses"])
	}
	ui := a["userIdentity"].(map[string]any)
	attrs := ui["sessionContext"].(map[string]any)["attributes"].(map[string]any)
	if ui["type"] != "Root" || attrs["mfaAuthenticated"] != "false" || ui["userName"] != nil {
		t.Errorf("nested group: %v", ui)
	}
	res := a["resources"].([]any)
	if len(res) != 2 || res[0].(map[string]any)["ARN"] != "arn:aws:s3:::b" || res[1].(map[string]any)["type"] != nil {
		t.Errorf("list of groups: %v", res)
	}
	if a["responseElements"] != `{"ConsoleLogin":"Success"}` || a["requestParameters"] != nil {
		t.Errorf("json columns: %v / %v", a["responseElements"], a["requestParameters"])
	}
	if !strings.Contains(byID["c"]["_file"].(string), "/aws_cloudtrail/year=2026/month=11/day=23/hour=22/caracal_events-2-") ||
		!strings.Contains(a["_file"].(string), "/hour=21/caracal_events-2-00000000000000000100.parquet") {
		t.Errorf("partition paths: %v, %v", a["_file"], byID["c"]["_file"])
	}
	f := laketest.ReadTable(t, filepath.Join(dir, "classification_failures"))
	if len(f) != 1 || f[0]["raw"] != "garbage" || !strings.Contains(fmt.Sprint(f[0]["reasons"]), "not a JSON object") {
		t.Errorf("failures: %v", f)
	}
	if s := laketest.ReadTable(t, filepath.Join(dir, "system_errors")); len(s) != 1 || s[0]["alertId"] != "x1" {
		t.Errorf("system errors: %v", s)
	}
	// An alert carries the indicators of its events, each once, by which
	// search finds it.
	if al := laketest.ReadTable(t, filepath.Join(dir, "alerts")); len(al) != 1 || fmt.Sprint(al[0]["p_any_ip_addresses"]) != "[10.0.0.1 192.0.2.9 198.51.100.23]" {
		t.Errorf("alerts: %v", al)
	}
	checkTypes(t, filepath.Join(dir, "aws_cloudtrail"))
}

// checkTypes asks pyarrow for the column types of the CloudTrail table.
func checkTypes(t *testing.T, dir string) {
	py := laketest.Python(t)
	script := `import sys, glob, pyarrow.parquet as pq
s = pq.read_schema(sorted(glob.glob(sys.argv[1] + '/**/*.parquet', recursive=True))[0])
for n in ['eventTime', 'p_event_time', 'readOnly', 'p_any_ip_addresses', 'userIdentity', 'resources', 'p_schema_version']:
    print(n, s.field(n).type)`
	out, err := exec.Command(py, "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{
		"eventTime timestamp[us, tz=UTC]", "p_event_time timestamp[us, tz=UTC]", "readOnly bool",
		"p_any_ip_addresses list<element: string>", "userIdentity struct<", "resources list<element: struct<",
		"p_schema_version int64",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("column types lack %q:\n%s", want, got)
		}
	}
}

// A replay after a crash re-reads from the last commit and may cut batches
// differently; files named by their first row's offset get overwritten, so
// no row appears twice.
func TestReplayOverwritesInsteadOfDuplicating(t *testing.T) {
	dir := t.TempDir()
	w := &Writer{Tables: tables(t), Storage: &LocalStorage{Dir: dir}}
	all := recs(envelope.TopicEvents, 0, 100,
		event("e100", 21), event("e101", 22), event("e102", 21), event("e103", 22), event("e104", 21), event("e105", 22))
	ctx := context.Background()
	// Before the crash: offsets 100-105 were written but never committed.
	if err := w.Write(ctx, all); err != nil {
		t.Fatal(err)
	}
	// After the restart the same offsets arrive again, cut into other batches.
	for _, part := range [][]*Record{all[:1], all[1:4], all[4:]} {
		if err := w.Write(ctx, part); err != nil {
			t.Fatal(err)
		}
	}
	rows := laketest.ReadTable(t, filepath.Join(dir, "aws_cloudtrail"))
	seen := map[string]int{}
	for _, r := range rows {
		seen[r["eventID"].(string)]++
	}
	if len(seen) != 6 || len(rows) != 6 {
		t.Fatalf("after replay: %d rows, %v", len(rows), seen)
	}
}

// Rows read under a claim that ended (the partition went to another
// worker, or came back to this one after a broker restart) are not stored:
// the partition's owner reads them again from the last commit. Stored,
// they would be kept twice beside the rows read again, or replace the new
// owner's file of the same name with fewer rows.
func TestRowsOfAGonePartitionAreNotStored(t *testing.T) {
	dir := t.TempDir()
	w := &Writer{Tables: tables(t), Storage: &LocalStorage{Dir: dir}}
	ctx := context.Background()
	ids := func(prefix string, n int) []map[string]any {
		var evs []map[string]any
		for i := range n {
			evs = append(evs, event(fmt.Sprintf("%s%d", prefix, i), 21))
		}
		return evs
	}
	// Partition 0 goes and comes back while its rows wait in one batch.
	b := w.NewBatch()
	before, after := claim.New(), claim.New()
	if err := b.Add(inTurn(before, recs(envelope.TopicEvents, 0, 100, ids("p0-", 3)...))); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(recs(envelope.TopicEvents, 1, 7, ids("p1-", 2)...)); err != nil { // no claim: always stored
		t.Fatal(err)
	}
	before.End()
	if err := b.Add(inTurn(after, recs(envelope.TopicEvents, 0, 100, ids("p0-", 5)...))); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Partition 2's new owner stored its rows; the old owner's batch,
	// stored late, holds fewer of them under the same first offset.
	owner, old := claim.New(), claim.New()
	if err := w.Write(ctx, inTurn(owner, recs(envelope.TopicEvents, 2, 40, ids("p2-", 4)...))); err != nil {
		t.Fatal(err)
	}
	late := w.NewBatch()
	if err := late.Add(inTurn(old, recs(envelope.TopicEvents, 2, 40, ids("p2-", 2)...))); err != nil {
		t.Fatal(err)
	}
	old.End()
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	seen := map[string]int{}
	for _, r := range laketest.ReadTable(t, filepath.Join(dir, "aws_cloudtrail")) {
		seen[r["eventID"].(string)]++
	}
	want := map[string]int{"p0-0": 1, "p0-1": 1, "p0-2": 1, "p0-3": 1, "p0-4": 1, "p1-0": 1, "p1-1": 1, "p2-0": 1, "p2-1": 1, "p2-2": 1, "p2-3": 1}
	if !maps.Equal(seen, want) {
		t.Fatalf("rows in the lake (event id: times) = %v, want %v", seen, want)
	}
}

func TestKeysCannotEscapeTheLake(t *testing.T) {
	for _, k := range []string{"../etc/passwd", "/abs/file", "a/../../b", "a//b", "a/./b", "t/x y.parquet", ""} {
		if err := CheckKey(k); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
	if err := CheckKey(ObjectKey("aws_cloudtrail", time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC), "caracal.events", 1, 5)); err != nil {
		t.Error(err)
	}
	// A log type that is not a plain name never becomes a directory.
	w := &Writer{Tables: tables(t), Storage: &LocalStorage{Dir: t.TempDir()}}
	var errs []error
	w.OnError = func(_ *Record, err error) { errs = append(errs, err) }
	ev := event("x", 21)
	ev["p_log_type"] = "../../Evil"
	if err := w.Write(context.Background(), recs(envelope.TopicEvents, 0, 1, ev)); err != nil || len(errs) != 1 {
		t.Fatalf("err %v, rejected %v", err, errs)
	}
}

// The S3 path against a real MinIO server (CI starts one with scripts/minio.sh).
func minIO(t *testing.T) (endpoint, bucket string) { return laketest.MinIO(t, "caracal-test") }

func TestS3StorageMinIO(t *testing.T) {
	_, bucket := minIO(t)
	st, err := NewS3Storage("s3://" + bucket + "/lake")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w := &Writer{Tables: tables(t), Storage: st}
	if err := w.Write(ctx, recs(envelope.TopicEvents, 4, 9, event("s3a", 21), event("s3b", 21))); err != nil {
		t.Fatal(err)
	}
	key := "lake/" + ObjectKey("aws_cloudtrail", time.Date(2026, 11, 23, 21, 0, 0, 0, time.UTC), envelope.TopicEvents, 4, 9)
	obj, err := st.Client().GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(t.TempDir(), "t")
	os.MkdirAll(local, 0o755)
	f, _ := os.Create(filepath.Join(local, "x.parquet"))
	if _, err := f.ReadFrom(obj); err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	f.Close()
	rows := laketest.ReadTable(t, local)
	if len(rows) != 2 || rows[0]["eventID"] != "s3a" {
		t.Fatalf("rows from MinIO: %v", rows)
	}
}

// The start-up probe finds a lake that cannot be written at once, saying
// what to check: wrong credentials, a bucket that does not exist. A lake
// that can be written gets the probe object, outside every table.
func TestProbeFindsAnUnwritableLake(t *testing.T) {
	_, bucket := minIO(t)
	ctx := context.Background()
	st, err := NewS3Storage("s3://" + bucket + "/lake")
	if err != nil {
		t.Fatal(err)
	}
	if err := Probe(ctx, st); err != nil {
		t.Fatalf("a writable bucket: %v", err)
	}
	if _, err := st.Client().StatObject(ctx, bucket, "lake/"+ProbeKey, minio.StatObjectOptions{}); err != nil {
		t.Fatalf("probe object: %v", err)
	}
	missing, err := NewS3Storage("s3://" + bucket + "-missing/lake")
	if err != nil {
		t.Fatal(err)
	}
	if err := Probe(ctx, missing); err == nil || !strings.Contains(err.Error(), "cannot be written (check its credentials, bucket") {
		t.Errorf("a missing bucket: %v", err)
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong-"+os.Getenv("AWS_SECRET_ACCESS_KEY"))
	wrong, err := NewS3Storage("s3://" + bucket + "/lake")
	if err != nil {
		t.Fatal(err)
	}
	if err := Probe(ctx, wrong); err == nil {
		t.Error("wrong credentials passed the probe")
	}
	local := &LocalStorage{Dir: t.TempDir()}
	if err := Probe(ctx, local); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(local.Dir, "_caracal", "writable")); err != nil {
		t.Fatalf("probe file: %v", err)
	}
}

// Object storage out of reach (nothing listens where the lake's S3
// endpoint is) holds the lake back rather than failing it: once the
// endpoint answers (here, a TCP relay to MinIO that starts late), the
// roll is stored and its batch acknowledged.
func TestLakeWaitsForObjectStorage(t *testing.T) {
	endpoint, bucket := minIO(t)
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // refused until the relay starts
	t.Setenv("CARACAL_S3_ENDPOINT", "http://"+addr)
	st, err := NewS3Storage("s3://" + bucket + "/lake")
	if err != nil {
		t.Fatal(err)
	}
	r := NewRoller(&Writer{Tables: tables(t), Storage: st}, 0, time.Millisecond, nil)
	r.RetryMin, r.RetryMax = 10*time.Millisecond, 100*time.Millisecond
	refused := make(chan error, 100)
	r.OnRetry = func(err error, _ int, _ time.Duration) { refused <- err }
	added := make(chan error, 1)
	go func() { added <- r.Add(context.Background(), recs(envelope.TopicEvents, 1, 5, event("late", 21)), 100) }()
	select {
	case err := <-refused:
		t.Logf("refused while out of reach: %v", err)
	case err := <-added:
		t.Fatalf("the roll finished while the storage was out of reach: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("no refusal reported within 60 s")
	}
	laketest.NewRelay(t, addr, target.Host)
	select {
	case err := <-added:
		if err != nil {
			t.Fatalf("the roll failed once the storage was back: %v", err)
		}
	case <-time.After(90 * time.Second):
		t.Fatal("the roll was not stored within 90 s of the storage coming back")
	}
	key := "lake/" + ObjectKey("aws_cloudtrail", time.Date(2026, 11, 23, 21, 0, 0, 0, time.UTC), envelope.TopicEvents, 1, 5)
	if _, err := st.Client().StatObject(context.Background(), bucket, key, minio.StatObjectOptions{}); err != nil {
		t.Fatalf("%s not in the bucket: %v", key, err)
	}
}

// BenchmarkLakeStage is the lake stage's work per batch of 10,000
// CloudTrail events arriving as JSON: parsed and encoded into columns
// directly (as the stage does), or decoded into maps first (as it did).
func BenchmarkLakeStage(b *testing.B) {
	w := &Writer{Tables: tables(b), Storage: discard{}}
	raws := make([][]byte, 10000)
	for i := range raws {
		raw, err := envelope.EncodeEvent(event(fmt.Sprint(i), 21))
		if err != nil {
			b.Fatal(err)
		}
		raws[i] = raw
	}
	run := func(b *testing.B, decode bool) {
		b.ReportAllocs()
		for b.Loop() {
			batch := make([]*Record, len(raws))
			for i, raw := range raws {
				batch[i] = &Record{Topic: envelope.TopicEvents, Offset: int64(i), Raw: raw}
				if decode {
					v, err := envelope.DecodeObject(raw)
					if err != nil {
						b.Fatal(err)
					}
					batch[i].Value = v
				}
			}
			if err := w.Write(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(raws))/b.Elapsed().Seconds(), "rows/s")
	}
	b.Run("json", func(b *testing.B) { run(b, false) })
	b.Run("maps", func(b *testing.B) { run(b, true) })
	// A real CloudTrail event (1.3 KB as the process stage writes it, with
	// its indicators), as JSON.
	sample, err := os.ReadFile("../../testdata/cloudtrail/root_console_login.json")
	if err != nil {
		b.Fatal(err)
	}
	c := shippedClassifier(b)
	size := 0
	for i := range raws {
		ev, f := c.ClassifyJSON(sample, []string{"AWS.CloudTrail"}, parse.Origin{SourceID: "bench", Offset: int64(i)})
		if f != nil {
			b.Fatal(parse.Describe(f))
		}
		raws[i] = ev.JSON
		size += len(ev.JSON)
	}
	b.Run("cloudtrail", func(b *testing.B) {
		b.SetBytes(int64(size))
		run(b, false)
	})
}

type discard struct{}

func (discard) Put(context.Context, string, []byte) error { return nil }
func (discard) URL() string                               { return "discard" }

// Every shipped log type's schema test events become Parquet rows that
// pyarrow reads back with the same values: the column mapping holds for
// every field type (floats, smallints, refs, nested lists, hyphenated
// names) of every schema, not only CloudTrail's.
func TestEveryLogTypeRoundTrips(t *testing.T) {
	dir, want := writeSchemaSamples(t)
	if len(want) < 10 {
		t.Fatalf("events for %d log types, want every shipped one", len(want))
	}
	for table, evs := range want {
		rows := laketest.ReadTable(t, filepath.Join(dir, table))
		if len(rows) != len(evs) {
			t.Errorf("%s: %d rows, want %d", table, len(rows), len(evs))
			continue
		}
		byRow := map[string]map[string]any{}
		for _, r := range rows {
			byRow[fmt.Sprint(r["p_row_id"])] = r
		}
		for _, ev := range evs {
			r := byRow[fmt.Sprint(ev["p_row_id"])]
			if r == nil {
				t.Errorf("%s: row %v missing", table, ev["p_row_id"])
				continue
			}
			for k, v := range ev {
				if strings.HasPrefix(k, "p_") {
					continue
				}
				if got, want := canonicalValue(r[k]), canonicalValue(v); got != want {
					t.Errorf("%s row %v column %s: pyarrow read %s, wrote %s", table, ev["p_row_id"], k, got, want)
				}
			}
		}
	}
}

// writeSchemaSamples writes every shipped schema's test events to a new
// lake and returns it with the events by table.
func writeSchemaSamples(t *testing.T) (string, map[string][]map[string]any) {
	t.Helper()
	schemas := shippedSchemas(t)
	c := shippedClassifier(t)
	dir := t.TempDir()
	w := &Writer{Tables: tables(t), Storage: &LocalStorage{Dir: dir}}
	var failed []error
	w.OnError = func(_ *Record, err error) { failed = append(failed, err) }
	want := map[string][]map[string]any{}
	var in []*Record
	for _, s := range schemas {
		for _, tc := range s.Tests {
			if tc.Fails {
				continue
			}
			_ = parse.ReadStream(strings.NewReader(tc.Input), func(raw []byte, o parse.Origin) error {
				o.Offset = int64(len(in))
				ev, f := c.Classify(raw, []string{s.Schema}, o)
				if f != nil {
					t.Fatalf("%s: %s", s.Schema, parse.Describe(f))
				}
				if ev != nil {
					want[envelope.TableName(s.Schema)] = append(want[envelope.TableName(s.Schema)], ev)
					// As the lake stage gets them: JSON from caracal.events.
					raw, err := envelope.EncodeEvent(ev)
					if err != nil {
						t.Fatal(err)
					}
					in = append(in, &Record{Topic: envelope.TopicEvents, Partition: 0, Offset: int64(len(in)), Raw: raw})
				}
				return nil
			})
		}
	}
	if err := w.Write(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if len(failed) > 0 {
		t.Fatal(failed)
	}
	return dir, want
}

// Search by indicator: rows that hold the value in any table, nothing else;
// time pruning by hour partition; bloom filters skip row groups without it.
func TestScanLakeByIndicator(t *testing.T) {
	dir, _ := writeSchemaSamples(t)
	tb := tables(t)
	st := &LocalStorage{Dir: dir}
	search := func(col, val string, since, until time.Time) (map[string]int, ScanStats) {
		got := map[string]int{}
		stats, err := ScanLake(context.Background(), st, tb, Scan{Column: col, Value: val, Since: since, Until: until}, func(table string, row map[string]any) error {
			if !holds(row[col], val) {
				t.Errorf("%s row without %s in %s: %v", table, val, col, row[col])
			}
			got[table]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got, stats
	}
	got, stats := search("p_any_ip_addresses", "172.31.16.139", time.Time{}, time.Time{})
	if len(got) != 1 || got["aws_vpcflow"] != 2 {
		t.Errorf("172.31.16.139: %v, want 2 VPC Flow rows", got)
	}
	if stats.RowGroupsPruned == 0 {
		t.Errorf("no row group skipped by bloom filter: %+v", stats)
	}
	got, _ = search("p_any_ip_addresses", "172.31.45.193", time.Time{}, time.Time{})
	if got["aws_vpcdns"] != 2 || len(got) != 1 {
		t.Errorf("172.31.45.193: %v, want 2 VPC DNS rows", got)
	}
	// The first VPC Flow record is from 2014-12-14 04:06:50; one in 2015.
	got, stats = search("p_any_ip_addresses", "172.31.16.139", time.Date(2014, 12, 14, 4, 0, 0, 0, time.UTC), time.Date(2014, 12, 14, 5, 0, 0, 0, time.UTC))
	if got["aws_vpcflow"] != 1 || stats.FilesPruned == 0 {
		t.Errorf("time-bounded search: %v, %+v; want 1 row and pruned files", got, stats)
	}
	if got, _ := search("p_any_ip_addresses", "192.0.2.255", time.Time{}, time.Time{}); len(got) != 0 {
		t.Errorf("absent IP found: %v", got)
	}
	if _, err := ScanLake(context.Background(), st, tb, Scan{Tables: []string{"../etc"}}, func(string, map[string]any) error { return nil }); err == nil {
		t.Error("unknown table accepted")
	}
}

// A file that cannot be read (not Parquet, cut short) is reported and
// skipped: a search still finds the rows of the others. A failure of the
// caller's own callback still ends the scan.
func TestScanSkipsUnreadableFiles(t *testing.T) {
	dir, _ := writeSchemaSamples(t)
	tb := tables(t)
	st := &LocalStorage{Dir: dir}
	good, _ := filepath.Glob(filepath.Join(dir, "aws_vpcflow", "*", "*", "*", "*", "*.parquet"))
	if len(good) == 0 {
		t.Fatal("no VPC Flow files")
	}
	data, err := os.ReadFile(good[0])
	if err != nil {
		t.Fatal(err)
	}
	hourDir := filepath.Dir(good[0])
	os.WriteFile(filepath.Join(hourDir, "a-not-parquet.parquet"), []byte("garbage"), 0o644)
	os.WriteFile(filepath.Join(hourDir, "b-cut-short.parquet"), data[:len(data)/2], 0o644)
	var skipped []string
	rows := 0
	stats, err := ScanLake(context.Background(), st, tb, Scan{Column: "p_any_ip_addresses", Value: "172.31.16.139",
		OnUnreadable: func(key string, err error) { skipped = append(skipped, filepath.Base(key)) }},
		func(string, map[string]any) error { rows++; return nil })
	if err != nil {
		t.Fatalf("the scan stopped at an unreadable file: %v", err)
	}
	if rows != 2 || stats.Unreadable != 2 || len(skipped) != 2 || skipped[0] != "a-not-parquet.parquet" || skipped[1] != "b-cut-short.parquet" {
		t.Fatalf("%d rows, skipped %v (%d), want the 2 VPC Flow rows and both bad files", rows, skipped, stats.Unreadable)
	}
	stop := errors.New("enough")
	if _, err := ScanLake(context.Background(), st, tb, Scan{OnUnreadable: func(string, error) {}},
		func(string, map[string]any) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("the callback's error: %v, want it to end the scan", err)
	}
}

// canonicalValue renders a value the same way whether it came from the
// event map or back from pyarrow: times in UTC, numbers as floats, json
// columns (stored as JSON text) decoded.
func canonicalValue(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 0 && strings.ContainsRune(`{["`, rune(x[0])) {
			var dec any
			if json.Unmarshal([]byte(x), &dec) == nil {
				return canonicalValue(dec)
			}
		}
		if tm, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return tm.UTC().Format(time.RFC3339Nano)
		}
		return x
	case int64:
		return fmt.Sprint(float64(x))
	case int:
		return fmt.Sprint(float64(x))
	case float64:
		return fmt.Sprint(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = canonicalValue(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k, e := range x {
			if e != nil {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + canonicalValue(x[k])
		}
		return "{" + strings.Join(parts, " ") + "}"
	}
	return fmt.Sprint(v)
}

// A schema that gained fields (a column and a nested object) keeps the
// older files readable next to the new ones: by pyarrow per file and as one
// dataset under the unified schema, and by Caracal's own scan with the new
// schema, where the old rows simply lack the new fields.
func TestSchemaEvolution(t *testing.T) {
	v1 := `schema: Custom.App
version: 0
fields:
  - name: time
    type: timestamp
    timeFormats: [rfc3339]
    isEventTime: true
    required: true
  - name: user
    type: string
    indicators: [username]
`
	v2 := strings.Replace(v1, "version: 0", "version: 1", 1) + `  - name: client_ip
    type: string
    indicators: [ip]
  - name: device
    type: object
    fields:
      - name: os
        type: string
`
	dir := t.TempDir()
	write := func(yaml string, from int64, evs ...map[string]any) *Tables {
		s, err := schema.Parse("custom_app.yml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		tb, err := NewTables([]*schema.Schema{s})
		if err != nil {
			t.Fatal(err)
		}
		w := &Writer{Tables: tb, Storage: &LocalStorage{Dir: dir}}
		w.OnError = func(_ *Record, err error) { t.Error(err) }
		if err := w.Write(context.Background(), recs(envelope.TopicEvents, 0, from, evs...)); err != nil {
			t.Fatal(err)
		}
		return tb
	}
	ev := func(id, user string, extra map[string]any) map[string]any {
		m := map[string]any{"p_log_type": "Custom.App", "p_event_time": "2026-11-23T10:00:00Z", "p_parse_time": "2026-11-23T10:00:01Z",
			"p_row_id": id, "p_source_id": "app", "time": "2026-11-23T10:00:00Z", "user": user, "p_any_usernames": []any{user}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	write(v1, 0, ev("old1", "alice", nil), ev("old2", "bob", nil))
	tb := write(v2, 2, ev("new1", "carol", map[string]any{"client_ip": "192.0.2.7", "device": map[string]any{"os": "linux"},
		"p_any_ip_addresses": []any{"192.0.2.7"}}))

	// pyarrow, one file at a time: each file carries its own schema.
	byID := map[string]map[string]any{}
	for _, r := range laketest.ReadTable(t, filepath.Join(dir, "custom_app")) {
		byID[r["p_row_id"].(string)] = r
	}
	if _, has := byID["old1"]["client_ip"]; has || byID["old1"]["user"] != "alice" {
		t.Errorf("old file: %v", byID["old1"])
	}
	if byID["new1"]["client_ip"] != "192.0.2.7" || fmt.Sprint(byID["new1"]["device"]) != "map[os:linux]" {
		t.Errorf("new file: %v", byID["new1"])
	}

	// pyarrow, the table as one dataset (as Athena or DuckDB would see it):
	// the schemas unify and the old rows read the new columns as nulls.
	script := `import sys, glob, json, pyarrow as pa, pyarrow.parquet as pq, pyarrow.dataset as ds
files = sorted(glob.glob(sys.argv[1] + '/**/*.parquet', recursive=True))
schema = pa.unify_schemas([pq.read_schema(f) for f in files])
t = ds.dataset(files, schema=schema, format='parquet').to_table(columns=['p_row_id', 'user', 'client_ip', 'device'])
print(json.dumps(sorted(t.to_pylist(), key=lambda r: r['p_row_id'])))`
	out, err := exec.Command(laketest.Python(t), "-c", script, filepath.Join(dir, "custom_app")).CombinedOutput()
	if err != nil {
		t.Fatalf("pyarrow dataset: %v\n%s", err, out)
	}
	want := `[{"p_row_id": "new1", "user": "carol", "client_ip": "192.0.2.7", "device": {"os": "linux"}}, ` +
		`{"p_row_id": "old1", "user": "alice", "client_ip": null, "device": null}, ` +
		`{"p_row_id": "old2", "user": "bob", "client_ip": null, "device": null}]`
	if strings.TrimSpace(string(out)) != want {
		t.Errorf("unified dataset:\n got %s\nwant %s", out, want)
	}

	// Caracal's scan with the new schema: every row, and an indicator
	// search that skips the old file (it has no such column) without error.
	st := &LocalStorage{Dir: dir}
	rows := map[string]map[string]any{}
	if _, err := ScanLake(context.Background(), st, tb, Scan{}, func(_ string, row map[string]any) error {
		rows[row["p_row_id"].(string)] = row
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows["old2"]["user"] != "bob" || rows["old2"]["client_ip"] != nil || rows["new1"]["client_ip"] != "192.0.2.7" {
		t.Errorf("scan with the new schema: %v", rows)
	}
	var found []string
	stats, err := ScanLake(context.Background(), st, tb, Scan{Column: "p_any_ip_addresses", Value: "192.0.2.7"}, func(_ string, row map[string]any) error {
		found = append(found, row["p_row_id"].(string))
		return nil
	})
	if err != nil || fmt.Sprint(found) != "[new1]" || stats.RowGroupsPruned == 0 || stats.RowGroupsPruned >= stats.RowGroups {
		t.Errorf("indicator search across schema versions: %v %v %+v", found, err, stats)
	}
}

// Row groups hold at most RowGroupRows rows, and a row that cannot be
// encoded halfway through (a bad nested timestamp) is reported and leaves
// nothing behind: the rows around it read back whole, and a file whose
// every row failed is not written at all.
func TestRowGroupsAndFailedRows(t *testing.T) {
	dir := t.TempDir()
	w := &Writer{Tables: tables(t), Storage: &LocalStorage{Dir: dir}, RowGroupRows: 2}
	var failed []string
	w.OnError = func(r *Record, err error) { failed = append(failed, fmt.Sprint(r.Offset, ": ", err)) }
	bad := event("bad", 21)
	bad["eventTime"] = "yesterday"
	alone := event("alone", 22)
	alone["userIdentity"] = map[string]any{"accountId": map[string]any{"not": "a string"}, "type": []any{}}
	alone["eventTime"] = 7
	in := recs(envelope.TopicEvents, 0, 10, event("a", 21), event("b", 21), bad, event("c", 21), event("d", 21), event("e", 21), alone)
	received := time.Date(2026, 11, 30, 9, 15, 0, 0, time.UTC)
	in = append(in, &Record{Topic: envelope.TopicEvents, Offset: 17, Raw: []byte("\xff not JSON"), Time: received})
	for _, r := range in {
		r.Time = received
	}
	if err := w.Write(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if len(failed) != 3 || !strings.HasPrefix(failed[0], "12: column eventTime") || !strings.HasPrefix(failed[1], "16: ") || !strings.HasPrefix(failed[2], "17: ") {
		t.Errorf("failures: %q", failed)
	}
	// Nothing is lost: rows that fit no table are kept as failures, with
	// their bytes and the reason, at the hour the broker received them.
	kept := laketest.ReadTable(t, filepath.Join(dir, envelope.TableFailures, "year=2026/month=11/day=30/hour=09"))
	if len(kept) != 3 {
		t.Fatalf("failures table: %d rows, want 3: %v", len(kept), kept)
	}
	for _, want := range []struct{ offset, rowID, encoding, rawHas string }{
		{"12", "r-bad", "utf8", `"eventID":"bad"`}, {"16", "r-alone", "utf8", `"eventID":"alone"`}, {"17", "", "base64", ""},
	} {
		found := false
		for _, k := range kept {
			if strings.Contains(fmt.Sprint(k["reasons"]), "lake: caracal.events record 0/"+want.offset+" not written") {
				found = k["p_row_id"] == want.rowID && k["raw_encoding"] == want.encoding && strings.Contains(k["raw"].(string), want.rawHas)
				if !found {
					t.Errorf("failure row for offset %s: %v", want.offset, k)
				}
			}
		}
		if !found {
			t.Errorf("no failure row for offset %s: %v", want.offset, kept)
		}
	}
	rows := laketest.ReadTable(t, filepath.Join(dir, "aws_cloudtrail"))
	var ids []string
	for _, r := range rows {
		ids = append(ids, fmt.Sprint(r["eventID"], "/", r["userIdentity"].(map[string]any)["type"]))
	}
	if fmt.Sprint(ids) != "[a/Root b/Root c/Root d/Root e/Root]" {
		t.Errorf("rows: %v", ids)
	}
	script := `import sys, glob, pyarrow.parquet as pq
for f in sorted(glob.glob(sys.argv[1] + '/aws_cloudtrail/**/*.parquet', recursive=True)):
    m = pq.ParquetFile(f).metadata
    print(f.split('/aws_cloudtrail/')[1], [m.row_group(i).num_rows for i in range(m.num_row_groups)])`
	out, err := exec.Command(laketest.Python(t), "-c", script, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if want := "year=2026/month=11/day=23/hour=21/caracal_events-0-00000000000000000010.parquet [2, 2, 1]\n"; string(out) != want {
		t.Errorf("files and row groups:\n%s\nwant\n%s", out, want)
	}
}

// Events reach the lake stage as JSON and are encoded from it without
// decoding into maps; decoded events (EncodeColumns) must give the same
// rows for every column type and the odd shapes: nulls, empty and lone
// list values, non-objects where objects belong, fractions in integer
// columns, strings needing escapes, numbers in string columns.
func TestRawAndDecodedEventsWriteTheSameRows(t *testing.T) {
	s := kindsSchema(t)
	tb, err := NewTables([]*schema.Schema{s})
	if err != nil {
		t.Fatal(err)
	}
	base := func(id string) map[string]any {
		return map[string]any{"p_log_type": "Custom.Kinds", "p_event_time": "2026-11-23T10:00:00Z", "p_row_id": id, "time": "2026-11-23T10:00:00.123456Z"}
	}
	with := func(id string, kv ...any) map[string]any {
		m := base(id)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	evs := []map[string]any{
		with("full", "s", `quote " back \ tab	 <html> & ünïcode`, "i", int64(1)<<40, "small", int64(-7), "f", 2.5, "b", true,
			"j", map[string]any{"z": 1.5, "a": []any{"x", nil, false}}, "tags", []any{"t1", "t2"},
			"obj", map[string]any{"x": "y", "list": []any{map[string]any{"n": int64(1), "at": "2026-01-02T03:04:05Z"}, nil, map[string]any{"n": 2.9}}}),
		with("nulls", "s", nil, "i", nil, "j", nil, "tags", nil, "obj", nil),
		with("empty", "tags", []any{}, "obj", map[string]any{"list": []any{}}, "j", map[string]any{}),
		with("odd", "s", 12.5, "tags", "lone", "obj", "not an object", "b", false, "f", int64(3), "j", "text"),
		with("controls", "j", map[string]any{"ctl": "a\x01b\x7fc\u2028\"\\", "n": []any{1e300, int64(-3)}}, "s", "a\x01b"),
		with("missing"),
	}
	var decoded, raw []*Record
	for i, ev := range evs {
		b, err := envelope.EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := envelope.DecodeObject(b)
		if err != nil {
			t.Fatal(err)
		}
		decoded = append(decoded, &Record{Topic: envelope.TopicEvents, Offset: int64(i), Value: dec})
		raw = append(raw, &Record{Topic: envelope.TopicEvents, Offset: int64(i), Raw: b})
	}
	dir := t.TempDir()
	for name, in := range map[string][]*Record{"decoded": decoded, "raw": raw} {
		w := &Writer{Tables: tb, Storage: &LocalStorage{Dir: filepath.Join(dir, name)}}
		w.OnError = func(r *Record, err error) { t.Errorf("%s row %d: %v", name, r.Offset, err) }
		if err := w.Write(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	want := laketest.ReadTable(t, filepath.Join(dir, "decoded"))
	got := laketest.ReadTable(t, filepath.Join(dir, "raw"))
	if len(got) != len(evs) || len(want) != len(evs) {
		t.Fatalf("%d raw rows, %d decoded rows, want %d", len(got), len(want), len(evs))
	}
	for i := range got {
		delete(got[i], "_file")
		delete(want[i], "_file")
		if g, w := canonicalValue(got[i]), canonicalValue(want[i]); g != w {
			t.Errorf("row %d:\nraw     %s\ndecoded %s", i, g, w)
		}
	}
	full := got[0]
	if full["i"] != float64(1<<40) || full["small"] != float64(-7) || full["s"] != `quote " back \ tab	 <html> & ünïcode` {
		t.Errorf("full row: %v", full)
	}
	if l := full["obj"].(map[string]any)["list"].([]any); len(l) != 3 || l[2].(map[string]any)["n"] != float64(2) || l[1] != nil {
		t.Errorf("nested list: %v", l)
	}

	// A bad value fails the row alone, in both ways.
	bad := with("bad", "i", "not a number")
	b, _ := envelope.EncodeEvent(bad)
	var errs []string
	w := &Writer{Tables: tb, Storage: &LocalStorage{Dir: filepath.Join(dir, "bad")}, OnError: func(r *Record, err error) { errs = append(errs, err.Error()) }}
	if err := w.Write(context.Background(), []*Record{{Topic: envelope.TopicEvents, Raw: b}, {Topic: envelope.TopicEvents, Offset: 1, Value: bad},
		{Topic: envelope.TopicEvents, Offset: 2, Raw: []byte(`{"p_log_type": "Custom.Kinds", "time": `)}}); err != nil {
		t.Fatal(err)
	}
	if len(errs) != 3 || !strings.Contains(errs[0], "column i: want an integer") || !strings.Contains(errs[1], "column i: want an integer") || !strings.Contains(errs[2], "not a JSON object") {
		t.Errorf("errors: %q", errs)
	}
}

// The p_* columns keep their min and max per page and chunk; a log's own
// text columns and the indicator lists, whose values come in no order (a
// bloom filter serves the indicators' search), have none.
func TestPageBoundsOnlyForStandardColumns(t *testing.T) {
	dir := t.TempDir()
	w := &Writer{Tables: tables(t), Storage: &LocalStorage{Dir: dir}}
	if err := w.Write(context.Background(), recs(envelope.TopicEvents, 0, 0, event("a", 21), event("b", 21))); err != nil {
		t.Fatal(err)
	}
	f := openOnly(t, filepath.Join(dir, "aws_cloudtrail"))
	chunks := f.Metadata().RowGroups[0].Columns
	for i, path := range f.Schema().Columns() {
		st := chunks[i].MetaData.Statistics
		has := len(st.MinValue) > 0 || len(st.MaxValue) > 0
		switch strings.Join(path, ".") {
		case "p_log_type", "p_row_id", "p_source_id":
			if !has {
				t.Errorf("%v: no min/max", path)
			}
		case "eventName", "userAgent", "userIdentity.arn", "p_any_ip_addresses.list.element", "p_any_aws_arns.list.element":
			if has {
				t.Errorf("%v: min/max %q..%q, want none", path, st.MinValue, st.MaxValue)
			}
		}
	}
}

// The indicator lists are dictionary encoded, and their bloom filters are
// sized by the distinct values and hold every one of them: a search for
// any value written finds its row group, however many values the column
// chunk holds. (With a dictionary size limit, parquet-go's fall back to
// plain pages left the values after it out of the filter: 20,000 rows
// in one row group, two pages of indexes, show it.)
func TestIndicatorBloomFiltersHoldEveryValue(t *testing.T) {
	dir := t.TempDir()
	w := &Writer{Tables: tables(t), Storage: &LocalStorage{Dir: dir}}
	const rows = 20000
	w.RowGroupRows = rows
	evs := make([]map[string]any, rows)
	ips := make([]string, rows)
	for i := range evs {
		ips[i] = fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		evs[i] = event(fmt.Sprint(i), 21)
		evs[i]["p_any_ip_addresses"] = []any{ips[i], "198.51.100.23"}
		evs[i]["p_any_aws_account_ids"] = []any{"111122223333"}
	}
	if err := w.Write(context.Background(), recs(envelope.TopicEvents, 0, 0, evs...)); err != nil {
		t.Fatal(err)
	}
	f := openOnly(t, filepath.Join(dir, "aws_cloudtrail"))
	if n := f.NumRows(); n != rows {
		t.Fatalf("%d rows, want %d", n, rows)
	}
	leaf := func(name string) int {
		col, ok := f.Schema().Lookup(name, "list", "element")
		if !ok {
			t.Fatalf("no column %s", name)
		}
		return col.ColumnIndex
	}
	chunk := func(name string) parquet.ColumnChunk { return f.RowGroups()[0].ColumnChunks()[leaf(name)] }
	for _, name := range envelope.IndicatorFields {
		encodings := f.Metadata().RowGroups[0].Columns[leaf(name)].MetaData.Encoding
		if !slices.Contains(encodings, format.RLEDictionary) {
			t.Errorf("%s encodings %v, want RLE_DICTIONARY", name, encodings)
		}
	}
	bf := chunk("p_any_ip_addresses").BloomFilter()
	if bf == nil {
		t.Fatal("p_any_ip_addresses has no bloom filter")
	}
	for _, ip := range append(ips, "198.51.100.23") {
		if ok, err := bf.Check(parquet.ValueOf(ip)); err != nil || !ok {
			t.Fatalf("bloom filter of p_any_ip_addresses: %s not found (%v)", ip, err)
		}
	}
	// 10 bits for each distinct value, in 32-byte blocks.
	if size := bf.Size(); size < rows*10/8 || size > 4*rows*10/8 {
		t.Errorf("p_any_ip_addresses bloom filter of %d bytes for %d distinct values", size, rows+1)
	}
	// One distinct value in every row: a filter for one value, not 20,000.
	if size := chunk("p_any_aws_account_ids").BloomFilter().Size(); size > 1024 {
		t.Errorf("p_any_aws_account_ids bloom filter of %d bytes for one distinct value", size)
	}
}

// openOnly opens the one Parquet file under dir.
func openOnly(t *testing.T, dir string) *parquet.File {
	t.Helper()
	files := openAll(t, dir)
	if len(files) != 1 {
		t.Fatalf("files under %s: %v, want one", dir, slices.Collect(maps.Keys(files)))
	}
	for _, f := range files {
		return f
	}
	return nil
}

// openAll opens every Parquet file under dir, by path.
func openAll(t *testing.T, dir string) map[string]*parquet.File {
	t.Helper()
	files := map[string]*parquet.File{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".parquet") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		files[p] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// A file written before its table had the indicator column (here, by
// another writer) holds no such value: its row groups are skipped unread,
// and counted among those there were.
func TestSearchSkipsFilesWithoutTheColumn(t *testing.T) {
	dir := t.TempDir()
	type oldRow struct {
		LogType   string `parquet:"p_log_type"`
		EventName string `parquet:"eventName"`
	}
	path := filepath.Join(dir, "aws_cloudtrail", "year=2026", "month=11", "day=23", "hour=21", "old.parquet")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := parquet.WriteFile(path, []oldRow{{"AWS.CloudTrail", "ConsoleLogin"}}); err != nil {
		t.Fatal(err)
	}
	w := &Writer{Tables: tables(t), Storage: &LocalStorage{Dir: dir}}
	if err := w.Write(context.Background(), recs(envelope.TopicEvents, 0, 0, event("a", 21))); err != nil {
		t.Fatal(err)
	}
	var found int
	stats, err := ScanLake(context.Background(), &LocalStorage{Dir: dir}, tables(t),
		Scan{Column: "p_any_ip_addresses", Value: "198.51.100.23", Tables: []string{"aws_cloudtrail"}},
		func(string, map[string]any) error { found++; return nil })
	if err != nil || found != 1 {
		t.Fatalf("found %d rows (%v), want the new file's one", found, err)
	}
	if stats.Files != 2 || stats.RowGroups != 2 || stats.RowGroupsPruned != 1 {
		t.Errorf("stats %+v, want 2 files and 2 row groups, 1 of them skipped", stats)
	}
}

// Every column chunk of every file names its column (path_in_schema),
// however many files and row groups one writer has written before it:
// Athena and Spark find a chunk's column by that path. (parquet-go
// v0.32.0's writer Reset empties it in the files after the first; see
// newOpenFile.)
func TestEveryColumnChunkNamesItsColumn(t *testing.T) {
	dir := t.TempDir()
	w := &Writer{Tables: tables(t), Storage: &LocalStorage{Dir: dir}, RowGroupRows: 2}
	for batch := range 3 {
		var evs []map[string]any
		for i := range 5 {
			evs = append(evs, event(fmt.Sprint(batch, "-", i), 20+i%2))
		}
		if err := w.Write(context.Background(), recs(envelope.TopicEvents, 0, int64(batch*5), evs...)); err != nil {
			t.Fatal(err)
		}
	}
	files := openAll(t, dir)
	rowGroups := 0
	for p, f := range files {
		paths := f.Schema().Columns()
		for _, rg := range f.Metadata().RowGroups {
			rowGroups++
			if len(rg.Columns) != len(paths) {
				t.Fatalf("%s: %d column chunks, %d columns", p, len(rg.Columns), len(paths))
			}
			for i, c := range rg.Columns {
				if !slices.Equal(c.MetaData.PathInSchema, paths[i]) {
					t.Errorf("%s: column chunk %d has path_in_schema %q, want %q", p, i, c.MetaData.PathInSchema, paths[i])
				}
			}
		}
	}
	// 3 batches × 2 hours; each batch's 3 rows of hour 20 in two row
	// groups, its 2 of hour 21 in one.
	if len(files) != 6 || rowGroups != 9 {
		t.Fatalf("%d files, %d row groups; want 6 and 9", len(files), rowGroups)
	}
}
