package kafka

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// generation counts the events after which state a stage derived from
// consumed records may be stale: partition assignments to this process's
// consumer groups (the partitions may have been another worker's a moment
// ago) and aborted transactions (their records will be consumed again).
// Stages that keep such state (the alert stage's dedup state) reload it
// from its topic when the count moves.
var generation atomic.Uint64

// Generation returns the current count.
func Generation() uint64 { return generation.Load() }

func countAssignment(context.Context, *kgo.Client, map[string][]int32) { generation.Add(1) }

// ReadCompacted reads a (compacted) topic from the beginning up to its
// committed end and calls fn for each record in offset order per
// partition; a record with a nil value (a tombstone) is passed too, so the
// caller can delete the key. It waits (up to settle) for open transactions
// on the topic to finish, so the state another worker committed last is
// seen before this one carries on from it. settled is false when a
// transaction was still open at the deadline: fn then saw only what was
// committed before it.
func ReadCompacted(ctx context.Context, brokers []string, topic string, settle time.Duration, fn func(key, value []byte)) (settled bool, err error) {
	// Control records (transaction markers) are kept so the reader sees
	// the offset just below the end: the last record before a stable end
	// is always one when the topic is written in transactions.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return false, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var ends kadm.ListedOffsets
	deadline := time.Now().Add(settle)
	for {
		// read_committed end (the last stable offset) against the high
		// watermark: they differ while a transaction is open.
		committed, err := adm.ListCommittedOffsets(ctx, topic)
		if err != nil {
			return false, fmt.Errorf("%s: committed end offsets: %w", topic, err)
		}
		hwm, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return false, fmt.Errorf("%s: end offsets: %w", topic, err)
		}
		if err := committed.Error(); err != nil {
			return false, fmt.Errorf("%s: %w", topic, err)
		}
		ends = committed
		stable := true
		committed.Each(func(o kadm.ListedOffset) {
			if h, ok := hwm.Lookup(o.Topic, o.Partition); ok && h.Offset != o.Offset {
				stable = false
			}
		})
		settled = stable
		if stable || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	want := map[int32]int64{}
	start := map[string]map[int32]kgo.Offset{topic: {}}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
			start[topic][o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(want) == 0 {
		return settled, nil
	}
	cl.AddConsumePartitions(start)
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return false, err
		}
		for _, e := range fs.Errors() {
			return false, fmt.Errorf("%s[%d]: %w", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok || r.Offset >= end {
				return
			}
			if !r.Attrs.IsControl() {
				fn(r.Key, r.Value)
			}
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return settled, nil
}
