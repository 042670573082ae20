package httpsource_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/caracal-sec/caracal/plugins/httpsource"
	"github.com/caracal-sec/caracal/plugins/kafka"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// With the broker gone the source answers 503 with Retry-After instead of
// accepting events it cannot store; once the broker is back it answers 200
// again without a restart.
func TestBrokerDownThenRecovers(t *testing.T) {
	dir := t.TempDir()
	port := freePort(t)
	broker, err := kafka.StartEmbedded(dir, 1, port)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	sb := service.NewStreamBuilder()
	if err := sb.SetYAML(fmt.Sprintf(`
input:
  caracal_http:
    address: %s
    timeout: 3s
    sources: [{id: d, path: d, auth: {type: none}}]
output:
  caracal_kafka:
    seed_brokers: [127.0.0.1:%d]
`, addr, port)); err != nil {
		t.Fatal(err)
	}
	stream, err := sb.Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = stream.Run(ctx) }()
	post := func() (int, string) {
		resp, err := http.Post("http://"+addr+"/http/d", "application/json", strings.NewReader(`{"a":1}`))
		if err != nil {
			return 0, ""
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	waitFor := func(want int) string {
		deadline := time.Now().Add(60 * time.Second)
		for {
			code, ra := post()
			if code == want {
				return ra
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %d within 60s (last %d)", want, code)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	waitFor(200)
	broker.Close()
	if ra := waitFor(503); ra == "" {
		t.Fatal("503 without Retry-After")
	}
	broker, err = kafka.StartEmbedded(dir, 1, port)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	waitFor(200)
	_ = stream.Stop(context.Background())
}

// A source the input could never serve stops the stream from being built,
// with lint's message, rather than leaving it without a listener and
// retrying every second.
func TestInputRefusesSourcesItCouldNeverServe(t *testing.T) {
	for name, c := range map[string]struct{ conf, want string }{
		"buffer": {"max_buffered_bytes: 1000000\n    sources: [{id: d, path: d, auth: {type: none}}]",
			"source d may hold 17825792 bytes in one request (max_body_bytes + max_decompressed_bytes), more than max_buffered_bytes (1000000) for all requests at once: raise max_buffered_bytes or lower the source's limits"},
		"path": {"sources: [{id: a, path: d, auth: {type: none}}, {id: b, path: /d/, auth: {type: none}}]",
			`sources a and b both use path "d": give each its own`},
	} {
		sb := service.NewStreamBuilder()
		if err := sb.SetYAML(fmt.Sprintf("input:\n  caracal_http:\n    address: 127.0.0.1:%d\n    %s\noutput:\n  drop: {}\n", freePort(t), c.conf)); err != nil {
			t.Fatal(err)
		}
		stream, err := sb.Build()
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err = stream.Run(ctx)
			cancel()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
