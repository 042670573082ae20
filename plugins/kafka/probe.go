package kafka

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Probe answers whether the brokers can be reached, for a readiness check:
// one client kept for the purpose, and one answer a second at most however
// often a load balancer asks.
type Probe struct {
	brokers []string
	mu      sync.Mutex
	cl      *kgo.Client
	at      time.Time
	err     error
}

// NewProbe probes brokers; nothing is dialled before the first Check.
func NewProbe(brokers []string) *Probe { return &Probe{brokers: brokers} }

// Check returns nil when a broker answered a metadata request within 2 s
// (or did within the last second).
func (p *Probe) Check(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.at.IsZero() && time.Since(p.at) < time.Second {
		return p.err
	}
	if p.cl == nil {
		cl, err := kgo.NewClient(kgo.SeedBrokers(p.brokers...), kgo.DialTimeout(2*time.Second))
		if err != nil {
			return err
		}
		p.cl = cl
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	p.err = p.cl.Ping(ctx)
	if p.err != nil {
		p.err = fmt.Errorf("broker %v unreachable: %w", p.brokers, p.err)
	}
	p.at = time.Now()
	return p.err
}

// Close closes the probe's client.
func (p *Probe) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cl != nil {
		p.cl.Close()
		p.cl = nil
	}
}
