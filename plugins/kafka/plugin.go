package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-sec/caracal/plugins/claim"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/settings"
)

func inputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Categories("Services").
		Summary("Consumes Caracal topics as a consumer group, committing offsets only after the pipeline acknowledged the records.").
		Description(`Records of one partition are delivered as one batch per poll, with the record headers as message metadata plus `+"`kafka_topic`, `kafka_key` (strings), `kafka_partition`, `kafka_offset` and `kafka_timestamp_unix_nano` (integers)"+`. A partition's offset is committed only up to the first batch that has not been acknowledged downstream, whatever order acknowledgments arrive in, so a crash replays records (at-least-once) and never skips one. Several processes with the same `+"`consumer_group`"+` share the partitions.`).
		Fields(
			service.NewStringListField("seed_brokers").
				Description("Seed brokers. Empty: the cluster from the root config's `caracal.brokers` (or the embedded broker).").
				Example([]string{"redpanda-0:9092"}).Default([]string{}),
			service.NewStringListField("topics").
				Description("Topics to consume.").Example([]string{"caracal.events"}),
			service.NewStringField("consumer_group").
				Description("Consumer group; every process of a stage uses the same one.").Example("caracal-detect"),
			service.NewBoolField("start_from_oldest").
				Description("Where a group with no committed offset starts: the oldest record (true) or new records only.").
				Default(true),
			service.NewIntField("max_poll_records").
				Description("Records fetched per poll (a partition's share of a poll becomes one batch).").
				Default(2000).Advanced(),
			service.NewIntField("max_in_flight").
				Description("Records handed to the pipeline and not yet acknowledged before consumption pauses; bounds memory. Raise it for outputs that batch for long (the lake).").
				Default(100000).Advanced(),
			service.NewIntField("max_in_flight_bytes").
				Description("Also pause consumption while the values of the records in flight reach this many bytes; 0: only `max_in_flight` bounds them. Sets memory apart from the events' size: catching up a backlog fills whatever the bounds allow. The lake holds a roll of `roll_bytes` and gathers the next while it is stored: give it twice its `roll_bytes` (less than one roll's worth and each roll waits for `roll_period`). Not used by `transactional` consumers, which hold one poll at a time.").
				Default(0).Example(268435456).Advanced(),
			service.NewDurationField("commit_period").
				Description("How often acknowledged offsets are committed.").
				Default("1s").Advanced(),
			service.NewStringListField("kafka_metadata").
				Description("The `kafka_*` metadata each message carries. A stage that reads few of them names those: Benthos keeps a message's metadata in a map that costs twice as much past eight entries, and a `caracal.raw` record already brings five headers.").
				Example([]string{envelope.MetaKafkaPartition, envelope.MetaKafkaOffset}).
				Default(kafkaMetadata).Advanced().
				LintRule(`root = if this.type() == "string" && !`+kafkaMetadataList+`.contains(this) { ["kafka_metadata %q: want some of %s".format(this, `+kafkaMetadataList+`.join(", "))] }`), // run on each name
			service.NewBoolField("transactional").
				Description("Exactly once for a consume → transform → produce stage: records are consumed in Kafka transactions, and a `caracal_kafka` output with `transaction_group` set to this `consumer_group` produces inside them; offsets and output commit together once every batch of a poll is acknowledged, and a refusal or crash aborts both, so a replay never duplicates downstream records.").
				Default(false),
		)
}

func outputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Categories("Services").
		Summary("Writes messages to Caracal topics, idempotently, acknowledged by all in-sync replicas.").
		Description("By default each message goes to the topic in its `caracal_topic` metadata with the key in `caracal_key`, which the stage plugins set; metadata whose key starts with `header_prefix` becomes record headers. The batch is acknowledged upstream only once every record is durably written, so the HTTP input answers 200 only after the broker acknowledged every event of a request.").
		Fields(
			service.NewStringListField("seed_brokers").
				Description("Seed brokers. Empty: the cluster from the root config's `caracal.brokers` (or the embedded broker).").
				Example([]string{"redpanda-0:9092"}).Default([]string{}),
			service.NewInterpolatedStringField("topic").
				Description("Topic to write to. Empty: the message's `caracal_topic` metadata.").
				Example("caracal.events").Default(""),
			service.NewInterpolatedStringField("key").
				Description("Record key (decides the partition). Empty: the message's `caracal_key` metadata.").
				Example(`${! json("p_rule_id") }`).Default(""),
			service.NewStringField("header_prefix").
				Description("Metadata keys with this prefix are written as record headers (except `caracal_topic` and `caracal_key`).").
				Default("caracal_").Advanced(),
			service.NewDurationField("linger").
				Description("How long the producer waits to fill a batch; 0 sends at once.").
				Default("0s").Advanced(),
			service.NewStringField("transaction_group").
				Description("Produce inside the Kafka transaction of this stream's `caracal_kafka` input with this `consumer_group` (which must be `transactional`), so output and consumed offsets commit atomically.").
				Default("").Example("caracal-process"),
			service.NewOutputMaxInFlightField().Default(64),
		)
}

