package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/caracal-sec/caracal/plugins/claim"
)

// Batch is a run of consecutive records from one partition, handed out
// together and acknowledged together.
type Batch struct {
	Topic     string
	Partition int32
	Records   []*kgo.Record
	bytes     int        // its records' values, counted against MaxInFlightBytes
	t         *tracker   // the partition's tracker when the batch was polled
	turn      claim.Turn // its place among the batches of its claim
}

// ConsumerConfig configures a group consumer.
type ConsumerConfig struct {
	Brokers     []string
	Group       string
	Topics      []string
	ClientID    string
	MaxPoll     int // records per poll
	MaxInFlight int // records handed out and not yet acknowledged
	// MaxInFlightBytes, when positive, also bounds the bytes of those
	// records' values: a count alone lets large events fill the memory.
	MaxInFlightBytes int
	FromBeginning    bool          // start offset for a group with no commit
	CommitEvery      time.Duration // autocommit interval of acknowledged offsets
	// OnStall, when set, receives an error message when the group's
	// offsets stay held by a hanging transaction (see stallWatch).
	OnStall func(msg string)
	// DataDir, when set, keeps the consumer's group member id (and a
	// transactional consumer's id) across restarts (see processID).
	DataDir string
	// OnWarn, when set, receives warnings.
	OnWarn func(msg string)
}

// Consumer hands out per-partition batches and commits a partition's offset
// only up to the first batch that has not been acknowledged yet, whatever the
// order acknowledgments arrive in: a crash can replay acknowledged records
// (at-least-once) but never skips one that was not.
type Consumer struct {
	cl      *kgo.Client
	cfg     ConsumerConfig
	slot    string // the data dir's file keeping its member id (member.go)
	release func() // gives the slot up

	mu       sync.Mutex
	cond     *sync.Cond
	pending  []*Batch // polled, not yet handed out; redeliveries go first
	inFlight int
	// inFlightBytes are the values of the records counted in inFlight.
	inFlightBytes int
	parts         map[string]map[int32]*tracker
	closed        bool

	// A commit made at once for a claim waiting for it (commitNow), and
	// whether another is wanted after it.
	committing, commitAgain atomic.Bool
}

// tracker keeps the ranges handed out for one partition, in offset order.
type tracker struct {
	ranges []*span
	claim  *claim.Claim // ends when the partition goes (see forget)
	marks  []mark       // marked for commit, not yet known committed
	// passed are the acknowledged ranges the commit point passed but did
	// not mark yet, waiting for the end of their roll (claim.EndsRoll).
	passed []*span
}

// mark is a commit point handed to the client: the offset after a batch
// and the batch's turn.
type mark struct {
	next int64
	turn claim.Turn
}

// Turn is the batch's place among those handed out under the claim on its
// partition (Turn.Claim), which ends when the partition is revoked or lost.
func (b *Batch) Turn() claim.Turn { return b.turn }

type span struct {
	first, last int64
	epoch       int32
	turn        claim.Turn
	done        bool
}

// NewConsumer joins the group and starts consuming.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("no seed brokers: set caracal.brokers or CARACAL_BROKERS")
	}
	if cfg.MaxPoll <= 0 {
		cfg.MaxPoll = 1000
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 100000
	}
	if cfg.CommitEvery <= 0 {
		cfg.CommitEvery = time.Second
	}
	c := &Consumer{cfg: cfg, parts: map[string]map[int32]*tracker{}}
	c.cond = sync.NewCond(&c.mu)
	reset := kgo.NewOffset().AtEnd()
	if cfg.FromBeginning {
		reset = kgo.NewOffset().AtStart()
	}
	// Like a transactional stage, the process keeps its group member id in
	// a slot of the data dir, and its restart removes the killed process's
	// member at once (see member.go). There is no transactional id to
	// keep: the slot's id goes unused.
	slot, release := "", func() {}
	if cfg.DataDir != "" {
		if _, s, r, err := keptID(cfg.DataDir, cfg.Group); err == nil {
			slot, release = s, r
		}
	}
	dead := deadMember(slot) // before joining
	opts := append(groupOpts(cfg, rememberMember(slot)),
		kgo.ConsumeResetOffset(reset),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(cfg.CommitEvery),
		kgo.AutoCommitCallback(c.committed),
		kgo.OnPartitionsRevoked(c.forget),
		kgo.OnPartitionsLost(c.forget),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		release()
		return nil, fmt.Errorf("kafka consumer %s: %w", cfg.Group, err)
	}
	c.cl, c.slot, c.release = cl, slot, release
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	if err := leaveDeadMember(ctx, cl, cfg.Group, dead); err != nil && cfg.OnWarn != nil {
		cfg.OnWarn(fmt.Sprintf("Consumer group %s: removing the member a killed process left (the group waits for its 10 s session to end instead): %v", cfg.Group, err))
	}
	return c, nil
}

