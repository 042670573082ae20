package kafka_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/caracal-sec/caracal/plugins/kafka"
	"github.com/caracal-sec/caracal/plugins/kafka/kafkatest"
)

// A stop that lands while the stage is ending a transaction whose batches
// were all acknowledged must still commit it: left open, the transaction
// would hold back every read_committed reader of the output until the
// broker times it out, and then abort work whose side effects (alerts sent)
// already happened, so a restart would redo them.
func testStopWhileEndingCommits(t *testing.T, brokers []string) {
	in := kafkatest.Topic(t, brokers, "txn-in", 1)
	out := kafkatest.Topic(t, brokers, "txn-out", 1)
	const rounds = 12
	for i := 0; i < rounds; i++ {
		produceN(t, brokers, in, i, 1)
		c, err := kafka.NewTxnConsumer(kafka.ConsumerConfig{Brokers: brokers, Topics: []string{in}, Group: in + "-g", FromBeginning: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		b, err := c.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rec := &kgo.Record{Topic: out, Partition: 0, Value: b.Records[0].Value}
		if err := c.Produce(ctx, []*kgo.Record{rec}); err != nil {
			t.Fatal(err)
		}
		c.Ack(b, nil)
		// The next Next ends the transaction; the stop cancels it part way,
		// at a different point each round.
		stop, halt := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = c.Next(stop)
		}()
		time.Sleep(time.Duration(i) * 300 * time.Microsecond)
		halt()
		<-done
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		cancel()
		stable(t, brokers, out, int64(i+1))
	}
}

// stable checks that topic partition 0 has no open transaction and holds
// want records that read_committed readers see.
func stable(t *testing.T, brokers []string, topic string, want int64) {
	t.Helper()
	adm := admin(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The broker answers a commit once it is decided and writes the
	// markers that end it on the partitions just after: give it a moment.
	for {
		lso, hwm := stableAndEnd(t, adm, topic)
		if lso == hwm {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: a transaction is still open (last stable offset %d, high watermark %d)", topic, lso, hwm)
		case <-time.After(50 * time.Millisecond):
		}
	}
	var got int64
	if _, err := kafka.ReadCompacted(ctx, brokers, topic, time.Second, func(_, v []byte) { got++ }); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("%s: %d committed record(s), want %d: acknowledged work was thrown away at the stop", topic, got, want)
	}
}

func TestStopWhileEndingCommitsEmbedded(t *testing.T) {
	testStopWhileEndingCommits(t, kafkatest.Embedded(t))
}

func TestStopWhileEndingCommitsRealKafka(t *testing.T) {
	testStopWhileEndingCommits(t, kafkatest.Real(t))
}

// AbortHanging aborts only transactions no coordinator knows as in
// progress: a live one, however old, is left alone.
// The embedded broker runs the same search (WatchHanging, under `make
// run`): it must answer it.
func TestAbortHangingLeavesLiveTransactionsEmbedded(t *testing.T) {
	testAbortHangingLeavesLiveTransactions(t, kafkatest.Embedded(t))
}

func TestAbortHangingLeavesLiveTransactionsRealKafka(t *testing.T) {
	testAbortHangingLeavesLiveTransactions(t, kafkatest.Real(t))
}

func testAbortHangingLeavesLiveTransactions(t *testing.T, brokers []string) {
	topic := kafkatest.Topic(t, brokers, "caracal.hang", 1)
	cl := client(t, brokers, kgo.TransactionalID(topic+"-txn"), kgo.DefaultProduceTopic(topic))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	aborted, err := kafka.AbortHanging(ctx, brokers, 0) // every open transaction is old enough
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range aborted {
		if strings.HasPrefix(a, topic+"/") {
			t.Fatalf("aborted a live transaction: %v", aborted)
		}
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("the live transaction could not commit: %v", err)
	}
	stable(t, brokers, topic, 1)
}

// A stage process killed mid-transaction and restarted with the same data
// dir takes back its transactional id, which makes the broker abort the dead
// process's transaction at once: its output's read_committed readers (the
// alert stage behind detect) do not wait for the transaction timeout.
func testRestartAbortsTheKilledTransaction(t *testing.T, brokers []string) {
	in := kafkatest.Topic(t, brokers, "crash-in", 1)
	out := kafkatest.Topic(t, brokers, "crash-out", 1)
	produceN(t, brokers, in, 0, 1)
	cfg := kafka.ConsumerConfig{Brokers: brokers, Topics: []string{in}, Group: in + "-g", FromBeginning: true, DataDir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	killed, err := kafka.NewTxnConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := killed.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := killed.Produce(ctx, []*kgo.Record{{Topic: out, Partition: 0, Value: b.Records[0].Value}}); err != nil {
		t.Fatal(err)
	}
	if lso, hwm := stableAndEnd(t, admin(t, brokers), out); lso == hwm {
		t.Fatal("set-up: the produced record is not in an open transaction")
	}
	killed.ReleaseIDForTest()

	restarted, err := kafka.NewTxnConsumer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close(context.Background())
	stable(t, brokers, out, 0) // aborted: no open transaction, nothing committed

	// The dead process's group membership goes (here: it leaves), and
	// the restarted one consumes the record again.
	_ = killed.Close(context.Background())
	b, err = restarted.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(b.Records[0].Value) != "0" {
		t.Fatalf("restarted consumer got %q, want the record again", b.Records[0].Value)
	}
}

// client is a client of brokers, closed when the test ends.
func client(t testing.TB, brokers []string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// admin is an admin client of brokers, closed when the test ends.
func admin(t testing.TB, brokers []string) *kadm.Client { return kadm.NewClient(client(t, brokers)) }

// stableAndEnd returns topic partition 0's last stable offset and high
// watermark: they differ while a transaction is open.
func stableAndEnd(t *testing.T, adm *kadm.Client, topic string) (int64, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lso, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	hwm, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := lso.Lookup(topic, 0)
	h, _ := hwm.Lookup(topic, 0)
	return l.Offset, h.Offset
}

func TestRestartAbortsTheKilledTransactionEmbedded(t *testing.T) {
	testRestartAbortsTheKilledTransaction(t, kafkatest.Embedded(t))
}

func TestRestartAbortsTheKilledTransactionRealKafka(t *testing.T) {
	testRestartAbortsTheKilledTransaction(t, kafkatest.Real(t))
}

// BenchmarkTransactionsRealKafka moves records through a transactional
// consume → produce loop, one transaction per poll, as process, detect and
// alert do: a transaction's fixed cost (ending it, and beginning the next
// while the broker still writes the last one's markers) against its size.
func BenchmarkTransactionsRealKafka(b *testing.B) {
	brokers := kafkatest.Real(b)
	for _, poll := range []int{100, 2000} {
		b.Run(fmt.Sprintf("poll=%d", poll), func(b *testing.B) {
			in := kafkatest.Topic(b, brokers, "bench-in", 6)
			out := kafkatest.Topic(b, brokers, "bench-out", 6)
			p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: brokers})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close(context.Background())
			ctx := context.Background()
			recs := make([]*kgo.Record, 0, b.N)
			for i := 0; i < b.N; i++ {
				recs = append(recs, &kgo.Record{Topic: in, Partition: int32(i % 6), Value: []byte(strconv.Itoa(i))})
			}
			if err := p.Produce(ctx, recs); err != nil {
				b.Fatal(err)
			}
			c, err := kafka.NewTxnConsumer(kafka.ConsumerConfig{Brokers: brokers, Topics: []string{in}, Group: in + "-g", FromBeginning: true, MaxPoll: poll, DataDir: b.TempDir()})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close(ctx)
			b.ResetTimer()
			for got := 0; got < b.N; {
				batch, err := c.Next(ctx)
				if err != nil {
					b.Fatal(err)
				}
				outs := make([]*kgo.Record, 0, len(batch.Records))
				for _, r := range batch.Records {
					outs = append(outs, &kgo.Record{Topic: out, Partition: r.Partition, Value: r.Value})
				}
				if err := c.Produce(ctx, outs); err != nil {
					b.Fatal(err)
				}
				c.Ack(batch, nil)
				got += len(batch.Records)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// The hang make chaos met when the broker restarted: a write the broker
// took while it stopped, in a transaction its coordinator never recorded,
// so no marker will end it and its readers (or, on __consumer_offsets, the
// group's offsets) wait. Once the transactional id is registered again (the
// stage restarted), its producer is fenced and the write is aborted at
// once, however young; before that, only its age would make it hanging.
// Here a write sent without AddPartitionsToTxn, while the broker does not
// verify transactions, stands for it. The embedded broker cannot be made
// to take one.
func testAbortHangingAbortsAFencedWrite(t *testing.T, brokers []string) {
	topic := kafkatest.Topic(t, brokers, "caracal.fenced", 1)
	txnID := topic + "-txn"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	unverified(t, brokers)
	explicit := kversion.Stable() // partitions join a transaction only by AddPartitionsToTxn (before v12)
	explicit.SetMaxKeyVersion(int16(kmsg.Produce), 11)
	dead := client(t, brokers, kgo.TransactionalID(txnID), kgo.MaxVersions(explicit))
	id, epoch, err := dead.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	produce := kmsg.NewPtrProduceRequest()
	produce.TransactionID, produce.Acks, produce.TimeoutMillis = &txnID, -1, 10000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = topic
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = txnBatch(id, epoch, []byte("stray"))
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)
	for { // the broker takes a moment to apply unverified
		resp, err := produce.RequestWith(ctx, dead)
		if err != nil {
			t.Fatal(err)
		}
		err = kerr.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
		if err == nil {
			break
		}
		if !errors.Is(err, kerr.TransactionAbortable) || ctx.Err() != nil {
			t.Fatalf("set-up: the write was refused: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	adm := admin(t, brokers)
	if lso, hwm := stableAndEnd(t, adm, topic); lso == hwm {
		t.Fatal("set-up: the write is not in an open transaction")
	}
	// Other tests share the broker: look only at this topic.
	if aborted, err := kafka.AbortHanging(ctx, brokers, time.Hour); err != nil || slices.ContainsFunc(aborted, func(a string) bool { return strings.HasPrefix(a, topic+"/") }) {
		t.Fatalf("aborted %v (err %v) while its producer could still end it", aborted, err)
	}

	if _, _, err := client(t, brokers, kgo.TransactionalID(txnID)).ProducerID(ctx); err != nil { // the restart
		t.Fatal(err)
	}
	if lso, hwm := stableAndEnd(t, adm, topic); lso == hwm {
		t.Fatal("set-up: registering the id again ended the write: it was not hanging")
	}
	aborted, err := kafka.AbortHanging(ctx, brokers, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s/0 (producer %d, epoch %d: its producer fenced)", topic, id, epoch); !slices.Contains(aborted, want) {
		t.Fatalf("aborted %v, want %s", aborted, want)
	}
	stable(t, brokers, topic, 0)
}

// txnBatch is one record in a transactional record batch of producer id at
// epoch, as a transactional producer writes it.
func txnBatch(id int64, epoch int16, value []byte) []byte {
	rec := kmsg.Record{Value: value}
	rec.Length = int32(len(rec.AppendTo(nil)) - 1) // everything after the 1-byte length 0
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{Magic: 2, Attributes: 0x10, FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: id, ProducerEpoch: epoch, NumRecords: 1, Records: rec.AppendTo(nil)}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))                                          // length: what follows it
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))) // crc: from attributes on
	return raw
}

// unverified turns the broker's transaction verification (KIP-890 part 1)
// off until the test ends.
func unverified(t *testing.T, brokers []string) {
	t.Helper()
	adm := admin(t, brokers)
	set := func(op kadm.IncrementalOp) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		off := "false"
		resp, err := adm.AlterBrokerConfigs(ctx, []kadm.AlterConfig{{Op: op, Name: "transaction.partition.verification.enable", Value: &off}})
		if err == nil {
			var r kadm.AlterConfigsResponse
			r, err = resp.On("", nil)
			if err == nil {
				err = r.Err
			}
		}
		if err != nil {
			t.Fatalf("transaction verification: %v", err)
		}
	}
	set(kadm.SetConfig)
	t.Cleanup(func() { set(kadm.DeleteConfig) }) // before the client closes (cleanups run last first)
}

func TestAbortHangingAbortsAFencedWriteRealKafka(t *testing.T) {
	testAbortHangingAbortsAFencedWrite(t, kafkatest.Real(t))
}

// stageConsumer is what the transactional stages and the lake consume with.
type stageConsumer interface {
	Next(ctx context.Context) (*kafka.Batch, error)
	Close(ctx context.Context) error
	MemberFileForTest() string
}

func txnConsumer(cfg kafka.ConsumerConfig) (stageConsumer, error) { return kafka.NewTxnConsumer(cfg) }

func plainConsumer(cfg kafka.ConsumerConfig) (stageConsumer, error) { return kafka.NewConsumer(cfg) }

// A stage process killed without leaving its group stays a member until its
// session ends, and the rebalance its restart asks for waits for it. The
// restart, in the dead process's slot, finds the member id the process kept
// there and removes that member at once.
func testRestartRemovesTheDeadMember(t *testing.T, brokers []string, open func(kafka.ConsumerConfig) (stageConsumer, error)) {
	in := kafkatest.Topic(t, brokers, "dead-in", 1)
	group := in + "-g"
	produceN(t, brokers, in, 0, 1)
	cfg := kafka.ConsumerConfig{Brokers: brokers, Topics: []string{in}, Group: group, FromBeginning: true, DataDir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	first, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Next(ctx); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	memberFile := first.MemberFileForTest()
	kept, err := os.ReadFile(memberFile)
	if want := members(t, brokers, group); err != nil || len(want) != 1 || string(kept) != host+" "+want[0]+"\n" {
		t.Fatalf("kept member %q (err %v), want this host's and the group's only member %v", kept, err, want)
	}
	_ = first.Close(ctx) // leaves the group; a killed process would not:
	dead := joinAndDie(t, brokers, group, in)
	if err := os.WriteFile(memberFile, []byte(host+" "+dead+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	restarted, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer restarted.Close(context.Background())
	if slices.Contains(members(t, brokers, group), dead) {
		t.Fatalf("the dead member %s is still in the group: the rebalance waits for its 30 s session", dead)
	}
	b, err := restarted.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(b.Records[0].Value) != "0" {
		t.Fatalf("restarted consumer got %q, want the record again", b.Records[0].Value)
	}
	// It removed the dead member, not itself (its own id is in the file
	// from its first assignment on).
	kept, err = os.ReadFile(restarted.MemberFileForTest())
	if now := members(t, brokers, group); err != nil || len(now) != 1 || string(kept) != host+" "+now[0]+"\n" {
		t.Fatalf("members %v, kept %q (err %v): want the restarted consumer alone, and its id kept", now, kept, err)
	}
}

// joinAndDie joins group as a consumer of topic, takes all its partitions
// and then never heartbeats, as a process killed mid-way: the group keeps it
// for its 30 s session. It returns its member id.
func joinAndDie(t *testing.T, brokers []string, group, topic string) string {
	t.Helper()
	cl := client(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Topics = []string{topic}
	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = group, 30000, 30000, "consumer"
	proto := kmsg.NewJoinGroupRequestProtocol()
	proto.Name, proto.Metadata = "cooperative-sticky", meta.AppendTo(nil)
	join.Protocols = append(join.Protocols, proto)
	var joined *kmsg.JoinGroupResponse
	for {
		var err error
		joined, err = join.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if err := kerr.ErrorForCode(joined.ErrorCode); errors.Is(err, kerr.MemberIDRequired) {
			join.MemberID = joined.MemberID // v4+: join again with the id given
			continue
		} else if err != nil {
			t.Fatalf("join %s: %v", group, err)
		}
		break
	}
	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.Generation, sync.MemberID = group, joined.Generation, joined.MemberID
	sync.ProtocolType, sync.Protocol = joined.ProtocolType, joined.Protocol
	if joined.LeaderID == joined.MemberID {
		assignment := kmsg.NewConsumerMemberAssignment()
		at := kmsg.NewConsumerMemberAssignmentTopic()
		at.Topic, at.Partitions = topic, []int32{0}
		assignment.Topics = append(assignment.Topics, at)
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = joined.MemberID, assignment.AppendTo(nil)
		sync.GroupAssignment = append(sync.GroupAssignment, ga)
	}
	synced, err := sync.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kerr.ErrorForCode(synced.ErrorCode); err != nil {
		t.Fatalf("sync %s: %v", group, err)
	}
	return joined.MemberID
}

// members lists group's member ids.
func members(t *testing.T, brokers []string, group string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	described, err := admin(t, brokers).DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range described[group].Members {
		ids = append(ids, m.MemberID)
	}
	return ids
}

func TestRestartRemovesTheDeadMemberEmbedded(t *testing.T) {
	testRestartRemovesTheDeadMember(t, kafkatest.Embedded(t), txnConsumer)
}

func TestRestartRemovesTheDeadMemberRealKafka(t *testing.T) {
	testRestartRemovesTheDeadMember(t, kafkatest.Real(t), txnConsumer)
}

// The lake's plain consumer does the same.
func TestRestartRemovesTheDeadPlainMemberEmbedded(t *testing.T) {
	testRestartRemovesTheDeadMember(t, kafkatest.Embedded(t), plainConsumer)
}

func TestRestartRemovesTheDeadPlainMemberRealKafka(t *testing.T) {
	testRestartRemovesTheDeadMember(t, kafkatest.Real(t), plainConsumer)
}
