// Package alert turns rule matches into deduplicated alerts and delivers
// them to destinations. The state machine follows Panther's: the first match
// of a (rule, dedup string) opens an alert once Threshold matches arrived in
// the window; later matches within DedupPeriodMinutes of the alert's creation
// attach to it without a new notification; after the window the next match
// opens a new alert, whose id also hashes the alert number.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// MaxEvents is how many events an alert keeps for its notification.
const MaxEvents = 10

// MaxEventsBytes bounds the events an alert keeps, encoded as JSON. An
// alert travels through the broker (caracal.alerts and its state in
// caracal.alert_state), whose records are limited (1 MiB by default), and
// one too large to produce would stop the alert stage for every rule.
const MaxEventsBytes = 256 << 10

// keep appends the match's event to an alert's events while there are
// fewer than MaxEvents; an event that would take them past MaxEventsBytes
// is kept as a stub naming it (the lake has it whole).
func keep(events []map[string]any, match map[string]any) []map[string]any {
	if len(events) >= MaxEvents {
		return events
	}
	ev := eventOf(match)
	bound := envelope.JSONSizeAtMost(ev)
	for _, kept := range events {
		bound += envelope.JSONSizeAtMost(kept)
	}
	if bound <= MaxEventsBytes {
		return append(events, ev) // fits, without measuring
	}
	used := 0
	for _, ev := range events {
		used += encodedSize(ev)
	}
	if n := encodedSize(ev); used+n > MaxEventsBytes {
		stub := map[string]any{"p_event_omitted": fmt.Sprintf("an event of %d bytes, past the %d KiB an alert keeps: it is in the lake under its p_row_id", n, MaxEventsBytes>>10)}
		for _, k := range []string{envelope.FieldRowID, envelope.FieldLogType, envelope.FieldEventTime, envelope.FieldSourceID} {
			if v, ok := ev[k]; ok {
				stub[k] = v
			}
		}
		ev = stub
	}
	return append(events, ev)
}

func encodedSize(v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		return 0
	}
	return len(b)
}

// AlertID is deterministic: the same rule, alert number and dedup string
// always give the same id, so a replay re-sends the same alert rather than a
// new one, and destinations can use it as an idempotency key.
func AlertID(ruleID string, number int, dedup string) string {
	h := sha256.Sum256([]byte(ruleID + ":" + strconv.Itoa(number) + ":" + dedup))
	return hex.EncodeToString(h[:16])
}

// group is one (rule, dedup string)'s state.
type group struct {
	Number      int       `json:"number"` // alerts opened so far
	WindowStart time.Time `json:"window_start"`
	Matches     int       `json:"matches"` // in the current window
	Open        bool      `json:"open"`    // an alert exists for the window
	// OpenedBy is the p_row_id of the match that opened the alert: if that
	// match arrives again (its batch was refused downstream and redelivered)
	// the alert is emitted again, with the same id, instead of being lost.
	OpenedBy string          `json:"opened_by"`
	Alert    *envelope.Alert `json:"alert,omitempty"`
	// Events are those of the window's matches until the alert opens
	// (Threshold > 1): the alert shows the matches that made it. Bounded
	// as an alert's events are, and handed to the alert when it opens.
	Events []map[string]any `json:"events,omitempty"`
	// Period is the rule's dedup period when the group last saw a match
	// (0 in state written before it was kept: see Sweep).
	Period time.Duration `json:"period,omitempty"`
}

// inWindow reports whether the group holds state of a dedup window.
func (g *group) inWindow() bool {
	return g.Alert != nil || g.Open || g.Matches > 0 || g.OpenedBy != ""
}

// endWindow forgets the window's matches and alert, keeping the alert
// number (and when the window started).
func (g *group) endWindow() {
	g.Alert, g.Open, g.Matches, g.OpenedBy, g.Events = nil, false, 0, "", nil
}

