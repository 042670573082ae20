package kafka_test

import (
	"context"
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
