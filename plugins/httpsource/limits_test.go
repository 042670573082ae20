package httpsource

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Senders that open many connections and stall mid-body cannot make the
// process buffer more than max_buffered_bytes: past it requests are
// answered 503 with Retry-After before their body is read. A stalled
// sender is cut off after read_timeout, which frees its room. Before the
// bound, 1,500 such connections of 900 KB each held 1.4 GB of memory, for
// as long as they stayed open.
func TestStalledSendersCannotFillTheMemory(t *testing.T) {
	src := &Source{ID: "open", Path: "open", Auth: Auth{Type: AuthNone}, MaxBodyBytes: 1 << 20, MaxInflated: 1 << 20}
	const stalled, declared = 3, 1_000_000
	// The stalled senders hold their room until the read timeout cuts them
	// off: 10 s leaves a loaded machine (CI runs packages side by side) time
	// to see the room taken; with 1 s, one slow probe could miss it, and
	// with 4 s a run of the whole suite once did.
	srv, err := limitedServer(t, src, 2*time.Second, stalled*declared+100_000, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for r := range srv.Requests() {
			r.Ack(nil)
		}
	}()
	url := "http://" + srv.Addr() + "/http/open"

	var conns []net.Conn
	for range stalled {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /http/open HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n{\"a\":\"%s", declared, strings.Repeat("x", 500_000))
		conns = append(conns, c)
	}
	// Probing before all three hold their room raced them: a probe's
	// 200 KB in flight left the third no room, it was answered 503, and
	// every later probe fitted.
	for deadline := time.Now().Add(8 * time.Second); srv.held.Load() < stalled*declared; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stalled senders hold %d bytes of room after 8 s, want %d", srv.held.Load(), stalled*declared)
		}
	}
	body := []byte(`{"a":"` + strings.Repeat("y", 200_000) + `"}`)
	code, msg, hdr := do(t, "POST", url, body, nil)
	if code != 503 || hdr.Get("Retry-After") == "" || !strings.Contains(msg, "try again later") {
		t.Fatalf("a request while stalled senders hold the room = %d %q (Retry-After %q), want 503 with Retry-After", code, msg, hdr.Get("Retry-After"))
	}
	// A small compressed body fits, its decompressed events do not.
	if code, msg, _ = do(t, "POST", url, gz(body), nil); code != 503 {
		t.Fatalf("a body inflating past the room = %d %q, want 503", code, msg)
	}
	if code, msg, _ = do(t, "POST", url, []byte(`{"a":1}`), nil); code != 200 {
		t.Fatalf("a small request that fits = %d %q, want 200", code, msg)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil && !isClosed(err) {
			t.Fatalf("stalled sender %d was not cut off: %v", i, err)
		}
	}
	// Their room is freed as their handlers return, just after answering.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, msg, _ = do(t, "POST", url, body, nil); code == 200 {
			break
		}
	}
	if code != 200 {
		t.Fatalf("once the stalled senders were cut off = %d %q, want 200", code, msg)
	}
}

