package enrich

import (
	"context"
	"fmt"
	"sync"
)

// The tables running stages hold, one per definition: in `caracal run`
// the process stage's enrichment and the detect stage's lookup() (and
// every thread of a pipeline) share one copy of a table and one refresh,
// rather than each loading its own. A table is released when the last
// stage holding it stops.
var shared = struct {
	sync.Mutex
	tables map[string]*sharedTable
}{tables: map[string]*sharedTable{}}

type sharedTable struct {
	key    string
	t      *Table
	ready  chan struct{} // closed when the first load is done
	err    error         // why it could not be loaded at all (then t is nil)
	refs   int
	cancel context.CancelFunc // stops the refresh

	mu      sync.Mutex
	lastErr error // of the last load, while the table is not loaded
	subs    map[int]func(t *Table, err error)
	nextSub int
}

// sharedKey is what makes two definitions one table: everything that
// decides its rows and their refresh. (Associations and description do
// not: each stage's set keeps its own.)
func sharedKey(d *Def) string {
	return fmt.Sprintf("%q %q %q %q %q %s", d.Name, d.Data, d.PrimaryKey, d.KeyType, d.Format, d.refresh)
}

// acquire returns the process's table for d, loading it and starting its
// refresh when no stage holds it yet; onError hears of its failed loads
// until release is called. A remote table that cannot be loaded starts
// empty (onError hears why) and is retried; a local one is an error.
func acquire(ctx context.Context, d *Def, onError func(t *Table, err error)) (t *Table, release func(), err error) {
	key := sharedKey(d)
	shared.Lock()
	st := shared.tables[key]
	first := st == nil
	if first {
		st = &sharedTable{key: key, ready: make(chan struct{}), subs: map[int]func(*Table, error){}}
		shared.tables[key] = st
	}
	st.refs++
	shared.Unlock()
	if first {
		st.load(ctx, d)
	} else {
		select {
		case <-st.ready:
		case <-ctx.Done():
			st.release()
			return nil, nil, ctx.Err()
		}
	}
	if st.err != nil {
		st.release()
		if !first {
			// Another stage's load failed, perhaps only because that stage
			// stopped while loading: load it for this one (it was forgotten).
			return acquire(ctx, d, onError)
		}
		return nil, nil, st.err
	}
	st.mu.Lock()
	id := st.nextSub
	st.nextSub++
	st.subs[id] = onError
	lastErr := st.lastErr
	st.mu.Unlock()
	if lastErr != nil && !st.t.Loaded() {
		onError(st.t, lastErr)
	}
	var once sync.Once
	return st.t, func() {
		once.Do(func() {
			st.mu.Lock()
			delete(st.subs, id)
			st.mu.Unlock()
			st.release()
		})
	}, nil
}

// load loads the table the first time and starts its refresh.
func (st *sharedTable) load(ctx context.Context, d *Def) {
	defer func() {
		if st.err != nil { // the next stage to ask tries again
			shared.Lock()
			if shared.tables[st.key] == st {
				delete(shared.tables, st.key)
			}
			shared.Unlock()
		}
		close(st.ready)
	}()
	t, err := newTable(d)
	if err != nil {
		st.err = err
		return
	}
	if err := t.Refresh(ctx); err != nil {
		if !d.Remote() {
			st.err = fmt.Errorf("lookup table %s: %w", d.Name, err)
			return
		}
		st.lastErr = err
	}
	st.t = t
	t.OnError = st.notify
	run, cancel := context.WithCancel(context.Background())
	st.cancel = cancel
	go t.Run(run)
}

// notify tells every stage holding the table of a failed load.
func (st *sharedTable) notify(t *Table, err error) {
	st.mu.Lock()
	st.lastErr = err
	subs := make([]func(*Table, error), 0, len(st.subs))
	for _, f := range st.subs {
		subs = append(subs, f)
	}
	st.mu.Unlock()
	for _, f := range subs {
		f(t, err)
	}
}

// release drops a reference; the last one stops the refresh and forgets
// the table.
func (st *sharedTable) release() {
	shared.Lock()
	defer shared.Unlock()
	if st.refs--; st.refs > 0 {
		return
	}
	if shared.tables[st.key] == st {
		delete(shared.tables, st.key)
	}
	if st.cancel != nil {
		st.cancel()
	}
}
