package httpsource

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/inflate"
)

// Request is one accepted POST, split into events, waiting for the broker's
// acknowledgment of all of them. A request with System set carries a source
// health alert instead of events.
type Request struct {
	ID         string
	Source     *Source
	Events     [][]byte
	Header     []byte // the stream's header line, if it had one
	FirstLine  []byte // its first line, for a source with Source.FirstLine
	ReceivedAt time.Time
	System     *envelope.Alert
	done       chan error
	release    func() // frees the request's room (once)
}

// Observer receives per-request figures (metrics).
type Observer interface {
	Request(source string, status int, rawBytes, plainBytes, events int, latency time.Duration)
	// Buffered is the bytes requests hold now (of max_buffered_bytes).
	Buffered(bytes int64)
}

type sourceState struct {
	events, bytes *bucket
	mu            sync.Mutex
	lastSeen      time.Time // the last accepted request, or the start
	silent        bool      // a silence alert is out
	// What the status page shows, since the process started.
	accepted, acceptedEvents, refused int64
	lastAccepted                      time.Time
	lastRefused                       *Refusal
}

// Refusal is a source's last refused request, on the status page: what a
// sender whose posts fail needs to see first.
type Refusal struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
	At     string `json:"at"`
}

// SourceStatus is one source on the status page.
type SourceStatus struct {
	ID       string   `json:"id"`
	Label    string   `json:"label,omitempty"`
	Path     string   `json:"path"`
	LogTypes []string `json:"log_types"`
	Auth     string   `json:"auth"`
	// Since the process started.
	Requests     int64    `json:"requests_accepted"`
	Events       int64    `json:"events_accepted"`
	LastAccepted string   `json:"last_accepted,omitempty"`
	Refused      int64    `json:"requests_refused"`
	LastRefused  *Refusal `json:"last_refused,omitempty"`
	// Silent: a SYSTEM_ERROR said it received nothing for alert_if_silent_for.
	Silent bool `json:"silent"`
}

// Ack reports the outcome; the HTTP handler answers from it. The request's
// room in max_buffered_bytes is free from then on.
func (r *Request) Ack(err error) {
	if r.release != nil {
		r.release()
	}
	select {
	case r.done <- err:
	default:
	}
}

// Status is what GET / shows; the server fills in Sources.
type Status struct {
	Version string         `json:"version"`
	Broker  string         `json:"broker"`
	Lake    string         `json:"lake"`
	Sources []SourceStatus `json:"sources"`
}

// Server is the HTTP listener shared by all sources.
type Server struct {
	sources  map[string]*Source // by path
	state    map[*Source]*sourceState
	requests chan *Request
	timeout  time.Duration
	status   func() Status
	observer Observer
	tls      *tls.Config

	// buffered bounds the bytes that requests hold at once (bodies being
	// read, decompressed events waiting for the broker), and inflating the
	// decompressions under way, each up to its source's limit: an open
	// endpoint must not let senders fill the memory.
	buffered    *semaphore.Weighted
	maxBuffered int64
	held        atomic.Int64 // what buffered has given out, for the metric
	inflating   chan struct{}
	readTimeout time.Duration
	ready       func(context.Context) error
	// details is who sees the status page's detail and /readyz's reason
	// (StatusDetails*).
	details string

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
		state:    map[*Source]*sourceState{},
		requests: make(chan *Request),
		timeout:  timeout,
		status:   status,
		closing:  make(chan struct{}),
	}
	s.SetLimits(DefaultMaxBufferedBytes, DefaultReadTimeout)
	if err := checkPaths(sources); err != nil {
		return nil, err
	}
	for _, src := range sources {
		if err := src.Validate(); err != nil {
			return nil, err
		}
		s.sources[strings.Trim(src.Path, "/")] = src
		s.state[src] = &sourceState{events: newBucket(src.EventsPerSecond), bytes: newBucket(src.BytesPerSecond), lastSeen: time.Now()}
	}
	return s, nil
}

