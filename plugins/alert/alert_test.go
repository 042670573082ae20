package alert

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

func match(rule, dedup string, period, threshold int) map[string]any {
	return map[string]any{
		"p_rule_id": rule, "p_dedup_string": dedup, "p_rule_severity": "High", "p_match_type": "RULE",
		"p_rule_dedup_period_minutes": int64(period), "p_rule_threshold": int64(threshold),
		"p_alert_title": "t", "p_log_type": "AWS.CloudTrail", "p_rule_tags": []any{"x"},
		"p_alert_context": map[string]any{"k": "v"}, "eventName": "E",
	}
}

func TestDedupWindow(t *testing.T) {
	s := NewState(0)
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	first := s.Observe(match("R", "a", 60, 1), t0)
	if first.Alert == nil || first.Alert.EventCount != 1 {
		t.Fatalf("first match must open an alert: %+v", first)
	}
	if first.Alert.AlertID != AlertID("R", 1, "a") {
		t.Fatal("alert id is not deterministic")
	}
	again := s.Observe(match("R", "a", 60, 1), t0.Add(30*time.Minute))
	if again.Alert != nil || again.Attached == nil || again.Attached.EventCount != 2 {
		t.Fatalf("a match inside the window must attach: %+v", again)
	}
	other := s.Observe(match("R", "b", 60, 1), t0.Add(31*time.Minute))
	if other.Alert == nil {
		t.Fatal("another dedup string opens its own alert")
	}
	later := s.Observe(match("R", "a", 60, 1), t0.Add(61*time.Minute))
	if later.Alert == nil || later.Alert.AlertID != AlertID("R", 2, "a") || later.Alert.AlertID == first.Alert.AlertID {
		t.Fatalf("after the window the next match opens alert number 2: %+v", later)
	}
}

// A match redelivered after its batch was refused downstream yields the same
// alert again rather than attaching to it (which would lose the alert).
// An alert keeps at most MaxEventsBytes of events however large they are:
// it is produced to the broker, and a record too large for it would stop
// the alert stage for every rule.
func TestAlertEventsAreBounded(t *testing.T) {
	s := NewState(0)
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	big := func(i int) map[string]any {
		m := match("R", "a", 60, 1)
		m["p_row_id"] = fmt.Sprint("row-", i)
		m["requestParameters"] = strings.Repeat("x", 100<<10)
		return m
	}
	a := s.Observe(big(0), t0).Alert
	for i := 1; i < MaxEvents+3; i++ {
		s.Observe(big(i), t0.Add(time.Duration(i)*time.Second))
	}
	if len(a.Events) != MaxEvents || a.EventCount != MaxEvents+3 {
		t.Fatalf("%d events kept of %d, want %d", len(a.Events), a.EventCount, MaxEvents)
	}
	whole := 0
	for i, ev := range a.Events {
		if ev["p_row_id"] != fmt.Sprint("row-", i) {
			t.Fatalf("event %d is %v", i, ev["p_row_id"])
		}
		if ev["requestParameters"] != nil {
			whole++
		} else if !strings.Contains(fmt.Sprint(ev["p_event_omitted"]), "in the lake under its p_row_id") {
			t.Fatalf("event %d neither whole nor a stub: %v", i, ev)
		}
	}
	b, _ := json.Marshal(a)
	if whole != 2 || len(b) > MaxEventsBytes+4<<10 {
		t.Fatalf("%d whole events, alert of %d bytes; want 2 and at most %d", whole, len(b), MaxEventsBytes+4<<10)
	}
}

func TestRedeliveredOpeningMatchReemits(t *testing.T) {
	s := NewState(0)
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	m := match("R", "a", 60, 1)
	m["p_row_id"] = "row-1"
	first := s.Observe(m, t0)
	again := s.Observe(m, t0.Add(time.Second))
	if first.Alert == nil || again.Alert == nil || again.Alert.AlertID != first.Alert.AlertID || again.Alert.EventCount != 1 {
		t.Fatalf("redelivery: first %+v again %+v", first.Alert, again.Alert)
	}
	other := match("R", "a", 60, 1)
	other["p_row_id"] = "row-2"
	if o := s.Observe(other, t0.Add(2*time.Second)); o.Alert != nil || o.Attached == nil {
		t.Fatal("a different match must attach")
	}
}

