package kafka

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// caracal_broker_ready connects while the broker answers, reports not
// connected once it is gone (so /ready answers 503), fails to connect
// while it stays gone and connects again once it is back.
func TestBrokerReadyFollowsTheBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	e, err := StartEmbedded(dir, 1, port)
	if err != nil {
		t.Fatal(err)
	}
	r := &readyInput{probe: NewProbe(e.Addrs), every: 50 * time.Millisecond}
	defer r.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Connect(ctx); err != nil {
		t.Fatalf("Connect with the broker up: %v", err)
	}
	read := make(chan error, 1)
	go func() {
		_, _, err := r.Read(ctx)
		read <- err
	}()
	e.Close()
	if err := <-read; !errors.Is(err, service.ErrNotConnected) {
		t.Fatalf("Read once the broker is gone = %v, want ErrNotConnected", err)
	}
	if err := r.Connect(ctx); err == nil || ctx.Err() != nil {
		t.Fatalf("Connect with the broker gone = %v, want its error before the test's deadline", err)
	}
	if e, err = StartEmbedded(dir, 1, port); err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for r.Connect(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatal("Connect never succeeded once the broker was back")
		}
	}
	// Stopping the stream ends Read.
	stop, cancelStop := context.WithCancel(ctx)
	go cancelStop()
	if _, _, err := r.Read(stop); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read once stopped = %v", err)
	}
}