// State holds every rule's dedup groups and storm counters. Changes are
// tracked so the alert stage can write them to the compacted
// caracal.alert_state topic in the same transaction as the alerts, and a
// restarted or newly assigned worker restores them from it.
type State struct {
	mu         sync.Mutex
	groups     map[string]*group
	storm      map[string]*stormCounter
	dirty      map[string]bool // state keys changed since the last Changes
	owned      map[string]bool // rules this worker saw matches of since the last restore
	StormLimit int
}

// ForgetAfter is how long a dedup group is kept after its window opened
// (its alert number, so the next alert gets a new id), or its dedup period
// if longer; then it is deleted, so the state does not grow with every
// dedup string ever seen.
const ForgetAfter = 30 * 24 * time.Hour

// Sweep bounds the state: a group whose dedup window has ended drops its
// alert and events (a new match would start afresh anyway) and keeps only
// its alert number; a group idle for ForgetAfter is deleted (a tombstone
// on caracal.alert_state). Only the groups of rules this worker owns are
// touched (rules it saw matches of since its state was last restored):
// every worker restores every group, and another worker's may be newer
// than its copy.
func (s *State) Sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, g := range s.groups {
		rule, _, _ := strings.Cut(key, "\x00")
		if !s.owned[rule] {
			continue
		}
		period := g.Period
		if period <= 0 {
			period = 24 * time.Hour // written before Period was kept
		}
		switch idle := now.Sub(g.WindowStart); {
		case idle >= max(ForgetAfter, period):
			delete(s.groups, key)
			s.dirty[groupKeyPrefix+key] = true
		case idle >= period && g.inWindow():
			g.endWindow()
			s.dirty[groupKeyPrefix+key] = true
		}
	}
}

type stormCounter struct {
	HourStart  time.Time `json:"hour_start"`
	Alerts     int       `json:"alerts"`
	Suppressed bool      `json:"suppressed"`
}

// NewState returns empty state; stormLimit ≤ 0 disables the limiter.
func NewState(stormLimit int) *State {
	return &State{groups: map[string]*group{}, storm: map[string]*stormCounter{}, dirty: map[string]bool{}, owned: map[string]bool{}, StormLimit: stormLimit}
}

// State keys on caracal.alert_state: one record per dedup group and one per
// rule's storm counter; compaction keeps the latest of each.
const (
	groupKeyPrefix = "group\x00"
	stormKeyPrefix = "storm\x00"
)

// Record is one state record for caracal.alert_state.
type Record struct {
	Key   string
	Value []byte
}