// isClosed: the server closed the connection rather than answer.
func isClosed(err error) bool {
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// limitedServer is a Server for src with the given limits, set up by
// configure before it listens; listenErr is Listen's error, the server nil.
func limitedServer(t *testing.T, src *Source, timeout time.Duration, maxBuffered int64, readTimeout time.Duration, configure func(*Server)) (_ *Server, listenErr error) {
	t.Helper()
	srv, err := NewServer([]*Source{src}, timeout, func() Status { return Status{} })
	if err != nil {
		t.Fatal(err)
	}
	srv.SetLimits(maxBuffered, readTimeout)
	if configure != nil {
		configure(srv)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		return nil, err
	}
	t.Cleanup(func() { srv.Close(t.Context()) })
	return srv, nil
}

// A source whose one request may hold more than all requests may at once
// would be answered 503 for ever: the listener refuses to start, saying
// what to change.
func TestSourceLargerThanTheRoomIsRefused(t *testing.T) {
	src := &Source{ID: "big", Path: "big", Auth: Auth{Type: AuthNone}, MaxBodyBytes: 1 << 20, MaxInflated: 16 << 20}
	if _, err := limitedServer(t, src, time.Second, 8<<20, time.Second, nil); err == nil || !strings.Contains(err.Error(), "raise max_buffered_bytes") {
		t.Fatalf("Listen = %v, want a refusal naming max_buffered_bytes", err)
	}
}

// Each event counts in max_buffered_bytes with what the pipeline keeps for
// it: a small gzip'd body of millions of empty events (4 GB of memory
// before) is refused with 413, saying what to do. The room is held until
// the pipeline is done with the events, even when the sender was answered
// 503 before, and freed then.
func TestEventsCountInTheRoomUntilThePipelineIsDone(t *testing.T) {
	src := &Source{ID: "lines", Path: "lines", Auth: Auth{Type: AuthNone}, MaxBodyBytes: 1 << 20, MaxInflated: 8 << 20}
	obs := &bufferedObserver{}
	srv, err := limitedServer(t, src, time.Second, 16<<20, time.Minute, func(s *Server) { s.SetObserver(obs) })
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + srv.Addr() + "/http/lines"
	lines := func(n int) []byte { return gz([]byte(strings.Repeat("{}\n", n))) }

	code, msg, _ := do(t, "POST", url, lines(100_000), nil)
	if code != 413 || !strings.Contains(msg, "events in one request") || !strings.Contains(msg, "send fewer events") {
		t.Fatalf("100,000 events against 16 MiB = %d %q, want 413", code, msg)
	}
	// 20,000 events take 10 MB of the 16 MiB: a second request does not
	// fit while the pipeline holds the first, though its sender was
	// answered 503 when the broker was slow.
	held := make(chan *Request, 1)
	go func() { held <- <-srv.Requests() }()
	if code, msg, _ = do(t, "POST", url, lines(20_000), nil); code != 503 {
		t.Fatalf("a request the pipeline did not finish in time = %d %q, want 503", code, msg)
	}
	if code, msg, _ = do(t, "POST", url, lines(20_000), nil); code != 503 || !strings.Contains(msg, "too many requests") {
		t.Fatalf("a request while the pipeline holds the first = %d %q, want 503 (no room)", code, msg)
	}
	if now := obs.now.Load(); now < 20_000*EventOverhead {
		t.Fatalf("caracal_http_buffered_bytes while the pipeline holds the first request: %d", now)
	}
	first := <-held
	if len(first.Events) != 20_000 {
		t.Fatalf("the first request carried %d events", len(first.Events))
	}
	first.Ack(nil)
	go func() {
		for r := range srv.Requests() {
			r.Ack(nil)
		}
	}()
	for i := range 5 {
		if code, msg, _ = do(t, "POST", url, lines(20_000), nil); code != 200 {
			t.Fatalf("request %d once the pipeline is done with each = %d %q, want 200", i+1, code, msg)
		}
	}
	if now := obs.now.Load(); now != 0 {
		t.Fatalf("caracal_http_buffered_bytes once every request is done: %d, want 0", now)
	}
}

// bufferedObserver keeps the last caracal_http_buffered_bytes.
type bufferedObserver struct{ now atomic.Int64 }

func (*bufferedObserver) Request(string, int, int, int, int, time.Duration) {}
func (o *bufferedObserver) Buffered(n int64)                                { o.now.Store(n) }

// A sender without the secret is answered 401 from its headers, before
// its body is read: it takes no room and waits for nothing. Before, the
// server read the declared megabyte first (or waited read_timeout for it).
func TestWrongSecretIsRefusedBeforeTheBody(t *testing.T) {
	for _, auth := range []Auth{
		{Type: AuthBearer, Token: "t0k3n"},
		{Type: AuthSharedSecret, Header: "X-Secret", Secret: "s3cr3t"},
		{Type: AuthBasic, Username: "u", Password: "p"},
		{Type: AuthHMAC, Header: "X-Signature", Secret: "k", Algorithm: "sha256"},
	} {
		t.Run(auth.Type, func(t *testing.T) {
			srv, _ := server(t, nil, &Source{ID: "s", Path: "s", Auth: auth})
			c, err := net.Dial("tcp", srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// Wrong credentials (none, for HMAC), and no body at all.
			fmt.Fprintf(c, "POST /http/s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nope\r\nX-Secret: nope\r\nContent-Length: 1000000\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			status, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.Contains(status, " 401 ") {
				t.Fatalf("answer before the body: %q %v, want 401", status, err)
			}
		})
	}
}

// /readyz tells a load balancer whether to send this listener events: not
// while the broker is out of reach (nor while the process drains, which
// the input's check adds).
func TestReadyz(t *testing.T) {
	var brokerErr error
	src := &Source{ID: "s", Path: "s", Auth: Auth{Type: AuthNone}, MaxBodyBytes: 1 << 20, MaxInflated: 1 << 20}
	srv, err := limitedServer(t, src, time.Second, DefaultMaxBufferedBytes, time.Minute,
		func(s *Server) { s.SetReadiness(func(context.Context) error { return brokerErr }) })
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + srv.Addr() + "/readyz"
	if code, body, _ := do(t, "GET", url, nil, nil); code != 200 || !strings.Contains(body, `"ready"`) {
		t.Fatalf("ready: %d %s", code, body)
	}
	brokerErr = errors.New("broker [b:9092] unreachable")
	if code, body, _ := do(t, "GET", url, nil, nil); code != 503 || !strings.Contains(body, "unreachable") {
		t.Fatalf("broker out of reach: %d %s, want 503 with the reason", code, body)
	}
}

// An HMAC source cannot check a sender before reading its body. A sender
// without the key that declared a large body and sent none of it held
// that much of max_buffered_bytes until read_timeout: a few such
// connections had every source answered 503. Room is taken as the body
// arrives, so they hold what they sent.
func TestUnsignedSlowBodiesDoNotTakeTheRoom(t *testing.T) {
	hook := &Source{ID: "hook", Path: "hook", Auth: Auth{Type: AuthHMAC, Header: "X-Signature", Secret: "k3y"}, MaxBodyBytes: 1 << 20, MaxInflated: 1 << 20}
	okta := &Source{ID: "okta", Path: "okta", Auth: Auth{Type: AuthBearer, Token: "t0k3n"}, MaxBodyBytes: 1 << 20, MaxInflated: 1 << 20}
	srv, err := NewServer([]*Source{hook, okta}, 2*time.Second, func() Status { return Status{} })
	if err != nil {
		t.Fatal(err)
	}
	srv.SetLimits(4<<20, time.Minute)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(t.Context()) })
	go func() {
		for r := range srv.Requests() {
			r.Ack(nil)
		}
	}()
	for range 4 {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		before := srv.held.Load()
		fmt.Fprintf(c, "POST /http/hook HTTP/1.1\r\nHost: x\r\nX-Signature: sha256=00\r\nContent-Length: 1048000\r\n\r\n{")
		// Until the server reads it and takes room for it.
		for deadline := time.Now().Add(10 * time.Second); srv.held.Load() == before && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}
	event := []byte(`{"a":"` + strings.Repeat("x", 10000) + `"}`)
	code, body, _ := do(t, "POST", "http://"+srv.Addr()+"/http/okta", event, map[string]string{"Authorization": "Bearer t0k3n"})
	if code != 200 {
		t.Fatalf("POST while 4 unsigned bodies trickle = %d %s, want 200", code, body)
	}
}
