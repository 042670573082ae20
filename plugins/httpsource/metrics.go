package httpsource

import (
	"strconv"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// metrics exports per-source figures on the service's metrics endpoint.
type metrics struct {
	requests *service.MetricCounter
	events   *service.MetricCounter
	bytes    *service.MetricCounter
	latency  *service.MetricTimer
	buffered *service.MetricGauge
}

func newMetrics(m *service.Metrics) *metrics {
	return &metrics{
		requests: m.NewCounter("http_source_requests", "source", "status"),
		events:   m.NewCounter("http_source_events", "source"),
		bytes:    m.NewCounter("http_source_bytes", "source", "stage"),
		latency:  m.NewTimer("http_source_request_latency_ns", "source"),
		buffered: m.NewGauge("http_buffered_bytes"),
	}
}

// Request implements Observer.
func (m *metrics) Request(source string, status, rawBytes, plainBytes, events int, latency time.Duration) {
	m.requests.Incr(1, source, strconv.Itoa(status))
	if status == 200 {
		m.events.Incr(int64(events), source)
	}
	m.bytes.Incr(int64(rawBytes), source, "received")
	m.bytes.Incr(int64(plainBytes), source, "decompressed")
	m.latency.Timing(latency.Nanoseconds(), source)
}

// Buffered implements Observer.
func (m *metrics) Buffered(bytes int64) { m.buffered.Set(bytes) }