func init() {
	service.MustRegisterBatchInput("caracal_kafka", inputSpec(), newInput)
	service.MustRegisterBatchOutput("caracal_kafka", outputSpec(), newOutput)
}

func brokersFrom(conf *service.ParsedConfig, res *service.Resources) ([]string, error) {
	bs, err := conf.FieldStringList("seed_brokers")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range bs {
		out = append(out, settings.SplitList(b)...)
	}
	if len(out) == 0 {
		out = settings.From(res).Brokers
	}
	if len(out) == 0 {
		return nil, errors.New("no brokers: set caracal.brokers in config.yaml or CARACAL_BROKERS, or run `caracal run` which starts the embedded broker")
	}
	return out, nil
}

//------------------------------------------------------------------------------

type input struct {
	cfg      ConsumerConfig
	meta     kafkaMeta
	c        *Consumer
	txn      bool
	tc       *TxnConsumer
	sessions *Sessions
}

// kafkaMetadata is every kafka_* metadata a message may carry, in the
// order of kafkaMeta's bits.
var kafkaMetadata = []string{envelope.MetaKafkaTopic, envelope.MetaKafkaPartition, envelope.MetaKafkaOffset, envelope.MetaKafkaKey, envelope.MetaKafkaTimestamp}

// kafkaMetadataList is kafkaMetadata as a Bloblang array, for the lint.
var kafkaMetadataList = `["` + strings.Join(kafkaMetadata, `","`) + `"]`

// kafkaMeta is a set of kafka_* metadata.
type kafkaMeta uint8

const (
	metaTopic kafkaMeta = 1 << iota
	metaPartition
	metaOffset
	metaKey
	metaTimestamp
	allKafkaMeta = 1<<iota - 1
)

func parseKafkaMeta(names []string) (kafkaMeta, error) {
	var k kafkaMeta
	for _, n := range names {
		i := slices.Index(kafkaMetadata, n)
		if i < 0 {
			return 0, fmt.Errorf("kafka_metadata %q: want some of %s", n, strings.Join(kafkaMetadata, ", "))
		}
		k |= 1 << i
	}
	return k, nil
}

type sessionsKey struct{}

// sessionsOf returns the process's registry of transactional sessions.
func sessionsOf(res *service.Resources) *Sessions {
	v, _ := res.GetOrSetGeneric(sessionsKey{}, NewSessions())
	return v.(*Sessions)
}

func newInput(conf *service.ParsedConfig, res *service.Resources) (service.BatchInput, error) {
	brokers, err := brokersFrom(conf, res)
	if err != nil {
		return nil, err
	}
	log := res.Logger()
	cfg := ConsumerConfig{
		Brokers: brokers, ClientID: "caracal", DataDir: settings.From(res).DataDir,
		OnStall: func(msg string) { log.Error(msg) }, OnWarn: func(msg string) { log.Warn(msg) },
	}
	if cfg.Topics, err = conf.FieldStringList("topics"); err != nil {
		return nil, err
	}
	if cfg.Group, err = conf.FieldString("consumer_group"); err != nil {
		return nil, err
	}
	if cfg.FromBeginning, err = conf.FieldBool("start_from_oldest"); err != nil {
		return nil, err
	}
	if cfg.MaxPoll, err = conf.FieldInt("max_poll_records"); err != nil {
		return nil, err
	}
	if cfg.MaxInFlight, err = conf.FieldInt("max_in_flight"); err != nil {
		return nil, err
	}
	if cfg.MaxInFlightBytes, err = conf.FieldInt("max_in_flight_bytes"); err != nil {
		return nil, err
	}
	if cfg.CommitEvery, err = conf.FieldDuration("commit_period"); err != nil {
		return nil, err
	}
	names, err := conf.FieldStringList("kafka_metadata")
	if err != nil {
		return nil, err
	}
	meta, err := parseKafkaMeta(names)
	if err != nil {
		return nil, err
	}
	txn, err := conf.FieldBool("transactional")
	if err != nil {
		return nil, err
	}
	if txn {
		// No automatic retry: a refused batch aborts the transaction and
		// its records are consumed again.
		return &input{cfg: cfg, meta: meta, txn: true, sessions: sessionsOf(res)}, nil
	}
	return service.AutoRetryNacksBatched(&input{cfg: cfg, meta: meta}), nil
}

