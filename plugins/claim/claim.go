// Package claim ties what a stage gathered from a partition to its
// consumer still owning that partition, and keeps the order the consumer
// handed its batches out in (Turn).
//
// The lake acknowledges rows only once their roll is stored, so rows of a
// partition wait in memory for minutes. When the consumer gives the
// partition up (a worker joins or leaves the group, a broker restart ends
// its session), its new owner consumes those rows again from the last
// commit and writes files with the same names (topic, partition, first
// offset). Rows the old owner still writes afterwards would replace the new
// owner's files: rows it had not gathered would be lost, or rows gathered
// twice kept twice. So the consumer makes a Claim for each partition it is
// given, ends it when the partition goes, and a writer stores rows only
// under a live claim.
package claim

import (
	"context"
	"sync"
	"time"
)

// Claim is one assignment of a partition to this process. The zero of
// *Claim (nil) is a claim that never ends: records from elsewhere.
type Claim struct {
	mu      sync.Mutex
	idle    sync.Cond // writing reached 0
	ended   bool
	writing int
	// The turns of the batches read under the claim (see Turn): handed
	// out, taken by the writer, and committed (their offsets, and every
	// one before them, are committed in the broker).
	handed, taken, committed uint64
	moved                    sync.Cond // taken or committed grew, or the claim ended
	// awaiting counts the turns waiting for commits; commitNow asks the
	// consumer to commit what is acknowledged at once.
	awaiting  int
	commitNow func()
	// ends are the turns that end a stored roll, ascending, not yet
	// passed by the commit point; rolled says the claim's writer rolls.
	ends   []uint64
	rolled bool
}

// New is a live claim.
func New() *Claim { return NewCommitting(nil) }

// NewCommitting is a live claim whose consumer commits at once (commitNow)
// when a turn waits for commits, rather than at its next commit period.
func NewCommitting(commitNow func()) *Claim {
	c := &Claim{commitNow: commitNow}
	c.idle.L, c.moved.L = &c.mu, &c.mu
	return c
}

// Turn is a batch's place among the batches read under a claim, in the
// order the consumer handed them out. The lake's output gets batches from
// many goroutines at once, and two batches of a partition can reach it in
// the wrong order: if a roll were cut between them, the later rows would be
// stored in a file before the earlier ones, and a replay from the last
// commit (which cannot pass the earlier rows until they are stored) would
// write the later rows again under another name. So a writer takes a batch
// only in its turn.
type Turn struct {
	claim *Claim
	seq   uint64
}

