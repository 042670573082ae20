package kafka_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/caracal-sec/caracal/plugins/kafka"
	"github.com/caracal-sec/caracal/plugins/kafka/kafkatest"
	"github.com/caracal-sec/caracal/plugins/settings"
)

// replicas is how many replicas each partition of topic has.
func replicas(t *testing.T, brokers []string, topic string) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := td[topic]; ok && d.Err == nil && len(d.Partitions) > 0 {
			return len(d.Partitions[0].Replicas)
		}
		if ctx.Err() != nil {
			t.Fatalf("topic %s not listed", topic)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ensureDefault creates a topic with the default topic_replication_factor.
func ensureDefault(t *testing.T, brokers []string) string {
	t.Helper()
	topic := newTopicSpecs(1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, brokers, settings.Default().ReplicationFactor, topic); err != nil {
		t.Fatal(err)
	}
	return topic[0].Name
}

// By default topics get 3 replicas on a cluster of three brokers (Kafka's
// and Redpanda's own default is 1 whatever the size: one broker lost would
// lose acknowledged events)...
func TestDefaultReplicationOnThreeBrokers(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// kfake's own default is 3 replicas; Kafka's default.replication.factor
	// and Redpanda's default_topic_replications are 1.
	c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for i := range req.(*kmsg.CreateTopicsRequest).Topics {
			if rt := &req.(*kmsg.CreateTopicsRequest).Topics[i]; rt.ReplicationFactor == -1 {
				rt.ReplicationFactor = 1
			}
		}
		return nil, nil, false
	})
	brokers := c.ListenAddrs()
	if n := replicas(t, brokers, ensureDefault(t, brokers)); n != 3 {
		t.Fatalf("replicas on 3 brokers = %d, want 3", n)
	}
}

// ...and the one replica a single broker allows.
func TestDefaultReplicationOnOneBrokerRealKafka(t *testing.T) {
	brokers := kafkatest.Real(t)
	if n := replicas(t, brokers, ensureDefault(t, brokers)); n != 1 {
		t.Fatalf("replicas on 1 broker = %d, want 1", n)
	}
}

func TestAutoReplication(t *testing.T) {
	for brokers, want := range map[int]int16{1: 1, 2: 1, 3: 3, 5: 3} {
		if got := kafka.AutoReplication(brokers); got != want {
			t.Errorf("AutoReplication(%d) = %d, want %d", brokers, got, want)
		}
	}
}

// A broker that refuses the topics outright is not waited on as an
// unreachable one (`caracal run` used to retry for 2 minutes, then say no
// broker answered): the error comes at once and names the setting to change.
func TestEnsureTopicsStopsAtARefusal(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = kafka.EnsureTopics(ctx, c.ListenAddrs(), 3, newTopicSpecs(1))
	if ctx.Err() != nil {
		t.Fatalf("waited until the context ended: %v", err)
	}
	if _, ok := errors.AsType[*kafka.RefusalError](err); !ok || !errors.Is(err, kerr.InvalidReplicationFactor) ||
		!strings.Contains(err.Error(), "set caracal.topic_replication_factor (3) to at most 1,") {
		t.Fatalf("3 replicas on 1 broker: %v, want a refusal naming caracal.topic_replication_factor and 1 broker", err)
	}

	// An ACL refusal, with the broker's own words.
	c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range req.(*kmsg.CreateTopicsRequest).Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic, st.ErrorCode = rt.Topic, kerr.TopicAuthorizationFailed.Code
			msg := "User:caracal may not CREATE"
			st.ErrorMessage = &msg
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	err = kafka.EnsureTopics(ctx, c.ListenAddrs(), 1, newTopicSpecs(1))
	if ctx.Err() != nil {
		t.Fatalf("waited until the context ended: %v", err)
	}
	if !errors.Is(err, kerr.TopicAuthorizationFailed) || !strings.Contains(err.Error(), "grant Caracal's principal CREATE") ||
		!strings.Contains(err.Error(), "User:caracal may not CREATE") {
		t.Fatalf("an ACL refusal: %v, want the fix and the broker's message", err)
	}
}

// A broker that answers with a transient error (its controller not ready
// yet) is still asked again.
func TestEnsureTopicsWaitsThroughTransientErrors(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var refused atomic.Int32
	c.ControlKey(int16(kmsg.CreateTopics), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if refused.Add(1) > 3 {
			return nil, nil, false // kfake creates it
		}
		c.KeepControl()
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, rt := range req.(*kmsg.CreateTopicsRequest).Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic, st.ErrorCode = rt.Topic, kerr.NotController.Code
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, c.ListenAddrs(), 1, newTopicSpecs(1)); err != nil {
		t.Fatalf("after transient errors: %v", err)
	}
	if refused.Load() <= 3 {
		t.Fatal("the broker was not asked past its transient errors")
	}
}
