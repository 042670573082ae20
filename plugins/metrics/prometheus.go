// Package metrics exports Benthos's metrics (and every Caracal plugin's) in
// the Prometheus text format on the service's /metrics endpoint. Benthos core
// ships no Prometheus exporter, and the format is small enough that writing it
// beats pulling in a client library and its dependency graph.
package metrics

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redpanda-data/benthos/v4/public/service"
)

func prometheusSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Summary("Serves metrics in the Prometheus text exposition format at the service's `/metrics` endpoint (the root `http.address`).").
		Description("Counters become `_total`-less counters with the Benthos name, gauges gauges, and timers histograms in seconds. Metric names have dots replaced by underscores and are prefixed with `prefix`.").
		Fields(
			service.NewStringField("prefix").
				Description("Prefix added to every metric name.").
				Default("").Example("caracal_"),
			service.NewFloatListField("buckets").
				Description("Histogram bucket upper bounds in seconds for timers.").
				Default([]any{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0}).Advanced(),
		)
}

func init() {
	service.MustRegisterMetricsExporter("prometheus", prometheusSpec(),
		func(conf *service.ParsedConfig, _ *service.Logger) (service.MetricsExporter, error) {
			prefix, err := conf.FieldString("prefix")
			if err != nil {
				return nil, err
			}
			buckets, err := conf.FieldFloatList("buckets")
			if err != nil {
				return nil, err
			}
			return NewExporter(prefix, buckets), nil
		})
}

// Exporter keeps every series in memory and renders them on scrape.
type Exporter struct {
	prefix  string
	buckets []float64

	mu       sync.RWMutex
	families map[string]*family
}

type family struct {
	name, kind string
	labelKeys  []string
	mu         sync.RWMutex
	series     map[string]*series // by rendered label set
}

type series struct {
	labels  string
	value   atomic.Uint64 // float64 bits (counter, gauge)
	count   atomic.Uint64 // histogram
	sum     atomic.Uint64 // histogram, float64 bits
	buckets []atomic.Uint64
}

// NewExporter returns an exporter with the given name prefix and histogram
// buckets (seconds).
func NewExporter(prefix string, buckets []float64) *Exporter {
	sort.Float64s(buckets)
	return &Exporter{prefix: prefix, buckets: buckets, families: map[string]*family{}}
}

func (e *Exporter) family(name, kind string, labelKeys []string) *family {
	name = sanitize(e.prefix + name)
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.families[name]
	if f == nil {
		f = &family{name: name, kind: kind, labelKeys: labelKeys, series: map[string]*series{}}
		e.families[name] = f
	}
	return f
}

