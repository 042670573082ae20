package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRenderCountersGaugesHistograms(t *testing.T) {
	e := NewExporter("caracal_", []float64{0.01, 0.1, 1})
	c := e.NewCounterCtor("http.requests", "source", "status")
	c("demo", "200").Incr(3)
	c("demo", "200").Incr(2)
	c("demo", "401").Incr(1)
	e.NewGaugeCtor("lag")().Set(7)
	tm := e.NewTimerCtor("latency_ns", "source")("de\"mo")
	tm.Timing(5e6)  // 5ms → le 0.01
	tm.Timing(50e6) // 50ms → le 0.1
	tm.Timing(5e9)  // 5s → only +Inf

	got := e.Render()
	for _, want := range []string{
		"# TYPE caracal_http_requests counter\n",
		`caracal_http_requests{source="demo",status="200"} 5` + "\n",
		`caracal_http_requests{source="demo",status="401"} 1` + "\n",
		"# TYPE caracal_lag gauge\ncaracal_lag 7\n",
		"# TYPE caracal_latency_seconds histogram\n",
		`caracal_latency_seconds_bucket{source="de\"mo",le="0.01"} 1` + "\n",
		`caracal_latency_seconds_bucket{source="de\"mo",le="0.1"} 2` + "\n",
		`caracal_latency_seconds_bucket{source="de\"mo",le="1"} 2` + "\n",
		`caracal_latency_seconds_bucket{source="de\"mo",le="+Inf"} 3` + "\n",
		`caracal_latency_seconds_sum{source="de\"mo"} 5.055` + "\n",
		`caracal_latency_seconds_count{source="de\"mo"} 3` + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}

	rec := httptest.NewRecorder()
	e.HandlerFunc()(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") || string(body) != e.Render() {
		t.Fatalf("handler served %q (%s)", body, rec.Header().Get("Content-Type"))
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{"a.b-c": "a_b_c", "9x": "_x", "ok_1:x": "ok_1:x"} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkCounterIncr(b *testing.B) {
	c := NewExporter("", nil).NewCounterCtor("x", "a")("v")
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Incr(1)
		}
	})
}
