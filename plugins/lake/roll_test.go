package lake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caracal-sec/caracal/plugins/claim"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/lake/laketest"
)

// refusingStorage refuses the first writes it is given, as a full disk
// does, then stores in a directory.
type refusingStorage struct {
	LocalStorage
	refuse atomic.Int32 // writes still to refuse; < 0: all
	tries  atomic.Int32
}

func (s *refusingStorage) Put(ctx context.Context, key string, data []byte) error {
	s.tries.Add(1)
	if n := s.refuse.Load(); n < 0 || (n > 0 && s.refuse.CompareAndSwap(n, n-1)) {
		return errors.New("write: no space left on device")
	}
	return s.LocalStorage.Put(ctx, key, data)
}

func testRoller(t *testing.T, st Storage) (*Roller, *[]int) {
	r := NewRoller(&Writer{Tables: tables(t), Storage: st}, 0, time.Millisecond, nil)
	r.RetryMin, r.RetryMax = time.Millisecond, 4*time.Millisecond
	var attempts []int
	r.OnRetry = func(_ error, attempt int, _ time.Duration) { attempts = append(attempts, attempt) }
	return r, &attempts
}

// A roll the storage refuses is written again until it is stored: the
// caller waits rather than fails, and the rolls after it are not poisoned.
func TestRollerStoresARefusedRollOnceTheStorageRecovers(t *testing.T) {
	st := &refusingStorage{LocalStorage: LocalStorage{Dir: t.TempDir()}}
	st.refuse.Store(3)
	r, attempts := testRoller(t, st)
	ctx := context.Background()
	if err := r.Add(ctx, recs("caracal.events", 0, 0, event("a", 1)), 100); err != nil {
		t.Fatalf("a refused roll should be stored once the storage takes it: %v", err)
	}
	if len(*attempts) != 3 || (*attempts)[2] != 3 {
		t.Fatalf("retries heard: %v, want 3", *attempts)
	}
	if err := r.Add(ctx, recs("caracal.events", 0, 1, event("b", 1)), 100); err != nil {
		t.Fatalf("the roll after a refused one failed: %v", err)
	}
	rows := laketest.ReadTable(t, filepath.Join(st.Dir, "aws_cloudtrail"))
	sort.Slice(rows, func(i, j int) bool { return rows[i]["eventID"].(string) < rows[j]["eventID"].(string) })
	if len(rows) != 2 || rows[0]["eventID"] != "a" || rows[1]["eventID"] != "b" {
		t.Fatalf("rows in the lake: %v", rows)
	}
	if stray, _ := filepath.Glob(filepath.Join(st.Dir, "aws_cloudtrail", "*", "*", "*", "*", ".*")); len(stray) > 0 {
		t.Fatalf("temporary files left behind: %v", stray)
	}
}

// A roll that failed for good (the roller gave up) does not fail the rolls
// started after it: their batches include its redelivered rows.
func TestRollerAfterAFailedRoll(t *testing.T) {
	st := &refusingStorage{LocalStorage: LocalStorage{Dir: t.TempDir()}}
	st.refuse.Store(-1)
	r, _ := testRoller(t, st)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Add(ctx, recs("caracal.events", 0, 0, event("a", 1)), 100); err == nil {
		t.Fatal("a roll the storage never takes should fail once the caller gives up")
	}
	st.refuse.Store(0)
	if err := r.Add(context.Background(), recs("caracal.events", 0, 0, event("a", 1)), 100); err != nil {
		t.Fatalf("the roll after a failed one failed with it: %v", err)
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("Close reported a failed roll whose rows a later roll stored: %v", err)
	}
	if left := r.Unstored(); left != "" {
		t.Fatalf("Unstored after every row was stored: %q", left)
	}
}