func TestThreshold(t *testing.T) {
	s := NewState(0)
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 2; i++ {
		if o := s.Observe(match("R", "a", 10, 3), t0.Add(time.Duration(i)*time.Minute)); o.Alert != nil {
			t.Fatalf("alert before the threshold at match %d", i+1)
		}
	}
	o := s.Observe(match("R", "a", 10, 3), t0.Add(2*time.Minute))
	if o.Alert == nil || o.Alert.EventCount != 3 || o.Alert.CreatedAt != envelope.FormatTime(t0.Add(2*time.Minute)) {
		t.Fatalf("third match must open the alert, created when crossed: %+v", o.Alert)
	}
	// Matches spread wider than the window never reach the threshold.
	s2 := NewState(0)
	for i := 0; i < 5; i++ {
		if o := s2.Observe(match("R", "a", 10, 3), t0.Add(time.Duration(i)*11*time.Minute)); o.Alert != nil {
			t.Fatalf("sparse matches reached the threshold at %d", i)
		}
	}
}

// A Threshold alert's events are those of the matches that made it, the
// first MaxEvents of them, kept in the state until it opens (so across a
// restart too), and only those of its window.
func TestThresholdAlertKeepsTheMatchesEvents(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	row := func(i int) map[string]any {
		m := match("R", "a", 10, 3)
		m["p_row_id"] = fmt.Sprint("row-", i)
		return m
	}
	rows := func(a *envelope.Alert) (out []any) {
		if a == nil {
			return nil
		}
		for _, ev := range a.Events {
			out = append(out, ev["p_row_id"])
		}
		return out
	}
	s := NewState(0)
	s.Observe(row(0), t0)                     // its window ends before the threshold
	s.Observe(row(1), t0.Add(11*time.Minute)) // a new window
	s.Observe(row(2), t0.Add(12*time.Minute))
	recs, err := s.Changes()
	if err != nil {
		t.Fatal(err)
	}
	restored := NewState(0)
	for _, r := range recs {
		if err := restored.Restore(r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	a := restored.Observe(row(3), t0.Add(13*time.Minute)).Alert
	if a == nil || a.EventCount != 3 || fmt.Sprint(rows(a)) != "[row-1 row-2 row-3]" {
		t.Fatalf("threshold 3 after a restart: alert %v with events %v, want row-1 row-2 row-3", a != nil, rows(a))
	}
	if g := restored.groups["R\x00a"]; g.Events != nil {
		t.Errorf("the group keeps %d events once the alert has them", len(g.Events))
	}

	// Past MaxEvents matches the first ones are kept.
	s = NewState(0)
	var opened *envelope.Alert
	for i := 0; i < MaxEvents+5 && opened == nil; i++ {
		m := row(i)
		m["p_rule_threshold"] = int64(MaxEvents + 5)
		opened = s.Observe(m, t0.Add(time.Duration(i)*time.Second)).Alert
	}
	if opened == nil || len(opened.Events) != MaxEvents || opened.Events[0]["p_row_id"] != "row-0" || opened.EventCount != MaxEvents+5 {
		t.Fatalf("threshold %d: alert %v, events %v", MaxEvents+5, opened != nil, rows(opened))
	}
}

func TestStormLimiter(t *testing.T) {
	s := NewState(3)
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	alerts, storms := 0, 0
	for i := 0; i < 10; i++ {
		o := s.Observe(match("R", string(rune('a'+i)), 60, 1), t0.Add(time.Duration(i)*time.Second))
		if o.Alert != nil {
			alerts++
		}
		if o.Storm != nil {
			storms++
			if o.Storm.Type != envelope.TypeSystemError {
				t.Fatalf("storm alert type %s", o.Storm.Type)
			}
		}
	}
	if alerts != 3 || storms != 1 {
		t.Fatalf("alerts %d storms %d, want 3 and 1", alerts, storms)
	}
	if o := s.Observe(match("Other", "z", 60, 1), t0); o.Alert == nil {
		t.Fatal("another rule is not suppressed")
	}
	if o := s.Observe(match("R", "new", 60, 1), t0.Add(61*time.Minute)); o.Alert == nil {
		t.Fatal("suppression must lift after the hour")
	}
	s.Unsuppress("R")

	// A rule's own AlertStormLimit overrides the global one.
	own := NewState(3)
	alerts = 0
	for i := 0; i < 10; i++ {
		m := match("Loud", string(rune('a'+i)), 60, 1)
		m[envelope.FieldRuleStormLimit] = int64(5)
		if own.Observe(m, t0.Add(time.Duration(i)*time.Second)).Alert != nil {
			alerts++
		}
	}
	if alerts != 5 {
		t.Fatalf("rule limit 5: %d alerts", alerts)
	}
}

type receiver struct {
	mu       sync.Mutex
	statuses []int // answered in order; then 200
	calls    []*http.Request
	bodies   [][]byte
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.calls = append(rc.calls, r)
	rc.bodies = append(rc.bodies, b)
	status := 200
	if len(rc.statuses) > 0 {
		status, rc.statuses = rc.statuses[0], rc.statuses[1:]
	}
	rc.mu.Unlock()
	if status == 429 {
		w.Header().Set("Retry-After", "0")
	}
	w.WriteHeader(status)
}

func testAlert() *envelope.Alert {
	m := match("AWS.Test", "d", 60, 1)
	return newAlert(m, 1, 1, keep(nil, m), time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC))
}

func TestWebhookShapeSignatureAndRetry(t *testing.T) {
	rc := &receiver{statuses: []int{503, 429}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	var attempts []Attempt
	w := &Webhook{Name: "hook", URL: srv.URL + "/alerts", Secret: "k", Headers: map[string]string{"X-Team": "soc"},
		Retry:     Retry{MaxAttempts: 5, Initial: time.Millisecond, Max: 5 * time.Millisecond},
		OnAttempt: func(a Attempt) { attempts = append(attempts, a) }}
	a := testAlert()
	if err := w.Deliver(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if len(rc.calls) != 3 || len(attempts) != 3 || attempts[0].Status != 503 || attempts[2].Error != "" {
		t.Fatalf("calls %d attempts %+v: want 503, 429, then 200", len(rc.calls), attempts)
	}
	r, body := rc.calls[2], rc.bodies[2]
	if r.Method != "POST" || r.URL.Path != "/alerts" || r.Header.Get("Content-Type") != "application/json" ||
		r.Header.Get("Idempotency-Key") != a.AlertID || r.Header.Get("X-Team") != "soc" {
		t.Fatalf("request %s %s %v", r.Method, r.URL.Path, r.Header)
	}
	mac := hmac.New(sha256.New, []byte("k"))
	mac.Write(body)
	if r.Header.Get("X-Caracal-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		t.Fatal("signature does not match the body")
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "alertId", "createdAt", "severity", "type", "link", "title", "name", "description", "runbook", "tags", "version", "alertContext", "dedupString", "eventCount", "logTypes", "updatedAt", "events"} {
		if _, ok := got[k]; !ok {
			t.Errorf("payload lacks %q", k)
		}
	}
	if got["id"] != "AWS.Test" || got["type"] != "RULE" {
		t.Errorf("payload id/type %v/%v", got["id"], got["type"])
	}
}

func TestWebhookDoesNotRetry4xx(t *testing.T) {
	rc := &receiver{statuses: []int{400}}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	w := &Webhook{Name: "hook", URL: srv.URL, Retry: Retry{MaxAttempts: 5, Initial: time.Millisecond}}
	if err := w.Deliver(context.Background(), testAlert()); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("err %v", err)
	}
	if len(rc.calls) != 1 {
		t.Fatalf("a 400 was retried: %d calls", len(rc.calls))
	}
}

func TestFilters(t *testing.T) {
	a := testAlert()
	for _, tc := range []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{MinSeverity: "High"}, true},
		{Filter{MinSeverity: "Critical"}, false},
		{Filter{LogTypes: []string{"AWS.ALB"}}, false},
		{Filter{LogTypes: []string{"AWS.CloudTrail"}}, true},
		{Filter{Tags: []string{"x"}}, true},
		{Filter{RuleIDs: []string{"Other"}}, false},
	} {
		if got := tc.f.Match(a); got != tc.want {
			t.Errorf("%+v = %v, want %v", tc.f, got, tc.want)
		}
	}
	a.OutputIDs = []string{"pager"}
	if outputAllowed(a, "slack") || !outputAllowed(a, "pager") {
		t.Error("OutputIds must restrict destinations")
	}
}

