package claim

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestEndWaitsForTheWritesUnderWay(t *testing.T) {
	c := New()
	if !c.Begin() {
		t.Fatal("a live claim refused a write")
	}
	ended := make(chan struct{})
	go func() { c.End(); close(ended) }()
	for !c.Ended() {
		time.Sleep(time.Millisecond)
	}
	select {
	case <-ended:
		t.Fatal("End returned while a write was under way")
	case <-time.After(50 * time.Millisecond):
	}
	if c.Begin() {
		t.Fatal("a write began after the claim ended")
	}
	c.Done()
	<-ended
}

func TestNilClaimNeverEnds(t *testing.T) {
	var c *Claim
	if !c.Begin() || c.Ended() {
		t.Fatal("a nil claim refused a write")
	}
	c.Done()
	c.End()
	if From(context.Background()).Claim() != nil {
		t.Fatal("a context without a claim carries one")
	}
	live := New()
	if From(NewContext(context.Background(), live.Next())).Claim() != live {
		t.Fatal("the context lost its claim")
	}
	var none Turn
	none.Wait(time.Hour) // returns at once
	none.Taken()
}

// A batch waits for the batches handed out before it, however late it
// comes; a batch that never comes holds the next one up only as long as
// the writer's patience.
func TestTurnsGoInOrder(t *testing.T) {
	c := New()
	first, second, third := c.Next(), c.Next(), c.Next()
	var order []int
	var mu sync.Mutex
	took := func(n int, tn Turn) {
		tn.Wait(time.Hour)
		mu.Lock()
		order = append(order, n)
		mu.Unlock()
		tn.Taken()
	}
	done := make(chan struct{})
	go func() { took(3, third); close(done) }()
	go took(2, second)
	time.Sleep(20 * time.Millisecond) // both wait
	took(1, first)
	<-done
	if !slices.Equal(order, []int{1, 2, 3}) {
		t.Fatalf("taken in the order %v, want 1, 2, 3", order)
	}
	lost, after := c.Next(), c.Next() // lost never comes
	_ = lost
	start := time.Now()
	after.Wait(50 * time.Millisecond)
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("a batch went on before its patience ran out")
	}
	after.Taken()
	retry := first
	retry.Wait(time.Hour) // taken before: no wait
	ended := New()
	ended.Next()
	waiting := ended.Next()
	go ended.End()
	waiting.Wait(time.Hour) // the claim ended: no order to keep
}

// A turn waits until every batch before it is committed; it gives up when
// the claim ends, its patience runs out or it is told to stop.
func TestWaitEarlierCommitted(t *testing.T) {
	c := New()
	first, second, third := c.Next(), c.Next(), c.Next()
	if !first.WaitEarlierCommitted(time.Hour, nil) {
		t.Fatal("the first turn waited for batches before it")
	}
	waited := make(chan bool, 1)
	go func() { waited <- third.WaitEarlierCommitted(time.Hour, nil) }()
	first.Committed()
	select {
	case <-waited:
		t.Fatal("the third turn went on with the second batch uncommitted")
	case <-time.After(50 * time.Millisecond):
	}
	second.Committed()
	if !<-waited {
		t.Fatal("the third turn gave up though both batches before it were committed")
	}
	first.Committed() // an older commit heard late changes nothing
	if !third.WaitEarlierCommitted(time.Hour, nil) {
		t.Fatal("a commit heard late moved the claim back")
	}

	fourth, fifth := c.Next(), c.Next()
	_ = fourth // never committed
	if fifth.WaitEarlierCommitted(20*time.Millisecond, nil) {
		t.Fatal("reported committed after the patience ran out")
	}
	stop := make(chan struct{})
	close(stop)
	if fifth.WaitEarlierCommitted(time.Hour, stop) {
		t.Fatal("reported committed when told to stop")
	}
	go c.End()
	if fifth.WaitEarlierCommitted(time.Hour, nil) {
		t.Fatal("reported committed after the claim ended")
	}
	var none Turn
	if !none.WaitEarlierCommitted(time.Hour, nil) {
		t.Fatal("a record from elsewhere waited for commits")
	}
	none.Committed()
}

// The commit point stops only at the end of a stored roll once the claim
// rolls: PassEnds gives the last end reached and forgets those before it.
func TestRollEnds(t *testing.T) {
	c := New()
	if c.Rolled() {
		t.Fatal("a new claim rolls")
	}
	t1, t2, t3, t4 := c.Next(), c.Next(), c.Next(), c.Next()
	t2.EndsRoll()
	t1.EndsRoll() // an older end (a retried batch): nothing to add
	t4.EndsRoll()
	if !c.Rolled() {
		t.Fatal("the claim does not roll after EndsRoll")
	}
	if _, ok := c.PassEnds(t1); ok {
		t.Fatal("a commit point inside the first roll passed its end")
	}
	if end, ok := c.PassEnds(t3); !ok || end != t2 {
		t.Fatalf("PassEnds(3) = %v %v, want turn 2", end, ok)
	}
	if _, ok := c.PassEnds(t3); ok {
		t.Fatal("an end was passed twice")
	}
	if end, ok := c.PassEnds(t4); !ok || end != t4 {
		t.Fatalf("PassEnds(4) = %v %v, want turn 4", end, ok)
	}
	var none Turn
	none.EndsRoll()
	if (*Claim)(nil).Rolled() {
		t.Fatal("a nil claim rolls")
	}
}
