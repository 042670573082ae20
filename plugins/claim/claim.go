// Package claim ties what a stage gathered from a partition to its
// consumer still owning that partition.
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
)

// Claim is one assignment of a partition to this process. The zero of
// *Claim (nil) is a claim that never ends: records from elsewhere.
type Claim struct {
	mu      sync.Mutex
	idle    sync.Cond
	ended   bool
	writing int
}

// New is a live claim.
func New() *Claim {
	c := &Claim{}
	c.idle.L = &c.mu
	return c
}

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

// NewContext carries c with a message.
func NewContext(ctx context.Context, c *Claim) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// From is the claim a message's context carries, or nil.
func From(ctx context.Context) *Claim {
	c, _ := ctx.Value(ctxKey{}).(*Claim)
	return c
}
