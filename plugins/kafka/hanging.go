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
// hanging when it has been open, without a write, for longer than olderThan
// and its coordinator does not know it as in progress: no producer will
// ever end it, and until it ends, read_committed readers of its partitions
// and the offsets of the group it committed for stay blocked. It returns
// what it aborted, as "topic/partition (producer id)".
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
		if p.CurrentTxnStartOffset < 0 || p.LastTimestamp > cutoff {
			continue
		}
		live, err := ongoing(ctx, adm, p)
		if err != nil {
			return aborted, err
		}
		if live {
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
		aborted = append(aborted, fmt.Sprintf("%s/%d (producer %d)", p.Topic, p.Partition, p.ProducerID))
	}
	return aborted, nil
}

// ongoing reports whether the transaction coordinator knows p's
// transaction as in progress, with p's epoch.
func ongoing(ctx context.Context, adm *kadm.Client, p kadm.DescribedProducer) (bool, error) {
	listed, err := adm.ListTransactions(ctx, []int64{p.ProducerID}, nil)
	if err != nil {
		return false, fmt.Errorf("list transactions: %w", err)
	}
	for id, t := range listed {
		if t.ProducerID != p.ProducerID {
			continue
		}
		described, err := adm.DescribeTransactions(ctx, id)
		if err != nil {
			return false, fmt.Errorf("describe transaction %s: %w", id, err)
		}
		for _, d := range described {
			switch d.State {
			case "Ongoing", "PrepareCommit", "PrepareAbort":
				if d.ProducerID == p.ProducerID && d.ProducerEpoch == p.ProducerEpoch {
					return true, nil
				}
			}
		}
	}
	return false, nil
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
