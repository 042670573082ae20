package kafka

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// AbortHanging aborts the hanging transactions on Caracal's topics and on
// __consumer_offsets (where a stage's pending offset commits live), as
// `kafka-transactions.sh find-hanging` and `abort` would. A transaction is
// hanging when no producer will ever end it, and until it ends,
// read_committed readers of its partitions and the offsets of the group it
// committed for stay blocked. That is so when its coordinator has fenced
// its producer (moved the transactional id to a later epoch and finished
// everything it knew of), or when it has been open, without a write, for
// longer than olderThan and its coordinator does not know it as in
// progress. It returns what it aborted, as "topic/partition (producer id,
// epoch: why)".
func AbortHanging(ctx context.Context, brokers []string, olderThan time.Duration) ([]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopicsWithInternal(ctx)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	set := kadm.TopicsSet{}
	for name, d := range details {
		if name != "__consumer_offsets" && !strings.HasPrefix(name, "caracal.") {
			continue
		}
		for p := range d.Partitions {
			set.Add(name, p)
		}
	}
	producers, err := adm.DescribeProducers(ctx, set)
	if err != nil {
		return nil, fmt.Errorf("describe producers: %w", err)
	}
	cutoff := time.Now().Add(-olderThan).UnixMilli()
	var aborted []string
	for _, part := range producers.SortedPartitions() {
		if part.Err != nil {
			return nil, fmt.Errorf("describe producers of %s/%d: %w", part.Topic, part.Partition, part.Err)
		}
	}
	for _, p := range producers.SortedProducers() {
		if p.CurrentTxnStartOffset < 0 {
			continue
		}
		state, err := coordinatorState(ctx, adm, p)
		if err != nil {
			return aborted, err
		}
		if state == txnLive || state == txnUnknown && p.LastTimestamp > cutoff {
			continue
		}
		resp, err := adm.WriteTxnMarkers(ctx, kadm.TxnMarkers{ProducerID: p.ProducerID, ProducerEpoch: p.ProducerEpoch,
			CoordinatorEpoch: p.CoordinatorEpoch, Topics: kadm.TopicsSet{p.Topic: {p.Partition: {}}}})
		if err != nil {
			return aborted, fmt.Errorf("abort %s/%d: %w", p.Topic, p.Partition, err)
		}
		for _, r := range resp.SortedPartitions() {
			if r.Err != nil {
				return aborted, fmt.Errorf("abort %s/%d: %w", r.Topic, r.Partition, r.Err)
			}
		}
		why := "its producer fenced"
		if state == txnUnknown {
			why = fmt.Sprintf("no write for %s", time.Since(time.UnixMilli(p.LastTimestamp)).Round(time.Second))
		}
		aborted = append(aborted, fmt.Sprintf("%s/%d (producer %d, epoch %d: %s)", p.Topic, p.Partition, p.ProducerID, p.ProducerEpoch, why))
	}
	return aborted, nil
}

// txnState is what a transaction's coordinator says of it.
type txnState int

const (
	txnUnknown txnState = iota // not in progress, producer not fenced
	txnLive                    // in progress, at the transaction's epoch
	txnFenced                  // its producer is at a later epoch, nothing pending
)

// coordinatorState asks the coordinator of p's transactional id about p's
// open transaction. A coordinator moves an id to a later epoch only after
// it has ended (with markers) every transaction it knew at the earlier one,
// so one still open there was never its to end: only an abort ends it. A
// marker for the earlier epoch cannot touch a later transaction either (the
// partition refuses it as fenced).
func coordinatorState(ctx context.Context, adm *kadm.Client, p kadm.DescribedProducer) (txnState, error) {
	listed, err := adm.ListTransactions(ctx, []int64{p.ProducerID}, nil)
	if err != nil {
		return txnUnknown, fmt.Errorf("list transactions: %w", err)
	}
	for id, t := range listed {
		if t.ProducerID != p.ProducerID {
			continue
		}
		described, err := adm.DescribeTransactions(ctx, id)
		if err != nil {
			return txnUnknown, fmt.Errorf("describe transaction %s: %w", id, err)
		}
		for _, d := range described {
			if d.ProducerID != p.ProducerID {
				continue
			}
			switch {
			case d.ProducerEpoch == p.ProducerEpoch && (d.State == "Ongoing" || d.State == "PrepareCommit" || d.State == "PrepareAbort"):
				return txnLive, nil
			case d.ProducerEpoch > p.ProducerEpoch && (d.State == "Empty" || d.State == "CompleteCommit" || d.State == "CompleteAbort"):
				return txnFenced, nil
			}
		}
	}
	return txnUnknown, nil
}

// HangingAfter is how long a transaction stays open before Caracal takes it
// for hanging, if its coordinator does not know it as in progress either:
// past the transaction timeout, when the broker has aborted any live one,
// with a margin. It was twice the timeout, which held a stage for two
// minutes on every hang make chaos met.
const HangingAfter = TransactionTimeout + 15*time.Second

// abortHangingNow is AbortHanging for transactions open longer than any
// live one lasts (HangingAfter), within 30 s.
func abortHangingNow(ctx context.Context, brokers []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return AbortHanging(ctx, brokers, HangingAfter)
}

// WatchHanging runs AbortHanging every period until ctx ends and reports
// what it aborted, or why it could not look. A stage whose group offsets
// wait on a hanging transaction notices it by itself (the stall watch); a
// hanging transaction on a data partition shows no error anywhere: its
// read_committed readers (detect, lake) just wait. This finds both.
func WatchHanging(ctx context.Context, brokers []string, period time.Duration, report func(aborted []string, err error)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		aborted, err := abortHangingNow(ctx, brokers)
		if ctx.Err() != nil {
			return
		}
		if err != nil || len(aborted) > 0 {
			report(aborted, err)
		}
	}
}
