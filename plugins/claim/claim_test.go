package claim

import (
	"context"
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
	if From(context.Background()) != nil {
		t.Fatal("a context without a claim carries one")
	}
	live := New()
	if From(NewContext(context.Background(), live)) != live {
		t.Fatal("the context lost its claim")
	}
}
