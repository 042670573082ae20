package httpsource

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// metrics exports per-source figures on the service's metrics endpoint.
// Requests add to tallies of their own, which flush hands to the exporter
// every second: Benthos resolves a labelled metric on every update (it
// builds the label path each time), and updating it per request was a
// seventh of the CPU a single-event POST costs. Latencies are timed per
// request: a distribution cannot be summed.
type metrics struct {
	requests *service.MetricCounter
	events   *service.MetricCounter
	bytes    *service.MetricCounter
	latency  *service.MetricTimer
	buffered *service.MetricGauge

	tallies sync.Map // tallyKey → *atomic.Int64, the counts since the last flush
	held    atomic.Int64
	stop    chan struct{}
	done    chan struct{}
}

// tallyKey is a counter and its label values (b is "" for one label).
type tallyKey struct {
	c    *service.MetricCounter
	a, b string
}

// flushEvery is how stale the exported figures may be.
const flushEvery = time.Second

func newMetrics(m *service.Metrics) *metrics {
	ms := &metrics{
		requests: m.NewCounter("http_source_requests", "source", "status"),
		events:   m.NewCounter("http_source_events", "source"),
		bytes:    m.NewCounter("http_source_bytes", "source", "stage"),
		latency:  m.NewTimer("http_source_request_latency_ns", "source"),
		buffered: m.NewGauge("http_buffered_bytes"),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	ms.buffered.Set(0)
	go ms.run()
	return ms
}

// Request implements Observer.
func (m *metrics) Request(source string, status, rawBytes, plainBytes, events int, latency time.Duration) {
	m.add(m.requests, 1, source, strconv.Itoa(status))
	if status == 200 {
		m.add(m.events, int64(events), source, "")
	}
	m.add(m.bytes, int64(rawBytes), source, "received")
	m.add(m.bytes, int64(plainBytes), source, "decompressed")
	m.latency.Timing(latency.Nanoseconds(), source)
}

// Buffered implements Observer.
func (m *metrics) Buffered(bytes int64) { m.held.Store(bytes) }

func (m *metrics) add(c *service.MetricCounter, n int64, a, b string) {
	k := tallyKey{c, a, b}
	t, ok := m.tallies.Load(k)
	if !ok {
		// Sources come from the config, and statuses are few: the keys
		// are bounded.
		t, _ = m.tallies.LoadOrStore(k, new(atomic.Int64))
	}
	t.(*atomic.Int64).Add(n)
}

func (m *metrics) run() {
	defer close(m.done)
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-m.stop:
			m.flush()
			return
		case <-tick.C:
			m.flush()
		}
	}
}

// flush hands the tallies since the last flush to the exporter.
func (m *metrics) flush() {
	m.tallies.Range(func(k, v any) bool {
		key := k.(tallyKey)
		if n := v.(*atomic.Int64).Swap(0); n != 0 {
			if key.b == "" {
				key.c.Incr(n, key.a)
			} else {
				key.c.Incr(n, key.a, key.b)
			}
		}
		return true
	})
	m.buffered.Set(m.held.Load())
}

// close flushes what is left and stops flushing.
func (m *metrics) close() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
}