func (in *input) Connect(ctx context.Context) error {
	if in.c != nil || in.tc != nil {
		return nil
	}
	if in.txn {
		tc, err := NewTxnConsumer(in.cfg)
		if err != nil {
			return err
		}
		in.tc = tc
		in.sessions.Put(in.cfg.Group, tc)
		return nil
	}
	c, err := NewConsumer(in.cfg)
	if err != nil {
		return err
	}
	in.c = c
	return nil
}

func (in *input) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	if in.c == nil && in.tc == nil {
		return nil, nil, service.ErrNotConnected
	}
	var b *Batch
	var err error
	if in.tc != nil {
		b, err = in.tc.Next(ctx)
	} else {
		b, err = in.c.Next(ctx)
	}
	if err != nil {
		if errors.Is(err, errClosed) {
			return nil, nil, service.ErrEndOfInput
		}
		return nil, nil, err
	}
	batch := messages(b, in.meta)
	if in.c != nil {
		// A plain consumer's output (the lake) must know when the
		// partition goes: see package claim. A transactional stage's
		// output is fenced with its offsets instead.
		withTurn(batch, b.Turn())
	}
	// Wrapped in AutoRetryNacksBatched: a refused batch is redelivered with
	// backoff, so this only ever sees success.
	return batch, func(ctx context.Context, err error) error {
		switch {
		case in.tc != nil:
			in.tc.Ack(b, err)
		case err == nil:
			in.c.Ack(b)
		}
		return nil
	}, nil
}

// messages are a batch's records as messages: the value, the record
// headers as metadata and the kafka_* metadata in meta.
func messages(b *Batch, meta kafkaMeta) service.MessageBatch {
	batch := make(service.MessageBatch, len(b.Records))
	// Integers stay integers (MetaGet formats them on demand), and the
	// batch's topic and partition are boxed once: metadata was most of
	// this input's cost per record. Keys and header values are not
	// copied: like the value, they are slices of the fetched batch, which
	// franz-go never reuses, and nothing writes to them.
	topic, part := any(b.Topic), any(int64(b.Partition))
	for i, r := range b.Records {
		m := service.NewMessage(r.Value)
		for _, h := range r.Headers {
			m.MetaSetMut(h.Key, bytesString(h.Value))
		}
		if meta&metaTopic != 0 {
			m.MetaSetMut(envelope.MetaKafkaTopic, topic)
		}
		if meta&metaPartition != 0 {
			m.MetaSetMut(envelope.MetaKafkaPartition, part)
		}
		if meta&metaOffset != 0 {
			m.MetaSetMut(envelope.MetaKafkaOffset, r.Offset)
		}
		if meta&metaKey != 0 {
			m.MetaSetMut(envelope.MetaKafkaKey, bytesString(r.Key))
		}
		if meta&metaTimestamp != 0 {
			m.MetaSetMut(envelope.MetaKafkaTimestamp, r.Timestamp.UnixNano())
		}
		batch[i] = m
	}
	return batch
}

// withTurn makes each message carry its batch's turn (and claim) in its
// context.
func withTurn(batch service.MessageBatch, t claim.Turn) {
	ctx := claim.NewContext(context.Background(), t)
	for i, m := range batch {
		batch[i] = m.WithContext(ctx)
	}
}

// bytesString is b as a string without a copy; b must not change after.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// stringBytes is s as bytes without a copy, for a record's key and header
// values, which franz-go only reads.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func (in *input) Close(ctx context.Context) error {
	if in.tc != nil {
		in.sessions.Remove(in.cfg.Group, in.tc)
		return in.tc.Close(ctx)
	}
	if in.c == nil {
		return nil
	}
	return in.c.Close(ctx)
}

//------------------------------------------------------------------------------

type output struct {
	cfg      ProducerConfig
	p        *Producer
	txnGroup string
	sessions *Sessions
	topic    *service.InterpolatedString
	key      *service.InterpolatedString
	prefix   string
}

