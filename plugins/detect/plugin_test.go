package detect

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/alert"
	"github.com/caracal-sec/caracal/plugins/envelope"
)

// An event that is not JSON must not stop the stage (a refused batch is
// redelivered for ever): it is skipped, and reported as a SYSTEM_ERROR at
// most once an hour with how many were skipped, while the events beside
// it are still evaluated.
func TestUnreadableEventIsSkippedAndReported(t *testing.T) {
	rl, err := NewReloader("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	p := &processor{rules: rl, stop: func() {}, now: func() time.Time { return now },
		skips: alert.Skips{Key: "k", Stage: "Detection"}}
	root := `{"p_log_type":"AWS.CloudTrail","p_row_id":"r1","eventName":"ConsoleLogin","eventType":"AwsConsoleSignIn",` +
		`"userIdentity":{"type":"Root","accountId":"111122223333"},"sourceIPAddress":"198.51.100.7","responseElements":{"ConsoleLogin":"Success"}}`
	batch := func(events ...string) service.MessageBatch {
		var b service.MessageBatch
		for i, ev := range events {
			m := service.NewMessage([]byte(ev))
			m.MetaSetMut(envelope.MetaKafkaTopic, envelope.TopicEvents)
			m.MetaSetMut(envelope.MetaKafkaPartition, int64(2))
			m.MetaSetMut(envelope.MetaKafkaOffset, int64(40+i))
			b = append(b, m)
		}
		return b
	}
	run := func(b service.MessageBatch) (matches []string, reports []map[string]any) {
		t.Helper()
		out, err := p.ProcessBatch(context.Background(), b)
		if err != nil {
			t.Fatalf("the batch was refused: %v", err)
		}
		for _, ob := range out {
			for _, m := range ob {
				raw, _ := m.AsBytes()
				var v map[string]any
				if err := json.Unmarshal(raw, &v); err != nil {
					t.Fatal(err)
				}
				switch topic, _ := m.MetaGet(envelope.MetaTopic); topic {
				case envelope.TopicMatches:
					matches = append(matches, v[envelope.FieldRuleID].(string))
				case envelope.TopicSystemError:
					reports = append(reports, v)
				default:
					t.Fatalf("a message for %q", topic)
				}
			}
		}
		return matches, reports
	}

	matches, reports := run(batch(`{"p_log_type":`, root))
	if len(matches) == 0 {
		t.Error("the event beside the unreadable one was not evaluated")
	}
	if len(reports) != 1 || reports[0]["type"] != envelope.TypeSystemError {
		t.Fatalf("reports %v, want one SYSTEM_ERROR", reports)
	}
	ctx := reports[0]["alertContext"].(map[string]any)
	if ctx["skipped"] != 1.0 || ctx["last_record"] != "caracal.events/2@40" {
		t.Errorf("alert context %v", ctx)
	}

	// Within the hour: skipped, counted, not reported again.
	if _, reports := run(batch(`[1]`, `nope`)); len(reports) != 0 {
		t.Errorf("reported again within the hour: %v", reports)
	}
	now = now.Add(time.Hour)
	_, reports = run(batch(`{}}`))
	if len(reports) != 1 {
		t.Fatalf("reports %v an hour later, want one", reports)
	}
	if ctx := reports[0]["alertContext"].(map[string]any); ctx["skipped"] != 3.0 {
		t.Errorf("skipped %v, want the 3 since the last report", ctx["skipped"])
	}
}

// A rule whose log type has no schema never runs: the stage says so.
func TestUnknownLogTypesAreReported(t *testing.T) {
	rules, err := LoadDir("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	known := schemaNames("../../schemas")
	if len(known) == 0 {
		t.Fatal("no schemas read")
	}
	if w := unknownLogTypes(rules, known); len(w) != 0 {
		t.Errorf("shipped rules: %v", w)
	}
	typo := rule(t, "AnalysisType: rule\nRuleID: T.Typo\nEnabled: true\nLogTypes: [AWS.CloudTrail, AWS.Cloudtrail]\nSeverity: Low\nCondition: 'true'\n")
	w := unknownLogTypes(append(rules, typo), known)
	if len(w) != 1 || !strings.Contains(w[0], "T.Typo") || !strings.Contains(w[0], "AWS.Cloudtrail") {
		t.Errorf("warnings %v, want one about T.Typo's AWS.Cloudtrail", w)
	}
}
