package kafka_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caracal-sec/caracal/plugins/kafka"
)

// The probe says a running broker is reachable and, a second later at most,
// that a stopped one is not.
func TestProbeFollowsTheBroker(t *testing.T) {
	e, err := kafka.StartEmbedded(t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	p := kafka.NewProbe(e.Addrs)
	defer p.Close()
	if err := p.Check(context.Background()); err != nil {
		t.Fatalf("a running broker: %v", err)
	}
	e.Close()
	time.Sleep(1100 * time.Millisecond) // past the cached answer
	if err := p.Check(context.Background()); err == nil {
		t.Fatal("a stopped broker was reported reachable")
	}
	none := kafka.NewProbe([]string{"127.0.0.1:1"})
	defer none.Close()
	if err := none.Check(context.Background()); err == nil {
		t.Fatal("no broker at all was reported reachable")
	}
}

// Topics wait for a broker that is not up yet, and each failed attempt is
// heard (`caracal run` logs it) rather than a silent wait of minutes.
func TestEnsureTopicsWaitsForTheBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var heard atomic.Int32
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		done <- kafka.EnsureTopicsWaiting(ctx, []string{fmt.Sprintf("127.0.0.1:%d", port)}, -1,
			[]kafka.TopicSpec{{Name: "late", Partitions: 1}}, func(error) { heard.Add(1) })
	}()
	for deadline := time.Now().Add(10 * time.Second); heard.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if heard.Load() == 0 {
		t.Fatal("no failed attempt heard while the broker was down")
	}
	e, err := kafka.StartEmbedded(t.TempDir(), 1, port)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := <-done; err != nil {
		t.Fatalf("once the broker is up: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, []string{"127.0.0.1:1"}, -1, []kafka.TopicSpec{{Name: "x", Partitions: 1}}); err == nil {
		t.Fatal("no broker, and no error once the context ended")
	}
}
