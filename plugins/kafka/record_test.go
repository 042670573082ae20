package kafka

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-sec/caracal/plugins/claim"
	"github.com/caracal-sec/caracal/plugins/envelope"
)

// A message without bytes is produced as a null value: a tombstone, which
// compaction uses to delete the key (the alert stage deletes idle dedup
// groups from caracal.alert_state so).
func TestEmptyMessageIsATombstone(t *testing.T) {
	o := &output{}
	for _, tc := range []struct {
		body []byte
		null bool
	}{{nil, true}, {[]byte{}, true}, {[]byte(`{}`), false}} {
		m := service.NewMessage(tc.body)
		m.MetaSetMut(envelope.MetaTopic, envelope.TopicAlertState)
		recs, err := o.records(service.MessageBatch{m})
		if err != nil {
			t.Fatal(err)
		}
		if (recs[0].Value == nil) != tc.null {
			t.Errorf("body %q → value %q, want null %v", tc.body, recs[0].Value, tc.null)
		}
	}
}

// Each record of a batch carries exactly its own message's prefixed
// metadata as headers (the batch's headers share one slice), and a
// consumer gives them back as metadata with the kafka_* fields.
func TestHeadersRoundTripPerRecord(t *testing.T) {
	o := &output{prefix: "caracal_"}
	var batch service.MessageBatch
	for i := range 40 {
		m := service.NewMessage([]byte(fmt.Sprintf(`{"n":%d}`, i)))
		m.MetaSetMut(envelope.MetaTopic, envelope.TopicRaw)
		m.MetaSetMut(envelope.MetaKey, fmt.Sprintf("req-%d", i))
		m.MetaSetMut(envelope.MetaSourceID, fmt.Sprintf("source-%d", i))
		m.MetaSetMut(envelope.MetaRequestID, fmt.Sprintf("req-%d", i))
		for j := range i % 4 { // records with 2 to 5 headers
			m.MetaSetMut(fmt.Sprintf("caracal_extra_%d", j), strings.Repeat("x", i))
		}
		m.MetaSetMut("other", "not a header")
		batch = append(batch, m)
	}
	recs, err := o.records(batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		r.Offset = int64(100 + i)
		var got []string
		for _, h := range r.Headers {
			got = append(got, h.Key+"="+string(h.Value))
		}
		slices.Sort(got)
		want := []string{fmt.Sprintf("caracal_request_id=req-%d", i), fmt.Sprintf("caracal_source_id=source-%d", i)}
		for j := range i % 4 {
			want = append(want, fmt.Sprintf("caracal_extra_%d=%s", j, strings.Repeat("x", i)))
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("record %d headers %q, want %q", i, got, want)
		}
		if r.Topic != envelope.TopicRaw || string(r.Key) != fmt.Sprintf("req-%d", i) {
			t.Fatalf("record %d: topic %q key %q", i, r.Topic, r.Key)
		}
	}
	for i, m := range messages(&Batch{Topic: envelope.TopicRaw, Partition: 3, Records: recs}, allKafkaMeta) {
		for k, want := range map[string]string{
			envelope.MetaSourceID: fmt.Sprintf("source-%d", i), envelope.MetaKafkaKey: fmt.Sprintf("req-%d", i),
			envelope.MetaKafkaTopic: envelope.TopicRaw, envelope.MetaKafkaPartition: "3",
			envelope.MetaKafkaOffset: fmt.Sprint(100 + i),
		} {
			if got, _ := m.MetaGet(k); got != want {
				t.Errorf("message %d: %s = %q, want %q", i, k, got, want)
			}
		}
		if _, ok := m.MetaGet("other"); ok {
			t.Errorf("message %d: unprefixed metadata became a header", i)
		}
	}
}

