package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// TxnConsumer consumes and produces in Kafka transactions (exactly once for
// a consume → transform → produce stage): everything polled is handed out as
// batches; once all of them are acknowledged downstream (their output
// records produced in the open transaction), the consumed offsets and the
// produced records commit atomically. A refused batch, a rebalance or a
// crash aborts the transaction: its records are re-consumed and the aborted
// output is invisible to read_committed consumers, so a replay never
// duplicates downstream records.
type TxnConsumer struct {
	sess *kgo.GroupTransactSession
	cfg  ConsumerConfig

	mu          sync.Mutex
	cond        *sync.Cond
	pending     []*Batch
	outstanding int
	failed      bool
	inTxn       bool
	closed      bool
	release     func() // the kept transactional id's slot
	slot        string // its file, "" for a new id
}

// NewTxnConsumer joins the group with a transactional producer.
func NewTxnConsumer(cfg ConsumerConfig) (*TxnConsumer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("no seed brokers: set caracal.brokers or CARACAL_BROKERS")
	}
	if cfg.MaxPoll <= 0 {
		cfg.MaxPoll = 5000
	}
	id, slot, release := processID(cfg)
	dead := deadMember(slot) // before joining (see member.go)
	reset := kgo.NewOffset().AtEnd()
	if cfg.FromBeginning {
		reset = kgo.NewOffset().AtStart()
	}
	opts := append(groupOpts(cfg, rememberMember(slot)),
		kgo.ConsumeResetOffset(reset),
		// Unique per live process (KIP-447: the group generation fences
		// zombies), and kept across restarts (see processid.go).
		kgo.TransactionalID(cfg.Group+"-"+id),
		kgo.TransactionTimeout(TransactionTimeout),
		// A transaction begun right after the last one ended is refused
		// (CONCURRENT_TRANSACTIONS) until the broker wrote the last one's
		// markers, a few ms; franz-go's 20 ms default wait made each
		// transaction cost 28 ms instead of 12 (BenchmarkTransactionsRealKafka).
		kgo.ConcurrentTransactionsBackoff(5*time.Millisecond),
		kgo.RequireStableFetchOffsets(),
		kgo.MaxVersions(withoutTransactionsV2()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(MaxRecordBytes),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		release()
		return nil, fmt.Errorf("kafka transactional consumer %s: %w", cfg.Group, err)
	}
	// Registering the id now, before anything is consumed, aborts a killed
	// predecessor's open transaction (see processid.go). Not reaching the
	// broker is not fatal: the first transaction registers it.
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	if _, _, err := sess.Client().ProducerID(ctx); err != nil && cfg.OnWarn != nil {
		cfg.OnWarn(fmt.Sprintf("Consumer group %s: registering transactional id %s-%s: %v", cfg.Group, cfg.Group, id, err))
	}
	// Then the predecessor's group membership goes too, so the rebalance
	// this process joins does not wait for it (see member.go).
	if err := leaveDeadMember(ctx, sess.Client(), cfg.Group, dead); err != nil && cfg.OnWarn != nil {
		cfg.OnWarn(fmt.Sprintf("Consumer group %s: removing the member a killed process left (the group waits for its 10 s session to end instead): %v", cfg.Group, err))
	}
	c := &TxnConsumer{sess: sess, cfg: cfg, release: release, slot: slot}
	c.cond = sync.NewCond(&c.mu)
	return c, nil
}

// withoutTransactionsV2 keeps transactions on the protocol before KIP-890
// part 2 (Kafka 4's transaction.version=2), where offsets join a
// transaction implicitly. Under chaos (kills and a broker restart) Kafka
// 4.4 left such an offset commit pending in __consumer_offsets for a
// transaction its coordinator no longer knew: the group's committed
// offsets stayed UNSTABLE_OFFSET_COMMIT for good and the stage stopped
// consuming, silently. Capping EndTxn below v5 makes franz-go use the
// explicit AddOffsetsToTxn protocol, which the broker verifies (KIP-890
// part 1). Brokers without version 2 (Redpanda) are unaffected.
func withoutTransactionsV2() *kversion.Versions {
	v := kversion.Stable()
	v.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
	return v
}