func (f *family) get(values []string, nBuckets int) *series {
	// Look up by the raw values (cheap, on every increment); the escaped
	// label text is built once, when the series is created.
	key := strings.Join(values, "\x00")
	f.mu.RLock()
	s := f.series[key]
	f.mu.RUnlock()
	if s != nil {
		return s
	}
	var b strings.Builder
	for i, k := range f.labelKeys {
		if i > 0 {
			b.WriteByte(',')
		}
		v := ""
		if i < len(values) {
			v = values[i]
		}
		b.WriteString(sanitize(k))
		b.WriteString(`="`)
		b.WriteString(escape(v))
		b.WriteByte('"')
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if s = f.series[key]; s == nil {
		s = &series{labels: b.String(), buckets: make([]atomic.Uint64, nBuckets)}
		f.series[key] = s
	}
	return s
}

func addFloat(a *atomic.Uint64, d float64) {
	for {
		old := a.Load()
		if a.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// NewCounterCtor implements service.MetricsExporter.
func (e *Exporter) NewCounterCtor(name string, labelKeys ...string) service.MetricsExporterCounterCtor {
	f := e.family(name, "counter", labelKeys)
	return func(values ...string) service.MetricsExporterCounter { return counter{f.get(values, 0)} }
}

// NewGaugeCtor implements service.MetricsExporter.
func (e *Exporter) NewGaugeCtor(name string, labelKeys ...string) service.MetricsExporterGaugeCtor {
	f := e.family(name, "gauge", labelKeys)
	return func(values ...string) service.MetricsExporterGauge { return gauge{f.get(values, 0)} }
}

// NewTimerCtor implements service.MetricsExporter.
func (e *Exporter) NewTimerCtor(name string, labelKeys ...string) service.MetricsExporterTimerCtor {
	// Benthos times in nanoseconds and names timers *_ns; Prometheus wants seconds.
	f := e.family(strings.TrimSuffix(name, "_ns")+"_seconds", "histogram", labelKeys)
	return func(values ...string) service.MetricsExporterTimer {
		return timer{s: f.get(values, len(e.buckets)), bounds: e.buckets}
	}
}

// Close implements service.MetricsExporter.
func (e *Exporter) Close(context.Context) error { return nil }

type counter struct{ s *series }

func (c counter) Incr(n int64)          { addFloat(&c.s.value, float64(n)) }
func (c counter) IncrFloat64(n float64) { addFloat(&c.s.value, n) }

type gauge struct{ s *series }

func (g gauge) Set(v int64)          { g.s.value.Store(math.Float64bits(float64(v))) }
func (g gauge) SetFloat64(v float64) { g.s.value.Store(math.Float64bits(v)) }

type timer struct {
	s      *series
	bounds []float64
}

// Timing records a duration in nanoseconds (Benthos's unit).
func (t timer) Timing(ns int64) {
	sec := float64(ns) / 1e9
	t.s.count.Add(1)
	addFloat(&t.s.sum, sec)
	if i := sort.SearchFloat64s(t.bounds, sec); i < len(t.bounds) {
		t.s.buckets[i].Add(1)
	}
}

// HandlerFunc serves the text exposition format; Benthos mounts it at /metrics.
func (e *Exporter) HandlerFunc() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write([]byte(e.Render()))
	}
}

// Render returns every series in the Prometheus text format, sorted by name.
func (e *Exporter) Render() string {
	e.mu.RLock()
	names := make([]string, 0, len(e.families))
	for n := range e.families {
		names = append(names, n)
	}
	e.mu.RUnlock()
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		e.mu.RLock()
		f := e.families[n]
		e.mu.RUnlock()
		f.mu.RLock()
		keys := make([]string, 0, len(f.series))
		for k := range f.series {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "# TYPE %s %s\n", f.name, f.kind)
		for _, k := range keys {
			s := f.series[k]
			if f.kind != "histogram" {
				fmt.Fprintf(&b, "%s%s %s\n", f.name, braces(s.labels), num(math.Float64frombits(s.value.Load())))
				continue
			}
			var cum uint64
			for i, ub := range e.buckets {
				cum += s.buckets[i].Load()
				fmt.Fprintf(&b, "%s_bucket%s %d\n", f.name, braces(join(s.labels, `le="`+num(ub)+`"`)), cum)
			}
			fmt.Fprintf(&b, "%s_bucket%s %d\n", f.name, braces(join(s.labels, `le="+Inf"`)), s.count.Load())
			fmt.Fprintf(&b, "%s_sum%s %s\n", f.name, braces(s.labels), num(math.Float64frombits(s.sum.Load())))
			fmt.Fprintf(&b, "%s_count%s %d\n", f.name, braces(s.labels), s.count.Load())
		}
		f.mu.RUnlock()
	}
	return b.String()
}

func braces(labels string) string {
	if labels == "" {
		return ""
	}
	return "{" + labels + "}"
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// sanitize makes a valid Prometheus metric or label name.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escape(v string) string { return labelEscaper.Replace(v) }

// Zero exports c at 0 now rather than at its first increment: a counter
// that appears only once it is 1 is missed by increase() and rate() (they
// need an earlier sample), so an alert on "any" would miss the first events.
func Zero(c *service.MetricCounter, labelValues ...string) *service.MetricCounter {
	c.Incr(0, labelValues...)
	return c
}
