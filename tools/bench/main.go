// Command bench is `make bench`: it runs the whole Caracal system (all
// stages, real broker when CARACAL_BROKERS is set, else the embedded one),
// drives it over loopback with CloudTrail-sized events for BENCH_SECONDS
// (default 60), measures POST→alert latency with probe events at a local
// webhook receiver, and reports events/s per core (events per CPU-second of
// the caracal process), MB/s, p50/p99 latency and peak RSS. It then runs the
// same load through a stock Redpanda Connect pipeline doing the equivalent
// work (see baseline.go) and prints the ratio. BENCH_FLOOR=1 also runs the
// load through the stages with their work taken out (see floor.go): what
// the webhook, Kafka and Benthos cost per event before Caracal does any.
// The last line is
// `bench: <N> events/s/core, p99 POST→alert <M> ms, <R>x redpanda-connect`.
package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caracal-sec/caracal/tools/systest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// Result of one load run.
type Result struct {
	Name       string
	Events     int64
	Bytes      int64
	Seconds    float64 // load
	Drained    float64 // load start until the last probe alerted
	CPUSeconds float64
	PeakRSSMiB float64
	P50, P99   time.Duration
	Probes     int
	Alerted    int
}

func (r Result) perCore() float64 {
	if r.CPUSeconds == 0 {
		return 0
	}
	return float64(r.Events) / r.CPUSeconds
}

func (r Result) print() {
	fmt.Printf("%s: %d events accepted in %.1fs (%.0f/s), processed end to end in %.1fs = %.0f events/s sustained, %.1f MB/s; %.1f CPU-s → %.0f events/s/core; p50 POST→alert %s, p99 %s (%d/%d probes alerted); peak RSS %.0f MiB\n",
		r.Name, r.Events, r.Seconds, float64(r.Events)/r.Seconds, r.Drained, float64(r.Events)/r.Drained,
		float64(r.Bytes)/r.Drained/1e6, r.CPUSeconds, r.perCore(), r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond),
		r.Alerted, r.Probes, r.PeakRSSMiB)
}

func run() error {
	seconds := envInt("BENCH_SECONDS", 60)
	work, err := os.MkdirTemp("", "caracal-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := systest.Build(work)
	if err != nil {
		return err
	}
	hook := systest.NewReceiver()
	defer hook.Close()
	env := []string{"CARACAL_ALERT_WEBHOOK_URL=" + hook.URL, "CARACAL_LOG_LEVEL=WARN", "CARACAL_LAKE_ROLL_PERIOD=30s",
		"CARACAL_ALERT_STORM_LIMIT=100000000"}
	if b := os.Getenv("CARACAL_BROKERS"); b != "" {
		env = append(env, "CARACAL_BROKERS="+b)
	}
	p, err := systest.Start(systest.Options{Bin: bin, DataDir: filepath.Join(work, "data"), Env: env, WaitHTTP: true})
	if err != nil {
		return err
	}
	defer func() {
		if !p.Exited() {
			p.Kill()
		}
	}()
	fmt.Printf("bench: caracal (all stages, %s broker) at full load for %ds\n", brokerKind(), seconds)
	caracal := drive("caracal", "http://"+p.HTTPAddr+"/http/demo", p.Pid(), seconds, hook, 0)
	caracal.print()
	// Latency is measured at half the peak rate, once the backlog drained:
	// at full load it only measures the queue.
	half := float64(caracal.Events) / caracal.Drained / 2
	fmt.Printf("bench: caracal at half the sustained rate (%.0f events/s) for %ds\n", half, max(seconds/2, 10))
	moderate := drive("caracal@half", "http://"+p.HTTPAddr+"/http/demo", p.Pid(), max(seconds/2, 10), hook, half)
	moderate.print()
	caracal.P50, caracal.P99 = moderate.P50, moderate.P99
	if err := p.Stop(2 * time.Minute); err != nil {
		fmt.Println("bench: stop:", err)
	}

	if os.Getenv("BENCH_FLOOR") == "1" {
		fmt.Printf("bench: floor (same plugins, topics and load; no parse, enrich, detection or Parquet) for %ds\n", seconds)
		if floor, err := runFloor(bin, work, env, seconds); err != nil {
			fmt.Println("bench: floor not run:", err)
		} else {
			floor.print()
			fmt.Printf("bench: floor %.1f µs of CPU per event, full system %.1f µs\n", 1e6/floor.perCore(), 1e6/caracal.perCore())
		}
	}

	ratio := "n/a"
	if os.Getenv("BENCH_BASELINE") != "0" {
		base, err := runBaseline(work, seconds)
		if err != nil {
			fmt.Println("bench: redpanda-connect baseline not run:", err)
		} else {
			base.print()
			if base.perCore() > 0 {
				ratio = fmt.Sprintf("%.1f", caracal.perCore()/base.perCore())
			}
		}
	}
	fmt.Printf("bench: %.0f events/s/core, p99 POST→alert %d ms, %sx redpanda-connect\n",
		caracal.perCore(), caracal.P99.Milliseconds(), ratio)
	return nil
}

// waitIdle returns once the process used under 5% of a core for a second.
func waitIdle(pid int, deadline time.Time) {
	last := cpuSeconds(pid)
	for time.Now().Before(deadline) {
		time.Sleep(time.Second)
		now := cpuSeconds(pid)
		if now-last < 0.05 {
			return
		}
		last = now
	}
}

func brokerKind() string {
	if os.Getenv("CARACAL_BROKERS") != "" {
		return "external"
	}
	return "embedded"
}

// cpuSeconds reads utime+stime of a process (clock ticks of 100 Hz).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(fields[11], 64)
	st, _ := strconv.ParseFloat(fields[12], 64)
	return (u + st) / 100
}