// forget drops what is in flight for partitions this member no longer owns,
// so a late acknowledgment cannot commit over the new owner's progress.
// Batches of those partitions still waiting to be handed out are discarded:
// the new owner consumes them from the last commit.
//
// It then ends the partitions' claims, which waits for files of their rows
// being stored: the rebalance goes on only after that, so the new owner's
// files are never overwritten by this member's (see package claim).
func (c *Consumer) forget(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	var ended []*claim.Claim
	defer func() {
		for _, cl := range ended {
			cl.End()
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, ps := range lost {
		for _, p := range ps {
			if t := c.parts[topic][p]; t != nil {
				ended = append(ended, t.claim)
			}
			delete(c.parts[topic], p)
		}
	}
	kept := c.pending[:0]
	for _, b := range c.pending {
		if owned(lost, b.Topic, b.Partition) {
			c.inFlight -= len(b.Records)
			c.inFlightBytes -= b.bytes
			continue
		}
		kept = append(kept, b)
	}
	c.pending = kept
	c.cond.Broadcast()
}

func owned(m map[string][]int32, topic string, p int32) bool {
	for _, q := range m[topic] {
		if q == p {
			return true
		}
	}
	return false
}

// Next returns the next batch, polling the broker when nothing is pending.
// It blocks while MaxInFlight records (or MaxInFlightBytes of their
// values) are unacknowledged.
func (c *Consumer) Next(ctx context.Context) (*Batch, error) {
	for {
		c.mu.Lock()
		for !c.closed && len(c.pending) == 0 && c.full() && ctx.Err() == nil {
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
			c.mu.Unlock()
			return b, nil
		}
		c.mu.Unlock()

		fetches := c.cl.PollRecords(ctx, c.cfg.MaxPoll)
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
		if ferr != nil && fetches.NumRecords() == 0 {
			return nil, ferr
		}
		c.enqueue(fetches)
	}
}

var errClosed = errors.New("consumer closed")

// full says whether Next must wait for acknowledgments before polling.
func (c *Consumer) full() bool {
	return c.inFlight >= c.cfg.MaxInFlight || c.cfg.MaxInFlightBytes > 0 && c.inFlightBytes >= c.cfg.MaxInFlightBytes
}

func (c *Consumer) enqueue(fetches kgo.Fetches) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		recs := p.Records
		t := c.tracker(p.Topic, p.Partition)
		b := &Batch{Topic: p.Topic, Partition: p.Partition, Records: recs, t: t, turn: t.claim.Next()}
		for _, r := range recs {
			b.bytes += len(r.Value)
		}
		t.ranges = append(t.ranges, &span{first: recs[0].Offset, last: recs[len(recs)-1].Offset,
			epoch: recs[len(recs)-1].LeaderEpoch, turn: b.turn})
		c.inFlight += len(recs)
		c.inFlightBytes += b.bytes
		c.pending = append(c.pending, b)
	})
}

