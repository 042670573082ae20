// Package kafkatest gives tests a broker: the real Kafka cluster named by
// CARACAL_TEST_BROKERS (CI starts one with scripts/kafka.sh), or else an
// embedded broker in a temporary directory.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/caracal-sec/caracal/plugins/kafka"
	"github.com/caracal-sec/caracal/plugins/settings"
)

// EnvBrokers names the real test cluster.
const EnvBrokers = "CARACAL_TEST_BROKERS"

// Real returns the real cluster's brokers. Without one it skips the test,
// except under CI (CI set), where a missing broker is a failure.
func Real(t testing.TB) []string {
	t.Helper()
	if b := settings.SplitList(os.Getenv(EnvBrokers)); len(b) > 0 {
		return b
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is unset under CI: .ci/run must start the Kafka broker (scripts/kafka.sh start)", EnvBrokers)
	}
	t.Skipf("%s unset: no real Kafka broker (run scripts/kafka.sh start)", EnvBrokers)
	return nil
}

// Embedded starts an embedded broker for the test's lifetime.
func Embedded(t testing.TB) []string {
	t.Helper()
	e, err := kafka.StartEmbedded(t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.Addrs
}

// Brokers is the real cluster when there is one, else an embedded broker.
func Brokers(t testing.TB) []string {
	t.Helper()
	if b := settings.SplitList(os.Getenv(EnvBrokers)); len(b) > 0 {
		return b
	}
	return Embedded(t)
}

// Topic creates a uniquely named topic with the given partitions.
func Topic(t testing.TB, brokers []string, prefix string, partitions int32) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := prefix + "-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, brokers, -1, []kafka.TopicSpec{{Name: name, Partitions: partitions}}); err != nil {
		t.Fatal(err)
	}
	return name
}
