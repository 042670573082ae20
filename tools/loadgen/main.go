// Command loadgen measures the HTTP source over loopback: it runs `caracal
// run --stages ingest` (webhook → broker; the embedded broker unless
// CARACAL_BROKERS is set) and posts, for LOADGEN_SECONDS each (default 10),
// single 1 KB JSON events, 100-event JSON-lines batches and gzip'd batches
// from 16 clients, printing requests/s, MB/s of decompressed input, MB/s
// per core of the caracal process, and p50/p99 request latency. Pass -url to
// drive an already running source instead.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
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
	url := flag.String("url", "", "source URL to drive (default: start caracal --stages ingest)")
	clients := flag.Int("clients", 16, "concurrent clients")
	flag.Parse()
	seconds := 10
	if v, err := strconv.Atoi(os.Getenv("LOADGEN_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	pid := 0
	if *url == "" {
		work, err := os.MkdirTemp("", "caracal-loadgen")
		if err != nil {
			fail(err)
		}
		defer os.RemoveAll(work)
		bin, err := systest.Build(work)
		if err != nil {
			fail(err)
		}
		env := []string{"CARACAL_LOG_LEVEL=WARN"}
		if b := os.Getenv("CARACAL_BROKERS"); b != "" {
			env = append(env, "CARACAL_BROKERS="+b)
		}
		p, err := systest.Start(systest.Options{Bin: bin, DataDir: filepath.Join(work, "data"), Env: env, Args: []string{"--stages", "ingest"}, WaitHTTP: true})
		if err != nil {
			fail(err)
		}
		defer p.Kill()
		*url, pid = "http://"+p.HTTPAddr+"/http/demo", p.Pid()
	}
	event := func(i int) string {
		return fmt.Sprintf(`{"eventVersion":"1.08","eventTime":"2026-11-23T21:04:05Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"eu-west-1","sourceIPAddress":"10.0.%d.%d","userAgent":"aws-cli/2.15.0 Python/3.11.6 Linux/6.1.0 exe/x86_64.debian.12 prompt/off command/ec2.describe-instances","eventID":"%08d-1111-2222-3333-444444444444","readOnly":true,"eventType":"AwsApiCall","recipientAccountId":"111122223333","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLEEXAMPLE","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333","accessKeyId":"AKIAIOSFODNN7EXAMPLE","userName":"alice"},"requestParameters":{"instancesSet":{"items":[{"instanceId":"i-0abc1234def567890"}]}},"tlsDetails":{"tlsVersion":"TLSv1.3","cipherSuite":"TLS_AES_128_GCM_SHA256"}}`, i%200, i%250+1, i)
	}
	one := []byte(event(1))
	var lines bytes.Buffer
	for i := 0; i < 100; i++ {
		lines.WriteString(event(i))
		lines.WriteByte('\n')
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(lines.Bytes())
	zw.Close()
	fmt.Printf("loadgen: %s, %d clients, %ds per scenario (event %d B)\n", *url, *clients, seconds, len(one))
	for _, sc := range []struct {
		name        string
		body        []byte
		plain, evts int
	}{
		{"1 KB JSON event", one, len(one), 1},
		{"100-event JSON lines", lines.Bytes(), lines.Len(), 100},
		{"100-event gzip batch", gz.Bytes(), lines.Len(), 100},
	} {
		run(*url, pid, *clients, seconds, sc.name, sc.body, sc.plain, sc.evts)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}

func cpuSeconds(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / 100
}

func run(url string, pid, clients, seconds int, name string, body []byte, plain, events int) {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	stop := time.Now().Add(time.Duration(seconds) * time.Second)
	cpu0 := cpuSeconds(pid)
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(stop) {
				t0 := time.Now()
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
					mine = append(mine, time.Since(t0))
				} else {
					failed.Add(1)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	cpu := cpuSeconds(pid) - cpu0
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(float64(len(lat)-1)*q)]
	}
	mb := float64(ok.Load()) * float64(plain) / 1e6
	perCore := "n/a"
	if cpu > 0 {
		perCore = fmt.Sprintf("%.1f MB/s/core", mb/cpu)
	}
	fmt.Printf("%-22s %8.0f req/s %9.0f events/s %7.1f MB/s (%s) p50 %6.2f ms p99 %6.2f ms, %d refused\n",
		name, float64(ok.Load())/secs, float64(ok.Load())*float64(events)/secs, mb/secs, perCore,
		float64(p(0.5).Microseconds())/1000, float64(p(0.99).Microseconds())/1000, failed.Load())
}