// Next is the turn of the next batch the consumer hands out.
func (c *Claim) Next() Turn {
	if c == nil {
		return Turn{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handed++
	return Turn{c, c.handed}
}

// Wait waits until every batch before t was taken, the claim ended, or
// patience ran out (a batch that never comes: a pipeline that dropped
// it). A batch taken before (a retry) waits for nothing.
func (t Turn) Wait(patience time.Duration) {
	c := t.claim
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.await(func() bool { return c.taken+1 >= t.seq }, patience, nil)
}

// WaitEarlierCommitted waits until the offsets of every batch handed out
// before t are committed, reporting true then; it gives up (false) when
// the claim ends, patience runs out or stop closes.
//
// The lake stores a roll only once the rolls before it are committed:
// otherwise a crash between two stored rolls, before the first one's
// offsets were committed, replays the first one's rows into a roll cut
// elsewhere, whose file keeps again the rows the second one stored.
func (t Turn) WaitEarlierCommitted(patience time.Duration, stop <-chan struct{}) bool {
	c := t.claim
	if c == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	done := func() bool { return c.committed+1 >= t.seq }
	if done() || c.ended {
		return done()
	}
	c.awaiting++
	if c.commitNow != nil {
		c.mu.Unlock()
		c.commitNow()
		c.mu.Lock()
	}
	c.await(done, patience, stop)
	c.awaiting--
	return done()
}

// Awaited reports whether a turn waits for commits: the consumer then
// commits each acknowledgment at once.
func (c *Claim) Awaited() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.awaiting > 0
}

// Committed records that the offsets of t's batch, and so of every batch
// before it, are committed.
func (t Turn) Committed() { t.raise(func(c *Claim) *uint64 { return &c.committed }) }

// raise moves the claim's watermark (taken or committed) up to t and wakes
// the turns waiting on it; an older t changes nothing.
func (t Turn) raise(watermark func(*Claim) *uint64) {
	c := t.claim
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if w := watermark(c); t.seq > *w {
		*w = t.seq
		c.moved.Broadcast()
	}
}

// await waits, with c.mu held, until done, the claim ended, patience ran
// out or stop closed.
func (c *Claim) await(done func() bool, patience time.Duration, stop <-chan struct{}) {
	if done() || c.ended {
		return
	}
	gaveUp := false
	giveUp := func() {
		c.mu.Lock()
		gaveUp = true
		c.moved.Broadcast()
		c.mu.Unlock()
	}
	late := time.AfterFunc(patience, giveUp)
	defer late.Stop()
	if stop != nil {
		returned := make(chan struct{})
		defer close(returned)
		go func() {
			select {
			case <-stop:
				giveUp()
			case <-returned:
			}
		}()
	}
	for !done() && !c.ended && !gaveUp {
		c.moved.Wait()
	}
}

// EndsRoll records that t's batch is the last one of its claim that a
// stored roll holds whole. From then on the consumer commits the claim's
// offsets only at such ends (see PassEnds): the batches of a roll are
// acknowledged together but reach the consumer one by one, and a commit
// taken among them, followed by a crash, would replay the roll's later
// rows into a file named after their offset, beside the stored roll's
// file that holds them too.
func (t Turn) EndsRoll() {
	c := t.claim
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rolled = true
	if n := len(c.ends); n == 0 || c.ends[n-1] < t.seq {
		c.ends = append(c.ends, t.seq)
	}
}

// Rolled reports whether the claim's batches are stored in rolls
// (EndsRoll was called): its commits then stop only at a roll's end.
func (c *Claim) Rolled() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rolled
}

// PassEnds is the last roll end at or before through (every batch up to
// through is acknowledged), which the commit may reach; false if none.
func (c *Claim) PassEnds(through Turn) (Turn, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for n < len(c.ends) && c.ends[n] <= through.seq {
		n++
	}
	if n == 0 {
		return Turn{}, false
	}
	end := Turn{c, c.ends[n-1]}
	c.ends = c.ends[n:]
	return end, true
}

// Before reports whether t was handed out before u (of the same claim).
func (t Turn) Before(u Turn) bool { return t.seq < u.seq }

// Claim is the claim t's batch was read under.
func (t Turn) Claim() *Claim { return t.claim }

// Taken records that t's batch was taken: the next one may go.
func (t Turn) Taken() { t.raise(func(c *Claim) *uint64 { return &c.taken }) }

// Begin starts storing rows of the claim; it reports false once the claim
// ended, and then nothing may be stored. Each true Begin needs its Done.
func (c *Claim) Begin() bool {
	if c == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return false
	}
	c.writing++
	return true
}

// Done ends a write Begin allowed.
func (c *Claim) Done() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writing--
	if c.writing == 0 {
		c.idle.Broadcast()
	}
}

// End ends the claim and waits for the writes under way to finish: once
// it returns, nothing of the claim is stored any more, so the partition's
// next owner cannot be overwritten.
func (c *Claim) End() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = true
	c.moved.Broadcast()
	for c.writing > 0 {
		c.idle.Wait()
	}
}

// Ended reports whether the claim ended.
func (c *Claim) Ended() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

type ctxKey struct{}

// NewContext carries the turn of a message's batch, and with it its claim.
func NewContext(ctx context.Context, t Turn) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// From is the turn a message's context carries, or none.
func From(ctx context.Context) Turn {
	t, _ := ctx.Value(ctxKey{}).(Turn)
	return t
}
