package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caracal-sec/caracal/plugins/kafka/kafkatest"
	"github.com/caracal-sec/caracal/plugins/lake/laketest"
	"github.com/caracal-sec/caracal/plugins/settings"
	"github.com/caracal-sec/caracal/tools/systest"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The end-to-end tests run the real binary as a user would (`caracal run`
// from the repository root), POST a CloudTrail root console login, and check
// the alert at a local webhook receiver and the row in the Parquet lake, read
// back with pyarrow.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func caracalBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "caracal-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath, buildErr = systest.Build(dir)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func start(t *testing.T, dataDir string, env []string, args ...string) *systest.Process {
	t.Helper()
	return startWith(t, systest.Options{DataDir: dataDir, Env: env, Args: args})
}

// startWith starts the test binary with o, waiting until it serves; it is
// killed (its output logged on failure) when the test ends.
func startWith(t *testing.T, o systest.Options) *systest.Process {
	t.Helper()
	o.WaitHTTP = true
	return launch(t, "caracal", o)
}

// launch starts the test binary with o; it is killed (its output logged on
// failure, as name's) when the test ends.
func launch(t *testing.T, name string, o systest.Options) *systest.Process {
	t.Helper()
	o.Bin = caracalBinary(t)
	p, err := systest.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.Exited() {
			p.Kill()
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.Tail(80))
		}
	})
	return p
}

func post(t *testing.T, p *systest.Process, body []byte) {
	t.Helper()
	code, resp, err := p.Post("demo", body)
	if err != nil || code != 200 {
		t.Fatalf("POST /http/demo = %d %s %v", code, resp, err)
	}
}

func rootLogin(t *testing.T, eventID string) []byte {
	t.Helper()
	b, err := systest.RootLogin(eventID, "")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	ev["recipientAccountId"] = runAccount
	if b, err = json.Marshal(ev); err != nil {
		t.Fatal(err)
	}
	return b
}

// runAccount is this test run's account in root logins. Their alerts are
// deduplicated by account and source IP for an hour, and a broker that
// outlives a run (a developer's, or one `make bench` used) still holds
// the open alerts of earlier runs, which a new login would join silently.
var runAccount = fmt.Sprintf("%012d", time.Now().UnixNano()%1_000_000_000_000)

func waitAlert(t *testing.T, r *systest.Receiver, eventID string) map[string]any {
	t.Helper()
	timeout := time.After(90 * time.Second)
	for {
		select {
		case a := <-r.Alerts:
			if strings.Contains(fmt.Sprint(a["events"]), eventID) {
				return a
			}
		case <-timeout:
			t.Fatalf("no alert for event %s within 90s", eventID)
		}
	}
}

// waitMatch reads caracal.matches on the embedded broker in dataDir until
// the match for eventID is there. A rule's matches share one partition,
// which the alert stage takes in order, so the match of an event posted
// after this returns is handled after eventID's.
func waitMatch(t *testing.T, dataDir, eventID string) {
	t.Helper()
	addr, err := os.ReadFile(filepath.Join(dataDir, "broker", "address"))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(settings.SplitList(string(addr))...),
		kgo.ConsumeTopics("caracal.matches"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		found := false
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			found = found || bytes.Contains(r.Value, []byte(eventID))
		})
		if found {
			return
		}
	}
	t.Fatalf("no match for event %s on caracal.matches within 90s", eventID)
}

