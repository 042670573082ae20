package lake

import (
	"context"
	"sync"
	"time"
)

// Roller gathers the batches handed to the output into one roll and writes
// the roll as a whole when it reaches its size or age, when the process
// drains, or when a caller's context ends. Each batch's WriteBatch call
// returns only once its roll is durably written, so the consumer commits
// offsets only for rows in the lake. Rolls are written strictly in order: a
// roll waits for the one before it and fails if that one failed, which keeps
// replays after a crash aligned with the files already written.
type Roller struct {
	w        *Writer
	maxBytes int
	maxAge   time.Duration
	draining <-chan struct{}

	mu   sync.Mutex
	cur  *roll
	last *roll
}

type roll struct {
	batch *Batch
	err   error // an encoding failure: the roll fails as a whole
	bytes int
	prev  *roll
	timer *time.Timer
	once  sync.Once
	done  chan struct{}
}

// NewRoller rolls files at maxBytes of input or maxAge.
func NewRoller(w *Writer, maxBytes int, maxAge time.Duration, draining <-chan struct{}) *Roller {
	return &Roller{w: w, maxBytes: maxBytes, maxAge: maxAge, draining: draining}
}

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

// Add puts records (of size bytes) into the current roll and waits until
// that roll is written.
func (r *Roller) Add(ctx context.Context, recs []*Record, bytes int) error {
	r.mu.Lock()
	cur := r.cur
	if cur == nil {
		cur = &roll{prev: r.last, done: make(chan struct{}), batch: r.w.NewBatch()}
		r.cur, r.last = cur, cur
		if r.maxAge > 0 {
			cur.timer = time.AfterFunc(r.maxAge, func() { r.flush(cur) })
		}
	}
	// Rows are encoded now; the decoded events are not kept.
	if err := cur.batch.Add(recs); err != nil && cur.err == nil {
		cur.err = err
	}
	cur.bytes += bytes
	full := r.maxBytes > 0 && cur.bytes >= r.maxBytes
	r.mu.Unlock()
	if full || r.isDraining() {
		go r.flush(cur)
	}
	var drain <-chan struct{} = r.draining
	for {
		select {
		case <-cur.done:
			return cur.err
		case <-drain:
			drain = nil
			go r.flush(cur)
		case <-ctx.Done():
			r.flush(cur)
			<-cur.done
			return cur.err
		}
	}
}

// Flush writes whatever is pending (on close).
func (r *Roller) Flush() error {
	r.mu.Lock()
	cur := r.cur
	r.mu.Unlock()
	if cur == nil {
		return nil
	}
	r.flush(cur)
	<-cur.done
	return cur.err
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
		// The callers' contexts may be ending (shutdown): the write itself
		// gets its own bounded time.
		r.mu.Lock() // Add may still be encoding into this roll
		failed := rl.err
		r.mu.Unlock()
		if failed == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			rl.err = rl.batch.Commit(ctx)
			cancel()
		}
		rl.batch = nil
		close(rl.done)
	})
}