// kafka_metadata chooses the kafka_* metadata; the headers always come.
func TestKafkaMetadataChosen(t *testing.T) {
	meta, err := parseKafkaMeta([]string{envelope.MetaKafkaPartition, envelope.MetaKafkaOffset})
	if err != nil {
		t.Fatal(err)
	}
	rec := &kgo.Record{Key: []byte("req-1"), Value: []byte("{}"), Offset: 42, Timestamp: time.Unix(1, 0),
		Headers: []kgo.RecordHeader{{Key: envelope.MetaSourceID, Value: []byte("demo")}}}
	m := messages(&Batch{Topic: envelope.TopicRaw, Partition: 3, Records: []*kgo.Record{rec}}, meta)[0]
	for k, want := range map[string]string{envelope.MetaSourceID: "demo", envelope.MetaKafkaPartition: "3", envelope.MetaKafkaOffset: "42"} {
		if got, _ := m.MetaGet(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{envelope.MetaKafkaTopic, envelope.MetaKafkaKey, envelope.MetaKafkaTimestamp} {
		if v, ok := m.MetaGet(k); ok {
			t.Errorf("%s = %q, not asked for", k, v)
		}
	}
	if all, err := parseKafkaMeta(kafkaMetadata); err != nil || all != allKafkaMeta {
		t.Errorf("every name: %b %v", all, err)
	}
	if _, err := parseKafkaMeta([]string{"kafka_headers"}); err == nil || !strings.Contains(err.Error(), envelope.MetaKafkaTimestamp) {
		t.Errorf("an unknown name: %v", err)
	}
}

// The consumer's cost per record beside the pipeline: a record of
// caracal.raw (five headers) as a message with its metadata, all the
// kafka_* metadata or the two the process stage reads.
func BenchmarkMessages(b *testing.B) {
	recs := make([]*kgo.Record, 500)
	for i := range recs {
		recs[i] = &kgo.Record{Key: []byte("0f8fad5b-d9cb-469f-a165-70867728950e"), Value: []byte(`{"eventName":"GetObject"}`), Offset: int64(i),
			Headers: []kgo.RecordHeader{
				{Key: envelope.MetaSourceID, Value: []byte("demo")}, {Key: envelope.MetaSourceLabel, Value: []byte("Demo webhook")},
				{Key: envelope.MetaLogTypes, Value: []byte("AWS.CloudTrail")}, {Key: envelope.MetaReceivedAt, Value: []byte("2026-11-30T21:00:00.123456789Z")},
				{Key: envelope.MetaRequestID, Value: []byte("0f8fad5b-d9cb-469f-a165-70867728950e")},
			}}
	}
	batch := &Batch{Topic: envelope.TopicRaw, Records: recs}
	lake := metaTopic | metaPartition | metaOffset | metaTimestamp
	for name, meta := range map[string]kafkaMeta{"all": allKafkaMeta, "partition+offset": metaPartition | metaOffset, "lake": lake} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				batch := messages(batch, meta)
				if meta == lake {
					withTurn(batch, claim.New().Next()) // the lake's plain consumer
				}
			}
			b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// The producer's cost per record beside the broker: an ingest message
// (five caracal_* metadata) as a record with its headers.
func BenchmarkRecords(b *testing.B) {
	o := &output{prefix: "caracal_"}
	batch := make(service.MessageBatch, 500)
	for i := range batch {
		m := service.NewMessage([]byte(`{"eventName":"GetObject"}`))
		for k, v := range map[string]string{
			envelope.MetaTopic: envelope.TopicRaw, envelope.MetaKey: "0f8fad5b-d9cb-469f-a165-70867728950e",
			envelope.MetaSourceID: "demo", envelope.MetaSourceLabel: "Demo webhook", envelope.MetaLogTypes: "AWS.CloudTrail",
			envelope.MetaReceivedAt: "2026-11-30T21:00:00.123456789Z", envelope.MetaRequestID: "0f8fad5b-d9cb-469f-a165-70867728950e",
		} {
			m.MetaSetMut(k, v)
		}
		batch[i] = m
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.records(batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "records/s")
}

// The records of one request share their metadata but for the offset; as
// messages each still has its own value and offset, and a change to one's
// metadata is its own. (Sharing one metadata map among them was tried:
// the parse stage then copied it for every event it routes, which cost
// more than it saved.)
func TestRecordsOfOneRequestKeepTheirOwnOffsets(t *testing.T) {
	at := time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range 6 {
		req := "req-a"
		if i >= 3 {
			req = "req-b" // a second request: new key and headers
		}
		recs = append(recs, &kgo.Record{Key: []byte(req), Value: []byte(fmt.Sprintf(`{"n":%d}`, i)), Offset: int64(40 + i), Timestamp: at,
			Headers: []kgo.RecordHeader{{Key: envelope.MetaRequestID, Value: []byte(req)}, {Key: envelope.MetaSourceID, Value: []byte("demo")}}})
	}
	batch := messages(&Batch{Topic: envelope.TopicRaw, Partition: 1, Records: recs}, allKafkaMeta)
	batch[1].MetaSetMut(envelope.MetaTopic, envelope.TopicEvents)
	for i, m := range batch {
		body, _ := m.AsBytes()
		if string(body) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("message %d: body %s", i, body)
		}
		req := map[bool]string{true: "req-a", false: "req-b"}[i < 3]
		topic := map[bool]string{true: envelope.TopicEvents, false: ""}[i == 1]
		for k, want := range map[string]string{
			envelope.MetaKafkaOffset: fmt.Sprint(40 + i), envelope.MetaKafkaKey: req, envelope.MetaRequestID: req,
			envelope.MetaSourceID: "demo", envelope.MetaKafkaPartition: "1", envelope.MetaTopic: topic,
			envelope.MetaKafkaTimestamp: fmt.Sprint(at.UnixNano()),
		} {
			if got, _ := m.MetaGet(k); got != want {
				t.Errorf("message %d: %s = %q, want %q", i, k, got, want)
			}
		}
	}
}
