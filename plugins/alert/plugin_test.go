package alert

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// A record the stage cannot read must not stop it (a refused batch comes
// again for ever): it is skipped and raised as one SYSTEM_ERROR an hour at
// most, and the records beside it become alerts as usual.
func TestUnreadableRecordIsSkippedAndRaised(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	p := &processor{state: NewState(1000), now: func() time.Time { return now },
		skips: Skips{Key: "k", Stage: "Alerting"}}
	good, _ := json.Marshal(match("R.One", "d1", 60, 1))
	record := func(topic string, offset int64, body string) *service.Message {
		m := service.NewMessage([]byte(body))
		m.MetaSetMut(envelope.MetaKafkaTopic, topic)
		m.MetaSetMut(envelope.MetaKafkaPartition, int64(0))
		m.MetaSetMut(envelope.MetaKafkaOffset, offset)
		return m
	}
	run := func(b service.MessageBatch) (alerts []envelope.Alert) {
		t.Helper()
		out, err := p.ProcessBatch(context.Background(), b)
		if err != nil {
			t.Fatalf("the batch was refused: %v", err)
		}
		for _, ob := range out {
			for _, m := range ob {
				if topic, _ := m.MetaGet(envelope.MetaTopic); topic != envelope.TopicAlerts {
					continue
				}
				raw, _ := m.AsBytes()
				var a envelope.Alert
				if err := json.Unmarshal(raw, &a); err != nil {
					t.Fatal(err)
				}
				alerts = append(alerts, a)
			}
		}
		return alerts
	}
	// Objects that are not matches or system errors (produced to the
	// wrong topic) are unreadable too: they made alerts of no rule.
	alerts := run(service.MessageBatch{
		record(envelope.TopicMatches, 5, `{"p_log_type":"AWS.CloudTrail"}`),
		record(envelope.TopicMatches, 6, `{"p_rule_id":123}`),
		record(envelope.TopicMatches, 7, `{"p_rule_id":`),
		record(envelope.TopicMatches, 8, string(good)),
		record(envelope.TopicSystemError, 3, `[]`),
		record(envelope.TopicSystemError, 4, `{"title":"x"}`),
	})
	types := map[string]int{}
	for _, a := range alerts {
		types[a.Type]++
	}
	if types[envelope.TypeRule] != 1 || types[envelope.TypeSystemError] != 1 || len(alerts) != 2 {
		t.Fatalf("alerts %+v, want the match's and one SYSTEM_ERROR", alerts)
	}
	for _, a := range alerts {
		if a.Type == envelope.TypeSystemError && (a.AlertContext["skipped"] != 1.0 || a.AlertContext["last_record"] != "caracal.matches/0@5") {
			t.Errorf("SYSTEM_ERROR context %v", a.AlertContext)
		}
	}
	if alerts := run(service.MessageBatch{record(envelope.TopicMatches, 9, `nope`)}); len(alerts) != 0 {
		t.Errorf("raised again within the hour: %+v", alerts)
	}
	now = now.Add(time.Hour)
	alerts = run(service.MessageBatch{record(envelope.TopicMatches, 10, `{}}`)})
	if len(alerts) != 1 || alerts[0].AlertContext["skipped"] != 6.0 {
		t.Errorf("an hour later: %+v, want one SYSTEM_ERROR counting the 6 skipped since the last", alerts)
	}
}