func newOutput(conf *service.ParsedConfig, res *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
	var pol service.BatchPolicy
	brokers, err := brokersFrom(conf, res)
	if err != nil {
		return nil, pol, 0, err
	}
	o := &output{cfg: ProducerConfig{Brokers: brokers, ClientID: "caracal"}, sessions: sessionsOf(res)}
	if o.txnGroup, err = conf.FieldString("transaction_group"); err != nil {
		return nil, pol, 0, err
	}
	if o.cfg.Linger, err = conf.FieldDuration("linger"); err != nil {
		return nil, pol, 0, err
	}
	if o.prefix, err = conf.FieldString("header_prefix"); err != nil {
		return nil, pol, 0, err
	}
	if o.topic, err = optionalInterp(conf, "topic"); err != nil {
		return nil, pol, 0, err
	}
	if o.key, err = optionalInterp(conf, "key"); err != nil {
		return nil, pol, 0, err
	}
	maxInFlight, err := conf.FieldMaxInFlight()
	if err != nil {
		return nil, pol, 0, err
	}
	return o, pol, maxInFlight, nil
}

// optionalInterp returns nil for an empty field, so the metadata fast path
// skips interpolation entirely.
func optionalInterp(conf *service.ParsedConfig, name string) (*service.InterpolatedString, error) {
	raw, err := conf.FieldString(name)
	if err != nil || raw == "" {
		return nil, err
	}
	return conf.FieldInterpolatedString(name)
}

func (o *output) Connect(ctx context.Context) error {
	if o.p != nil || o.txnGroup != "" {
		return nil
	}
	p, err := NewProducer(o.cfg)
	if err != nil {
		return err
	}
	o.p = p
	return nil
}

func (o *output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	if o.p == nil && o.txnGroup == "" {
		return service.ErrNotConnected
	}
	recs, err := o.records(batch)
	if err != nil {
		return err
	}
	if o.txnGroup != "" {
		tc, err := o.sessions.Get(ctx, o.txnGroup)
		if err != nil {
			return err
		}
		return tc.Produce(ctx, recs)
	}
	return o.p.Produce(ctx, recs)
}

// records are the batch's messages as records: one allocation for the
// records and one for their headers, rather than one per record and a
// growing slice per record's headers.
func (o *output) records(batch service.MessageBatch) ([]*kgo.Record, error) {
	store, recs := make([]kgo.Record, len(batch)), make([]*kgo.Record, len(batch))
	var headers []kgo.RecordHeader
	for i, m := range batch {
		var err error
		if headers, err = o.record(&store[i], headers, batch, i, m); err != nil {
			return nil, err
		}
		recs[i] = &store[i]
	}
	return recs, nil
}

// record fills r from message i; its headers are appended to headers,
// which it returns, and r's point into them.
func (o *output) record(r *kgo.Record, headers []kgo.RecordHeader, batch service.MessageBatch, i int, m *service.Message) ([]kgo.RecordHeader, error) {
	value, err := m.AsBytes()
	if err != nil {
		return headers, err
	}
	if len(value) == 0 {
		value = nil // a tombstone on a compacted topic (caracal.alert_state)
	}
	r.Value = value
	if o.topic != nil {
		if r.Topic, err = batch.TryInterpolatedString(i, o.topic); err != nil {
			return headers, err
		}
	} else {
		r.Topic, _ = m.MetaGet(envelope.MetaTopic)
	}
	if r.Topic == "" {
		return headers, errors.New("message has no topic: set `topic` or the caracal_topic metadata")
	}
	var key string
	if o.key != nil {
		if key, err = batch.TryInterpolatedString(i, o.key); err != nil {
			return headers, err
		}
	} else {
		key, _ = m.MetaGet(envelope.MetaKey)
	}
	if key != "" {
		r.Key = stringBytes(key)
	}
	if o.prefix != "" {
		start := len(headers)
		_ = m.MetaWalkMut(func(k string, v any) error {
			if !strings.HasPrefix(k, o.prefix) || k == envelope.MetaTopic || k == envelope.MetaKey {
				return nil
			}
			s, ok := v.(string)
			if !ok {
				s = metaString(v)
			}
			headers = append(headers, kgo.RecordHeader{Key: k, Value: stringBytes(s)})
			return nil
		})
		// Capped: a later record's append must not write into these.
		r.Headers = headers[start:len(headers):len(headers)]
	}
	return headers, nil
}

func metaString(v any) string {
	switch t := v.(type) {
	case []byte:
		return string(t)
	case time.Time:
		return envelope.FormatTime(t)
	default:
		return fmt.Sprint(t)
	}
}

func (o *output) Close(ctx context.Context) error {
	if o.p == nil {
		return nil
	}
	return o.p.Close(ctx)
}