// groupOpts are the options every Caracal group consumer uses; onAssigned
// also runs at each assignment.
func groupOpts(cfg ConsumerConfig, onAssigned ...func(*kgo.Client)) []kgo.Opt {
	assigned := func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
		countAssignment(ctx, cl, parts)
		for _, f := range onAssigned {
			f(cl)
		}
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.FetchMaxWait(100 * time.Millisecond),
		// Skip records of aborted transactions.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A killed member is noticed within seconds, not the 45s default.
		kgo.SessionTimeout(10 * time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.RebalanceTimeout(30 * time.Second),
		kgo.OnPartitionsAssigned(assigned),
	}
	if cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(cfg.ClientID))
	}
	if cfg.OnStall != nil {
		var probing atomic.Bool // one look at a time, however many partitions wait
		probe := func() {
			if probing.CompareAndSwap(false, true) {
				go func() { defer probing.Store(false); probeStall(cfg) }()
			}
		}
		opts = append(opts, kgo.WithLogger(newStallWatch(func(msg string) {
			cfg.OnStall(msg)
			go recoverStall(cfg)
		}, probe)))
	}
	return opts
}

// recoverStall aborts the hanging transactions a stalled group waits on
// (AbortHanging) and says what it did.
func recoverStall(cfg ConsumerConfig) {
	aborted, err := abortHangingNow(context.Background(), cfg.Brokers)
	switch {
	case err != nil:
		cfg.OnStall(fmt.Sprintf("Consumer group %s: aborting hanging transactions failed (aborted %v): %v; abort them with kafka-transactions.sh", cfg.Group, aborted, err))
	case len(aborted) == 0:
		cfg.OnStall(fmt.Sprintf("Consumer group %s: found no hanging transaction to abort on caracal.* or __consumer_offsets; look with kafka-transactions.sh find-hanging", cfg.Group))
	default:
		cfg.OnStall(fmt.Sprintf("Consumer group %s: aborted hanging transactions on %s", cfg.Group, strings.Join(aborted, ", ")))
	}
}

// probeStall is recoverStall while a wait is young: it says only what it
// aborted. Not finding one, or not reaching the broker, is what a wait on
// a live transaction meets, and the wait's own report covers the rest.
func probeStall(cfg ConsumerConfig) {
	if aborted, err := abortHangingNow(context.Background(), cfg.Brokers); err == nil && len(aborted) > 0 {
		cfg.OnStall(fmt.Sprintf("Consumer group %s: its offsets wait on a pending transaction; aborted hanging transactions on %s",
			cfg.Group, strings.Join(aborted, ", ")))
	}
}

// Next hands out the next batch of the current transaction; when all were
// acknowledged it ends the transaction and polls for the next.
func (c *TxnConsumer) Next(ctx context.Context) (*Batch, error) {
	for {
		c.mu.Lock()
		for !c.closed && len(c.pending) == 0 && c.outstanding > 0 && ctx.Err() == nil {
			waitCond(ctx, &c.mu, c.cond)
		}
		if c.closed {
			c.mu.Unlock()
			return nil, errClosed
		}
		if err := ctx.Err(); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		if len(c.pending) > 0 {
			b := c.pending[0]
			c.pending = c.pending[1:]
			c.outstanding++
			c.mu.Unlock()
			return b, nil
		}
		inTxn, failed := c.inTxn, c.failed
		c.mu.Unlock()

		if inTxn {
			try := kgo.TryCommit
			if failed {
				try = kgo.TryAbort
			}
			committed, err := c.end(ctx, try)
			if !committed {
				// Whatever the stage derived from the aborted records
				// is void: stateful stages reload from committed state.
				generation.Add(1)
			}
			if err != nil {
				// The transaction was aborted, or Close aborts it; its
				// records are consumed again from the last commit.
				return nil, fmt.Errorf("end transaction: %w", err)
			}
		}

		fetches := c.sess.PollRecords(ctx, c.cfg.MaxPoll)
		if fetches.IsClientClosed() {
			return nil, errClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if fetches.NumRecords() == 0 {
			if ferr != nil {
				return nil, ferr
			}
			continue
		}
		if err := c.sess.Begin(); err != nil {
			return nil, fmt.Errorf("begin transaction: %w", err)
		}
		c.mu.Lock()
		c.inTxn = true
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				c.pending = append(c.pending, &Batch{Topic: p.Topic, Partition: p.Partition, Records: p.Records})
			}
		})
		c.mu.Unlock()
	}
}