// waitUntil calls ok every interval until it holds (true) or within has
// passed (false); the caller says what did not happen.
func waitUntil(within, every time.Duration, ok func() bool) bool {
	for deadline := time.Now().Add(within); !ok(); time.Sleep(every) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// waitAlertTitled polls every alert received (not the channel, which
// waitAlert may have drained) until one's title contains part.
func waitAlertTitled(t *testing.T, r *systest.Receiver, part string) map[string]any {
	t.Helper()
	var found map[string]any
	titled := func() bool {
		for _, a := range r.All() {
			if strings.Contains(fmt.Sprint(a["title"]), part) {
				found = a
				return true
			}
		}
		return false
	}
	if !waitUntil(90*time.Second, 100*time.Millisecond, titled) {
		t.Fatalf("no alert titled with %q within 90s", part)
	}
	return found
}

// lakeRow reads the CloudTrail table back and returns the row with eventID.
func lakeRow(t *testing.T, lakeDir, eventID string) map[string]any {
	t.Helper()
	for _, r := range laketest.ReadTable(t, filepath.Join(lakeDir, "aws_cloudtrail")) {
		if r["eventID"] == eventID {
			return r
		}
	}
	return nil
}

// waitLakeRow polls the lake until the event's row is there.
func waitLakeRow(t *testing.T, lakeDir, eventID string) map[string]any {
	t.Helper()
	var row map[string]any
	if !waitUntil(90*time.Second, time.Second, func() bool { row = lakeRow(t, lakeDir, eventID); return row != nil }) {
		t.Fatalf("event %s not in the lake within 90s", eventID)
	}
	return row
}

func checkAlert(t *testing.T, a map[string]any) {
	t.Helper()
	if a["id"] != "AWS.CloudTrail.RootConsoleLogin" || a["type"] != "RULE" {
		t.Errorf("alert id/type = %v/%v", a["id"], a["type"])
	}
	for _, k := range []string{"alertId", "createdAt", "severity", "title", "name", "description", "runbook", "tags", "version", "alertContext", "dedupString", "eventCount", "logTypes", "updatedAt", "events", "link"} {
		if _, ok := a[k]; !ok {
			t.Errorf("alert lacks %q: %v", k, a)
		}
	}
}

func checkLakeRow(t *testing.T, row map[string]any) {
	t.Helper()
	if row == nil {
		t.Fatal("event not in the lake")
	}
	want := map[string]any{
		"eventName":       "ConsoleLogin",
		"eventSource":     "signin.amazonaws.com",
		"sourceIPAddress": "198.51.100.23",
		"p_log_type":      "AWS.CloudTrail",
		"p_source_id":     "demo",
		"p_event_time":    "2026-11-23T21:04:05Z",
	}
	for k, v := range want {
		if fmt.Sprint(row[k]) != fmt.Sprint(v) {
			t.Errorf("lake column %s = %v, want %v", k, row[k], v)
		}
	}
	ui, _ := row["userIdentity"].(map[string]any)
	if ui["type"] != "Root" || ui["accountId"] != "111122223333" {
		t.Errorf("lake userIdentity = %v", row["userIdentity"])
	}
	if !strings.Contains(fmt.Sprint(row["p_any_ip_addresses"]), "198.51.100.23") {
		t.Errorf("lake p_any_ip_addresses = %v", row["p_any_ip_addresses"])
	}
	if s, _ := row["p_row_id"].(string); s == "" {
		t.Errorf("lake p_row_id empty")
	}
	if f, _ := row["_file"].(string); !strings.Contains(f, "/aws_cloudtrail/year=2026/month=11/day=23/hour=21/") {
		t.Errorf("lake file %s is not in the event's hour partition", f)
	}
}

func runEndToEnd(t *testing.T, env []string) {
	hook := systest.NewReceiver()
	defer hook.Close()
	data := t.TempDir()
	// Short lake rolls: the delivery record of the alert, written after
	// the alert was delivered, is waited for in the lake before stopping.
	p := start(t, data, append(env, "CARACAL_ALERT_WEBHOOK_URL="+hook.URL, "CARACAL_LAKE_ROLL_PERIOD=1s"))
	// The load balancer's readiness probe: the broker answers (once the
	// stages connected, which serving / does not wait for).
	var resp *http.Response
	var err error
	ready := func() bool {
		if resp, err = http.Get("http://" + p.HTTPAddr + "/readyz"); err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	if !waitUntil(90*time.Second, 100*time.Millisecond, ready) {
		t.Fatalf("GET /readyz: %v %v within 90s, want 200", resp, err)
	}
	eventID := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	post(t, p, rootLogin(t, eventID))
	a := waitAlert(t, hook, eventID)
	checkAlert(t, a)
	// Every delivery attempt is recorded in the lake.
	delivered := func() bool {
		if _, err := os.Stat(filepath.Join(data, "lake", "alert_deliveries")); err != nil {
			return false
		}
		for _, r := range laketest.ReadTable(t, filepath.Join(data, "lake", "alert_deliveries")) {
			if r["alert_id"] == a["alertId"] && r["destination"] == "env-webhook" && fmt.Sprint(r["status"]) == "200" && r["attempt"] != nil {
				return true
			}
		}
		return false
	}
	if !waitUntil(90*time.Second, time.Second, delivered) {
		t.Fatalf("no alert_deliveries row for alert %v within 90s", a["alertId"])
	}
	if err := p.Stop(60 * time.Second); err != nil { // SIGTERM flushes the lake
		t.Fatal(err)
	}
	checkLakeRow(t, lakeRow(t, filepath.Join(data, "lake"), eventID))
	checkMatchRow(t, filepath.Join(data, "lake"), eventID, a)
	checkSearchAndReplay(t, filepath.Join(data, "lake"), eventID)
}

// checkMatchRow finds the event's rule match in the lake, and in it the
// alert it opened, as Panther's rule-match rows have it.
func checkMatchRow(t *testing.T, lakeDir, eventID string, a map[string]any) {
	t.Helper()
	for _, r := range laketest.ReadTable(t, filepath.Join(lakeDir, "rule_matches")) {
		if !strings.Contains(fmt.Sprint(r["event"]), eventID) {
			continue
		}
		if r["p_rule_id"] != "AWS.CloudTrail.RootConsoleLogin" || r["p_alert_id"] != a["alertId"] ||
			r["p_alert_severity"] != a["severity"] || r["p_alert_creation_time"] == nil || r["p_alert_update_time"] == nil {
			t.Errorf("rule_matches row of event %s: %v; want alert %v (%v)", eventID, r, a["alertId"], a["severity"])
		}
		return
	}
	t.Errorf("event %s has no rule_matches row", eventID)
}

// checkSearchAndReplay finds the event in the lake by its source IP with
// `caracal search`, and re-detects it with `caracal replay`.
func checkSearchAndReplay(t *testing.T, lakeDir, eventID string) {
	t.Helper()
	run := func(args ...string) string {
		cmd := exec.Command(caracalBinary(t), args...)
		cmd.Dir = "../.."
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("caracal %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}
	// A value is found however it is typed: the mapped IPv4 form, a
	// domain in capitals with its final dot.
	for _, indicator := range [][]string{{"--ip", "198.51.100.23"}, {"--ip", "::ffff:198.51.100.23"}, {"--domain", "SignIn.AWS.Amazon.com."}} {
		out := run("search", "--lake", lakeDir, indicator[0], indicator[1], "--since", "2026-11-23", "--until", "2026-11-24")
		var found bool
		for _, line := range strings.Split(out, "\n") {
			if line == "" {
				continue
			}
			var row map[string]any
			if err := json.Unmarshal([]byte(line), &row); err != nil {
				t.Fatalf("search output %q: %v", line, err)
			}
			if row["eventID"] == eventID && row["p_table"] == "aws_cloudtrail" {
				found = true
			}
		}
		if !found {
			t.Errorf("caracal search %s %s did not find event %s:\n%s", indicator[0], indicator[1], eventID, out)
		}
	}
	// The event's alert, stored now, is found by the indicators of its events.
	if out := run("search", "--lake", lakeDir, "--ip", "198.51.100.23", "--since", "1d", "--tables", "alerts"); !strings.Contains(out, `"p_table":"alerts"`) || !strings.Contains(out, eventID) {
		t.Errorf("caracal search did not find the alert of event %s:\n%s", eventID, out)
	}
	if out := run("search", "--lake", lakeDir, "--ip", "192.0.2.254", "--since", "2026-11-23"); strings.TrimSpace(out) != "" {
		t.Errorf("search for an absent IP printed rows:\n%s", out)
	}
	out := run("replay", "--lake", lakeDir, "--from", "2026-11-23", "--to", "2026-11-24")
	if !strings.Contains(out, `"p_rule_id":"AWS.CloudTrail.RootConsoleLogin"`) || !strings.Contains(out, eventID) {
		t.Errorf("caracal replay did not re-detect event %s:\n%s", eventID, out)
	}
	// A file that is not Parquet beside the event's (another tool's, a
	// copy cut short) is reported and skipped: the event is still found,
	// and the exit status says the results may be partial.
	files, _ := filepath.Glob(filepath.Join(lakeDir, "aws_cloudtrail", "*", "*", "*", "*", "*.parquet"))
	if len(files) == 0 {
		t.Fatal("no aws_cloudtrail files")
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(files[0]), "0-garbage.parquet"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caracalBinary(t), "search", "--lake", lakeDir, "--ip", "198.51.100.23", "--since", "2026-11-23", "--until", "2026-11-24")
	cmd.Dir = "../.."
	var stderr strings.Builder
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(got), eventID) ||
		!strings.Contains(stderr.String(), "0-garbage.parquet, which cannot be read") {
		t.Errorf("search beside an unreadable file: %v, found %v, stderr:\n%s", err, strings.Contains(string(got), eventID), stderr.String())
	}
}

func TestEndToEndEmbedded(t *testing.T) {
	runEndToEnd(t, nil)
}

func TestEndToEndRealKafka(t *testing.T) {
	brokers := kafkatest.Real(t)
	runEndToEnd(t, []string{"CARACAL_BROKERS=" + strings.Join(brokers, ",")})
}

// An acknowledged event survives the process being killed before any stage
// consumed it: the embedded broker keeps it in its data directory.
func TestAcknowledgedEventSurvivesKill(t *testing.T) {
	data := t.TempDir()
	p := start(t, data, nil, "--stages", "ingest")
	eventID := fmt.Sprintf("restart-%d", time.Now().UnixNano())
	post(t, p, rootLogin(t, eventID))
	p.Kill() // SIGKILL: no graceful flush

	p = start(t, data, []string{"CARACAL_LAKE_ROLL_PERIOD=1s"})
	row := waitLakeRow(t, filepath.Join(data, "lake"), eventID)
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	checkLakeRow(t, row)
}

func TestStatusAndUnknownSource(t *testing.T) {
	p := start(t, t.TempDir(), nil, "--stages", "ingest")
	resp, err := http.Post("http://"+p.HTTPAddr+"/http/nope", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown source = %d, want 404", resp.StatusCode)
	}
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// The HTTP input's per-source counters reach /metrics (they are tallied
// per request and handed to the exporter every second), with the answer
// of an accepted POST.
func TestHTTPSourceMetrics(t *testing.T) {
	p := start(t, t.TempDir(), nil, "--stages", "ingest")
	two := append(append(rootLogin(t, "metrics-1"), '\n'), rootLogin(t, "metrics-2")...)
	code, resp, err := p.Post("demo", two)
	if err != nil || code != 200 {
		t.Fatalf("POST = %d %s %v", code, resp, err)
	}
	var accepted struct {
		RequestID string `json:"request_id"`
		Events    int    `json:"events"`
	}
	if err := json.Unmarshal([]byte(resp), &accepted); err != nil || len(accepted.RequestID) != 32 || accepted.Events != 2 {
		t.Fatalf("accepted POST answered %s (%v)", resp, err)
	}
	post(t, p, rootLogin(t, "metrics-3"))
	want := map[string]float64{"caracal_http_source_requests": 2, "caracal_http_source_events": 3}
	deadline := time.Now().Add(15 * time.Second)
	for name, n := range want {
		for metric(t, p, name) != n {
			if time.Now().After(deadline) {
				t.Fatalf("%s = %v, want %v", name, metric(t, p, name), n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// getReady is Benthos's /ready of a process: its status and body.
func getReady(metricsAddr string) (int, string) {
	resp, err := http.Get("http://" + metricsAddr + "/ready")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Benthos's /ready, the readiness probe docs/operations.md names, covers
// every stage of the process: with all stages in one process and a lake it
// cannot write, it answers 503 naming the lake (it used to answer only for
// the stream that registered /ready last, 200 here), and 200 once the lake
// can be written.
func TestReadyCoversEveryStage(t *testing.T) {
	data := t.TempDir()
	blocker := filepath.Join(data, "not-a-dir")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, data, []string{"CARACAL_LAKE_URL=" + filepath.Join(blocker, "lake")})
	ready := func() (int, string) { return getReady(p.MetricsAddr) }
	var code int
	var body string
	if !waitUntil(60*time.Second, 200*time.Millisecond, func() bool {
		code, body = ready()
		return code == 503 && strings.Contains(body, "lake")
	}) {
		t.Fatalf("/ready with an unwritable lake = %d %q, want 503 naming the lake", code, body)
	}
	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(60*time.Second, 200*time.Millisecond, func() bool {
		code, body = ready()
		return code == 200
	}) {
		t.Fatalf("/ready once the lake can be written = %d %q, want 200", code, body)
	}
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// /ready follows the broker in a process without the ingest stage (and so
// without /readyz): 200 while the cluster answers, 503 naming the broker
// stream once it is gone. It used to stay 200: the Kafka components count
// as connected once they joined.
func TestReadyFollowsTheBroker(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := launch(t, "caracal", systest.Options{DataDir: t.TempDir(), Args: []string{"--stages", "detect"},
		Env: []string{"CARACAL_BROKERS=" + strings.Join(c.ListenAddrs(), ",")}})
	ready := func() (int, string) { return getReady(p.MetricsAddr) }
	var code int
	var body string
	if !waitUntil(90*time.Second, 200*time.Millisecond, func() bool {
		code, body = ready()
		return code == 200 || p.Exited()
	}) || code != 200 {
		t.Fatalf("/ready with the broker up = %d %q, want 200", code, body)
	}
	c.Close()
	if !waitUntil(60*time.Second, 200*time.Millisecond, func() bool {
		code, body = ready()
		return code == 503 && strings.Contains(body, "broker")
	}) {
		t.Fatalf("/ready with the broker gone = %d %q, want 503 naming the broker", code, body)
	}
}

// The counters docs/operations.md says to act on at their first increment
// are exported at 0 from the start: a series that appears only once it is 1
// gives increase() and rate() no earlier sample, so an alert rule would
// miss those first records.
func TestAlertingCountersExportedFromStart(t *testing.T) {
	p := start(t, t.TempDir(), nil)
	want := []string{"caracal_parse_skipped_lines", "caracal_detect_skipped_events",
		"caracal_alert_skipped_records", "caracal_lake_store_retries", "caracal_lake_uncommitted_stores"}
	var missing []string
	if !waitUntil(60*time.Second, 200*time.Millisecond, func() bool {
		resp, err := http.Get("http://" + p.MetricsAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		missing = missing[:0]
		for _, name := range want {
			if !strings.Contains(string(body), "\n"+name+"{") {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0
	}) {
		t.Fatalf("no sample of %v on /metrics", missing)
	}
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// The alert stage's dedup state lives in caracal.alert_state: after a
// restart, a match in the open alert's window attaches to it rather than
// sending the alert again.
func TestAlertStateSurvivesRestart(t *testing.T) {
	hook := systest.NewReceiver()
	defer hook.Close()
	data := t.TempDir()
	env := []string{"CARACAL_ALERT_WEBHOOK_URL=" + hook.URL}
	p := start(t, data, env)
	first := fmt.Sprintf("state-a-%d", time.Now().UnixNano())
	post(t, p, rootLogin(t, first))
	opened := waitAlert(t, hook, first)
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}

	p = start(t, data, env)
	same := fmt.Sprintf("state-b-%d", time.Now().UnixNano()) // same account and IP: same dedup string
	post(t, p, rootLogin(t, same))
	waitMatch(t, data, same)
	other, err := systest.RootLogin(fmt.Sprintf("state-c-%d", time.Now().UnixNano()), "203.0.113.77")
	if err != nil {
		t.Fatal(err)
	}
	post(t, p, other)
	// The other IP's match follows the same-IP match in the rule's
	// partition, so once its alert is here the same-IP match was handled.
	var seen []map[string]any
	timeout := time.After(90 * time.Second)
	for done := false; !done; {
		select {
		case a := <-hook.Alerts:
			seen = append(seen, a)
			done = strings.Contains(fmt.Sprint(a["events"]), "203.0.113.77")
		case <-timeout:
			t.Fatalf("no alert for the second IP within 90s; got %d alert(s)", len(seen))
		}
	}
	for _, a := range seen {
		if strings.Contains(fmt.Sprint(a["events"]), same) || a["alertId"] == opened["alertId"] {
			t.Errorf("after the restart the open alert was sent again: %v", a["alertId"])
		}
	}
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// `caracal alerts unsuppress` lifts a rule's storm suppression in the
// running system (through the embedded broker, found in the data dir).
func TestUnsuppressCommand(t *testing.T) {
	hook := systest.NewReceiver()
	defer hook.Close()
	data := t.TempDir()
	p := start(t, data, []string{"CARACAL_ALERT_WEBHOOK_URL=" + hook.URL, "CARACAL_ALERT_STORM_LIMIT=1"})
	login := func(ip string) {
		b, err := systest.RootLogin(fmt.Sprintf("storm-%d", time.Now().UnixNano()), ip)
		if err != nil {
			t.Fatal(err)
		}
		post(t, p, b)
	}
	waitFor := func(what string, ok func(map[string]any) bool) {
		t.Helper()
		timeout := time.After(90 * time.Second)
		for {
			select {
			case a := <-hook.Alerts:
				if ok(a) {
					return
				}
			case <-timeout:
				t.Fatalf("no %s within 90s", what)
			}
		}
	}
	has := func(ip string) func(map[string]any) bool {
		return func(a map[string]any) bool { return strings.Contains(fmt.Sprint(a["events"]), ip) }
	}
	login("203.0.113.1")
	waitFor("first alert", has("203.0.113.1"))
	login("203.0.113.2") // over the limit of 1 an hour
	waitFor("storm SYSTEM_ERROR", func(a map[string]any) bool { return a["type"] == "SYSTEM_ERROR" })

	cmd := exec.Command(caracalBinary(t), "alerts", "unsuppress", "--data-dir", data, "AWS.CloudTrail.RootConsoleLogin")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("caracal alerts unsuppress: %v\n%s", err, out)
	}
	login("203.0.113.3")
	waitFor("alert after unsuppress", has("203.0.113.3"))
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// A destination missing a setting stops `caracal run` before anything
// starts, with the reason, rather than after the other stages started;
// stages that deliver no alerts run regardless.
func TestRunRefusesAnIncompleteDestination(t *testing.T) {
	config := filepath.Join(t.TempDir(), "config.yaml")
	err := os.WriteFile(config, []byte("http:\n  address: ${CARACAL_METRICS_ADDRESS:127.0.0.1:4195}\ncaracal:\n  destinations:\n    - id: oncall\n      type: pagerduty\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caracalBinary(t), "run", "--config", config)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CARACAL_DATA_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("caracal run = %v, want exit 1:\n%s", err, out)
	}
	const want = "config caracal.destinations: destination oncall: type pagerduty needs token (the routing key)"
	if !strings.Contains(string(out), want) || strings.Contains(string(out), "Embedded broker on") {
		t.Errorf("caracal run output lacks %q or started the broker first:\n%s", want, out)
	}
	p := startWith(t, systest.Options{DataDir: t.TempDir(), Args: []string{"--config", config, "--stages", "ingest"}})
	post(t, p, rootLogin(t, fmt.Sprintf("no-alert-stage-%d", time.Now().UnixNano())))
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// A replication factor above the cluster's brokers stops the start at once
// with the setting to change; it used to be waited on for 2 minutes as an
// unreachable broker.
func TestRunStopsWhenTheBrokerRefusesTheTopics(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "config.yaml")
	// A data dir of its own: a new embedded broker (1 of them) without the topics.
	err := os.WriteFile(config, []byte("http:\n  address: ${CARACAL_METRICS_ADDRESS:127.0.0.1:4195}\ncaracal:\n  data_dir: "+filepath.Join(dir, "data")+"\n  topic_replication_factor: 3\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	addr, err := systest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, caracalBinary(t), "run", "--config", config, "--stages", "process")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CARACAL_METRICS_ADDRESS="+addr)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("caracal run = %v, want exit 1 at once:\n%s", err, out)
	}
	const want = "config caracal: the broker refused to create topic caracal.raw: set caracal.topic_replication_factor (3) to at most 1,"
	if !strings.Contains(string(out), want) || strings.Contains(string(out), "Waiting for the broker") {
		t.Errorf("caracal run output lacks %q or waited for the broker:\n%s", want, out)
	}
}

// An ingest pipeline whose source could never be served (one request may
// hold more than max_buffered_bytes) stops `caracal run` with the message
// `caracal lint` gives; it used to run without a listener, logging
// "Failed to connect" every second.
func TestRunRefusesWhatLintRefusesInTheHTTPInput(t *testing.T) {
	dir := t.TempDir()
	shipped, err := os.ReadFile("../../pipelines/ingest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pipeline := strings.Replace(string(shipped), "    sources:\n", "    max_buffered_bytes: 1000000\n    sources:\n", 1)
	if err := os.WriteFile(filepath.Join(dir, "ingest.yaml"), []byte(pipeline), 0o644); err != nil {
		t.Fatal(err)
	}
	const want = "source demo may hold 17825792 bytes in one request (max_body_bytes + max_decompressed_bytes), more than max_buffered_bytes (1000000) for all requests at once: raise max_buffered_bytes or lower the source's limits"
	lint := exec.Command(caracalBinary(t), "lint", filepath.Join(dir, "ingest.yaml"))
	lint.Dir = "../.."
	if out, err := lint.CombinedOutput(); err == nil || !strings.Contains(string(out), want) {
		t.Fatalf("caracal lint = %v, want %q:\n%s", err, want, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	addr, err := systest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, caracalBinary(t), "run", "--pipelines", dir, "--stages", "ingest")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CARACAL_DATA_DIR="+t.TempDir(), "CARACAL_METRICS_ADDRESS="+addr)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &exit) || exit.ExitCode() == 0 || !strings.Contains(string(out), want) {
		t.Fatalf("caracal run = %v, want a non-zero exit with %q:\n%s", err, want, out)
	}
}

// A remote lookup table out of reach at start does not stop the system:
// events still flow and alert, and a SYSTEM_ERROR says the table is not
// loaded. (caracal run used to exit, taking the HTTP input with it.)
func TestRunStartsWithoutARemoteLookupTable(t *testing.T) {
	hook := systest.NewReceiver()
	defer hook.Close()
	dir := t.TempDir()
	lookups := filepath.Join(dir, "lookups")
	if err := os.Mkdir(lookups, 0o755); err != nil {
		t.Fatal(err)
	}
	def := "name: remote_bad_ips\nprimary_key: ip\nkey_type: cidr\ndata: http://127.0.0.1:1/bad_ips.csv\nassociations:\n  AWS.CloudTrail: [sourceIPAddress]\n"
	if err := os.WriteFile(filepath.Join(lookups, "remote.yml"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := os.ReadFile("../../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "config.yaml")
	root = []byte(strings.Replace(string(root), "lookups_dir: ./lookups", "lookups_dir: "+lookups, 1))
	if err := os.WriteFile(config, root, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startWith(t, systest.Options{DataDir: t.TempDir(), Args: []string{"--config", config},
		Env: []string{"CARACAL_ALERT_WEBHOOK_URL=" + hook.URL}})
	id := fmt.Sprintf("remote-lookup-%d", time.Now().UnixNano())
	post(t, p, rootLogin(t, id))
	waitAlert(t, hook, id)
	waitAlertTitled(t, hook, "Lookup table remote_bad_ips could not be loaded")
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// While `caracal run` waits for its broker at start, the ingest address
// answers as the HTTP input does when the broker is out of reach (503
// with Retry-After, /readyz 503) and /healthz says the process is alive;
// before, the port was closed.
func TestIngestAnswersWhileWaitingForTheBroker(t *testing.T) {
	away, err := systest.FreeAddr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	p := launch(t, "caracal", systest.Options{DataDir: t.TempDir(), Args: []string{"--stages", "ingest"},
		Env: []string{"CARACAL_BROKERS=" + away}})
	base := "http://" + p.HTTPAddr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("/healthz = %d", resp.StatusCode)
			}
			break
		}
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("the ingest address never answered: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Post(base+"/http/demo", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"source":"demo"`) {
		t.Errorf("POST while waiting = %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, err := http.Get(base + "/readyz"); err != nil || resp.StatusCode != 503 {
		t.Errorf("/readyz while waiting = %v, %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// `caracal alerts send-test` reads the destinations from a root config
// (with ${ENV} interpolation) and delivers a test alert to one of them.
func TestSendTestCommand(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		got = append(got, map[string]any{"path": r.URL.Path, "auth": r.Header.Get("Authorization"), "body": body})
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	yml := "caracal:\n  destinations:\n" +
		"    - id: oncall\n      type: pagerduty\n      url: " + srv.URL + "/v2/enqueue\n      token: ${TEST_PD_KEY}\n      min_severity: Critical\n" +
		"    - id: soc-slack\n      type: slack\n      url: " + srv.URL + "/slack\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(caracalBinary(t), args...)
		cmd.Env = append(os.Environ(), "TEST_PD_KEY=pd-routing-key")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("alerts", "send-test", "-c", cfg, "oncall"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	mu.Lock()
	if len(got) != 1 || got[0]["path"] != "/v2/enqueue" {
		t.Fatalf("requests %v", got)
	}
	body := got[0]["body"].(map[string]any)
	if body["routing_key"] != "pd-routing-key" || body["event_action"] != "trigger" {
		t.Errorf("PagerDuty test event %v (the min_severity filter must not stop a test)", body)
	}
	mu.Unlock()
	out, err := run("alerts", "send-test", "-c", cfg, "nope")
	if err == nil || !strings.Contains(out, "oncall, soc-slack") {
		t.Errorf("unknown destination: %v\n%s", err, out)
	}
	out, err = run("alerts", "send-test", "-c", cfg, "oncal")
	if err == nil || !strings.Contains(out, `no destination "oncal" in `+cfg+" (did you mean oncall?)") {
		t.Errorf("misspelt destination: %v\n%s", err, out)
	}
}

// The shipped configuration, pipelines, rules and schemas lint clean
// (warnings allowed): a broken default config fails here, not at a
// user's first `make run`.
func TestShippedConfigLints(t *testing.T) {
	pipelines, err := filepath.Glob("../../pipelines/*.yaml")
	if err != nil || len(pipelines) == 0 {
		t.Fatalf("pipelines: %v", err)
	}
	cmd := exec.Command(caracalBinary(t), append([]string{"lint", "config.yaml", "rules/", "schemas/"}, strings.Split(strings.ReplaceAll(strings.Join(pipelines, "\n"), "../../", ""), "\n")...)...)
	cmd.Dir = "../.."
	cmd.Env = os.Environ()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("caracal lint: %v\n%s", err, out)
	}
}

// caracal --help is Caracal's, not Benthos's generic stream processor
// help, and lists every command; each command's help exits 0.
func TestHelp(t *testing.T) {
	out, err := exec.Command(caracalBinary(t), "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "security data pipeline") || strings.Contains(string(out), "mundane") {
		t.Fatalf("caracal --help: %v\n%s", err, out)
	}
	for _, c := range append([]string{"run", "lint"}, commandNames()...) {
		if !strings.Contains(string(out), "\n  "+c+" ") {
			t.Errorf("caracal --help does not list %s:\n%s", c, out)
		}
	}
	for _, args := range [][]string{{"run", "--help"}, {"lint", "--help"}, {"parse", "--help"}} {
		if out, err := exec.Command(caracalBinary(t), args...).CombinedOutput(); err != nil || !strings.Contains(string(out), "stages") && args[0] == "run" {
			t.Errorf("caracal %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func commandNames() []string {
	var out []string
	for _, c := range commands() {
		out = append(out, c.Name)
	}
	return out
}

// A misspelt log type, table, stage or lake path, or a time range that
// ends before it starts, fails the command before it reads anything,
// naming the one meant.
func TestCommandsNameWhatWasMeant(t *testing.T) {
	event := filepath.Join(t.TempDir(), "e.json")
	if err := os.WriteFile(event, []byte(`{"eventName":"X"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lakeDir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"parse", "--log-type", "AWS.Cloudtrail", event}, "unknown log type AWS.Cloudtrail (did you mean AWS.CloudTrail?)"},
		{[]string{"detect", "--rules", "rules", "--log-type", "AWS.VPCflow", event}, "unknown log type AWS.VPCflow (did you mean AWS.VPCFlow?)"},
		{[]string{"replay", "--rules", "rules", "--lake", lakeDir, "--from", "1h", "--log-types", "AWS.Cloudtrial"}, "unknown log type AWS.Cloudtrial (did you mean AWS.CloudTrail?)"},
		{[]string{"search", "--lake", lakeDir, "--ip", "192.0.2.1", "--tables", "aws_cloudtrial"}, `unknown table "aws_cloudtrial" (did you mean aws_cloudtrail?)`},
		{[]string{"run", "--stages", "ingest,proces"}, `stage "proces"`},
		// A mistyped lake path is no empty lake: "0 rows matched" would
		// clear an indicator that was never looked for.
		{[]string{"search", "--lake", lakeDir + "x", "--ip", "192.0.2.1"}, "lake " + lakeDir + "x: no such directory"},
		{[]string{"replay", "--rules", "rules", "--lake", lakeDir, "--from", "2026-11-30", "--to", "2026-11-01"}, "--to 2026-11-01 is before --from 2026-11-30"},
		// A mistyped lookups path is no empty set of tables either.
		{[]string{"parse", "--log-type", "AWS.CloudTrail", "--lookups", "lookupz", event}, "lookup tables: stat lookupz: no such file or directory"},
		{[]string{"detect", "--rules", "rules", "--lookups", "lookupz", event}, "lookup tables: stat lookupz: no such file or directory"},
		{[]string{"replay", "--rules", "rules", "--lake", lakeDir, "--from", "1h", "--lookups", "lookupz"}, "lookup tables: stat lookupz: no such file or directory"},
		{[]string{"detect", "--rules", "rules", "--lookups", "lookups/known_bad_ips.csv", event}, "name a table definition (*.yml, which names its data) or a directory of them"},
	} {
		cmd := exec.Command(caracalBinary(t), c.args...)
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 || !strings.Contains(string(out), c.want) {
			t.Errorf("caracal %s: %v\n%s\nwant it to say %q", strings.Join(c.args, " "), err, out, c.want)
		}
		if c.args[0] == "run" && !strings.Contains(string(out), "(did you mean process?)") {
			t.Errorf("caracal run --stages ingest,proces: %s", out)
		}
	}
}

// caracal lint finds the usual mistakes in each kind of file, each at its
// line, and fails.
func TestLintFindsMistakesAtTheirLines(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"pipeline.yaml": `input:
  caracal_http:
    max_buffered_bytes: 10000000
    sources:
      - id: alb
        path: alb
        log_types: [AWS.Alb]
        auth:
          type: bearer
          token: x
        max_event_bytes: 5000000
pipeline:
  processors:
    - caracal_detect:
        rules_dirr: ./rules
output:
  caracal_kafka: {}
`,
		"pipeline2.yaml": `input:
  caracal_http:
    sources:
      - id: okta
        path: okta
        auth:
          type: basic
          username: u
      - id: gh
        path: gh
        auth:
          type: hmca
          secret: x
pipeline:
  processors:
    - caracal_detec: {}
output:
  caracal_kafka: {}
htp:
  address: 0.0.0.0:4195
`,
		"consume.yaml": `input:
  caracal_kafka:
    topics: [caracal.raw]
    consumer_group: g
    kafka_metadata: [kafka_partition, kafka_ofset]
output:
  drop: {}
`,
		"lookup.yml": `name: bad_ips
primary_key: cidr
key_type: cidr
data: bad_ips.csv
refreh: 5m
`,
		"lookup3.yml": "name: bad_ips\nprimary_key: cidr\nkey_type: cidr\ndata: bad_ips.csv\n",
		"lookup2.yml": `name: bad_ips
primary_key: cidr
key_type: cidr
data: missing.csv
associations:
  AWS.Cloudtrail: [sourceIPAddress]
  AWS.VPCFlow: [srcAdr]
  AWS.ALB: [p_any_ip_adresses]
`,
		"process.yaml": `pipeline:
  processors:
    - caracal_parse:
        filters:
          - source: dmeo
            exclude: 'contans(requestUrl, "/healthz")'
`,
		"destinations.yaml": `caracal:
  destinations:
    - id: soc
      type: slack
      url: https://hooks.slack.com/services/x
      min_severity: Hihg
      log_types: [AWS.Cloudtrail]
      rule_ids: [AWS.CloudTrail.RootConsoleLgin]
    - id: oncall
      type: pagerduty
      min_severity: high
    - id: soc
      type: webhook
      url: https://hooks.example.com/soc
    - id: paging
      type: pagerduty
      token: ${CARACAL_LINT_TEST_UNSET}
`,
		"rule.yml": `AnalysisType: rule
RuleID: T.Typo
Enabled: true
LogTypes: [AWS.Cloudtrail]
Severity: High
Condition: 'eventName == "X"'
OutputIds: [soc, env-webhok]
`,
		"rule2.yml": `AnalysisType: rule
RuleID: T.TwoTitles
LogTypes: [AWS.CloudTrail]
Severity: High
Condition: 'eventName == "X"'
Title: '"X by " + sourceIPAddress'
AlertTitle: 'X by {sourceIPAddress}'
`,
		"rule3.yml": `AnalysisType: rule
RuleID: T.PantherKeys
LogTypes: [AWS.CloudTrail]
Severity: High
Detection:
  - {Condition: AlwaysTrue}
InlineFilters:
  - {Key: awsRegon, Condition: Equals, Value: us-east-1}
AlertTitle: 'X by {sourceIPAdress}'
`,
		"schema.yml": `schema: Custom.Thing
parser:
  native:
    name: AWS.ALB
fields:
  - name: a
    type: strng
`,
		"schema3.yml": `schema: Custom.Third
parser:
  native:
    name: AWS.ALBB
fields:
  - name: a
    type: string
`,
		"schema4.yml": `schema: Custom.Fourth
fields:
  - name: a
    type: string
  - name: at
    type: timestamp
    timeFormat: rfc3399
`,
		"schema2.yml": `schema: Custom.Other
fields:
  - name: b
    type: object
    fields:
      - name: c
        type: string
        requried: true
`,
	}
	var paths []string
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	cmd := exec.Command(caracalBinary(t), append([]string{"lint"}, paths...)...)
	cmd.Dir = "../.." // the schemas/ rules and sources are checked against
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("caracal lint passed:\n%s", out)
	}
	for _, want := range []string{
		filepath.Join(dir, "pipeline.yaml") + ":5: source alb may hold 17825792 bytes in one request (max_body_bytes + max_decompressed_bytes), more than max_buffered_bytes (10000000)",
		filepath.Join(dir, "pipeline.yaml") + ":7: source alb: log type AWS.Alb has no schema, so every event would fail classification (did you mean AWS.ALB?)",
		filepath.Join(dir, "pipeline.yaml") + ":11: source alb: max_event_bytes 5000000: use at most 1048576",
		filepath.Join(dir, "pipeline.yaml") + ":15: field rules_dirr not recognised (did you mean rules_dir?)",
		filepath.Join(dir, "pipeline2.yaml") + ":7: source okta: basic auth needs username and password",
		filepath.Join(dir, "pipeline2.yaml") + ":12: value hmca is not a valid option for this field (did you mean hmac?)",
		filepath.Join(dir, "pipeline2.yaml") + ":16: unable to infer component type: caracal_detec (did you mean caracal_detect?)",
		filepath.Join(dir, "pipeline2.yaml") + ":19: field htp not recognised (did you mean http?)",
		filepath.Join(dir, "consume.yaml") + `:5: kafka_metadata "kafka_ofset": want some of kafka_topic, kafka_partition, kafka_offset, kafka_key, kafka_timestamp_unix_nano`,
		filepath.Join(dir, "rule.yml") + ":4: LogTypes: AWS.Cloudtrail has no schema in schemas/ (did you mean AWS.CloudTrail?)",
		filepath.Join(dir, "process.yaml") + `:5: warning: filter for source "dmeo": no caracal_http source has that id (did you mean demo?), so the filter never applies`,
		filepath.Join(dir, "process.yaml") + `:6: filter for source "dmeo": exclude: unknown function contans (did you mean the contains operator: a contains b?)`,
		filepath.Join(dir, "destinations.yaml") + `:3: destination soc: min_severity: unknown severity "Hihg": use one of Info, Low, Medium, High, Critical`,
		filepath.Join(dir, "destinations.yaml") + ":6: value Hihg is not a valid option for this field (did you mean High?)",
		filepath.Join(dir, "destinations.yaml") + ":7: destination soc: log_types: AWS.Cloudtrail has no schema (did you mean AWS.CloudTrail?)",
		filepath.Join(dir, "destinations.yaml") + ":8: warning: destination soc: rule_ids: no rule AWS.CloudTrail.RootConsoleLgin in rules/ (did you mean AWS.CloudTrail.RootConsoleLogin?)",
		filepath.Join(dir, "destinations.yaml") + ":9: destination oncall: type pagerduty needs token (the routing key)",
		filepath.Join(dir, "destinations.yaml") + ":12: destination soc: the id is also used at line 3; give each destination its own id (rules' OutputIds name them)",
		filepath.Join(dir, "lookup.yml") + `:5: unknown key "refreh" (did you mean refresh?)`,
		filepath.Join(dir, "lookup2.yml") + ":4: data: lookup table bad_ips: open " + filepath.Join(dir, "missing.csv") + ": no such file or directory",
		filepath.Join(dir, "lookup2.yml") + ":6: associations: log type AWS.Cloudtrail has no schema in schemas/ (did you mean AWS.CloudTrail?)",
		filepath.Join(dir, "lookup2.yml") + `:7: warning: associations: AWS.VPCFlow has no field "srcAdr" (did you mean srcAddr?)`,
		filepath.Join(dir, "lookup2.yml") + `:8: warning: associations: "p_any_ip_adresses" is no standard field (did you mean p_any_ip_addresses?): the table is never consulted for it`,
		filepath.Join(dir, "lookup3.yml") + ":1: lookup table bad_ips is also defined at " + filepath.Join(dir, "lookup2.yml") + ":1; give each table its own name (the stages refuse to start)",
		// Checked against the root config given, not ./config.yaml.
		filepath.Join(dir, "rule.yml") + `:7: warning: OutputIds: no destination "env-webhok" in ` + filepath.Join(dir, "destinations.yaml") + ` (did you mean env-webhook?)`,
		filepath.Join(dir, "rule2.yml") + ":7: rule T.TwoTitles: AlertTitle: give Title (an expr) or AlertTitle (a template with {field} placeholders), not both",
		filepath.Join(dir, "rule3.yml") + `:8: field "awsRegon" is not in the schema of AWS.CloudTrail (did you mean awsRegion?)`,
		filepath.Join(dir, "rule3.yml") + `:9: field "sourceIPAdress" is not in the schema of AWS.CloudTrail (did you mean sourceIPAddress?)`,
		filepath.Join(dir, "schema.yml") + `:6: field a: unknown type "strng" (did you mean string?)`, // the field's line
		filepath.Join(dir, "schema2.yml") + `:6: field b.c: unknown key "requried" (did you mean required?)`,
		filepath.Join(dir, "schema3.yml") + `:3: schema Custom.Third: unknown native parser "AWS.ALBB" (did you mean AWS.ALB?)`,
		filepath.Join(dir, "schema4.yml") + `:5: schema Custom.Fourth: field at: unknown timeFormat "rfc3399" (did you mean rfc3339?)`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lint output lacks %q:\n%s", want, out)
		}
	}
	// A token the deployment sets (an unset ${VAR} without a default) is
	// not missing.
	if strings.Contains(string(out), "destination paging:") {
		t.Errorf("lint calls an unset ${VAR} token missing:\n%s", out)
	}
	if strings.Contains(string(out), `no destination "soc"`) {
		t.Errorf("lint checks OutputIds against another root config than the one given:\n%s", out)
	}
	// A severity in lower case is one (the alert stage reads it so).
	if strings.Contains(string(out), ":11: value high") || strings.Contains(string(out), "destination oncall: min_severity") {
		t.Errorf("lint refuses min_severity: high:\n%s", out)
	}
}

// Two alert workers share the caracal-alert group. When the worker that
// owned the rule's partition stops, the other takes it over with the
// rule's dedup state from caracal.alert_state: a match within the open
// alert's window is attached, not alerted again, and other alerts still
// flow.
func TestAlertWorkersRebalanceWithoutDuplicates(t *testing.T) {
	hook := systest.NewReceiver()
	defer hook.Close()
	brokerDir := t.TempDir()
	core := start(t, brokerDir, nil, "--stages", "ingest,process,detect,lake")
	addr, err := os.ReadFile(filepath.Join(brokerDir, "broker", "address"))
	if err != nil {
		t.Fatal(err)
	}
	worker := func() *systest.Process {
		return launch(t, "alert worker", systest.Options{DataDir: t.TempDir(), Args: []string{"--stages", "alert"},
			Env: []string{"CARACAL_BROKERS=" + string(addr), "CARACAL_ALERT_WEBHOOK_URL=" + hook.URL}})
	}
	login := func(id, ip string) {
		b, err := systest.RootLogin(id, ip)
		if err != nil {
			t.Fatal(err)
		}
		post(t, core, b)
	}
	a := worker()
	first := fmt.Sprintf("rebalance-1-%d", time.Now().UnixNano())
	login(first, "198.51.100.61")
	opened := waitAlert(t, hook, first)

	// b joins the group (a rebalance), a stops (another): b owns everything.
	b := worker()
	if err := a.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	again := fmt.Sprintf("rebalance-2-%d", time.Now().UnixNano())
	login(again, "198.51.100.61")  // same dedup string as the open alert
	waitMatch(t, brokerDir, again) // so the marker's match is handled after it
	marker := fmt.Sprintf("rebalance-3-%d", time.Now().UnixNano())
	login(marker, "198.51.100.62")
	timeout := time.After(90 * time.Second)
	for done := false; !done; {
		select {
		case al := <-hook.Alerts:
			evs := fmt.Sprint(al["events"])
			if strings.Contains(evs, again) || (al["alertId"] == opened["alertId"] && !strings.Contains(evs, first)) {
				t.Errorf("the open alert was sent again after the rebalance: %v", al["alertId"])
			}
			done = strings.Contains(evs, marker)
		case <-timeout:
			t.Fatal("no alert from the second worker within 90s")
		}
	}
	if err := b.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// Two lake workers share the caracal-lake group. When the second joins,
// the first gives up half the partitions while their rows wait in its open
// roll, and the second consumes them again from the last commit. The rows
// the first had gathered must not reach the lake from it: written after the
// second worker's files, under the same names (topic, partition, first
// offset), they would replace rows the second worker wrote and committed.
// Every event must be in the lake exactly once.
func TestLakeWorkersRebalanceWithoutLossOrDuplicates(t *testing.T) {
	brokerDir := t.TempDir()
	core := start(t, brokerDir, nil, "--stages", "ingest,process")
	addr, err := os.ReadFile(filepath.Join(brokerDir, "broker", "address"))
	if err != nil {
		t.Fatal(err)
	}
	lakeDir := t.TempDir()
	const perBatch = 300
	var ids []string
	postBatch := func(name string) {
		var body []byte
		for i := range perBatch {
			id := fmt.Sprintf("lake-rebalance-%s-%d-%d", name, i, time.Now().UnixNano())
			ids = append(ids, id)
			body = append(append(body, rootLogin(t, id)...), '\n')
			if (i+1)%50 == 0 {
				post(t, core, body)
				body = nil
			}
		}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		if !waitUntil(60*time.Second, 100*time.Millisecond, ok) {
			t.Fatalf("%s: not within 60 s", what)
		}
	}
	// Rolls are written only when a worker stops: the rows a and b gather
	// wait in their open rolls throughout.
	worker := func() *systest.Process {
		p := launch(t, "lake worker", systest.Options{DataDir: t.TempDir(), Args: []string{"--stages", "lake"},
			Env: []string{"CARACAL_BROKERS=" + string(addr), "CARACAL_LAKE_URL=" + lakeDir, "CARACAL_LAKE_ROLL_PERIOD=1h"}})
		waitFor("the lake worker serves its metrics", func() bool {
			resp, err := http.Get("http://" + p.MetricsAddr + "/metrics")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
		return p
	}
	received := func(p *systest.Process) float64 { return metric(t, p, "caracal_input_received") }
	a := worker()
	postBatch("1")
	waitFor("worker a consumed the first batch", func() bool { return received(a) >= perBatch })
	b := worker()
	waitFor("worker b took over partitions", func() bool { return received(b) > 0 })
	settled := func(p *systest.Process) float64 {
		last := -1.0
		waitFor("the worker's consumption settled", func() bool {
			n := received(p)
			if n == last {
				return true
			}
			last = n
			time.Sleep(time.Second)
			return false
		})
		return last
	}
	before := settled(a) + settled(b)
	postBatch("2")
	waitFor("both workers consumed the second batch", func() bool { return received(a)+received(b) >= before+perBatch })

	// Every event was consumed. b writes its roll and leaves; a takes its
	// partitions back and writes its own roll.
	if err := b.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := a.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}

	count := map[string]int{}
	for _, r := range laketest.ReadTable(t, filepath.Join(lakeDir, "aws_cloudtrail")) {
		if id, _ := r["eventID"].(string); strings.HasPrefix(id, "lake-rebalance-") {
			count[id]++
		}
	}
	lost, dup := 0, 0
	for _, id := range ids {
		switch n := count[id]; {
		case n == 0:
			lost++
		case n > 1:
			dup++
		}
	}
	if lost > 0 || dup > 0 {
		t.Fatalf("of %d events, %d are not in the lake and %d are in it more than once", len(ids), lost, dup)
	}
}

// Events as large as a source accepts, which compression cannot shrink,
// must not stop a stage: five ~0.9 MB root logins in one dedup window
// once made an alert (with its first events) too large for the broker
// (1 MiB records by default), and the alert stage retried it for good,
// so no rule alerted any more.
func TestLargeEventsDoNotStopAlerting(t *testing.T) {
	hook := systest.NewReceiver()
	defer hook.Close()
	data := t.TempDir()
	env := []string{"CARACAL_ALERT_WEBHOOK_URL=" + hook.URL, "CARACAL_LAKE_ROLL_PERIOD=1s"}
	if brokers := kafkatest.Brokers(t); os.Getenv(kafkatest.EnvBrokers) != "" {
		env = append(env, "CARACAL_BROKERS="+strings.Join(brokers, ","))
	}
	p := start(t, data, env)
	blob := make([]byte, 700_000)
	var big []string
	for i := range 5 {
		id := fmt.Sprintf("large-%d-%d", i, time.Now().UnixNano())
		var ev map[string]any
		if err := json.Unmarshal(rootLogin(t, id), &ev); err != nil {
			t.Fatal(err)
		}
		_, _ = crand.Read(blob)
		ev["sourceIPAddress"] = "203.0.113.77"
		ev["requestParameters"] = map[string]any{"blob": base64.StdEncoding.EncodeToString(blob)}
		body, _ := json.Marshal(ev)
		post(t, p, body)
		big = append(big, id)
	}
	// Alerting goes on: a later login from elsewhere raises its alert (an
	// address no other test logs in from, or it would join their alert).
	after := fmt.Sprintf("after-large-%d", time.Now().UnixNano())
	var ev map[string]any
	if err := json.Unmarshal(rootLogin(t, after), &ev); err != nil {
		t.Fatal(err)
	}
	ev["sourceIPAddress"] = "192.0.2.150"
	body, _ := json.Marshal(ev)
	post(t, p, body)
	waitAlert(t, hook, after)
	// The large logins' alert may come after that one: their events are
	// a thousand times bigger and may sit on other partitions.
	largeAlert := waitAlertTitled(t, hook, "203.0.113.77")
	if b, _ := json.Marshal(largeAlert); len(b) > 512<<10 || !strings.Contains(string(b), "p_event_omitted") {
		t.Errorf("the large logins' alert is %d bytes; want their events as stubs", len(b))
	}
	for _, id := range big {
		waitLakeRow(t, filepath.Join(data, "lake"), id)
	}
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// A chat webhook URL grants posting to the channel, and extra headers
// often carry API keys: `caracal echo`, whose output ends up in bug
// reports and CI logs, must withhold them as it does tokens.
func TestEchoWithholdsDestinationSecrets(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	yml := "caracal:\n  alert_webhook_url: ${TEST_HOOK_URL}\n  destinations:\n" +
		"    - id: soc-slack\n      type: slack\n      url: ${TEST_SLACK_URL}\n" +
		"    - id: hook\n      type: webhook\n      url: https://hooks.example.com/in\n      headers:\n        X-Api-Key: k3y-s3cret\n"
	if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caracalBinary(t), "echo", cfg)
	cmd.Env = append(os.Environ(), "TEST_SLACK_URL=https://hooks.slack.com/services/T0/B0/sl4ck-s3cret",
		"TEST_HOOK_URL=https://hooks.example.com/h00k-s3cret")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("caracal echo: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "s3cret") || !strings.Contains(string(out), "soc-slack") {
		t.Errorf("caracal echo shows a secret:\n%s", out)
	}
}

// `caracal streams` runs stages one by one; Benthos's streams API on
// http.address would let anyone who reaches that port (0.0.0.0 in the
// deploy examples, for /metrics) create a stream, and a stream can read
// and write any file the process can.
func TestStreamsServesNoAPI(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"caracal", "streams", "a.yaml"}, []string{"caracal", "streams", "--no-api", "a.yaml"}},
		{[]string{"caracal", "--chilled", "streams", "-o", "c.yaml", "a.yaml"}, []string{"caracal", "--chilled", "streams", "--no-api", "-o", "c.yaml", "a.yaml"}},
		{[]string{"caracal", "streams", "--no-api=false", "a.yaml"}, []string{"caracal", "streams", "--no-api=false", "a.yaml"}},
		{[]string{"caracal", "lint", "a.yaml"}, []string{"caracal", "lint", "a.yaml"}},
	} {
		if got := streamsWithoutAPI(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("streamsWithoutAPI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	root, stream := filepath.Join(dir, "root.yaml"), filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(root, []byte("http:\n  address: "+addr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stream, []byte("input:\n  generate:\n    interval: 1s\n    mapping: root = \"x\"\noutput:\n  drop: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caracalBinary(t), "streams", "-o", root, stream)
	cmd.Dir = dir // its embedded broker's ./data
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !waitUntil(30*time.Second, 100*time.Millisecond, func() bool {
		resp, err := http.Get("http://" + addr + "/ping")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	}) {
		t.Fatal("caracal streams did not answer /ping")
	}
	resp, err := http.Post("http://"+addr+"/streams/evil", "application/yaml", strings.NewReader("input:\n  file:\n    paths: [/etc/hostname]\noutput:\n  drop: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /streams/evil = %d, want 404 (no streams API)", resp.StatusCode)
	}
}
