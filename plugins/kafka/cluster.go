// Package kafka is Caracal's transport on franz-go: the embedded broker, topic
// creation, and the consumer and producer behind the caracal_kafka input and
// output. Stages only meet through topics, so everything about delivery
// guarantees (acks=all idempotent writes, offsets committed only after the
// downstream acknowledged) lives here.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/caracal-sec/caracal/plugins/diskspace"
	"github.com/caracal-sec/caracal/plugins/envelope"
)

// Embedded is an in-process Kafka-protocol broker (franz-go's kfake) that
// keeps its log under a data directory, so acknowledged events survive a
// restart of `caracal run` without any external service.
type Embedded struct {
	cluster *kfake.Cluster
	Addrs   []string
	guard   diskGuard
	unlock  func() // releases the data dir (lockDir)
}

// OnDiskFull hears when the broker starts refusing events for lack of disk
// space (low non-nil) and when it takes them again (low nil).
func (e *Embedded) OnDiskFull(fn func(low error)) { e.guard.report.Store(&fn) }

// diskGuard refuses produce requests while the broker's disk has less than
// diskspace.BrokerReserve free: kfake cannot take back a batch whose write
// failed (see package diskspace), so it must never get to write on a full
// disk. Producers retry KAFKA_STORAGE_ERROR, as from a real broker whose
// log directory failed, so the stages wait and the HTTP input answers 503.
type diskGuard struct {
	dir    string
	low    bool // refusing; only the cluster's control loop touches it
	report atomic.Pointer[func(error)]
}

func (g *diskGuard) control(req kmsg.Request) (kmsg.Response, error, bool) {
	low := diskspace.Check(g.dir, 0, diskspace.BrokerReserve)
	if (low != nil) != g.low {
		g.low = low != nil
		if fn := g.report.Load(); fn != nil {
			(*fn)(low)
		}
	}
	if low == nil {
		return nil, nil, false // kfake handles it
	}
	preq := req.(*kmsg.ProduceRequest)
	resp := preq.ResponseKind().(*kmsg.ProduceResponse)
	for _, t := range preq.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.ErrorCode = kerr.KafkaStorageError.Code
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp, nil, true
}

// StartEmbedded starts the embedded broker with its log under dir, on a
// free loopback port (or the given one).
func StartEmbedded(dir string, partitions int32, port ...int) (*Embedded, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded broker data dir: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DataDir(dir),
		kfake.DefaultNumPartitions(int(partitions)),
		kfake.AllowAutoTopicCreation(),
	}
	if len(port) > 0 {
		opts = append(opts, kfake.Ports(port...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("start embedded broker in %s: %w", dir, err)
	}
	e := &Embedded{cluster: c, Addrs: c.ListenAddrs(), guard: diskGuard{dir: dir}, unlock: unlock}
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return e.guard.control(req)
	})
	return e, nil
}

// Close flushes the broker's state to disk and stops it.
func (e *Embedded) Close() {
	e.cluster.Close()
	e.unlock()
}

// TopicSpec describes a topic Caracal creates when missing.
type TopicSpec struct {
	Name       string
	Partitions int32
	Configs    map[string]*string
}

// DefaultTopics are Caracal's topics: every one gets `partitions`
// partitions and the retention (0: the broker's); the alert state changelog
// is compacted instead.
//
// Every topic takes records up to MaxRecordBytes (brokers default to
// 1 MiB): an event as large as the HTTP input accepts grows when it is
// normalized, and a record the broker refuses stops its stage for good,
// since it is retried rather than dropped.
func DefaultTopics(partitions int32, retention time.Duration) []TopicSpec {
	compact := "compact"
	ms := strconv.FormatInt(retention.Milliseconds(), 10)
	maxBytes := strconv.Itoa(MaxRecordBytes)
	out := make([]TopicSpec, 0, len(envelope.AllTopics))
	for _, t := range envelope.AllTopics {
		spec := TopicSpec{Name: t, Partitions: partitions, Configs: map[string]*string{"max.message.bytes": &maxBytes}}
		switch {
		case t == envelope.TopicAlertState:
			spec.Configs["cleanup.policy"] = &compact
		case retention > 0:
			spec.Configs["retention.ms"] = &ms
		}
		out = append(out, spec)
	}
	return out
}

// MaxRecordBytes is the largest record (batch) Caracal's producers send and
// its topics take.
const MaxRecordBytes = 4 << 20