// TransactionTimeout is how long the broker lets a transaction stay open
// before aborting it: a stage killed mid-transaction holds back
// read_committed readers of its outputs for at most this long.
const TransactionTimeout = 60 * time.Second

// endTimeout bounds ending a transaction, well inside the transaction
// timeout.
const endTimeout = 30 * time.Second

// end ends the open transaction. A stop (ctx cancelled) must not cut it
// short: franz-go leaves a transaction open when its context ends part way,
// and an open transaction holds back every read_committed reader of the
// output until the broker times it out, then throws away work whose side
// effects (alerts sent) already happened. So it runs on its own deadline.
// When it fails the transaction stays marked failed, for Close or the next
// round to abort (a no-op if franz-go already did).
func (c *TxnConsumer) end(ctx context.Context, try kgo.TransactionEndTry) (bool, error) {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	committed, err := c.sess.End(ectx, try)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inTxn, c.failed = err != nil, err != nil
	return committed, err
}

// Ack records a batch's outcome; a refused batch aborts the transaction.
func (c *TxnConsumer) Ack(b *Batch, err error) {
	c.mu.Lock()
	c.outstanding--
	if err != nil {
		c.failed = true
	}
	c.cond.Broadcast()
	c.mu.Unlock()
}

// Produce writes records inside the open transaction.
func (c *TxnConsumer) Produce(ctx context.Context, recs []*kgo.Record) error {
	return c.sess.ProduceSync(ctx, recs...).FirstErr()
}

// Close ends an open transaction and leaves the group: it commits when every
// batch polled in it was handed out and acknowledged (a graceful stop after
// the stage finished its work must not throw that work away, or a restart
// would redo side effects such as notifications), and aborts otherwise.
func (c *TxnConsumer) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	inTxn := c.inTxn
	done := !c.failed && c.outstanding == 0 && len(c.pending) == 0
	c.cond.Broadcast()
	c.mu.Unlock()
	if inTxn {
		try := kgo.TryAbort
		if done {
			try = kgo.TryCommit
		}
		if _, err := c.end(ctx, try); err != nil {
			_, _ = c.end(ctx, kgo.TryAbort)
		}
	}
	c.sess.Close()
	c.release()
	return nil
}

// waitCond waits on cond (with mu held) but wakes when ctx is done.
func waitCond(ctx context.Context, mu *sync.Mutex, cond *sync.Cond) {
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		cond.Broadcast()
		mu.Unlock()
	})
	cond.Wait()
	stop()
}

// Sessions lets a stage's output produce in its input's transaction: both
// name the same consumer group.
type Sessions struct {
	mu    sync.Mutex
	cond  *sync.Cond
	byKey map[string]*TxnConsumer
}

// NewSessions returns an empty registry.
func NewSessions() *Sessions {
	s := &Sessions{byKey: map[string]*TxnConsumer{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// Put registers the input's session.
func (s *Sessions) Put(group string, c *TxnConsumer) {
	s.mu.Lock()
	s.byKey[group] = c
	s.cond.Broadcast()
	s.mu.Unlock()
}

// Remove unregisters a session.
func (s *Sessions) Remove(group string, c *TxnConsumer) {
	s.mu.Lock()
	if s.byKey[group] == c {
		delete(s.byKey, group)
	}
	s.mu.Unlock()
}

// Get waits until the group's session exists.
func (s *Sessions) Get(ctx context.Context, group string) (*TxnConsumer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.byKey[group] == nil {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("no transactional caracal_kafka input with consumer_group %q in this stream: %w", group, err)
		}
		waitCond(ctx, &s.mu, s.cond)
	}
	return s.byKey[group], nil
}
