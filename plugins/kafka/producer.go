package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ProducerConfig configures a producer.
type ProducerConfig struct {
	Brokers  []string
	ClientID string
	Linger   time.Duration
	// MaxRecordBytes bounds one produce batch; it must cover the largest
	// record (an HTTP source accepts bodies up to 1 MiB by default).
	MaxRecordBytes int32
}

// Producer writes records idempotently with acks from all in-sync replicas,
// so a record it reports as written survives a broker failure and a retry
// never writes it twice.
type Producer struct {
	cl *kgo.Client
}

// NewProducer connects a producer.
func NewProducer(cfg ProducerConfig) (*Producer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("no seed brokers: set caracal.brokers or CARACAL_BROKERS")
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = MaxRecordBytes
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(cfg.MaxRecordBytes),
		kgo.ProducerLinger(cfg.Linger),
		kgo.RecordDeliveryTimeout(30 * time.Second),
		kgo.AllowAutoTopicCreation(),
	}
	if cfg.ClientID != "" {
		opts = append(opts, kgo.ClientID(cfg.ClientID))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	return &Producer{cl: cl}, nil
}

// Produce writes every record and returns once all are acknowledged, or the
// first error.
func (p *Producer) Produce(ctx context.Context, recs []*kgo.Record) error {
	return p.cl.ProduceSync(ctx, recs...).FirstErr()
}

// Ping checks the cluster is reachable.
func (p *Producer) Ping(ctx context.Context) error { return p.cl.Ping(ctx) }

// Close flushes and disconnects.
func (p *Producer) Close(ctx context.Context) error {
	err := p.cl.Flush(ctx)
	p.cl.Close()
	return err
}
