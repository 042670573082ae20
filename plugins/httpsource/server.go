package httpsource

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request is one accepted POST, split into events, waiting for the broker's
// acknowledgment of all of them.
type Request struct {
	ID         string
	Source     *Source
	Events     [][]byte
	ReceivedAt time.Time
	done       chan error
}

// Ack reports the outcome; the HTTP handler answers from it.
func (r *Request) Ack(err error) {
	select {
	case r.done <- err:
	default:
	}
}

// Status is what GET / shows.
type Status struct {
	Version string   `json:"version"`
	Sources []string `json:"sources"`
	Broker  string   `json:"broker"`
	Lake    string   `json:"lake"`
}

// Server is the HTTP listener shared by all sources.
type Server struct {
	sources  map[string]*Source // by path
	requests chan *Request
	timeout  time.Duration
	status   func() Status

	srv      *http.Server
	ln       net.Listener
	inflight sync.WaitGroup
	closing  chan struct{}
	once     sync.Once
}

// NewServer serves the sources on addr; accepted requests are handed out on
// Requests().
func NewServer(sources []*Source, timeout time.Duration, status func() Status) (*Server, error) {
	s := &Server{
		sources:  map[string]*Source{},
		requests: make(chan *Request),
		timeout:  timeout,
		status:   status,
		closing:  make(chan struct{}),
	}
	for _, src := range sources {
		if err := src.Validate(); err != nil {
			return nil, err
		}
		p := strings.Trim(src.Path, "/")
		if _, dup := s.sources[p]; dup {
			return nil, fmt.Errorf("two sources use path %q", p)
		}
		s.sources[p] = src
	}
	return s, nil
}

// Listen starts serving on addr.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Requests delivers accepted requests.
func (s *Server) Requests() <-chan *Request { return s.requests }

// Close stops accepting and waits for in-flight requests to be answered.
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		close(s.closing)
		if s.srv != nil {
			err = s.srv.Shutdown(ctx)
		}
	})
	return err
}

type errorBody struct {
	Error  string `json:"error"`
	Source string `json:"source,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, source, msg string) {
	writeJSON(w, code, errorBody{Error: msg, Source: source})
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		writeJSON(w, http.StatusOK, s.status())
		return
	case r.URL.Path == "/healthz":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/http/")
	if !ok {
		fail(w, http.StatusNotFound, "", "not found: sources are at /http/<path>")
		return
	}
	src := s.sources[strings.Trim(path, "/")]
	if src == nil {
		fail(w, http.StatusNotFound, "", "unknown source")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(w, http.StatusMethodNotAllowed, src.ID, "only POST is accepted")
		return
	}
	s.handlePost(w, r, src)
}

func headerBytes(r *http.Request) int64 {
	n := int64(len(r.Method) + len(r.URL.RequestURI()) + 12)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += int64(len(k) + len(v) + 4)
		}
	}
	return n
}

func (s *Server) handlePost(w http.ResponseWriter, r *http.Request, src *Source) {
	reqID := newRequestID()
	w.Header().Set("X-Request-Id", reqID)
	limit := src.MaxBodyBytes - headerBytes(r)
	if r.ContentLength > limit || limit <= 0 {
		fail(w, http.StatusRequestEntityTooLarge, src.ID, fmt.Sprintf("request larger than %d bytes", src.MaxBodyBytes))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		fail(w, http.StatusBadRequest, src.ID, "reading body: "+err.Error())
		return
	}
	if int64(len(body)) > limit {
		fail(w, http.StatusRequestEntityTooLarge, src.ID, fmt.Sprintf("request larger than %d bytes", src.MaxBodyBytes))
		return
	}
	if !src.Authenticate(r, body) {
		fail(w, http.StatusUnauthorized, src.ID, "authentication failed")
		return
	}
	plain, _, err := Decompress(body, src.MaxInflated)
	switch {
	case errors.Is(err, ErrTooLarge):
		fail(w, http.StatusRequestEntityTooLarge, src.ID, fmt.Sprintf("decompressed body larger than %d bytes", src.MaxInflated))
		return
	case errors.Is(err, ErrUnsupported):
		fail(w, http.StatusUnsupportedMediaType, src.ID, err.Error())
		return
	case err != nil:
		fail(w, http.StatusBadRequest, src.ID, err.Error())
		return
	}
	events, err := Split(plain)
	if err != nil {
		fail(w, http.StatusBadRequest, src.ID, err.Error())
		return
	}
	req := &Request{ID: reqID, Source: src, Events: events, ReceivedAt: time.Now().UTC(), done: make(chan error, 1)}
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case s.requests <- req:
	case <-timer.C:
		overloaded(w, src.ID, "the pipeline is not taking events: try again later")
		return
	case <-s.closing:
		overloaded(w, src.ID, "shutting down: try again later")
		return
	}
	select {
	case err := <-req.done:
		if err != nil {
			overloaded(w, src.ID, "the broker did not acknowledge the events: try again later")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"request_id": reqID, "events": len(events)})
	case <-timer.C:
		overloaded(w, src.ID, "the broker did not acknowledge the events in time: try again later")
	}
}

func overloaded(w http.ResponseWriter, source, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(5))
	fail(w, http.StatusServiceUnavailable, source, msg)
}
