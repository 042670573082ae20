package httpsource

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Auth types.
const (
	AuthNone         = "none"
	AuthSharedSecret = "shared_secret"
	AuthHMAC         = "hmac"
	AuthBearer       = "bearer"
	AuthBasic        = "basic"
)

// Auth is how a source authenticates its senders.
type Auth struct {
	Type      string
	Header    string // shared_secret, hmac
	Secret    string // shared_secret, hmac
	Algorithm string // hmac: sha256 (default) or sha1
	Token     string // bearer
	Username  string // basic
	Password  string // basic
}

// Source is one webhook endpoint.
type Source struct {
	ID           string
	Label        string
	Path         string
	LogTypes     []string
	Auth         Auth
	MaxBodyBytes int64 // request body incl. headers
	MaxInflated  int64 // decompressed size cap
	// MaxEventBytes caps one event (0: MaxEventBytes).
	MaxEventBytes int
	// EventsPerSecond and BytesPerSecond rate-limit the source (0: none);
	// beyond them requests are answered 429 with Retry-After.
	EventsPerSecond float64
	BytesPerSecond  float64
	// SilentFor raises a SYSTEM_ERROR alert when nothing arrived for this
	// long (0 disables).
	SilentFor time.Duration
	// FirstLine: a text body's first line travels with its events
	// (envelope.MetaFirstLine), as one of the source's log types takes its
	// CSV header from it.
	FirstLine bool
}

// bucket is a token bucket: rate tokens a second, at most burst.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64) *bucket {
	if rate <= 0 {
		return nil
	}
	return &bucket{rate: rate, tokens: rate, last: time.Now()}
}

