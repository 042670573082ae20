package httpsource

import (
	"fmt"
	"testing"
	"time"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

func request(events int) *Request {
	req := &Request{
		ID:         "0f8fad5b-d9cb-469f-a165-70867728950e",
		Source:     &Source{ID: "alb", Label: "Load balancers", LogTypes: []string{"AWS.ALB", "AWS.CloudTrail"}},
		Header:     []byte("#Fields: a b"),
		ReceivedAt: time.Date(2026, 11, 30, 22, 40, 1, 123456789, time.UTC),
	}
	for i := range events {
		req.Events = append(req.Events, []byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	return req
}

// Every event of a request carries the request's metadata, and the
// messages, which share it, stay independent: changing one's metadata (as
// a processor may) changes no other's.
func TestEventMessagesCarryTheRequestsMetadata(t *testing.T) {
	batch := eventMessages(request(3))
	want := map[string]string{
		envelope.MetaSourceID: "alb", envelope.MetaSourceLabel: "Load balancers",
		envelope.MetaLogTypes: "AWS.ALB,AWS.CloudTrail", envelope.MetaReceivedAt: "2026-11-30T22:40:01.123456789Z",
		envelope.MetaRequestID: "0f8fad5b-d9cb-469f-a165-70867728950e", envelope.MetaTopic: envelope.TopicRaw,
		envelope.MetaKey: "0f8fad5b-d9cb-469f-a165-70867728950e", envelope.MetaHeader: "#Fields: a b",
	}
	batch[1].MetaSetMut(envelope.MetaTopic, "changed")
	batch[1].MetaSetMut("added", "x")
	for i, m := range batch {
		body, err := m.AsBytes()
		if err != nil || string(body) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("message %d: body %q (%v)", i, body, err)
		}
		n := 0
		_ = m.MetaWalk(func(k, v string) error {
			n++
			w := want[k]
			if i == 1 && k == envelope.MetaTopic {
				w = "changed"
			}
			if i == 1 && k == "added" {
				w = "x"
			}
			if v != w {
				t.Errorf("message %d: %s = %q, want %q", i, k, v, w)
			}
			return nil
		})
		if wantN := len(want) + map[bool]int{true: 1}[i == 1]; n != wantN {
			t.Errorf("message %d: %d metadata, want %d", i, n, wantN)
		}
	}
}

// The ingest stage's cost per event beside the server and the broker.
func BenchmarkEventMessages(b *testing.B) {
	req := request(100)
	b.ReportAllocs()
	for b.Loop() {
		eventMessages(req)
	}
	b.ReportMetric(float64(b.N*len(req.Events))/b.Elapsed().Seconds(), "events/s")
}

// A source whose log types include a CSV schema taking its header from
// the first line sends that line with every event of a text body; other
// sources, and JSON bodies, do not.
func TestFirstLineTravelsForCSVHeaderSources(t *testing.T) {
	dir := "../../testdata/csv" // Custom.Hosts
	named := &Source{ID: "hosts", Path: "hosts", LogTypes: []string{"Custom.Hosts"}, Auth: Auth{Type: AuthNone}}
	all := &Source{ID: "all", Path: "all", Auth: Auth{Type: AuthNone}}
	other := &Source{ID: "alb", Path: "alb", LogTypes: []string{"AWS.ALB"}, Auth: Auth{Type: AuthNone}}
	markFirstLineSources([]*Source{named, all, other}, dir)
	if !named.FirstLine || !all.FirstLine || other.FirstLine {
		t.Fatalf("FirstLine: named %v, all log types %v, other %v; want true, true, false", named.FirstLine, all.FirstLine, other.FirstLine)
	}
	srv, got := server(t, nil, named, other)
	base := "http://" + srv.Addr()
	for _, tc := range []struct{ path, body, first string }{
		{"/http/hosts", "host,ip\nweb1,10.0.0.1\n", "host,ip"},
		{"/http/hosts", `{"host":"web1"}` + "\n" + `{"host":"web2"}`, ""},
		{"/http/alb", "host,ip\nweb1,10.0.0.1\n", ""},
	} {
		if code, body, _ := do(t, "POST", base+tc.path, []byte(tc.body), nil); code != 200 {
			t.Fatalf("%s: %d %s", tc.path, code, body)
		}
		r := <-got
		meta, _ := eventMessages(r)[1].MetaGet(envelope.MetaFirstLine)
		if len(r.Events) != 2 || meta != tc.first {
			t.Errorf("%s %q: %d events, first line %q; want 2 and %q", tc.path, tc.body, len(r.Events), meta, tc.first)
		}
	}
}