// peakRSSMiB reads VmHWM of a process.
func peakRSSMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// appendEvents appends a JSON array of n realistic ~1.2 KB CloudTrail
// management events, each with its own id and source IP.
func appendEvents(dst []byte, enc *systest.CloudTrailJSON, rng *rand.Rand, seq *atomic.Int64, n int) []byte {
	var id, ip []byte
	at := time.Now().UTC()
	dst = append(dst, '[')
	for i := range n {
		if i > 0 {
			dst = append(dst, ',')
		}
		id = strconv.AppendInt(append(id[:0], "bench-"...), seq.Add(1), 10)
		ip = append(ip[:0], "10."...)
		ip = strconv.AppendInt(ip, int64(rng.IntN(256)), 10)
		ip = strconv.AppendInt(append(ip, '.'), int64(rng.IntN(256)), 10)
		ip = strconv.AppendInt(append(ip, '.'), int64(rng.IntN(254)+1), 10)
		dst = enc.Append(dst, rng, string(id), string(ip), at)
	}
	return append(dst, ']')
}

var (
	probeSeq     atomic.Int64
	probeAccount = fmt.Sprintf("%012d", rand.Int64N(1e12))
)

// drive posts batches of 100 events from several clients for the duration,
// plus a probe (a root console login from a fresh IP) every 250ms whose
// alert's arrival at the receiver gives the POST→alert latency.
func drive(name, url string, pid, seconds int, hook *systest.Receiver, rate float64) Result {
	res := Result{Name: name}
	var events, bytesSent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var seq atomic.Int64
	const clients, batchSize = 8, 100
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			var enc systest.CloudTrailJSON
			// At a target rate each client paces its 100-event batches.
			var pace time.Duration
			if rate > 0 {
				pace = time.Duration(float64(time.Second) * batchSize * clients / rate)
			}
			next := time.Now()
			for {
				if pace > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(pace)
				}
				select {
				case <-stop:
					return
				default:
				}
				// A new body each time: the transport may still read the
				// last one after Post returns.
				body := appendEvents(make([]byte, 0, 1300*batchSize), &enc, rng, &seq, batchSize)
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					events.Add(batchSize)
					bytesSent.Add(int64(len(body)))
				} else {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}(c)
	}
	sent := map[string]time.Time{}
	var sentMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		if hook == nil {
			return // no detection to alert: no probes
		}
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			// A probe's (account, IP) never repeats, within this process
			// (the sequence) or across bench runs on a broker that keeps the
			// alert state (the account): a repeat would be deduplicated into
			// the open alert, as it should, and never reach the receiver.
			i := probeSeq.Add(1)
			id := fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), i)
			body, err := systest.RootLogin(id, fmt.Sprintf("203.0.%d.%d", (i/250)%256, i%250+1))
			if err != nil {
				return
			}
			body = bytes.ReplaceAll(body, []byte(systest.RootLoginAccount), []byte(probeAccount))
			t0 := time.Now()
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				continue
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				sentMu.Lock()
				sent[id] = t0
				sentMu.Unlock()
			}
		}
	}()
	cpu0 := cpuSeconds(pid)
	start := time.Now()
	time.Sleep(time.Duration(seconds) * time.Second)
	close(stop)
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.CPUSeconds = cpuSeconds(pid) - cpu0
	res.Events, res.Bytes = events.Load(), bytesSent.Load()

	// Wait until every probe alerted: the backlog accepted at full load is
	// then processed end to end, so events / (load + drain) is the sustained
	// rate and the CPU-seconds cover all the work.
	deadline := time.Now().Add(5 * time.Minute)
	var lat []time.Duration
	if hook == nil {
		waitIdle(pid, deadline)
	}
	for hook != nil {
		lat = lat[:0]
		arrived := map[string]time.Time{}
		for _, a := range hook.All() {
			evs, _ := a["events"].([]any)
			for _, e := range evs {
				m, _ := e.(map[string]any)
				if id, _ := m["eventID"].(string); id != "" {
					if t, ok := a["_received"].(time.Time); ok {
						arrived[id] = t
					}
				}
			}
		}
		sentMu.Lock()
		for id, t0 := range sent {
			if t, ok := arrived[id]; ok {
				lat = append(lat, t.Sub(t0))
			}
		}
		res.Probes = len(sent)
		sentMu.Unlock()
		if len(lat) >= res.Probes || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	res.Drained = time.Since(start).Seconds()
	res.CPUSeconds = cpuSeconds(pid) - cpu0
	res.PeakRSSMiB = peakRSSMiB(pid)
	res.Alerted = len(lat)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		res.P50 = lat[len(lat)/2]
		res.P99 = lat[(len(lat)*99)/100]
	}
	return res
}