func BenchmarkStateObserve(b *testing.B) {
	s := NewState(1000)
	matches := make([]map[string]any, 1000)
	for i := range matches {
		matches[i] = match("Rule"+string(rune('A'+i%40)), "dedup"+string(rune('a'+i%26)), 60, 1)
	}
	now := time.Now()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		s.Observe(matches[i%len(matches)], now)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "matches/s")
}

// What Changes writes to caracal.alert_state is enough for a new State to
// carry on: the open alert's window, the alert numbering and the storm
// suppression all survive; Unsuppress is recorded too.
func TestStateChangesRestore(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	s := NewState(1)
	if o := s.Observe(match("R", "a", 60, 1), t0); o.Alert == nil {
		t.Fatal("no alert")
	}
	if o := s.Observe(match("R", "b", 60, 1), t0); o.Storm == nil {
		t.Fatal("storm limit 1 did not trip on the second alert")
	}
	recs, err := s.Changes()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 { // groups a and b, storm counter of R
		t.Fatalf("%d records, want 3: %v", len(recs), recs)
	}
	if again, _ := s.Changes(); len(again) != 0 {
		t.Fatalf("changes reported twice: %v", again)
	}
	restored := NewState(1)
	for _, r := range recs {
		if err := restored.Restore(r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	o := restored.Observe(match("R", "a", 60, 1), t0.Add(10*time.Minute))
	if o.Alert != nil || o.Attached == nil || o.Attached.EventCount != 2 {
		t.Fatalf("after restore the match must attach to the open alert: %+v", o)
	}
	o = restored.Observe(match("R", "c", 60, 1), t0.Add(11*time.Minute))
	if o.Alert != nil || o.Storm != nil {
		t.Fatalf("restored rule must stay suppressed, silently: %+v", o)
	}
	restored.Unsuppress("R")
	recs, _ = restored.Changes()
	var lifted bool
	for _, r := range recs {
		if r.Key == stormKeyPrefix+"R" && strings.Contains(string(r.Value), `"suppressed":false`) {
			lifted = true
		}
	}
	if !lifted {
		t.Fatalf("unsuppress not recorded: %v", recs)
	}
	o = restored.Observe(match("R", "a", 60, 1), t0.Add(61*time.Minute))
	if o.Alert == nil || o.Alert.AlertID != AlertID("R", 2, "a") {
		t.Fatalf("after the window the next alert is number 2: %+v", o.Alert)
	}
	if err := restored.Restore("bogus", []byte("{}")); err == nil {
		t.Fatal("unknown key accepted")
	}
}

// The state does not grow with every dedup string ever seen: an ended
// window drops its alert (keeping the alert number, so ids stay new), an
// idle group is deleted with a tombstone, and a worker touches only the
// rules it saw matches of.
func TestSweepBoundsTheState(t *testing.T) {
	s := NewState(0)
	t0 := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	first := s.Observe(match("R", "a", 60, 1), t0).Alert
	s.Changes()
	// Another worker's group, restored from caracal.alert_state.
	other, _ := json.Marshal(group{Number: 3, WindowStart: t0.Add(-ForgetAfter), Alert: first})
	if err := s.Restore(groupKeyPrefix+"Q\x00b", other); err != nil {
		t.Fatal(err)
	}

	s.Sweep(t0.Add(59 * time.Minute))
	if ch, _ := s.Changes(); len(ch) != 0 || s.groups["R\x00a"].Alert == nil {
		t.Fatalf("a group within its window was swept: %v", ch)
	}
	s.Sweep(t0.Add(61 * time.Minute))
	ch, _ := s.Changes()
	g := s.groups["R\x00a"]
	if len(ch) != 1 || g.Alert != nil || g.Open || g.Number != 1 || strings.Contains(string(ch[0].Value), "alert") {
		t.Fatalf("an ended window keeps only its number: %+v, changes %q", g, ch)
	}
	second := s.Observe(match("R", "a", 60, 1), t0.Add(62*time.Minute)).Alert
	if second == nil || second.AlertID == first.AlertID {
		t.Fatalf("the next alert after a sweep: %+v (first %s)", second, first.AlertID)
	}
	s.Changes()

	s.Sweep(t0.Add(62*time.Minute + ForgetAfter))
	ch, _ = s.Changes()
	if len(ch) != 1 || ch[0].Key != groupKeyPrefix+"R\x00a" || ch[0].Value != nil || s.groups["R\x00a"] != nil {
		t.Fatalf("an idle group is deleted with a tombstone: %q", ch)
	}
	if s.groups["Q\x00b"] == nil {
		t.Fatal("swept another worker's group")
	}
	// The tombstone deletes the group where the state is restored.
	fresh := NewState(0)
	fresh.Restore(groupKeyPrefix+"R\x00a", []byte(`{"number":2}`))
	if err := fresh.Restore(groupKeyPrefix+"R\x00a", nil); err != nil || fresh.groups["R\x00a"] != nil {
		t.Fatalf("a tombstone restored: %v, %+v", err, fresh.groups["R\x00a"])
	}
}
