package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caracal-sec/caracal/plugins/diskspace"
	"github.com/caracal-sec/caracal/plugins/lake/laketest"
	"github.com/caracal-sec/caracal/tools/systest"
)

// TestFullDiskLosesNothing runs `caracal run` (embedded broker, local
// lake) on a file system of its own, 256 MiB, while a client posts events
// without pause. It fills the disk in two steps and frees it again:
//
//  1. below the lake's reserve: the lake stops writing and retries, the
//     broker still takes events;
//  2. to the last byte: the broker refuses events (the HTTP input does not
//     answer 200), and what was in flight waits;
//  3. freed: every event answered 200 at any time ends up in the lake
//     exactly once, and the process stops cleanly.
//
// The file system is a tmpfs mounted in a private mount namespace
// (`unshare -rm`), so the test needs no privileges; the test reaches it
// through /proc/<pid>/root.
func TestFullDiskLosesNothing(t *testing.T) {
	if out, err := exec.Command("unshare", "-rm", "true").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("needs a private mount namespace (`unshare -rm` from util-linux, user namespaces enabled): %v %s", err, out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	laketest.Python(t) // the lake is read back with pyarrow
	data := t.TempDir()
	p := startWith(t, systest.Options{
		DataDir: data, Env: []string{"CARACAL_LAKE_ROLL_PERIOD=1s"},
		Wrap: []string{"unshare", "-rm", "sh", "-c",
			`mount -t tmpfs -o size=256m caracal-fulldisk "$CARACAL_DATA_DIR" && exec "$@"`, "sh"},
	})
	disk := filepath.Join(fmt.Sprintf("/proc/%d/root", p.Pid()), data)
	if free, err := diskspace.Free(disk); err != nil || free > 256<<20 {
		t.Fatalf("caracal's data directory is not on its 256 MiB file system: %d bytes free, %v", free, err)
	}

	load := newPoster(p)
	load.start(4)
	load.waitAcked(t, 20)

	// 1. Less free than the lake's reserve, more than the broker's.
	fill(t, filepath.Join(disk, "filler-1"), (diskspace.BrokerReserve+diskspace.LakeReserve)/2)
	waitOutput(t, p, "Lake: could not store files")
	if m := metric(t, p, "caracal_lake_store_retries"); m < 1 {
		t.Errorf("caracal_lake_store_retries = %v while the lake waits for space", m)
	}
	acked := load.acked()
	load.waitAcked(t, len(acked)+20) // the broker still takes events

	// 2. Full to the last byte.
	fill(t, filepath.Join(disk, "filler-2"), 0)
	waitOutput(t, p, "Embedded broker: refusing events")
	// Requests sent before may still be answered 200; none sent since.
	full := time.Now()
	time.Sleep(8 * time.Second)
	if m := load.ackedSentSince(full); m > 0 {
		t.Errorf("%d events sent while the disk was full were answered 200", m)
	}
	n := len(load.acked())

	// 3. Freed.
	for _, f := range []string{"filler-1", "filler-2"} {
		if err := os.Remove(filepath.Join(disk, f)); err != nil {
			t.Fatal(err)
		}
	}
	waitOutput(t, p, "disk space is back")
	load.waitAcked(t, n+20)
	load.stop()
	acked = load.acked()

	lake := filepath.Join(disk, "lake", "aws_cloudtrail")
	deadline := time.Now().Add(90 * time.Second)
	for {
		counts := map[string]int{}
		if _, err := os.Stat(lake); err == nil {
			for _, r := range laketest.ReadTable(t, lake) {
				counts[fmt.Sprint(r["eventID"])]++
			}
		}
		var missing, doubled []string
		for _, id := range acked {
			switch counts[id] {
			case 0:
				missing = append(missing, id)
			case 1:
			default:
				doubled = append(doubled, id)
			}
		}
		if len(doubled) > 0 {
			t.Fatalf("events twice in the lake: %v", doubled)
		}
		if len(missing) == 0 {
			t.Logf("%d acknowledged events, all in the lake once; %d requests refused or unanswered", len(acked), load.refused())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged events not in the lake within 90 s of the disk being freed: %v", len(missing), len(acked), missing)
		}
		time.Sleep(2 * time.Second)
	}
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// fill writes zeros to path until the file system has at most leave bytes
// free (to the last byte when leave is 0).
func fill(t *testing.T, path string, leave uint64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		free, err := diskspace.Free(path)
		if err != nil {
			t.Fatal(err)
		}
		if free <= leave {
			return
		}
		chunk := buf
		if leave > 0 && free-leave < uint64(len(buf)) {
			chunk = buf[:free-leave]
		}
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) && leave == 0 {
				return
			}
			t.Fatal(err)
		}
	}
}

// waitOutput waits until the process printed text.
func waitOutput(t *testing.T, p *systest.Process, text string) {
	t.Helper()
	if !waitUntil(60*time.Second, 100*time.Millisecond, func() bool { return strings.Contains(p.Output(), text) }) {
		t.Fatalf("caracal did not say %q within 60 s", text)
	}
}

// poster posts CloudTrail events with unique ids from several workers and
// keeps the ids answered 200. A request gets 5 s: one unanswered by then
// counts as refused.
type poster struct {
	p      *systest.Process
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	ok       []string
	okSent   []time.Time // when each of ok was sent
	failures int
}

func newPoster(p *systest.Process) *poster {
	ctx, cancel := context.WithCancel(context.Background())
	return &poster{p: p, client: &http.Client{Timeout: 5 * time.Second}, ctx: ctx, cancel: cancel}
}

func (l *poster) start(workers int) {
	at := time.Date(2026, 11, 23, 21, 4, 5, 0, time.UTC)
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; l.ctx.Err() == nil; i++ {
				id := fmt.Sprintf("fulldisk-%d-%d", w, i)
				body, _ := json.Marshal(systest.CloudTrailEvent(rng, id, "198.51.100.9", at))
				sent := time.Now()
				resp, err := l.client.Post("http://"+l.p.HTTPAddr+"/http/demo", "application/json", strings.NewReader(string(body)))
				l.mu.Lock()
				if err == nil && resp.StatusCode == 200 {
					l.ok = append(l.ok, id)
					l.okSent = append(l.okSent, sent)
				} else {
					l.failures++
				}
				l.mu.Unlock()
				if err == nil {
					resp.Body.Close()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
}

func (l *poster) stop() { l.cancel(); l.wg.Wait() }

func (l *poster) acked() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ok...)
}

// ackedSentSince counts the events answered 200 that were sent after t.
func (l *poster) ackedSentSince(t time.Time) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, sent := range l.okSent {
		if sent.After(t) {
			n++
		}
	}
	return n
}

func (l *poster) refused() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures
}

// waitAcked waits until n events in all were answered 200.
func (l *poster) waitAcked(t *testing.T, n int) {
	t.Helper()
	if !waitUntil(60*time.Second, 100*time.Millisecond, func() bool { return len(l.acked()) >= n }) {
		t.Fatalf("only %d of %d events answered 200 within 60 s (%d refused)", len(l.acked()), n, l.refused())
	}
}

// metric is the sum of a Prometheus counter's series at the process's
// /metrics.
func metric(t *testing.T, p *systest.Process, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			fields := strings.Fields(rest)
			v, _ := strconv.ParseFloat(fields[len(fields)-1], 64)
			sum += v
		}
	}
	return sum
}
