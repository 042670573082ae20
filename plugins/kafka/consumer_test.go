package kafka_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-sec/caracal/plugins/claim"
	"github.com/caracal-sec/caracal/plugins/kafka"
	"github.com/caracal-sec/caracal/plugins/kafka/kafkatest"
)

func produceN(t *testing.T, brokers []string, topic string, from, n int) {
	t.Helper()
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	var recs []*kgo.Record
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte(strconv.Itoa(i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Produce(ctx, recs); err != nil {
		t.Fatal(err)
	}
}

func consumer(t *testing.T, brokers []string, topic, group string, maxPoll int) *kafka.Consumer {
	t.Helper()
	return consumerCommittingEvery(t, brokers, topic, group, maxPoll, 100*time.Millisecond)
}

// consumerCommittingEvery is consumer with its own commit period.
func consumerCommittingEvery(t *testing.T, brokers []string, topic, group string, maxPoll int, every time.Duration) *kafka.Consumer {
	t.Helper()
	c, err := kafka.NewConsumer(kafka.ConsumerConfig{
		Brokers: brokers, Topics: []string{topic}, Group: group,
		MaxPoll: maxPoll, FromBeginning: true, CommitEvery: every,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func next(t *testing.T, c *kafka.Consumer) *kafka.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// batchesOf reads batches until n records arrived, wanting at least
// atLeast batches.
func batchesOf(t *testing.T, c *kafka.Consumer, n, atLeast int) []*kafka.Batch {
	t.Helper()
	var batches []*kafka.Batch
	for got := 0; got < n; {
		b := next(t, c)
		batches = append(batches, b)
		got += len(b.Records)
	}
	if len(batches) < atLeast {
		t.Fatalf("want at least %d batches of %d records, got %d", atLeast, n, len(batches))
	}
	return batches
}

// committedOffset is the group's committed offset of the topic's
// partition 0, read from the broker; -1 if none.
func committedOffset(t *testing.T, brokers []string, group, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offsets, err := admin(t, brokers).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offsets.Lookup(topic, 0); ok {
		return o.At
	}
	return -1
}

// values reads batches until n records arrived and returns their values.
func values(t *testing.T, c *kafka.Consumer, n int, ack bool) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		b := next(t, c)
		for _, r := range b.Records {
			out = append(out, string(r.Value))
		}
		if ack {
			c.Ack(b)
		}
	}
	return out
}

// The commit point never passes a batch that was not acknowledged, even when
// later batches were: a restart replays from the first unacknowledged record.
func testCommitsOnlyAcknowledgedPrefix(t *testing.T, brokers []string) {
	topic := kafkatest.Topic(t, brokers, "commit", 1)
	group := topic + "-g"
	produceN(t, brokers, topic, 0, 30)

	c := consumer(t, brokers, topic, group, 10)
	batches := batchesOf(t, c, 30, 2)
	// Acknowledge everything but the first batch.
	for _, b := range batches[1:] {
		c.Ack(b)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	c = consumer(t, brokers, topic, group, 100)
	replay := values(t, c, 30, true)
	if replay[0] != "0" || len(replay) != 30 {
		t.Fatalf("after an unacknowledged first batch the group must replay from 0, got %d records starting at %s", len(replay), replay[0])
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Everything acknowledged: a new member sees only new records.
	produceN(t, brokers, topic, 30, 1)
	c = consumer(t, brokers, topic, group, 100)
	defer c.Close(context.Background())
	if v := values(t, c, 1, true); v[0] != "30" {
		t.Fatalf("after acknowledging all, the next record must be 30, got %s", v[0])
	}
}

func TestCommitsOnlyAcknowledgedPrefixEmbedded(t *testing.T) {
	testCommitsOnlyAcknowledgedPrefix(t, kafkatest.Embedded(t))
}

func TestCommitsOnlyAcknowledgedPrefixRealKafka(t *testing.T) {
	testCommitsOnlyAcknowledgedPrefix(t, kafkatest.Real(t))
}

// The embedded broker keeps acknowledged records across a restart.
func TestEmbeddedBrokerPersists(t *testing.T) {
	dir := t.TempDir()
	e, err := kafka.StartEmbedded(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	topic := "persist"
	ctx := context.Background()
	if err := kafka.EnsureTopics(ctx, e.Addrs, -1, []kafka.TopicSpec{{Name: topic, Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	produceN(t, e.Addrs, topic, 0, 5)
	e.Close()

	e, err = kafka.StartEmbedded(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	c := consumer(t, e.Addrs, topic, "g", 100)
	defer c.Close(ctx)
	got := values(t, c, 5, true)
	if fmt.Sprint(got) != "[0 1 2 3 4]" {
		t.Fatalf("records after restart = %v", got)
	}
}

func BenchmarkProduceConsume(b *testing.B) {
	brokers := kafkatest.Brokers(b)
	topic := kafkatest.Topic(b, brokers, "bench", 1)
	p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: brokers})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	value := make([]byte, 1024)
	const perBatch = 500
	recs := make([]*kgo.Record, perBatch)
	b.SetBytes(int64(len(value) * perBatch))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range recs {
			recs[j] = &kgo.Record{Topic: topic, Value: value}
		}
		if err := p.Produce(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c := consumer(&testing.T{}, brokers, topic, "bench-g", 5000)
	defer c.Close(context.Background())
	b.StartTimer()
	for got := 0; got < b.N*perBatch; {
		bt, err := c.Next(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		got += len(bt.Records)
		c.Ack(bt)
	}
	b.ReportMetric(float64(b.N*perBatch)/b.Elapsed().Seconds(), "records/s")
}

// newTopicSpecs is the first n of Caracal's topic specs (one partition
// each) under names of their own.
func newTopicSpecs(n int) []kafka.TopicSpec {
	topics := kafka.DefaultTopics(1, 0)[:n]
	suffix := strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := range topics {
		topics[i].Name += "-" + suffix
	}
	return topics
}

// Topics Caracal creates take MaxRecordBytes records; one created before
// (or by hand) with the broker's default is reported.
func testSmallRecordTopics(t *testing.T, brokers []string) {
	ctx := context.Background()
	topics := newTopicSpecs(3)
	old := kafka.TopicSpec{Name: topics[0].Name, Partitions: 1} // as before max.message.bytes was set
	if err := kafka.EnsureTopics(ctx, brokers, -1, []kafka.TopicSpec{old}); err != nil {
		t.Fatal(err)
	}
	if err := kafka.EnsureTopics(ctx, brokers, -1, topics); err != nil {
		t.Fatal(err)
	}
	report, err := kafka.CheckTopics(ctx, brokers, topics)
	if err != nil {
		t.Fatal(err)
	}
	small := report.SmallRecords
	if len(small) != 1 || !strings.HasPrefix(small[0], topics[0].Name+" (") {
		t.Fatalf("small-record topics: %v, want only %s", small, topics[0].Name)
	}
}

func TestSmallRecordTopicsEmbedded(t *testing.T) { testSmallRecordTopics(t, kafkatest.Embedded(t)) }

func TestSmallRecordTopicsRealKafka(t *testing.T) { testSmallRecordTopics(t, kafkatest.Real(t)) }

// A topic Caracal would compact (the alert state) that exists with
// another cleanup.policy is reported; one created compacted is not.
func testUncompactedTopics(t *testing.T, brokers []string) {
	ctx := context.Background()
	topics := newTopicSpecs(1)
	compact := "compact"
	for i := range topics {
		topics[i].Configs = map[string]*string{"cleanup.policy": &compact}
	}
	del := "delete"
	old := kafka.TopicSpec{Name: topics[0].Name, Partitions: 1, Configs: map[string]*string{"cleanup.policy": &del}} // created by hand
	if err := kafka.EnsureTopics(ctx, brokers, -1, []kafka.TopicSpec{old}); err != nil {
		t.Fatal(err)
	}
	if err := kafka.EnsureTopics(ctx, brokers, -1, topics); err != nil {
		t.Fatal(err)
	}
	report, err := kafka.CheckTopics(ctx, brokers, topics)
	if err != nil {
		t.Fatal(err)
	}
	loose := report.Uncompacted
	if want := topics[0].Name + " (cleanup.policy=delete)"; len(loose) != 1 || loose[0] != want {
		t.Fatalf("uncompacted topics: %v, want only %s", loose, want)
	}
}

func TestUncompactedTopicsEmbedded(t *testing.T) { testUncompactedTopics(t, kafkatest.Embedded(t)) }

func TestUncompactedTopicsRealKafka(t *testing.T) { testUncompactedTopics(t, kafkatest.Real(t)) }

// A topic created before topic_partitions was raised keeps its partitions:
// it is reported with how many it has and how many are asked for.
func testFewPartitionTopics(t *testing.T, brokers []string) {
	ctx := context.Background()
	topics := newTopicSpecs(2)
	if err := kafka.EnsureTopics(ctx, brokers, -1, topics); err != nil {
		t.Fatal(err)
	}
	raised := slices.Clone(topics)
	raised[0].Partitions = 3
	if err := kafka.EnsureTopics(ctx, brokers, -1, raised); err != nil {
		t.Fatal(err)
	}
	var few []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		report, err := kafka.CheckTopics(ctx, brokers, raised)
		if err != nil {
			t.Fatal(err)
		}
		few = report.FewPartitions
		if len(few) > 0 || time.Now().After(deadline) { // (created topics may take a moment to be listed)
			break
		}
	}
	if want := raised[0].Name + " (1 of 3 partitions)"; len(few) != 1 || few[0] != want {
		t.Fatalf("few-partition topics: %v, want only %s", few, want)
	}
}

func TestFewPartitionTopicsEmbedded(t *testing.T) { testFewPartitionTopics(t, kafkatest.Embedded(t)) }

func TestFewPartitionTopicsRealKafka(t *testing.T) { testFewPartitionTopics(t, kafkatest.Real(t)) }

// When a member joins, the partition it takes is revoked from the first
// member: the first member's claim on it ends, and the rebalance waits for
// the first member's write of that partition's rows (the lake storing a
// file) before the new member gets it. The partition kept stays claimed.
func testClaimEndsWhenThePartitionGoes(t *testing.T, brokers []string) {
	topic := kafkatest.Topic(t, brokers, "claim", 2)
	group := topic + "-g"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := client(t, brokers, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := p.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("0")}, &kgo.Record{Topic: topic, Partition: 1, Value: []byte("1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	a := consumer(t, brokers, topic, group, 10)
	defer a.Close(context.Background())
	claims := map[int32]*claim.Claim{}
	for len(claims) < 2 {
		b := next(t, a)
		claims[b.Partition] = b.Turn().Claim()
	}
	for part, cl := range claims {
		if !cl.Begin() { // a file of the partition's rows is being stored
			t.Fatalf("partition %d's claim ended while a owns it", part)
		}
	}

	b := consumer(t, brokers, topic, group, 10)
	defer b.Close(context.Background())
	got := make(chan *kafka.Batch, 1)
	go func() {
		if bt, err := b.Next(ctx); err == nil {
			got <- bt
		}
	}()
	var gone, kept int32 = -1, -1
	for gone < 0 {
		if ctx.Err() != nil {
			t.Fatal("no partition's claim ended after the second member joined")
		}
		for part, cl := range claims {
			if cl.Ended() {
				gone, kept = part, 1-part
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case bt := <-got:
		t.Fatalf("the new member got partition %d while the old one still stored its rows", bt.Partition)
	case <-time.After(time.Second):
	}
	claims[gone].Done()
	select {
	case bt := <-got:
		if bt.Partition != gone {
			t.Fatalf("the new member got partition %d, want %d (the one revoked)", bt.Partition, gone)
		}
	case <-ctx.Done():
		t.Fatal("the new member got nothing after the old one stored its rows")
	}
	if claims[kept].Ended() {
		t.Fatalf("partition %d stayed with the first member, but its claim ended", kept)
	}
	claims[kept].Done()
}

// A claim hears which of its batches the broker holds committed: only
// once the commit passed every batch before a turn does the turn stop
// waiting, and the group's committed offset is then past them. A turn
// waiting makes the consumer commit at once, not at its next period (an
// hour here).
func testClaimHearsOfCommits(t *testing.T, brokers []string) {
	topic := kafkatest.Topic(t, brokers, "commits", 1)
	group := topic + "-g"
	produceN(t, brokers, topic, 0, 30)
	c := consumerCommittingEvery(t, brokers, topic, group, 10, time.Hour)
	defer c.Close(context.Background())
	batches := batchesOf(t, c, 30, 3)
	last := batches[len(batches)-1]
	for _, b := range batches[1 : len(batches)-1] {
		c.Ack(b)
	}
	// The first batch is not acknowledged: nothing can be committed.
	if last.Turn().WaitEarlierCommitted(time.Second, nil) {
		t.Fatal("the last batch's turn went on with the first batch unacknowledged")
	}
	waited := make(chan bool, 1)
	go func() { waited <- last.Turn().WaitEarlierCommitted(30*time.Second, nil) }()
	for !last.Turn().Claim().Awaited() {
		time.Sleep(time.Millisecond)
	}
	c.Ack(batches[0]) // while the turn waits
	if !<-waited {
		t.Fatal("the commit of every batch before the last was not heard of")
	}
	before := last.Records[0].Offset
	if at := committedOffset(t, brokers, group, topic); at < before {
		t.Fatalf("the group's committed offset is %d, want at least %d when the claim heard of it", at, before)
	}
	if last.Turn().Claim().Ended() {
		t.Fatal("the claim ended though the partition stayed")
	}
	// Acknowledged with no turn waiting, the last batch is committed when
	// the next turn starts waiting.
	c.Ack(last)
	produceN(t, brokers, topic, 30, 1)
	if !next(t, c).Turn().WaitEarlierCommitted(30*time.Second, nil) {
		t.Fatal("a turn's wait did not commit the batches acknowledged before it")
	}
}

func TestClaimHearsOfCommitsEmbedded(t *testing.T) {
	testClaimHearsOfCommits(t, kafkatest.Embedded(t))
}

func TestClaimHearsOfCommitsRealKafka(t *testing.T) {
	testClaimHearsOfCommits(t, kafkatest.Real(t))
}

// A claim whose batches are stored in rolls (the lake) is committed only
// at a roll's end: a commit among the acknowledgments of a roll, then a
// crash, would replay the roll's later rows under another file name.
func testCommitsStopAtRollEnds(t *testing.T, brokers []string) {
	topic := kafkatest.Topic(t, brokers, "rollends", 1)
	group := topic + "-g"
	produceN(t, brokers, topic, 0, 30)
	c := consumer(t, brokers, topic, group, 10)
	defer c.Close(context.Background())
	batches := batchesOf(t, c, 30, 3)
	roll := batches[1] // a roll of the first two batches was stored
	roll.Turn().EndsRoll()
	c.Ack(batches[0])
	if roll.Turn().WaitEarlierCommitted(time.Second, nil) {
		t.Fatal("the first batch was committed inside its roll")
	}
	c.Ack(roll)
	for _, b := range batches[2:] {
		c.Ack(b) // their roll was not stored: no end to commit at
	}
	if !batches[2].Turn().WaitEarlierCommitted(30*time.Second, nil) {
		t.Fatal("the roll's end was not committed")
	}
	produceN(t, brokers, topic, 30, 1)
	after := next(t, c)
	if after.Turn().WaitEarlierCommitted(time.Second, nil) {
		t.Fatal("batches past the last roll's end were committed")
	}
	want := roll.Records[len(roll.Records)-1].Offset + 1
	if at := committedOffset(t, brokers, group, topic); at != want {
		t.Fatalf("the group's committed offset is %d, want %d (the roll's end)", at, want)
	}
}

func TestCommitsStopAtRollEndsEmbedded(t *testing.T) {
	testCommitsStopAtRollEnds(t, kafkatest.Embedded(t))
}

func TestCommitsStopAtRollEndsRealKafka(t *testing.T) {
	testCommitsStopAtRollEnds(t, kafkatest.Real(t))
}

func TestClaimEndsWhenThePartitionGoesEmbedded(t *testing.T) {
	testClaimEndsWhenThePartitionGoes(t, kafkatest.Embedded(t))
}

func TestClaimEndsWhenThePartitionGoesRealKafka(t *testing.T) {
	testClaimEndsWhenThePartitionGoes(t, kafkatest.Real(t))
}

// With MaxInFlightBytes, the consumer stops handing out batches once the
// values in flight reach the bound, and goes on when some are acknowledged:
// memory follows the events' bytes, not only their count.
func testInFlightBytesBound(t *testing.T, brokers []string) {
	topic := kafkatest.Topic(t, brokers, "inflightbytes", 1)
	produceN(t, brokers, topic, 0, 30)
	c, err := kafka.NewConsumer(kafka.ConsumerConfig{
		Brokers: brokers, Topics: []string{topic}, Group: topic + "-g",
		MaxPoll: 5, MaxInFlight: 1000, MaxInFlightBytes: 8, FromBeginning: true, CommitEvery: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var held []*kafka.Batch
	for bytes := 0; bytes < 8; {
		b := next(t, c)
		held = append(held, b)
		for _, r := range b.Records {
			bytes += len(r.Value)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if b, err := c.Next(ctx); err == nil {
		t.Fatalf("with %d batches holding 8 bytes or more, Next must wait for an acknowledgment; it handed out records from %s", len(held), b.Records[0].Value)
	}
	for _, b := range held {
		c.Ack(b)
	}
	b := next(t, c)
	if want := strconv.Itoa(len(recordValues(held))); string(b.Records[0].Value) != want {
		t.Fatalf("after the acknowledgments the next batch must start at record %s, got %s", want, b.Records[0].Value)
	}
}

func recordValues(bs []*kafka.Batch) []string {
	var out []string
	for _, b := range bs {
		for _, r := range b.Records {
			out = append(out, string(r.Value))
		}
	}
	return out
}

func TestInFlightBytesBoundEmbedded(t *testing.T) { testInFlightBytesBound(t, kafkatest.Embedded(t)) }

func TestInFlightBytesBoundRealKafka(t *testing.T) { testInFlightBytesBound(t, kafkatest.Real(t)) }
