package lake

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caracal-sec/caracal/plugins/claim"
)

// Roller gathers the batches handed to the output into one roll and writes
// the roll as a whole when it reaches its size, age or number of open files
// (Writer.MaxOpenFiles), when the process
// drains, or when a caller's context ends. Each batch's WriteBatch call
// returns only once its roll is durably written, so the consumer commits
// offsets only for rows in the lake. Rolls are written strictly in order: a
// roll waits for the one before it and fails if that one failed meanwhile,
// and is stored only once the consumer committed the offsets of the rows
// before it (see waitEarlierCommitted), which keeps replays after a crash
// aligned with the files already written.
//
// A roll the storage refuses (a full disk, object storage out of reach) is
// stored again with backoff until it succeeds: its batches, and the rolls
// after it, wait meanwhile, so the consumer slows down instead of writing
// later rows first, and nothing is dropped. Only when the roller closes
// (or a waiting caller's context ends, at shutdown) does a refused roll
// fail, leaving its rows uncommitted in the broker for the next start.
type Roller struct {
	w        *Writer
	maxBytes int
	maxAge   time.Duration
	draining <-chan struct{}
	// RetryMin and RetryMax bound the wait between attempts to store a
	// refused roll (default 1 s, doubling up to 10 s).
	RetryMin, RetryMax time.Duration
	// OnRetry hears of each refused attempt.
	OnRetry func(err error, attempt int, wait time.Duration)
	// CommitPatience bounds how long a roll waits for the rolls before it
	// to be committed (default 30 s): they normally are within the
	// consumer's commit period, unless the broker is out of reach or a
	// batch before the roll came late (see turnPatience) and waits behind
	// it. OnCommitWait hears of a roll stored without them, on that many
	// partitions (see waitEarlierCommitted).
	CommitPatience time.Duration
	OnCommitWait   func(partitions int)

	mu       sync.Mutex
	cur      *roll
	last     *roll
	stop     chan struct{} // closed: refused rolls give up
	stopOnce sync.Once
}

type roll struct {
	batch *Batch
	turns map[*claim.Claim]turns // of each claim among the roll's records
	err   error                  // an encoding failure: the roll fails as a whole
	bytes int
	prev  *roll
	timer *time.Timer
	once  sync.Once
	done  chan struct{}
}

// turns are a claim's turns in a roll. The roll is stored once every batch
// before first is committed; once it is stored, the consumer may commit
// up to last, the latest batch the roll holds to its end (none: zero).
type turns struct{ first, last claim.Turn }

// NewRoller rolls files at maxBytes of input or maxAge.
func NewRoller(w *Writer, maxBytes int, maxAge time.Duration, draining <-chan struct{}) *Roller {
	return &Roller{w: w, maxBytes: maxBytes, maxAge: maxAge, draining: draining,
		RetryMin: time.Second, RetryMax: 10 * time.Second, CommitPatience: 30 * time.Second, stop: make(chan struct{})}
}

// giveUp makes rolls the storage refuses fail instead of trying again.
func (r *Roller) giveUp() { r.stopOnce.Do(func() { close(r.stop) }) }

func (r *Roller) isDraining() bool {
	if r.draining == nil {
		return false
	}
	select {
	case <-r.draining:
		return true
	default:
		return false
	}
}

// turnPatience bounds how long a batch waits for one handed out before it
// (claim.Turn): they come microseconds apart, unless one never comes.
const turnPatience = 2 * time.Second