// A roll a drain gave up on before Close (its writer's context ended while
// the storage refused it) is still reported by Close: its rows were not
// acknowledged, and `caracal run` exits 1 rather than call the stop clean
// (Unstored says so after the stop).
func TestRollerCloseReportsARollTheDrainGaveUpOn(t *testing.T) {
	st := &refusingStorage{LocalStorage: LocalStorage{Dir: t.TempDir()}}
	st.refuse.Store(-1)
	draining := make(chan struct{})
	r := NewRoller(&Writer{Tables: tables(t), Storage: st}, 0, time.Hour, draining)
	r.RetryMin, r.RetryMax = time.Millisecond, time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	added := make(chan error, 1)
	go func() { added <- r.Add(ctx, recs("caracal.events", 0, 0, event("a", 1)), 100) }()
	close(draining) // the roll is written at once, not in an hour
	for st.tries.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-added; err == nil {
		t.Fatal("the batch of a roll that was never stored was acknowledged")
	}
	if err := r.Close(context.Background()); err == nil {
		t.Fatal("Close called the stop clean with a roll left unstored")
	}
	if left := r.Unstored(); !strings.Contains(left, "a roll it could not store (") {
		t.Fatalf("Unstored with the last roll refused: %q", left)
	}
}

// Close gives up on a roll the storage keeps refusing once its context
// ends, so a stop is bounded.
func TestRollerCloseIsBoundedWhileTheStorageRefuses(t *testing.T) {
	st := &refusingStorage{LocalStorage: LocalStorage{Dir: t.TempDir()}}
	st.refuse.Store(-1)
	r := NewRoller(&Writer{Tables: tables(t), Storage: st}, 0, time.Hour, nil)
	r.RetryMin, r.RetryMax = time.Millisecond, time.Millisecond
	added := make(chan error, 1)
	go func() { added <- r.Add(context.Background(), recs("caracal.events", 0, 0, event("a", 1)), 100) }()
	for started := false; !started; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		started = r.cur != nil
		r.mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for st.tries.Load() < 5 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if err := r.Close(ctx); err == nil {
		t.Fatal("Close should report the roll it could not store")
	}
	if err := <-added; err == nil {
		t.Fatal("the batch of a roll that was never stored was acknowledged")
	}
	if _, err := os.Stat(filepath.Join(st.Dir, "aws_cloudtrail")); !os.IsNotExist(err) {
		t.Fatalf("files written by a refused roll: %v", err)
	}
}

// blockingStorage holds every write until released.
type blockingStorage struct {
	LocalStorage
	release chan struct{}
	puts    atomic.Int32
}

func (s *blockingStorage) Put(ctx context.Context, key string, data []byte) error {
	s.puts.Add(1)
	<-s.release
	return s.LocalStorage.Put(ctx, key, data)
}

// While the storage holds a roll, at most one more full roll waits in
// memory: the batches after it wait to be taken.
func TestRollerHoldsAtMostTwoRollsWhileTheStorageIsSlow(t *testing.T) {
	st := &blockingStorage{LocalStorage: LocalStorage{Dir: t.TempDir()}, release: make(chan struct{})}
	r := NewRoller(&Writer{Tables: tables(t), Storage: st}, 1, time.Hour, nil) // every batch fills a roll
	ctx := context.Background()
	results := make(chan error, 3)
	for i := range 3 {
		go func() { results <- r.Add(ctx, recs("caracal.events", 0, int64(i), event(fmt.Sprint(i), 1)), 100) }()
		time.Sleep(50 * time.Millisecond) // in order
	}
	rollsGathered := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		n := 0
		for rl := r.last; rl != nil; rl = rl.prev {
			n++
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); (rollsGathered() < 2 || st.puts.Load() < 1) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the third batch's chance to start a roll
	if rolls := rollsGathered(); rolls != 2 || st.puts.Load() != 1 {
		t.Fatalf("%d rolls gathered and %d written while the storage holds the first; want 2 and 1", rolls, st.puts.Load())
	}
	close(st.release)
	for range 3 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	rows := laketest.ReadTable(t, filepath.Join(st.Dir, "aws_cloudtrail"))
	if len(rows) != 3 {
		t.Fatalf("%d rows in the lake, want 3", len(rows))
	}
}

