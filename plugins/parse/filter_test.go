package parse

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

func TestFilter(t *testing.T) {
	f := &Filter{Source: "alb", LogTypes: []string{"AWS.ALB"}, Exclude: `elbStatusCode == 200 && requestUrl endsWith "/healthz"`}
	if err := f.Compile(); err != nil {
		t.Fatal(err)
	}
	health := map[string]any{"elbStatusCode": int64(200), "requestUrl": "https://x/healthz"}
	page := map[string]any{"elbStatusCode": int64(200), "requestUrl": "https://x/login"}
	if f.Keep("alb", "AWS.ALB", health) {
		t.Error("health check kept")
	}
	if !f.Keep("alb", "AWS.ALB", page) {
		t.Error("page dropped")
	}
	if !f.Keep("other", "AWS.ALB", health) || !f.Keep("alb", "AWS.VPCFlow", health) {
		t.Error("filter applied outside its source or log types")
	}
	inc := &Filter{Source: "*", Include: `severity >= 4`}
	if err := inc.Compile(); err != nil {
		t.Fatal(err)
	}
	if inc.Keep("gd", "AWS.GuardDuty", map[string]any{"severity": 2.0}) || !inc.Keep("gd", "AWS.GuardDuty", map[string]any{"severity": 8.0}) {
		t.Error("include not applied")
	}
	// A runtime error (comparing a string with a number) keeps the event.
	if !inc.Keep("gd", "AWS.GuardDuty", map[string]any{"severity": "high"}) {
		t.Error("an erroring filter dropped an event")
	}
	for _, bad := range []*Filter{{Source: "x"}, {Source: "x", Include: "1 +"}, {Source: "x", Exclude: `"str"`},
		{Source: "x", Exclude: `endswith(requestUrl, "/healthz")`}} { // no such function: would fail on every event
		if err := bad.Compile(); err == nil {
			t.Errorf("filter %+v compiled", bad)
		}
	}
}

// The processor hands events on as JSON and decodes one for the filters
// only when a filter applies to its source and log type.
func TestProcessorFiltersAndHandsOnJSON(t *testing.T) {
	res := service.MockResources()
	f := &Filter{Source: "demo", LogTypes: []string{"AWS.CloudTrail"}, Exclude: `eventName == "ConsoleLogin" && p_any_ip_addresses[0] == "198.51.100.23"`}
	if err := f.Compile(); err != nil {
		t.Fatal(err)
	}
	p := &processor{c: classifier(t), filters: []*Filter{f},
		skipped:  res.Metrics().NewCounter("skipped"),
		filtered: res.Metrics().NewCounter("filtered", "source")}
	login := string(sample(t))
	other := strings.Replace(login, `"ConsoleLogin"`, `"GetObject"`, 1)
	var batch service.MessageBatch
	for _, c := range []struct{ source, body string }{{"demo", login}, {"demo", other}, {"elsewhere", login}, {"demo", "not json"}} {
		m := service.NewMessage([]byte(c.body))
		m.MetaSetMut(envelope.MetaSourceID, c.source)
		m.MetaSetMut(envelope.MetaRequestID, "req-1")
		m.MetaSetMut(envelope.MetaKafkaOffset, int64(7))
		batch = append(batch, m)
	}
	var got []string
	for _, m := range process(t, p, batch) {
		topic, _ := m.MetaGet(envelope.MetaTopic)
		key, _ := m.MetaGet(envelope.MetaKey)
		// Only what the processor sets: the raw record's metadata is in the
		// event (or the failure) now.
		var meta []string
		_ = m.MetaWalkMut(func(k string, _ any) error { meta = append(meta, k); return nil })
		slices.Sort(meta)
		want := []string{envelope.MetaKey, envelope.MetaLogType, envelope.MetaTopic}
		if topic == envelope.TopicFailures {
			want = []string{envelope.MetaKey, envelope.MetaTopic}
		}
		if !slices.Equal(meta, want) {
			t.Errorf("%s message metadata %q, want %q", topic, meta, want)
		}
		b, _ := m.AsBytes()
		ev, err := envelope.DecodeObject(b)
		if err != nil {
			t.Fatalf("%s: %s is not JSON: %v", topic, b, err)
		}
		if topic == envelope.TopicEvents {
			if ev["p_row_id"] != key || ev["p_source_id"] == nil {
				t.Errorf("event key %q, event %v", key, ev)
			}
			got = append(got, ev["p_source_id"].(string)+":"+ev["eventName"].(string))
		} else {
			got = append(got, topic)
		}
	}
	want := []string{"demo:GetObject", "elsewhere:ConsoleLogin", envelope.TopicFailures}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("handed on %v, want %v (the demo login filtered out)", got, want)
	}
}

// Over HTTP, a CSV schema with hasHeader and no columns gets its header from
// the request's first line, which the input sends along with every event
// (envelope.MetaFirstLine): the header line itself is no event, the rows are
// named by it, and the metadata is not carried on.
func TestProcessorReadsCSVHeaderFromFirstLine(t *testing.T) {
	s, err := schema.Load("../../testdata/csv/hosts.yml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClassifier([]*schema.Schema{s})
	if err != nil {
		t.Fatal(err)
	}
	res := service.MockResources()
	p := &processor{c: c, skipped: res.Metrics().NewCounter("skipped"), filtered: res.Metrics().NewCounter("filtered", "source")}
	var batch service.MessageBatch
	for i, line := range []string{"host,ip", "web1,10.0.0.1", "web2,10.0.0.2"} {
		m := service.NewMessage([]byte(line))
		m.MetaSetMut(envelope.MetaSourceID, "hosts")
		m.MetaSetMut(envelope.MetaFirstLine, "host,ip")
		m.MetaSetMut(envelope.MetaKafkaOffset, int64(i))
		batch = append(batch, m)
	}
	var got []string
	for _, m := range process(t, p, batch) {
		if _, ok := m.MetaGet(envelope.MetaFirstLine); ok {
			t.Error("the first line went on with the event")
		}
		ev, err := m.AsStructured()
		if err != nil {
			t.Fatal(err)
		}
		e := ev.(map[string]any)
		got = append(got, fmt.Sprint(e["p_log_type"], " ", e["host"], " ", e["ip"]))
	}
	if want := []string{"Custom.Hosts web1 10.0.0.1", "Custom.Hosts web2 10.0.0.2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

// process runs the processor over a batch and returns what it hands on.
func process(t *testing.T, p *processor, batch service.MessageBatch) service.MessageBatch {
	t.Helper()
	out, err := p.ProcessBatch(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}