// Every match goes on to caracal.rule_matches for the lake, with the alert
// it opened or joined (as Panther's rule-match rows have it): none below
// the threshold, the alert's id, times and severity after, and never to
// the destinations.
func TestMatchesCarryTheirAlert(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	p := &processor{state: NewState(1), now: func() time.Time { return now }, skips: Skips{Key: "k", Stage: "Alerting"}}
	type stored struct {
		key string
		row map[string]any
	}
	run := func(matches ...map[string]any) (rows []stored, alerts []envelope.Alert) {
		t.Helper()
		var b service.MessageBatch
		for _, m := range matches {
			body, _ := json.Marshal(m)
			msg := service.NewMessage(append(body, '\n'))
			msg.MetaSetMut(envelope.MetaKafkaTopic, envelope.TopicMatches)
			b = append(b, msg)
		}
		out, err := p.ProcessBatch(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		for _, ob := range out {
			for _, m := range ob {
				raw, _ := m.AsBytes()
				switch topic, _ := m.MetaGet(envelope.MetaTopic); topic {
				case envelope.TopicRuleMatches:
					key, _ := m.MetaGet(envelope.MetaKey)
					row, err := envelope.DecodeObject(raw)
					if err != nil {
						t.Fatalf("stored match %s: %v", raw, err)
					}
					rows = append(rows, stored{key, row})
				case envelope.TopicAlerts:
					var a envelope.Alert
					if err := json.Unmarshal(raw, &a); err != nil {
						t.Fatal(err)
					}
					alerts = append(alerts, a)
				}
			}
		}
		return rows, alerts
	}
	alertOf := func(row map[string]any) [4]any {
		return [4]any{row["p_alert_id"], row["p_alert_creation_time"], row["p_alert_update_time"], row["p_alert_severity"]}
	}
	// Threshold 2: the first match makes no alert, the second opens one.
	rows, alerts := run(match("R.Two", "d", 60, 2), match("R.Two", "d", 60, 2))
	if len(rows) != 2 || len(alerts) != 1 {
		t.Fatalf("rows %v, alerts %v: want 2 stored matches and 1 alert", rows, alerts)
	}
	if got := alertOf(rows[0].row); got != [4]any{} {
		t.Errorf("a match below the threshold carries an alert: %v", got)
	}
	a := alerts[0]
	if got, want := alertOf(rows[1].row), [4]any{a.AlertID, a.CreatedAt, a.CreatedAt, "High"}; got != want {
		t.Errorf("the opening match carries %v, want %v", got, want)
	}
	for _, r := range rows {
		if r.key != "R.Two" || r.row["eventName"] != "E" || r.row["p_rule_id"] != "R.Two" || r.row["p_dedup_string"] != "d" {
			t.Errorf("stored match keyed %q: %v, want the match as it came, keyed by its rule", r.key, r.row)
		}
	}
	// A later match joins the open alert: same id and creation, its own update time.
	now = now.Add(time.Minute)
	rows, alerts = run(match("R.Two", "d", 60, 2))
	if want := [4]any{a.AlertID, a.CreatedAt, envelope.FormatTime(now), "High"}; len(rows) != 1 || len(alerts) != 0 || alertOf(rows[0].row) != want {
		t.Fatalf("a joining match: rows %v, alerts %v; want one carrying %v", rows, alerts, want)
	}
	// Storm limit 1: R.One's second alert is suppressed, so its match carries none.
	if rows, alerts = run(match("R.One", "a", 60, 1)); len(alerts) != 1 || alertOf(rows[0].row)[0] != alerts[0].AlertID {
		t.Fatalf("R.One's first match: rows %v, alerts %v", rows, alerts)
	}
	rows, alerts = run(match("R.One", "b", 60, 1))
	if len(rows) != 1 || alertOf(rows[0].row) != [4]any{} || len(alerts) != 1 || alerts[0].Type != envelope.TypeSystemError {
		t.Fatalf("a suppressed match: rows %v, alerts %v; want it stored without an alert, and the storm's SYSTEM_ERROR", rows, alerts)
	}
	// The destinations get the alerts only, not the matches beside them.
	body, _ := json.Marshal(match("R.Three", "c", 60, 1))
	msg := service.NewMessage(body)
	msg.MetaSetMut(envelope.MetaKafkaTopic, envelope.TopicMatches)
	out, err := p.ProcessBatch(context.Background(), service.MessageBatch{msg})
	if err != nil || len(out) != 1 || len(out[0]) != 2 {
		t.Fatalf("ProcessBatch: %v, %v; want the alert and the stored match", out, err)
	}
	got := &recordingDestination{}
	n := &notifier{log: testLogger(), dests: []Destination{got}}
	if err := n.WriteBatch(context.Background(), out[0]); err != nil {
		t.Fatal(err)
	}
	if len(got.alerts) != 1 || got.alerts[0].ID != "R.Three" || got.alerts[0].Type != envelope.TypeRule {
		t.Errorf("delivered %+v, want R.Three's alert alone", got.alerts)
	}
}

type recordingDestination struct{ alerts []*envelope.Alert }

func (*recordingDestination) ID() string                   { return "recorder" }
func (*recordingDestination) Accepts(*envelope.Alert) bool { return true }
func (d *recordingDestination) Deliver(_ context.Context, a *envelope.Alert) error {
	d.alerts = append(d.alerts, a)
	return nil
}