func (c *Consumer) tracker(topic string, p int32) *tracker {
	ps := c.parts[topic]
	if ps == nil {
		ps = map[int32]*tracker{}
		c.parts[topic] = ps
	}
	t := ps[p]
	if t == nil {
		t = &tracker{claim: claim.NewCommitting(c.commitNow)}
		ps[p] = t
	}
	return t
}

// Ack marks a batch as processed downstream; the partition's commit point
// advances over every leading acknowledged range.
func (c *Consumer) Ack(b *Batch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight -= len(b.Records)
	c.inFlightBytes -= b.bytes
	c.cond.Broadcast()
	t := b.t
	if c.parts[b.Topic][b.Partition] != t {
		return // the partition was revoked since; its new owner commits it
	}
	first := b.Records[0].Offset
	for _, s := range t.ranges {
		if s.first == first {
			s.done = true
			break
		}
	}
	n := 0
	for n < len(t.ranges) && t.ranges[n].done {
		n++
	}
	var commit *span
	if n > 0 {
		popped := t.ranges[:n:n]
		t.ranges = t.ranges[n:]
		commit = popped[n-1]
		if t.claim.Rolled() {
			commit = t.rollEnd(popped)
		}
	}
	if commit != nil {
		t.marks = append(t.marks, mark{next: commit.last + 1, turn: commit.turn})
		c.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{
			b.Topic: {b.Partition: {Epoch: commit.epoch, Offset: commit.last + 1}},
		})
		if t.claim.Awaited() {
			c.commitNow()
		}
	}
}

// commitNow commits the acknowledged offsets without waiting for the
// next autocommit, for a claim waiting for them (the lake holds its next
// roll until then). One such commit runs at a time; calls meanwhile make
// one more after it.
func (c *Consumer) commitNow() {
	c.commitAgain.Store(true)
	if !c.committing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			for c.commitAgain.Swap(false) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c.cl.CommitOffsetsSync(ctx, c.cl.MarkedOffsets(), c.committed)
				cancel()
			}
			c.committing.Store(false)
			// A call between the last Swap and the Store found a commit
			// running and left: make it.
			if !c.commitAgain.Load() || !c.committing.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// rollEnd is where the commit point may stop once it passed the ranges
// popped (acknowledged, in offset order): at the end of the last roll
// they complete, never inside a roll (see claim.Turn.EndsRoll); nil if
// they complete none.
func (t *tracker) rollEnd(popped []*span) *span {
	t.passed = append(t.passed, popped...)
	end, ok := t.claim.PassEnds(popped[len(popped)-1].turn)
	if !ok {
		return nil
	}
	var commit *span
	for len(t.passed) > 0 && !end.Before(t.passed[0].turn) {
		commit = t.passed[0]
		t.passed = t.passed[1:]
	}
	return commit
}

// committed hears of each commit the client made and tells the claims
// which of their batches the broker now holds committed (see
// claim.Turn.WaitEarlierCommitted).
func (c *Consumer) committed(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err != nil || req == nil || resp == nil {
		return
	}
	ok := map[string]map[int32]bool{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rp.ErrorCode == 0 {
				if ok[rt.Topic] == nil {
					ok[rt.Topic] = map[int32]bool{}
				}
				ok[rt.Topic][rp.Partition] = true
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			t := c.parts[rt.Topic][rp.Partition]
			if t == nil || !ok[rt.Topic][rp.Partition] {
				continue
			}
			n := 0
			for n < len(t.marks) && t.marks[n].next <= rp.Offset {
				n++
			}
			if n > 0 {
				t.marks[n-1].turn.Committed()
				t.marks = t.marks[n:]
			}
		}
	}
}

// Close commits what was acknowledged and leaves the group.
func (c *Consumer) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	err := c.cl.CommitMarkedOffsets(ctx)
	c.cl.CloseAllowingRebalance()
	c.release()
	return err
}

// Ping checks the cluster is reachable.
func (c *Consumer) Ping(ctx context.Context) error { return c.cl.Ping(ctx) }
