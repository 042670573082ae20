package kafka

import (
	"context"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/settings"
)

// The caracal_kafka input and output stay "connected" for Benthos's /ready
// once they joined the cluster, whatever happens to the brokers later: the
// client reconnects on its own, and a consumer cannot be interrupted
// mid-poll without risking the records it fetched. A caracal_broker_ready
// input carries the broker's reachability into /ready instead: `caracal
// run` adds a stream of it to every process.

// ReadyInputSpec is caracal_broker_ready's spec.
func ReadyInputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Categories("Utility").
		Summary("Yields no messages; reports not connected while no broker of the cluster (`caracal.brokers`) answers, so that /ready answers 503.").
		Description("Checked every second (a metadata request, 2 s timeout). `caracal run` adds a `broker` stream of it, with a `drop` output, to every process.")
}

// NewReadyInput is a caracal_broker_ready input on the process's brokers.
func NewReadyInput(res *service.Resources) service.Input {
	return &readyInput{probe: NewProbe(settings.From(res).Brokers), every: time.Second}
}

type readyInput struct {
	probe *Probe
	every time.Duration
}

// Connect succeeds once a broker answers. It asks every second for up to
// 10 s before it fails: Benthos logs each failure and calls Connect again
// at once, so this says why once every 10 s rather than every second.
func (r *readyInput) Connect(ctx context.Context) error {
	for deadline := time.Now().Add(10 * r.every); ; {
		err := r.probe.Check(ctx)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
		case <-time.After(r.every):
		}
	}
}

// Read returns only when the broker stopped answering (not connected:
// Benthos calls Connect again) or the stream stops.
func (r *readyInput) Read(ctx context.Context) (*service.Message, service.AckFunc, error) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-t.C:
		}
		if err := r.probe.Check(ctx); err != nil && ctx.Err() == nil {
			return nil, nil, service.ErrNotConnected
		}
	}
}

func (r *readyInput) Close(context.Context) error {
	r.probe.Close()
	return nil
}
