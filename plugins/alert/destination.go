package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/redact"
)

// Destination delivers alerts somewhere.
type Destination interface {
	ID() string
	Accepts(a *envelope.Alert) bool
	Deliver(ctx context.Context, a *envelope.Alert) error
}

// Filter selects which alerts a destination gets, but for those of rules
// that name it in OutputIds (see takes).
type Filter struct {
	MinSeverity string
	LogTypes    []string
	Tags        []string
	RuleIDs     []string
}

// NormalizeSeverity spells a configured severity as envelope.Severities do
// ("high" is High); "" (no minimum) stays "". Anything else is an error:
// read as Info, it would let every alert through.
func NormalizeSeverity(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if i := envelope.SeverityRank(s); i >= 0 {
		return envelope.Severities[i], nil
	}
	return "", fmt.Errorf("unknown severity %q: use one of %s", s, strings.Join(envelope.Severities, ", "))
}

func anyIn(have, want []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}

// Match reports whether the alert passes the filter. System errors pass
// every filter but the severity: operators must hear about them.
func (f Filter) Match(a *envelope.Alert) bool {
	// An alert of an unknown severity ranks as Info, as it always did.
	if f.MinSeverity != "" && max(envelope.SeverityRank(a.Severity), 0) < envelope.SeverityRank(f.MinSeverity) {
		return false
	}
	if a.Type == envelope.TypeSystemError {
		return true
	}
	return anyIn(a.LogTypes, f.LogTypes) && anyIn(a.Tags, f.Tags) && anyIn([]string{a.ID}, f.RuleIDs)
}

// Retry is the delivery retry policy: exponential backoff with jitter on
// 5xx, 429 and network errors, honouring Retry-After; other 4xx fail at once.
type Retry struct {
	MaxAttempts int
	Initial     time.Duration
	Max         time.Duration
}

// Attempt is the record of one delivery attempt.
type Attempt struct {
	Destination string `json:"destination"`
	AlertID     string `json:"alert_id"`
	Attempt     int    `json:"attempt"`
	Status      int    `json:"status,omitempty"`
	Error       string `json:"error,omitempty"`
	At          string `json:"at"`
}

// permanent marks errors not worth retrying.
type permanent struct{ error }

// Webhook is Panther's custom webhook: the alert as JSON, signed with
// HMAC-SHA256 when a secret is set.
type Webhook struct {
	Name    string
	URL     string
	Secret  string
	Headers map[string]string
	Filter  Filter
	Retry   Retry
	Client  *http.Client
	// OnAttempt, when set, receives a record of every attempt.
	OnAttempt func(Attempt)
}

// ID implements Destination.
func (w *Webhook) ID() string { return w.Name }

// Accepts implements Destination.
func (w *Webhook) Accepts(a *envelope.Alert) bool { return w.Filter.Match(a) }

// Deliver posts the alert, retrying per the policy.
func (w *Webhook) Deliver(ctx context.Context, a *envelope.Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return deliverWithRetry(ctx, w.Name, a.AlertID, w.Retry, w.OnAttempt, func(ctx context.Context) (int, time.Duration, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
		if err != nil {
			return 0, 0, permanent{err}
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "Caracal")
		req.Header.Set("Idempotency-Key", a.AlertID)
		req.Header.Set("X-Caracal-Alert-Id", a.AlertID)
		if w.Secret != "" {
			mac := hmac.New(sha256.New, []byte(w.Secret))
			mac.Write(body)
			req.Header.Set("X-Caracal-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		}
		for k, v := range w.Headers {
			req.Header.Set(k, v)
		}
		return doHTTP(w.Client, req)
	})
}

// newClient is the destinations' HTTP client. It follows no redirect:
// Go's client re-sends a 307/308 with its body and custom headers (an API
// key from headers:, a routing key in the body) to any host the Location
// names. A destination that redirects gets its url updated instead.
func newClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// defaultClient serves destinations built without a client.
var defaultClient = newClient()

// doHTTP sends a request and classifies the answer: 2xx ok; 429/5xx
// retryable (with the server's Retry-After); other statuses permanent.
func doHTTP(c *http.Client, req *http.Request) (int, time.Duration, error) {
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		// A webhook URL's path is its secret; the error goes to the
		// logs, the lake and other destinations' SYSTEM_ERROR alerts.
		return 0, 0, redact.Error(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		wait := time.Duration(0)
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		}
		return resp.StatusCode, wait, fmt.Errorf("HTTP %d", resp.StatusCode)
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return resp.StatusCode, 0, permanent{fmt.Errorf("HTTP %d redirect to %s, not followed: give the destination its new url", resp.StatusCode, redact.URL(resp.Header.Get("Location")))}
	default:
		return resp.StatusCode, 0, permanent{fmt.Errorf("HTTP %d (not retried)", resp.StatusCode)}
	}
}

func deliverWithRetry(ctx context.Context, dest, alertID string, r Retry, onAttempt func(Attempt),
	try func(context.Context) (int, time.Duration, error)) error {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 10
	}
	if r.Initial <= 0 {
		r.Initial = 500 * time.Millisecond
	}
	if r.Max <= 0 {
		r.Max = 30 * time.Second
	}
	backoff := r.Initial
	var err error
	for attempt := 1; attempt <= r.MaxAttempts; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var status int
		var wait time.Duration
		status, wait, err = try(actx)
		cancel()
		if onAttempt != nil {
			rec := Attempt{Destination: dest, AlertID: alertID, Attempt: attempt, Status: status, At: envelope.FormatTime(time.Now())}
			if err != nil {
				rec.Error = err.Error()
			}
			onAttempt(rec)
		}
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) || attempt == r.MaxAttempts {
			break
		}
		if wait <= 0 {
			wait = backoff/2 + time.Duration(rand.Int64N(int64(backoff)))
		}
		if wait > r.Max {
			wait = r.Max
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff *= 2
		if backoff > r.Max {
			backoff = r.Max
		}
	}
	return fmt.Errorf("destination %s: alert %s: %w", dest, alertID, err)
}