// SetObserver installs the metrics observer (before Listen).
func (s *Server) SetObserver(o Observer) { s.observer = o }

// EventOverhead is what each event of a request is counted in
// max_buffered_bytes besides its own bytes: its message, metadata and
// record in the pipeline (measured: 5.6 million empty events took 4 GB).
const EventOverhead = 512

// Defaults of SetLimits.
const (
	DefaultMaxBufferedBytes = 128 << 20
	DefaultReadTimeout      = time.Minute
)

// SetLimits bounds the bytes all requests hold at once (beyond it they are
// answered 503) and the time a sender may take to send one request (before
// Listen).
func (s *Server) SetLimits(maxBuffered int64, readTimeout time.Duration) {
	s.buffered, s.maxBuffered = semaphore.NewWeighted(maxBuffered), maxBuffered
	s.inflating = make(chan struct{}, runtime.GOMAXPROCS(0))
	s.readTimeout = readTimeout
}

// SetReadiness installs what /readyz checks besides the server itself
// (the broker; before Listen).
func (s *Server) SetReadiness(check func(context.Context) error) { s.ready = check }

// readyz answers whether this listener should be sent events: 503 once it
// is stopping (a load balancer then moves senders to other ingest
// processes before this one closes) or while the broker cannot be reached
// (events would be answered 503 anyway).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.closing:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stopping"})
		return
	default:
	}
	if s.ready != nil {
		if err := s.ready(r.Context()); err != nil {
			body := map[string]string{"status": "not ready"}
			if s.showDetails(r) { // the reason names the brokers
				body["reason"] = err.Error()
			}
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Who sees the status page's detail: the sources' paths (all that guards a
// source with auth none), auth types, broker addresses and the lake, and
// /readyz's reason. Others get the status alone.
const (
	StatusDetailsLoopback = "loopback" // clients on this host, not through a proxy
	StatusDetailsAll      = "all"
	StatusDetailsNone     = "none"
)

// SetStatusDetails sets who sees the status page's detail (before Listen;
// default StatusDetailsLoopback).
func (s *Server) SetStatusDetails(who string) { s.details = who }

// showDetails reports whether r may see the status page's detail. A
// loopback request that carries forwarding headers came through a proxy
// on this host, from anywhere.
func (s *Server) showDetails(r *http.Request) bool {
	switch s.details {
	case StatusDetailsAll:
		return true
	case StatusDetailsNone:
		return false
	}
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// SetTLS serves HTTPS with the given config (before Listen).
func (s *Server) SetTLS(c *tls.Config) { s.tls = c }

// Listen starts serving on addr.
func (s *Server) Listen(addr string) error {
	if err := checkSources(slices.Collect(maps.Values(s.sources)), s.maxBuffered); err != nil {
		return err // limits set after NewServer (SetLimits)
	}
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("listen %s: %w: another process listens there; stop it, or give caracal_http another address (the shipped pipelines/ingest.yaml reads CARACAL_HTTP_ADDRESS)", addr, err)
	}
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	// A sender that stalls mid-request, or keeps an idle connection open,
	// is cut off rather than holding its connection and buffer for ever.
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: s.readTimeout, IdleTimeout: 2 * time.Minute}
	go func() { _ = s.srv.Serve(ln) }()
	go s.watchSilence()
	return nil
}

// watchSilence raises a SYSTEM_ERROR alert for a source that received
// nothing for its SilentFor, and a recovery notice when data returns.
func (s *Server) watchSilence() {
	every := 5 * time.Second
	for src := range s.state {
		if src.SilentFor > 0 && src.SilentFor/2 < every {
			every = max(src.SilentFor/2, 10*time.Millisecond)
		}
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-s.closing:
			return
		case <-tick.C:
		}
		now := time.Now()
		for src, st := range s.state {
			if src.SilentFor <= 0 {
				continue
			}
			st.mu.Lock()
			fire := !st.silent && now.Sub(st.lastSeen) >= src.SilentFor
			if fire {
				st.silent = true
			}
			last := st.lastSeen
			st.mu.Unlock()
			if fire {
				title := fmt.Sprintf("Source %s has received no data for %s (last at %s)", src.ID, src.SilentFor, envelope.FormatTime(last))
				s.system(src, "silent:"+src.ID+":"+envelope.FormatTime(last), title, "Medium")
			}
		}
	}
}

// system hands a source health alert to the pipeline (best effort: it
// waits for the pipeline like a request does).
func (s *Server) system(src *Source, key, title, severity string) {
	now := time.Now().UTC()
	id := sha256.Sum256([]byte("SYSTEM:0:" + key))
	a := &envelope.Alert{
		ID: "caracal.source." + src.ID, AlertID: hex.EncodeToString(id[:16]), CreatedAt: envelope.FormatTime(now),
		UpdatedAt: envelope.FormatTime(now), Severity: severity, Type: envelope.TypeSystemError,
		Link: "caracal://sources/" + src.ID, Title: title, Name: "Source health", Description: title,
		Tags: []string{"source-health"}, Version: "1", AlertContext: map[string]any{"source_id": src.ID, "source_label": src.Label},
		DedupString: key, EventCount: 1, LogTypes: src.LogTypes, Events: []map[string]any{},
	}
	if a.LogTypes == nil {
		a.LogTypes = []string{}
	}
	req := &Request{ID: newRequestID(), Source: src, ReceivedAt: now, System: a, done: make(chan error, 1)}
	select {
	case s.requests <- req:
	case <-s.closing:
	}
}

// seen records an accepted request of a source and sends a recovery
// notice if it had been reported silent.
func (s *Server) seen(src *Source, events int) {
	st := s.state[src]
	st.mu.Lock()
	st.lastSeen = time.Now()
	st.lastAccepted = st.lastSeen
	st.accepted++
	st.acceptedEvents += int64(events)
	recovered := st.silent
	st.silent = false
	st.mu.Unlock()
	if recovered {
		go s.system(src, "recovered:"+src.ID+":"+envelope.FormatTime(time.Now()), fmt.Sprintf("Source %s receives data again", src.ID), "Info")
	}
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
	Source string `json:"source"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// acceptedBody answers an accepted POST (a struct: encoding a map sorts
// its keys, a twentieth of a single-event request's CPU).
type acceptedBody struct {
	RequestID string `json:"request_id"`
	Events    int    `json:"events"`
}

func fail(w http.ResponseWriter, code int, source, msg string) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.reason = msg
	}
	writeJSON(w, code, errorBody{Error: msg, Source: source})
}

// unauthorized answers 401, naming the scheme a client should use when it
// is a standard one (RFC 7235): the shared-secret and HMAC headers are the
// source's own.
func unauthorized(w http.ResponseWriter, src *Source) {
	switch src.Auth.Type {
	case AuthBearer:
		w.Header().Set("WWW-Authenticate", `Bearer realm="caracal"`)
	case AuthBasic:
		w.Header().Set("WWW-Authenticate", `Basic realm="caracal", charset="UTF-8"`)
	}
	fail(w, http.StatusUnauthorized, src.ID, "authentication failed")
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		if !s.showDetails(r) {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok",
				"details": "withheld from this client (caracal_http status_details)"})
			return
		}
		st := s.status()
		st.Sources = s.sourceStatuses()
		writeJSON(w, http.StatusOK, st)
		return
	case r.URL.Path == "/healthz":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return
	case r.URL.Path == "/readyz":
		s.readyz(w, r)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/http/")
	if !ok {
		fail(w, http.StatusNotFound, "", "not found: sources are at /http/<path>")
		return
	}
	src := s.sources[strings.Trim(path, "/")]
	if src == nil {
		fail(w, http.StatusNotFound, strings.Trim(path, "/"), "unknown source")
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

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
	reason string // of an error answer (fail)
}

// sourceStatuses are the sources as the status page shows them, by id.
func (s *Server) sourceStatuses() []SourceStatus {
	out := make([]SourceStatus, 0, len(s.state))
	for src, st := range s.state {
		st.mu.Lock()
		ss := SourceStatus{
			ID: src.ID, Label: src.Label, Path: "/http/" + strings.Trim(src.Path, "/"), LogTypes: src.LogTypes,
			Auth: src.Auth.Type, Requests: st.accepted, Events: st.acceptedEvents,
			Refused: st.refused, LastRefused: st.lastRefused, Silent: st.silent,
		}
		if !st.lastAccepted.IsZero() {
			ss.LastAccepted = envelope.FormatTime(st.lastAccepted)
		}
		st.mu.Unlock()
		out = append(out, ss)
	}
	slices.SortFunc(out, func(a, b SourceStatus) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Server) handlePost(w http.ResponseWriter, r *http.Request, src *Source) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: 200}
	var raw, plain, events int
	defer func() {
		if s.observer != nil {
			s.observer.Request(src.ID, rec.status, raw, plain, events, time.Since(start))
		}
		if rec.status >= 400 {
			st := s.state[src]
			st.mu.Lock()
			st.refused++
			st.lastRefused = &Refusal{Status: rec.status, Error: rec.reason, At: envelope.FormatTime(time.Now())}
			st.mu.Unlock()
		}
	}()
	raw, plain, events = s.post(rec, r, src)
}

func (s *Server) post(w http.ResponseWriter, r *http.Request, src *Source) (rawBytes, plainBytes, nEvents int) {
	reqID := newRequestID()
	w.Header().Set("X-Request-Id", reqID)
	limit := src.MaxBodyBytes - headerBytes(r)
	if r.ContentLength > limit || limit <= 0 {
		fail(w, http.StatusRequestEntityTooLarge, src.ID, fmt.Sprintf("request larger than %d bytes", src.MaxBodyBytes))
		return rawBytes, plainBytes, nEvents
	}
	if !src.AuthenticateHeaders(r) {
		unauthorized(w, src)
		return rawBytes, plainBytes, nEvents
	}
	// The body's room is taken before it is read (its declared length, or
	// the limit when it has none), so senders cannot make the process
	// buffer more than maxBuffered however many connections they open.
	// An HMAC source's sender is known only once its body is read: its
	// room is taken as the body arrives, or anyone could hold it all by
	// declaring large bodies and sending nothing until read_timeout.
	var hold int64
	taking := src.Auth.Type == AuthHMAC
	if !taking {
		hold = limit
		if r.ContentLength >= 0 {
			hold = r.ContentLength
		}
		if !s.take(hold) {
			busy(w, src.ID)
			return rawBytes, plainBytes, nEvents
		}
	}
	// Released when the request is answered without reaching the
	// pipeline, or else once the pipeline is done with its events (the
	// broker acknowledged them or gave up), which may be after a 503.
	handedOff := false
	release := sync.OnceFunc(func() { s.give(hold) })
	defer func() {
		if !handedOff {
			release()
		}
	}()
	var body []byte
	var err error
	if taking {
		body, err = s.readBodyTaking(r, limit, &hold)
	} else {
		body, err = readBody(r, limit)
	}
	if errors.Is(err, errBusy) {
		busy(w, src.ID)
		return rawBytes, plainBytes, nEvents
	}
	if err != nil {
		fail(w, http.StatusBadRequest, src.ID, "reading body: "+err.Error())
		return rawBytes, plainBytes, nEvents
	}
	if int64(len(body)) > limit {
		fail(w, http.StatusRequestEntityTooLarge, src.ID, fmt.Sprintf("request larger than %d bytes", src.MaxBodyBytes))
		return rawBytes, plainBytes, nEvents
	}
	rawBytes = len(body)
	if !src.Authenticate(r, body) {
		unauthorized(w, src)
		return rawBytes, plainBytes, nEvents
	}
	plain, inflated, err := s.decompress(r.Context(), r, body, src)
	switch {
	case errors.Is(err, errBusy):
		busy(w, src.ID)
		return rawBytes, plainBytes, nEvents
	case errors.Is(err, inflate.ErrTooLarge):
		fail(w, http.StatusRequestEntityTooLarge, src.ID, fmt.Sprintf("decompressed body larger than %d bytes", src.MaxInflated))
		return rawBytes, plainBytes, nEvents
	case errors.Is(err, inflate.ErrUnsupported):
		fail(w, http.StatusUnsupportedMediaType, src.ID, err.Error())
		return rawBytes, plainBytes, nEvents
	case err != nil:
		fail(w, http.StatusBadRequest, src.ID, err.Error())
		return rawBytes, plainBytes, nEvents
	}
	plainBytes = len(plain)
	if inflated {
		// The decompressed events are held until the broker has them.
		if !s.take(int64(len(plain))) {
			busy(w, src.ID)
			return rawBytes, plainBytes, nEvents
		}
		hold += int64(len(plain))
	}
	// Each event becomes a message with its metadata and a record: 16 MiB
	// of tiny lines made 5.6 million, 4 GB of memory. Splitting stops past
	// what max_buffered_bytes could ever hold of one request.
	maxEvents := (s.maxBuffered - hold) / EventOverhead
	events, err := SplitLimited(plain, int(maxEvents), src.maxEvent())
	if errors.Is(err, ErrEventTooLarge) {
		fail(w, http.StatusRequestEntityTooLarge, src.ID, fmt.Sprintf("an XML element larger than the %d bytes an event may be (max_event_bytes)", src.maxEvent()))
		return rawBytes, plainBytes, nEvents
	}
	if errors.Is(err, ErrTooManyEvents) {
		fail(w, http.StatusRequestEntityTooLarge, src.ID, fmt.Sprintf("more than %d events in one request, what max_buffered_bytes (%d) allows at %d bytes an event besides its own: send fewer events a request", maxEvents, s.maxBuffered, EventOverhead))
		return rawBytes, plainBytes, nEvents
	}
	if err == nil {
		more := EventOverhead * int64(len(events))
		if !s.take(more) {
			busy(w, src.ID)
			return rawBytes, plainBytes, nEvents
		}
		hold += more
	}
	if err != nil {
		fail(w, http.StatusBadRequest, src.ID, err.Error())
		return rawBytes, plainBytes, nEvents
	}
	header, events := SplitHeader(events)
	nEvents = len(events)
	maxEvent := src.maxEvent()
	if len(header) > maxEvent {
		fail(w, http.StatusRequestEntityTooLarge, src.ID, fmt.Sprintf("header line of %d bytes, larger than the %d an event may be", len(header), maxEvent))
		return rawBytes, plainBytes, nEvents
	}
	for i, ev := range events {
		if len(ev) > maxEvent {
			fail(w, http.StatusRequestEntityTooLarge, src.ID, fmt.Sprintf("event %d is %d bytes, larger than the %d an event may be (max_event_bytes)", i+1, len(ev), maxEvent))
			return rawBytes, plainBytes, nEvents
		}
	}
	st := s.state[src]
	if ok, wait := st.events.take(float64(len(events))); !ok {
		tooMany(w, src.ID, wait, "event rate limit exceeded")
		return rawBytes, plainBytes, nEvents
	}
	if ok, wait := st.bytes.take(float64(len(plain))); !ok {
		tooMany(w, src.ID, wait, "byte rate limit exceeded")
		return rawBytes, plainBytes, nEvents
	}
	req := &Request{ID: reqID, Source: src, Events: events, Header: header, ReceivedAt: time.Now().UTC(), done: make(chan error, 1), release: release}
	if src.FirstLine && header == nil && opensWithText(events) {
		req.FirstLine = events[0]
	}
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case s.requests <- req:
		handedOff = true
	case <-timer.C:
		overloaded(w, src.ID, "the pipeline is not taking events: try again later")
		return rawBytes, plainBytes, nEvents
	case <-s.closing:
		overloaded(w, src.ID, "shutting down: try again later")
		return rawBytes, plainBytes, nEvents
	}
	select {
	case err := <-req.done:
		if err != nil {
			overloaded(w, src.ID, "the broker did not acknowledge the events: try again later")
			return rawBytes, plainBytes, nEvents
		}
		s.seen(src, len(events))
		writeJSON(w, http.StatusOK, acceptedBody{RequestID: reqID, Events: len(events)})
	case <-timer.C:
		overloaded(w, src.ID, "the broker did not acknowledge the events in time: try again later")
	}
	return rawBytes, plainBytes, nEvents
}

func tooMany(w http.ResponseWriter, source string, wait time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
	fail(w, http.StatusTooManyRequests, source, msg)
}

// busy answers a request that max_buffered_bytes has no room for.
func busy(w http.ResponseWriter, source string) {
	overloaded(w, source, "too many requests being received at once: try again later")
}

// StartingHandler answers as the input does while it cannot take events
// yet (caracal run waiting for its broker): live (/healthz), and 503 with
// Retry-After to everything else, readiness and POSTs alike.
func StartingHandler(msg string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
			return
		}
		overloaded(w, strings.Trim(strings.TrimPrefix(r.URL.Path, "/http/"), "/"), msg)
	})
}

func overloaded(w http.ResponseWriter, source, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(5))
	fail(w, http.StatusServiceUnavailable, source, msg)
}

// take reserves n bytes of max_buffered_bytes, or reports that there is
// no room; give returns them.
func (s *Server) take(n int64) bool {
	if !s.buffered.TryAcquire(n) {
		return false
	}
	s.held.Add(n)
	s.observeBuffered()
	return true
}

func (s *Server) give(n int64) {
	s.buffered.Release(n)
	s.held.Add(-n)
	s.observeBuffered()
}

// observeBuffered reports held as it is after the caller's change (read
// again, so that the last report is the latest even when takes and gives
// race).
func (s *Server) observeBuffered() {
	if s.observer != nil {
		s.observer.Buffered(s.held.Load())
	}
}

var errBusy = errors.New("busy")

// decompress inflates a compressed body once one of the decompression
// slots is free: each may allocate up to the source's limit (16 MiB by
// default), so only as many run at once as there are cores to run them.
// inflated says that plain is new memory rather than body itself.
func (s *Server) decompress(ctx context.Context, r *http.Request, body []byte, src *Source) (plain []byte, inflated bool, _ error) {
	enc := inflate.Declared(body, r.Header.Get("Content-Encoding"))
	if enc == "" {
		return body, false, nil
	}
	select {
	case s.inflating <- struct{}{}:
	case <-ctx.Done():
		return nil, false, errBusy
	case <-s.closing:
		return nil, false, errBusy
	}
	defer func() { <-s.inflating }()
	plain, _, err := inflate.DecompressAs(enc, body, src.MaxInflated)
	return plain, true, err
}

// readBody reads up to limit+1 bytes of the request's body. A body of
// known length (checked against limit before) is read into a buffer of
// its size: io.ReadAll grows one step by step, allocating about twice the
// body and copying it on the way.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= limit {
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		return body, nil // net/http ends the body at its Content-Length
	}
	return io.ReadAll(io.LimitReader(r.Body, limit+1))
}

// readBodyTaking is readBody taking room in max_buffered_bytes for the
// buffer as the body arrives (held adds up what it took); errBusy when
// there is none.
func (s *Server) readBodyTaking(r *http.Request, limit int64, held *int64) ([]byte, error) {
	most := limit + 1
	if r.ContentLength >= 0 && r.ContentLength < most {
		most = r.ContentLength
	}
	var body []byte
	chunk := make([]byte, 16<<10)
	in := io.LimitReader(r.Body, most)
	for {
		n, err := in.Read(chunk)
		if n > 0 {
			if len(body)+n > cap(body) {
				grown := min(max(2*cap(body), len(body)+n), int(most))
				if !s.take(int64(grown - cap(body))) {
					return nil, errBusy
				}
				*held += int64(grown - cap(body))
				body = append(make([]byte, 0, grown), body...)
			}
			body = append(body, chunk[:n]...)
		}
		if err == io.EOF {
			return body, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