// Changes returns the records of the state changed since the last call.
func (s *State) Changes() ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.dirty))
	for k := range s.dirty {
		var v any
		if g, ok := strings.CutPrefix(k, groupKeyPrefix); ok {
			if s.groups[g] == nil {
				out = append(out, Record{Key: k}) // deleted: a tombstone
				continue
			}
			v = s.groups[g]
		} else if r, ok := strings.CutPrefix(k, stormKeyPrefix); ok {
			v = s.storm[r]
			if v == (*stormCounter)(nil) {
				v = &stormCounter{} // unsuppressed: an empty counter
			}
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("alert state %q: %w", k, err)
		}
		out = append(out, Record{Key: k, Value: b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	clear(s.dirty)
	return out, nil
}

// Restore applies one record read back from caracal.alert_state.
func (s *State) Restore(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := strings.CutPrefix(key, groupKeyPrefix); ok {
		if value == nil {
			delete(s.groups, g) // a tombstone
			return nil
		}
		var v group
		if err := json.Unmarshal(value, &v); err != nil {
			return fmt.Errorf("alert state %q: %w", key, err)
		}
		s.groups[g] = &v
		return nil
	}
	if r, ok := strings.CutPrefix(key, stormKeyPrefix); ok {
		var v stormCounter
		if err := json.Unmarshal(value, &v); err != nil {
			return fmt.Errorf("alert state %q: %w", key, err)
		}
		s.storm[r] = &v
		return nil
	}
	return fmt.Errorf("alert state: unknown key %q", key)
}

// Replace swaps in another state's contents (a fresh restore).
func (s *State) Replace(from *State) {
	from.mu.Lock()
	groups, storm := from.groups, from.storm
	from.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups, s.storm = groups, storm
	clear(s.dirty)
	clear(s.owned)
}

// Outcome of observing one match.
type Outcome struct {
	Alert    *envelope.Alert // set when a new alert opened (to notify)
	Attached *envelope.Alert // set when the match attached to an open alert
	Storm    *envelope.Alert // a SYSTEM_ERROR raised when the storm limit tripped
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func num(m map[string]any, k string, def int) int {
	switch v := m[k].(type) {
	case float64:
		return int(v)
	case int64:
		return int(v)
	case int:
		return v
	}
	return def
}

func strs(m map[string]any, k string) []string {
	out := []string{}
	switch v := m[k].(type) {
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = append(out, v...)
	}
	return out
}

// Observe applies one match (an event plus p_rule_* fields) at time now.
func (s *State) Observe(match map[string]any, now time.Time) Outcome {
	ruleID := str(match, envelope.FieldRuleID)
	dedup := str(match, envelope.FieldDedupString)
	period := time.Duration(num(match, envelope.FieldRuleDedupMin, 60)) * time.Minute
	threshold := num(match, envelope.FieldRuleThresh, 1)
	if threshold < 1 {
		threshold = 1
	}
	key := ruleID + "\x00" + dedup
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dirty[groupKeyPrefix+key] = true
	s.owned[ruleID] = true
	g := s.groups[key]
	if g == nil {
		g = &group{}
		s.groups[key] = g
	}
	g.Period = period
	if g.WindowStart.IsZero() || now.Sub(g.WindowStart) >= period {
		g.endWindow()
		g.WindowStart = now
	}
	var out Outcome
	rowID := str(match, envelope.FieldRowID)
	if g.Open && rowID != "" && rowID == g.OpenedBy && g.Alert != nil {
		out.Alert = g.Alert // redelivered: send the same alert again
		return out
	}
	g.Matches++
	if g.Open {
		a := g.Alert
		if a != nil {
			a.EventCount++
			a.UpdatedAt = envelope.FormatTime(now)
			a.Events = keep(a.Events, match)
		}
		out.Attached = a
		return out
	}
	g.Events = keep(g.Events, match)
	if g.Matches < threshold {
		return out
	}
	// Threshold crossed: the alert is created now and its window starts.
	limit := num(match, envelope.FieldRuleStormLimit, 0)
	if limit <= 0 {
		limit = s.StormLimit
	}
	if suppressed, storm := s.stormCheck(ruleID, limit, now); suppressed {
		out.Storm = storm
		g.Open, g.Events = true, nil // recorded, not notified
		return out
	}
	g.Number++
	g.Open, g.WindowStart, g.OpenedBy = true, now, rowID
	a := newAlert(match, g.Number, g.Matches, g.Events, now)
	g.Alert, g.Events = a, nil
	out.Alert = a
	return out
}

// stormCheck counts an alert against the rule's hourly budget of limit
// alerts (the rule's AlertStormLimit, else the global one; ≤ 0: none).
func (s *State) stormCheck(ruleID string, limit int, now time.Time) (bool, *envelope.Alert) {
	if limit <= 0 {
		return false, nil
	}
	s.dirty[stormKeyPrefix+ruleID] = true
	c := s.storm[ruleID]
	if c == nil || now.Sub(c.HourStart) >= time.Hour {
		c = &stormCounter{HourStart: now}
		s.storm[ruleID] = c
	}
	if c.Suppressed {
		return true, nil
	}
	c.Alerts++
	if c.Alerts <= limit {
		return false, nil
	}
	c.Suppressed = true
	title := fmt.Sprintf("Alert storm: rule %s raised more than %d alerts in an hour; its alerts are suppressed until %s (matches are still stored)",
		ruleID, limit, envelope.FormatTime(c.HourStart.Add(time.Hour)))
	return true, SystemError("storm:"+ruleID+":"+envelope.FormatTime(c.HourStart), title, "Critical", now)
}

// Unsuppress lifts a rule's storm suppression.
func (s *State) Unsuppress(ruleID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.storm, ruleID)
	s.dirty[stormKeyPrefix+ruleID] = true
}

func eventOf(match map[string]any) map[string]any {
	ev := make(map[string]any, len(match))
	for k, v := range match {
		switch k {
		case envelope.FieldRuleName, envelope.FieldRuleDesc, envelope.FieldRuleRunbook, envelope.FieldRuleRef,
			envelope.FieldRuleDedupMin, envelope.FieldRuleThresh, envelope.FieldRuleOutputs, envelope.FieldRuleStormLimit:
			continue
		}
		ev[k] = v
	}
	return ev
}

// newAlert builds the alert a match opens; events are those of the
// matches that made it (this one included).
func newAlert(match map[string]any, number, count int, events []map[string]any, now time.Time) *envelope.Alert {
	ruleID := str(match, envelope.FieldRuleID)
	dedup := str(match, envelope.FieldDedupString)
	typ := str(match, envelope.FieldMatchType)
	if typ == "" {
		typ = envelope.TypeRule
	}
	ctx, _ := match[envelope.FieldAlertContext].(map[string]any)
	if ctx == nil {
		ctx = map[string]any{}
	}
	if typ == envelope.TypeRuleError {
		ctx["error"] = str(match, envelope.FieldRuleError)
	}
	reports := map[string][]string{}
	if r, ok := match[envelope.FieldRuleReports].(map[string]any); ok {
		for k, v := range r {
			reports[k] = strs(map[string]any{"v": v}, "v")
		}
	}
	name := str(match, envelope.FieldRuleName)
	if name == "" {
		name = ruleID
	}
	ts := envelope.FormatTime(now)
	id := AlertID(ruleID, number, dedup)
	a := &envelope.Alert{
		ID: ruleID, AlertID: id, CreatedAt: ts, UpdatedAt: ts,
		Severity: str(match, envelope.FieldRuleSeverity), Type: typ,
		Link:  "caracal://alerts/" + id,
		Title: str(match, envelope.FieldAlertTitle), Name: name,
		Description: str(match, envelope.FieldRuleDesc), Runbook: str(match, envelope.FieldRuleRunbook),
		Tags: strs(match, envelope.FieldRuleTags), Version: "1", AlertContext: ctx,
		DedupString: dedup, EventCount: count, LogTypes: []string{str(match, envelope.FieldLogType)},
		Events: events, Reports: reports,
		OutputIDs: strs(match, envelope.FieldRuleOutputs),
	}
	return a
}

// SystemError builds a SYSTEM_ERROR alert with a deterministic id from key.
func SystemError(key, title, severity string, now time.Time) *envelope.Alert {
	ts := envelope.FormatTime(now)
	id := AlertID("SYSTEM", 0, key)
	return &envelope.Alert{
		ID: "caracal.system", AlertID: id, CreatedAt: ts, UpdatedAt: ts, Severity: severity,
		Type: envelope.TypeSystemError, Link: "caracal://alerts/" + id, Title: title, Name: "Caracal system error",
		Description: title, Tags: []string{}, Version: "1", AlertContext: map[string]any{},
		DedupString: key, EventCount: 1, LogTypes: []string{}, Events: []map[string]any{},
	}
}

// ControlUnsuppress is the p_control value of a caracal.matches record
// that lifts its rule's storm suppression (`caracal alerts unsuppress`).
const ControlUnsuppress = "unsuppress"

// TestAlert is the alert `caracal alerts send-test` sends.
func TestAlert(now time.Time) *envelope.Alert {
	a := SystemError("send-test:"+envelope.FormatTime(now), "Caracal test alert: this destination is wired correctly", "Info", now)
	a.Type = envelope.TypeRule
	a.ID = "caracal.test"
	a.Name = "Caracal test alert"
	a.Description = "Sent by `caracal alerts send-test`; no action needed."
	a.AlertContext = map[string]any{"sentAt": envelope.FormatTime(now)}
	return a
}