// take removes n tokens if available; otherwise it reports how long until
// they would be.
func (b *bucket) take(n float64) (bool, time.Duration) {
	if b == nil {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	if n > b.rate {
		n = b.rate // a request larger than a second's budget passes on a full bucket
	}
	if b.tokens >= n {
		b.tokens -= n
		return true, 0
	}
	return false, time.Duration((n - b.tokens) / b.rate * float64(time.Second))
}

// MaxEventBytes is the largest event a source may accept: each event is
// one broker record on caracal.raw, then a normalized event or a
// classification failure (its raw bytes base64-encoded when not UTF-8),
// and those must stay within the topics' 4 MiB records.
const MaxEventBytes = 1 << 20

// Validate checks a source's configuration.
func (s *Source) Validate() error {
	if s.ID == "" || s.Path == "" {
		return errors.New("a source needs an id and a path")
	}
	if err := checkMaxEventBytes(s.ID, s.MaxEventBytes); err != nil {
		return err
	}
	switch s.Auth.Type {
	case AuthNone:
	case AuthSharedSecret:
		if s.Auth.Header == "" || s.Auth.Secret == "" {
			return fmt.Errorf("source %s: shared_secret auth needs header and secret", s.ID)
		}
	case AuthHMAC:
		if s.Auth.Header == "" || s.Auth.Secret == "" {
			return fmt.Errorf("source %s: hmac auth needs header and secret", s.ID)
		}
		if a := s.Auth.Algorithm; a != "" && a != "sha256" && a != "sha1" {
			return fmt.Errorf("source %s: hmac algorithm %q: use sha256 or sha1", s.ID, a)
		}
	case AuthBearer:
		if s.Auth.Token == "" {
			return fmt.Errorf("source %s: bearer auth needs a token", s.ID)
		}
	case AuthBasic:
		if s.Auth.Username == "" || s.Auth.Password == "" {
			return fmt.Errorf("source %s: basic auth needs username and password", s.ID)
		}
	default:
		return fmt.Errorf("source %s: auth type %q: use shared_secret, hmac, bearer, basic or none", s.ID, s.Auth.Type)
	}
	return nil
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// Authenticate checks a request against the source's auth; body is the raw
// (still compressed) request body, which HMAC signs.
func (s *Source) Authenticate(r *http.Request, body []byte) bool {
	a := s.Auth
	switch a.Type {
	case AuthNone:
		return true
	case AuthSharedSecret:
		return eq(r.Header.Get(a.Header), a.Secret)
	case AuthBearer:
		// The scheme's name is case-insensitive (RFC 7235), as in r.BasicAuth.
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		return ok && strings.EqualFold(scheme, "Bearer") && eq(strings.TrimSpace(got), a.Token)
	case AuthBasic:
		u, p, ok := r.BasicAuth()
		// Both compared always, so timing does not tell which was wrong.
		uOK, pOK := eq(u, a.Username), eq(p, a.Password)
		return ok && uOK && pOK
	case AuthHMAC:
		return checkHMAC(r.Header.Get(a.Header), a.Algorithm, a.Secret, body)
	}
	return false
}

// AuthenticateHeaders is the check a request can pass or fail before its
// body is read: the whole check but for HMAC, whose signature header must
// be there. A sender without the secret is refused without its body
// taking room (max_buffered_bytes) or time.
func (s *Source) AuthenticateHeaders(r *http.Request) bool {
	if s.Auth.Type == AuthHMAC {
		return strings.TrimSpace(r.Header.Get(s.Auth.Header)) != ""
	}
	return s.Authenticate(r, nil)
}

// checkHMAC accepts the body's HMAC as lowercase/uppercase hex or base64,
// with or without a "sha256="/"sha1=" prefix (GitHub, Slack style).
func checkHMAC(sig, algorithm, secret string, body []byte) bool {
	var newHash func() hash.Hash
	switch algorithm {
	case "", "sha256":
		algorithm, newHash = "sha256", sha256.New
	case "sha1":
		newHash = sha1.New
	default:
		return false
	}
	sig = strings.TrimSpace(sig)
	if p, ok := strings.CutPrefix(sig, algorithm+"="); ok {
		sig = p
	}
	mac := hmac.New(newHash, []byte(secret))
	mac.Write(body)
	want := mac.Sum(nil)
	if got, err := hex.DecodeString(sig); err == nil && len(got) == len(want) {
		return hmac.Equal(got, want)
	}
	if got, err := base64.StdEncoding.DecodeString(sig); err == nil {
		return hmac.Equal(got, want)
	}
	return false
}

// checkSources refuses what would keep the input from ever listening: two
// sources on one path, or one whose request may hold more than
// max_buffered_bytes. The input's constructor runs it, so `caracal run`
// refuses to start rather than retry its listener every second; `caracal
// lint` reports each at the source's line.
func checkSources(sources []*Source, maxBuffered int64) error {
	if err := checkPaths(sources); err != nil {
		return err
	}
	for _, src := range sources {
		if err := checkBuffered(src.ID, src.MaxBodyBytes, src.MaxInflated, maxBuffered); err != nil {
			return err
		}
	}
	return nil
}

// checkPaths refuses two sources served on one path (/http/<path>).
func checkPaths(sources []*Source) error {
	seen := map[string]string{}
	for _, src := range sources {
		p := strings.Trim(src.Path, "/")
		if other, dup := seen[p]; dup {
			return fmt.Errorf("sources %s and %s both use path %q: give each its own", other, src.ID, p)
		}
		seen[p] = src.ID
	}
	return nil
}

// maxInflated is a source's max_decompressed_bytes, 0 meaning 16 ×
// max_body_bytes.
func maxInflated(maxBody, maxDecompressed int64) int64 {
	if maxDecompressed <= 0 {
		return 16 * maxBody
	}
	return maxDecompressed
}

// checkBuffered refuses a source whose one request may hold more than
// max_buffered_bytes, which all requests share: it would always be
// answered 503. `caracal lint` reports the same at the source's line.
func checkBuffered(id string, maxBody, maxInflated, maxBuffered int64) error {
	if need := maxBody + maxInflated; need > maxBuffered {
		return fmt.Errorf("source %s may hold %d bytes in one request (max_body_bytes + max_decompressed_bytes), more than max_buffered_bytes (%d) for all requests at once: raise max_buffered_bytes or lower the source's limits", id, need, maxBuffered)
	}
	return nil
}

// checkMaxEventBytes refuses a source's max_event_bytes outside 0 (the
// default) to MaxEventBytes; `caracal lint` reports the same at its line.
func checkMaxEventBytes(id string, v int) error {
	if v < 0 || v > MaxEventBytes {
		return fmt.Errorf("source %s: max_event_bytes %d: use at most %d (an event must fit in the broker's records once normalized)", id, v, MaxEventBytes)
	}
	return nil
}

func (s *Source) maxEvent() int {
	if s.MaxEventBytes <= 0 {
		return MaxEventBytes
	}
	return s.MaxEventBytes
}