// Add puts records (of size bytes) into the current roll and waits until
// that roll is written. Records of one batch (one Turn) are taken only
// after the batches of their partition handed out before them, so a roll
// never holds a partition's later rows while its earlier ones go to the
// next roll. Records that would open more files than a roll may
// hold (Writer.MaxOpenFiles: a backfill spans thousands of hours) go on
// into the next roll, and Add waits for each roll it used.
func (r *Roller) Add(ctx context.Context, recs []*Record, bytes int) error {
	var used []*roll
	total := len(recs)
	var turn claim.Turn // the batch's, taken once its records are in
	if len(recs) > 0 {
		turn = recs[0].Turn
	}
	turn.Wait(turnPatience)
	for len(recs) > 0 {
		cur, err := r.current(ctx, len(used) > 0)
		if err != nil {
			turn.Taken()
			return err
		}
		// Rows are encoded now; the decoded events are not kept.
		rest, err := cur.batch.AddUntilFull(recs)
		if err != nil && cur.err == nil {
			cur.err = err
		}
		cur.noteTurn(turn, len(rest) == 0)
		taken := bytes * (len(recs) - len(rest)) / total
		if len(rest) == 0 {
			taken = bytes // what rounding left
		}
		cur.bytes += taken
		bytes -= taken
		recs = rest
		full := r.maxBytes > 0 && cur.bytes >= r.maxBytes || cur.batch.Full()
		if full {
			r.cur = nil // later records start the next roll
		}
		r.mu.Unlock()
		if full || r.isDraining() {
			go r.flush(cur)
		}
		used = append(used, cur)
	}
	turn.Taken()
	var first error
	for _, cur := range used {
		if err := r.wait(ctx, cur); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// current is the roll to add to, with r.mu held. Once one roll is being
// written and a full one waits behind it, it waits for the older one
// rather than gather a third in memory: storage that is slow or out of
// reach must slow the consumer down, not fill the memory. A caller that
// already put records into a roll (going on) keeps going when ctx ends:
// those must come to an end with their roll.
func (r *Roller) current(ctx context.Context, goingOn bool) (*roll, error) {
	r.mu.Lock()
	for r.cur == nil && r.last != nil && r.last.prev != nil && !r.last.prev.finished() {
		older := r.last.prev
		r.mu.Unlock()
		select {
		case <-older.done:
		case <-ctx.Done():
			if !goingOn {
				return nil, ctx.Err()
			}
			r.giveUp()
			<-older.done
		}
		r.mu.Lock()
	}
	if r.cur == nil {
		// A roll waits for the one before it only while that one is
		// being written: once it failed, its batches come back to
		// later rolls and must not fail with it again.
		prev := r.last
		if prev != nil && prev.finished() {
			prev = nil
		}
		cur := &roll{prev: prev, done: make(chan struct{}), batch: r.w.NewBatch(),
			turns: map[*claim.Claim]turns{}}
		r.cur, r.last = cur, cur
		if r.maxAge > 0 {
			cur.timer = time.AfterFunc(r.maxAge, func() { r.flush(cur) })
		}
	}
	return r.cur, nil
}

// wait returns once cur is written (or failed), writing it at once when
// the process drains or ctx ends.
func (r *Roller) wait(ctx context.Context, cur *roll) error {
	var drain <-chan struct{} = r.draining
	for {
		select {
		case <-cur.done:
			return cur.err
		case <-drain:
			drain = nil
			go r.flush(cur)
		case <-ctx.Done():
			r.giveUp() // shutting down: a refused roll must not hold it up
			r.flush(cur)
			<-cur.done
			return cur.err
		}
	}
}

// Close writes whatever is pending; once ctx ends, rolls the storage
// refuses give up. Its error says the last roll was not stored, whether
// now or when a drain gave up on it before Close: its rows were not
// acknowledged.
func (r *Roller) Close(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- r.Flush() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		r.giveUp()
		err = <-done
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	last := r.last
	r.mu.Unlock()
	if last != nil && last.finished() {
		return last.err
	}
	return nil
}

// Unstored describes the rows added and not stored, "" when there are
// none: a roll gathering rows, one being written, or the last one, which
// the storage refused.
func (r *Roller) Unstored() string {
	r.mu.Lock()
	cur, last := r.cur, r.last
	r.mu.Unlock()
	switch {
	case cur != nil:
		return "a roll not yet written"
	case last != nil && !last.finished():
		return "a roll being written"
	case last != nil && last.err != nil:
		return fmt.Sprintf("a roll it could not store (%v)", last.err)
	}
	return ""
}

// Flush writes whatever is pending, and waits for the rolls being written
// (they finish in order, so for the last one).
func (r *Roller) Flush() error {
	r.mu.Lock()
	cur, last := r.cur, r.last
	r.mu.Unlock()
	if cur != nil {
		r.flush(cur)
	} else if last == nil || last.finished() {
		return nil // nothing pending (an old roll's failure was reported)
	}
	<-last.done
	return last.err
}

func (r *Roller) flush(rl *roll) {
	r.mu.Lock()
	if r.cur == rl {
		r.cur = nil
	}
	r.mu.Unlock()
	rl.once.Do(func() {
		if rl.timer != nil {
			rl.timer.Stop()
		}
		if rl.prev != nil {
			<-rl.prev.done
			if rl.prev.err != nil {
				rl.err = rl.prev.err
				close(rl.done)
				return
			}
		}
		r.mu.Lock() // Add may still be encoding into this roll
		failed := rl.err
		r.mu.Unlock()
		if failed == nil {
			r.waitEarlierCommitted(rl)
			if rl.err = r.store(rl.batch); rl.err == nil {
				for _, ts := range rl.turns {
					ts.last.EndsRoll() // before the batches are acknowledged
				}
			}
		}
		rl.batch = nil
		close(rl.done)
	})
}

// store commits a roll's batch, again and again while the storage refuses
// it, until it is stored or the roller gives up.
func (r *Roller) store(b *Batch) error {
	wait := r.RetryMin
	drain := r.draining
	for attempt := 1; ; attempt++ {
		// The callers' contexts may be ending (shutdown): the write
		// itself gets its own bounded time.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := b.Commit(ctx)
		cancel()
		var refused *StoreError
		if err == nil || !errors.As(err, &refused) {
			return err
		}
		select {
		case <-r.stop:
			return err
		default:
		}
		if r.OnRetry != nil {
			r.OnRetry(err, attempt, wait)
		}
		select {
		case <-time.After(wait):
		case <-drain: // a stop: try at once, the space may be back
			drain = nil
		case <-r.stop:
			return err
		}
		wait = min(2*wait, r.RetryMax)
	}
}

// noteTurn keeps t if it is its claim's earliest in the roll, or its
// latest whole batch when the roll took the rest of t's (whole); r.mu is
// held.
func (rl *roll) noteTurn(t claim.Turn, whole bool) {
	c := t.Claim()
	if c == nil {
		return
	}
	ts, ok := rl.turns[c]
	if !ok || t.Before(ts.first) {
		ts.first = t
	}
	if whole && ts.last.Before(t) { // a zero last is before every turn
		ts.last = t
	}
	rl.turns[c] = ts
}

// waitEarlierCommitted waits until the offsets of the batches handed out
// before the roll's are committed (claim.Turn.WaitEarlierCommitted).
func (r *Roller) waitEarlierCommitted(rl *roll) {
	deadline := time.Now().Add(r.CommitPatience)
	late := 0
	for _, ts := range rl.turns {
		if t := ts.first; !t.WaitEarlierCommitted(time.Until(deadline), r.stop) && !t.Claim().Ended() {
			late++
		}
	}
	if late > 0 && r.OnCommitWait != nil {
		r.OnCommitWait(late)
	}
}

// finished reports whether the roll was written or failed.
func (rl *roll) finished() bool {
	select {
	case <-rl.done:
		return true
	default:
		return false
	}
}