// A batch spanning more hours than a roll may hold files for (a backfill)
// is spread over several rolls, none holding more than MaxOpenFiles open
// files, and every row is stored once. Before the bound, one roll held a
// file per hour: 370 KiB each for CloudTrail before any row.
func TestRollerBoundsTheOpenFiles(t *testing.T) {
	st := &blockingStorage{LocalStorage: LocalStorage{Dir: t.TempDir()}, release: make(chan struct{})}
	const maxFiles, hours = 4, 10
	r := NewRoller(&Writer{Tables: tables(t), Storage: st, MaxOpenFiles: maxFiles}, 0, 20*time.Millisecond, nil)
	var values []map[string]any
	for i := range 2 * hours {
		values = append(values, event(fmt.Sprint(i), i%hours))
	}
	result := make(chan error, 1)
	go func() { result <- r.Add(context.Background(), recs("caracal.events", 0, 0, values...), 100) }()
	openFiles := func() (files []int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for rl := r.last; rl != nil; rl = rl.prev {
			if rl.batch != nil {
				files = append(files, len(rl.batch.files))
			}
		}
		return files
	}
	// The storage holds the first roll: one more full roll waits, and
	// the rest of the batch waits to be taken.
	for deadline := time.Now().Add(10 * time.Second); len(openFiles()) < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if files := openFiles(); len(files) != 2 || files[0] != maxFiles || files[1] != maxFiles {
		t.Fatalf("files open in the rolls gathered while the storage holds the first: %v, want [%d %d]", files, maxFiles, maxFiles)
	}
	close(st.release)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	// Hours 0-3, 4-7, 8-9 and 0-1, 2-5, 6-9: five rolls of four files.
	if n := st.puts.Load(); n != 2*hours {
		t.Fatalf("%d files stored, want %d", n, 2*hours)
	}
	rows := laketest.ReadTable(t, filepath.Join(st.Dir, "aws_cloudtrail"))
	seen := map[any]int{}
	for _, row := range rows {
		seen[row["eventID"]]++
	}
	if len(rows) != 2*hours || len(seen) != 2*hours {
		t.Fatalf("%d rows, %d distinct, want %d once each", len(rows), len(seen), 2*hours)
	}
}

// BenchmarkRollerAdd is the lake stage's path: batches of 1,000 raw
// CloudTrail events through the roller, each filling its roll.
func BenchmarkRollerAdd(b *testing.B) {
	w := &Writer{Tables: tables(b), Storage: discard{}}
	raws := make([][]byte, 1000)
	size := 0
	for i := range raws {
		raw, err := envelope.EncodeEvent(event(fmt.Sprint(i), 21))
		if err != nil {
			b.Fatal(err)
		}
		raws[i], size = raw, size+len(raw)
	}
	r := NewRoller(w, size, time.Hour, nil) // a batch fills a roll
	b.SetBytes(int64(size))
	b.ReportAllocs()
	offset := int64(0)
	for b.Loop() {
		batch := make([]*Record, len(raws))
		for i, raw := range raws {
			batch[i] = &Record{Topic: envelope.TopicEvents, Offset: offset, Raw: raw}
			offset++
		}
		if err := r.Add(context.Background(), batch, size); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(raws))/b.Elapsed().Seconds(), "rows/s")
}

// orderedStorage records the keys it stores, in order.
type orderedStorage struct {
	LocalStorage
	mu   sync.Mutex
	keys []string
}

func (s *orderedStorage) Put(ctx context.Context, key string, data []byte) error {
	s.mu.Lock()
	s.keys = append(s.keys, filepath.Base(key))
	s.mu.Unlock()
	return s.LocalStorage.Put(ctx, key, data)
}

// Two batches of a partition that reach the output in the wrong order are
// still taken in the order the consumer handed them out: with a roll cut
// between them, the later rows would be stored first, and a replay from
// the last commit (before the earlier rows) would write them again under
// another name.
func TestRollerTakesAPartitionsBatchesInTurn(t *testing.T) {
	st := &orderedStorage{LocalStorage: LocalStorage{Dir: t.TempDir()}}
	r := NewRoller(&Writer{Tables: tables(t), Storage: st}, 100, 0, nil) // each batch fills a roll
	c := claim.New()
	earlier := inTurn(c, recs(envelope.TopicEvents, 0, 0, event("a", 1), event("b", 1)))
	later := inTurn(c, recs(envelope.TopicEvents, 0, 2, event("c", 1), event("d", 1)))
	done := make(chan error, 2)
	go func() { done <- r.Add(context.Background(), later, 100) }()
	time.Sleep(50 * time.Millisecond) // the later batch arrives first
	go func() {
		err := r.Add(context.Background(), earlier, 100)
		earlier[0].Turn.Committed() // the consumer's commit, acknowledged
		done <- err
	}()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"caracal_events-0-00000000000000000000.parquet", "caracal_events-0-00000000000000000002.parquet"}
	if !slices.Equal(st.keys, want) {
		t.Fatalf("stored %v, want %v (the earlier batch's roll first)", st.keys, want)
	}
}

