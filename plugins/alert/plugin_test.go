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