// EnsureTopics creates the topics that do not exist yet. A replication factor
// of -1 leaves it to the broker's default, 0 is AutoReplication's. A broker that is still starting
// is waited for, until ctx ends: each attempt gets 5 s, and Waiting (when
// set) hears why each one failed.
func EnsureTopics(ctx context.Context, brokers []string, replication int16, topics []TopicSpec) error {
	return EnsureTopicsWaiting(ctx, brokers, replication, topics, nil)
}

// EnsureTopicsWaiting is EnsureTopics telling waiting of each failed
// attempt, so that a broker out of reach is reported while it is waited for.
func EnsureTopicsWaiting(ctx context.Context, brokers []string, replication int16, topics []TopicSpec, waiting func(error)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("kafka client for %v: %w", brokers, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = createMissing(actx, adm, replication, topics)
		cancel()
		if err == nil {
			return nil
		}
		if _, ok := errors.AsType[*RefusalError](err); ok {
			return err // asking again gets the same answer
		}
		if ctx.Err() != nil {
			return fmt.Errorf("create topics on %v: %w", brokers, err)
		}
		if waiting != nil {
			waiting(err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// AutoReplication is the replication factor of topics created with 0: 3
// on a cluster of 3 or more brokers, so that losing one loses no
// acknowledged event, else 1. Kafka and Redpanda default to 1 whatever the
// cluster's size, and Redpanda takes only odd factors, so never 2.
func AutoReplication(brokers int) int16 {
	if brokers >= 3 {
		return 3
	}
	return 1
}

func createMissing(ctx context.Context, adm *kadm.Client, replication int16, topics []TopicSpec) error {
	asked := replication
	if replication == 0 {
		meta, err := adm.BrokerMetadata(ctx)
		if err != nil {
			return fmt.Errorf("count the brokers: %w", err)
		}
		replication = AutoReplication(len(meta.Brokers))
	}
	for _, t := range topics {
		resp, err := adm.CreateTopic(ctx, t.Partitions, replication, t.Configs, t.Name)
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			continue
		}
		if ke, ok := errors.AsType[*kerr.Error](err); ok && !ke.Retriable && ke != kerr.UnknownServerError {
			return refusal(ctx, adm, asked, replication, t, ke, resp.ErrMessage)
		}
		return fmt.Errorf("topic %s: %w", t.Name, err)
	}
	return nil
}

// RefusalError is a broker's definite answer that it will not create a
// topic as asked (a replication factor above its brokers, a policy, an
// ACL): the broker is up, and asking again would get the same answer, so
// the setting or the cluster must change.
type RefusalError struct {
	Topic   string
	Err     *kerr.Error
	Message string // the broker's own, if any
	Fix     string // what to change
}

func (e *RefusalError) Error() string {
	why := e.Err.Error()
	if e.Message != "" && e.Message != e.Err.Description {
		why += " The broker says: " + e.Message
	}
	return fmt.Sprintf("the broker refused to create topic %s: %s (%s)", e.Topic, e.Fix, why)
}

func (e *RefusalError) Unwrap() error { return e.Err }

// refusal explains the broker's refusal ke (with its message msg, if any)
// to create t with the replication factor asked (used: what 0 chose).
func refusal(ctx context.Context, adm *kadm.Client, asked, used int16, t TopicSpec, ke *kerr.Error, msg string) *RefusalError {
	r := &RefusalError{Topic: t.Name, Err: ke, Message: msg}
	switch ke {
	case kerr.InvalidReplicationFactor, kerr.InvalidReplicaAssignment:
		brokers := "the brokers the cluster has"
		if meta, err := adm.BrokerMetadata(ctx); err == nil {
			brokers = fmt.Sprintf("%d, the brokers the cluster has", len(meta.Brokers))
		}
		setting := fmt.Sprintf("%d", asked)
		if asked == 0 {
			setting = fmt.Sprintf("0, which asked for %d", used)
		}
		r.Fix = fmt.Sprintf("set caracal.topic_replication_factor (%s) to at most %s, or to 0 (3 on a cluster of 3 or more brokers, else 1)", setting, brokers)
	case kerr.InvalidPartitions:
		r.Fix = fmt.Sprintf("set caracal.topic_partitions (%d) to a count the cluster accepts", t.Partitions)
	case kerr.PolicyViolation, kerr.InvalidConfig:
		r.Fix = "change caracal.topic_partitions, caracal.topic_replication_factor or caracal.topic_retention to what the cluster accepts, " +
			fmt.Sprintf("or create Caracal's topics beforehand (with max.message.bytes=%d; docs/operations.md)", MaxRecordBytes)
	case kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed:
		r.Fix = "grant Caracal's principal CREATE on its topics (caracal.*) in the cluster's ACLs, " +
			fmt.Sprintf("or create them beforehand (with max.message.bytes=%d; docs/operations.md)", MaxRecordBytes)
	default:
		r.Fix = "change the caracal topic settings (topic_partitions, topic_replication_factor, topic_retention) or the cluster"
	}
	return r
}

// TopicReport is what the cluster's copies of Caracal's topics differ in
// from their specs, each as "topic (detail)", sorted:
//   - SmallRecords take records smaller than MaxRecordBytes (created before
//     Caracal set max.message.bytes, or by hand): a record a topic refuses
//     stops the stage that produces it;
//   - Uncompacted should be compacted but delete old records (created by
//     hand or another tool): the alert state would lose its dedup windows
//     and alert numbers with them, and a reused alert number repeats an
//     alert id that destinations take for a duplicate;
//   - FewPartitions have fewer partitions than asked (created before
//     caracal.topic_partitions was raised, or by hand): the workers of a
//     stage share its input topic's partitions, so those beyond stay idle.
type TopicReport struct {
	SmallRecords, Uncompacted, FewPartitions []string
}

// CheckTopics compares the topics as the cluster has them with their
// specs, with one client, describing their configs and partitions once;
// what could not be read is left out of the report and said in the error.
func CheckTopics(ctx context.Context, brokers []string, topics []TopicSpec) (TopicReport, error) {
	var r TopicReport
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return r, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// Each comparison is made from what could be read.
	configs, cerr := topicConfigs(ctx, adm, topics)
	specs := map[string]TopicSpec{}
	for _, t := range topics {
		specs[t.Name] = t
	}
	for _, rc := range configs {
		if v := configValue(rc, "max.message.bytes"); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n < MaxRecordBytes {
				r.SmallRecords = append(r.SmallRecords, fmt.Sprintf("%s (%d bytes)", rc.Name, n))
			}
		}
		// "compact,delete" also deletes records past retention.
		if want := specs[rc.Name].Configs["cleanup.policy"]; want != nil && *want == "compact" {
			if p := configValue(rc, "cleanup.policy"); p != "" && strings.ReplaceAll(p, " ", "") != "compact" {
				r.Uncompacted = append(r.Uncompacted, fmt.Sprintf("%s (cleanup.policy=%s)", rc.Name, p))
			}
		}
	}
	details, err := adm.ListTopics(ctx, topicNames(topics)...)
	if err != nil {
		err = fmt.Errorf("list topics: %w", err)
	}
	for _, t := range topics {
		d, ok := details[t.Name]
		if !ok || d.Err != nil {
			continue // not known yet to the broker asked: just created, as specified
		}
		if n := int32(len(d.Partitions)); n < t.Partitions {
			r.FewPartitions = append(r.FewPartitions, fmt.Sprintf("%s (%d of %d partitions)", t.Name, n, t.Partitions))
		}
	}
	sort.Strings(r.SmallRecords)
	sort.Strings(r.Uncompacted)
	sort.Strings(r.FewPartitions)
	return r, errors.Join(cerr, err)
}

// topicConfigs describes the configs of the topics the broker knows. A
// topic just created may not be known yet to the broker asked: it is asked
// again for up to 10 s, then left out (Caracal created it as specified).
func topicConfigs(ctx context.Context, adm *kadm.Client, topics []TopicSpec) (kadm.ResourceConfigs, error) {
	names := topicNames(topics)
	var configs kadm.ResourceConfigs
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if configs, err = adm.DescribeTopicConfigs(ctx, names...); err != nil {
			return nil, fmt.Errorf("describe topic configs: %w", err)
		}
		unknown := slices.ContainsFunc(configs, func(rc kadm.ResourceConfig) bool { return errors.Is(rc.Err, kerr.UnknownTopicOrPartition) })
		if !unknown || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	known := configs[:0]
	for _, rc := range configs {
		if errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if rc.Err != nil {
			return nil, fmt.Errorf("describe topic %s: %w", rc.Name, rc.Err)
		}
		known = append(known, rc)
	}
	return known, nil
}

// configValue is the value of key in rc, "" when it is unset.
func configValue(rc kadm.ResourceConfig, key string) string {
	for _, c := range rc.Configs {
		if c.Key == key && c.Value != nil {
			return *c.Value
		}
	}
	return ""
}

func topicNames(topics []TopicSpec) []string {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = t.Name
	}
	return names
}