// A roll is stored only once the batches before it are committed: after
// a crash between two stored rolls, before the first one's offsets were
// committed, the replay would cut its roll elsewhere and keep again in its
// file the rows the second one stored. When the commit does not come
// within the patience (a broker out of reach), the roll is stored anyway
// and OnCommitWait hears of it.
func TestRollWaitsForTheRollsBeforeItToBeCommitted(t *testing.T) {
	st := &orderedStorage{LocalStorage: LocalStorage{Dir: t.TempDir()}}
	r := NewRoller(&Writer{Tables: tables(t), Storage: st}, 100, 0, nil) // each batch fills a roll
	var late []int
	r.OnCommitWait = func(partitions int) { late = append(late, partitions) }
	c := claim.New()
	ctx := context.Background()
	first := inTurn(c, recs(envelope.TopicEvents, 0, 0, event("a", 1)))
	if err := r.Add(ctx, first, 100); err != nil {
		t.Fatal(err)
	}
	second := inTurn(c, recs(envelope.TopicEvents, 0, 1, event("b", 1)))
	done := make(chan error, 1)
	go func() { done <- r.Add(ctx, second, 100) }()
	select {
	case err := <-done:
		t.Fatalf("the second roll was stored (err %v) before the first was committed: %v", err, st.keys)
	case <-time.After(200 * time.Millisecond):
	}
	first[0].Turn.Committed()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := []string{"caracal_events-0-00000000000000000000.parquet", "caracal_events-0-00000000000000000001.parquet"}
	if !slices.Equal(st.keys, want) || len(late) != 0 {
		t.Fatalf("stored %v with %v late, want %v and none", st.keys, late, want)
	}

	r.CommitPatience = 20 * time.Millisecond // the second is never committed
	if err := r.Add(ctx, inTurn(c, recs(envelope.TopicEvents, 0, 2, event("c", 1))), 100); err != nil {
		t.Fatal(err)
	}
	if len(st.keys) != 3 || !slices.Equal(late, []int{1}) {
		t.Fatalf("after the patience: stored %v, told of %v late partition(s); want 3 files and [1]", st.keys, late)
	}
}

// inTurn gives records the next turn of c, as the consumer does a batch.
func inTurn(c *claim.Claim, rs []*Record) []*Record {
	turn := c.Next()
	for _, r := range rs {
		r.Turn = turn
	}
	return rs
}

// Once a roll is stored, the consumer may commit up to the last batch the
// roll holds whole (claim.Turn.EndsRoll), not up to a batch whose rest went
// to the next roll: a replay from inside that batch would name its file
// after an offset the stored roll's file also holds.
func TestRollEndsAtItsLastWholeBatch(t *testing.T) {
	r := NewRoller(&Writer{Tables: tables(t), Storage: &LocalStorage{Dir: t.TempDir()}, MaxOpenFiles: 2}, 0, 0, nil)
	c := claim.New()
	ctx := context.Background()
	whole := inTurn(c, recs(envelope.TopicEvents, 0, 0, event("a", 1)))
	// A file per hour: b's fills the roll, c's goes to the next.
	split := inTurn(c, recs(envelope.TopicEvents, 0, 1, event("b", 2), event("c", 3)))
	results := make(chan error, 2)
	go func() { results <- r.Add(ctx, whole, 100) }()
	taken := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.cur != nil && len(r.cur.batch.files) == 1
	}
	for deadline := time.Now().Add(10 * time.Second); !taken(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first batch was not taken")
		}
	}
	go func() { results <- r.Add(ctx, split, 100) }()
	// The split batch fills the first roll, which is stored; its rest
	// waits in the second.
	for deadline := time.Now().Add(10 * time.Second); !c.Rolled(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first roll was not stored")
		}
	}
	if end, ok := c.PassEnds(split[0].Turn); !ok || end != whole[0].Turn {
		t.Fatalf("the first roll ends at %v (%v), want the first batch's turn", end, ok)
	}
	whole[0].Turn.Committed() // as the consumer would, for the second roll to be stored
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if end, ok := c.PassEnds(split[0].Turn); !ok || end != split[0].Turn {
		t.Fatalf("the second roll ends at %v (%v), want the split batch's turn", end, ok)
	}
}
