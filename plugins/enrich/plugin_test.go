package enrich

import (
	"context"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// The processor enriches the events of log types the tables associate,
// and does not read the others': the parse stage's caracal_log_type
// metadata says which they are. Without it, the event says.
func TestProcessorReadsOnlyAssociatedLogTypes(t *testing.T) {
	set, err := LoadSet(context.Background(), "../../lookups")
	if err != nil {
		t.Fatal(err)
	}
	p := &processor{set: set, cancel: func() {}}
	if !set.Associates("AWS.CloudTrail") || set.Associates("AWS.ALB") {
		t.Fatal("the shipped tables should associate AWS.CloudTrail and not AWS.ALB")
	}
	cloudTrail := `{"p_log_type":"AWS.CloudTrail","sourceIPAddress":"192.0.2.10","p_any_ip_addresses":["192.0.2.10"]}`
	msg := func(body, logType string) *service.Message {
		m := service.NewMessage([]byte(body))
		m.MetaSetMut(envelope.MetaTopic, envelope.TopicEvents)
		if logType != "" {
			m.MetaSetMut(envelope.MetaLogType, logType)
		}
		return m
	}
	batch := service.MessageBatch{
		msg(cloudTrail, "AWS.CloudTrail"),
		msg(cloudTrail, ""), // no metadata: read the event
		msg(`{"p_log_type":"AWS.ALB","clientIp":"192.0.2.10"}`, "AWS.ALB"),
		msg(`not JSON: never read`, "AWS.ALB"),
	}
	out, err := p.ProcessBatch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{`"p_enrichment":{"known_bad_ips":`, `"p_enrichment":{"known_bad_ips":`, `"clientIp":"192.0.2.10"}`, "never read"} {
		b, _ := out[0][i].AsBytes()
		if !strings.Contains(string(b), want) {
			t.Errorf("message %d: %s, want %s in it", i, b, want)
		}
	}
	if b, _ := out[0][2].AsBytes(); strings.Contains(string(b), "p_enrichment") {
		t.Errorf("an ALB event was enriched: %s", b)
	}
}
