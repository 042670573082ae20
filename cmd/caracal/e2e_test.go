package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caracal-sec/caracal/plugins/kafka/kafkatest"
	"github.com/caracal-sec/caracal/plugins/lake/laketest"
)

// The end-to-end tests run the real binary as a user would (`caracal run`
// from the repository root), POST a CloudTrail root console login, and check
// the alert at a local webhook receiver and the row in the Parquet lake.

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
		binPath = filepath.Join(dir, "caracal")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// system is one `caracal run` process.
type system struct {
	t        *testing.T
	cmd      *exec.Cmd
	httpAddr string
	dataDir  string
	out      *lockedBuffer
	done     chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startSystem(t *testing.T, dataDir string, env []string, args ...string) *system {
	t.Helper()
	bin := caracalBinary(t)
	s := &system{t: t, httpAddr: freeAddr(t), dataDir: dataDir, out: &lockedBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"run"}, args...)...)
	s.cmd.Dir = "../.." // the repository root: config.yaml, pipelines/, rules/, schemas/
	s.cmd.Env = append(os.Environ(),
		"CARACAL_HTTP_ADDRESS="+s.httpAddr,
		"CARACAL_METRICS_ADDRESS="+freeAddr(t),
		"CARACAL_DATA_DIR="+dataDir,
		"CARACAL_LAKE_URL=",
		"CARACAL_BROKERS=",
		"CARACAL_ALERT_WEBHOOK_URL=",
	)
	s.cmd.Env = append(s.cmd.Env, env...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("caracal output:\n%s", tail(s.out.String(), 60))
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + s.httpAddr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case <-s.done:
			t.Fatalf("caracal exited before serving:\n%s", tail(s.out.String(), 60))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("caracal did not serve GET / within 90s:\n%s", tail(s.out.String(), 60))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *system) post(body []byte) (int, string) {
	s.t.Helper()
	resp, err := http.Post("http://"+s.httpAddr+"/http/demo", "application/json", bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stop sends SIGTERM and waits for a clean exit.
func (s *system) stop() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.t.Fatalf("caracal did not exit within 60s of SIGTERM:\n%s", tail(s.out.String(), 60))
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Fatalf("caracal exited with %d after SIGTERM:\n%s", code, tail(s.out.String(), 60))
	}
}

func (s *system) kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// webhookReceiver collects alerts POSTed to it.
func webhookReceiver(t *testing.T) (*httptest.Server, chan map[string]any) {
	alerts := make(chan map[string]any, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a map[string]any
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&a) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		alerts <- a
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, alerts
}

// rootLogin is the sample CloudTrail root console login with a unique event id.
func rootLogin(t *testing.T, eventID string) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../testdata/cloudtrail/root_console_login.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	ev["eventID"] = eventID
	out, _ := json.Marshal(ev)
	return out
}

func waitAlert(t *testing.T, alerts chan map[string]any, eventID string) map[string]any {
	t.Helper()
	timeout := time.After(90 * time.Second)
	for {
		select {
		case a := <-alerts:
			if strings.Contains(fmt.Sprint(a["events"]), eventID) || strings.Contains(fmt.Sprint(a["alertContext"]), eventID) {
				return a
			}
		case <-timeout:
			t.Fatalf("no alert for event %s within 90s", eventID)
		}
	}
}

// lakeRow reads the CloudTrail table back with pyarrow (an independent
// reader) and returns the row with the given eventID.
func lakeRow(t *testing.T, lakeDir, eventID string) map[string]any {
	t.Helper()
	rows := laketest.ReadTable(t, filepath.Join(lakeDir, "aws_cloudtrail"))
	for _, r := range rows {
		if r["eventID"] == eventID {
			return r
		}
	}
	t.Fatalf("event %s not in the lake (%d rows in aws_cloudtrail)", eventID, len(rows))
	return nil
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
	if s, _ := row["p_row_id"].(string); len(s) == 0 {
		t.Errorf("lake p_row_id empty")
	}
}

func runEndToEnd(t *testing.T, env []string) {
	hook, alerts := webhookReceiver(t)
	data := t.TempDir()
	s := startSystem(t, data, append(env, "CARACAL_ALERT_WEBHOOK_URL="+hook.URL))
	eventID := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	if code, body := s.post(rootLogin(t, eventID)); code != 200 {
		t.Fatalf("POST = %d %s", code, body)
	}
	checkAlert(t, waitAlert(t, alerts, eventID))
	s.stop() // SIGTERM flushes the lake
	checkLakeRow(t, lakeRow(t, filepath.Join(data, "lake"), eventID))
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
func TestAcknowledgedEventSurvivesRestart(t *testing.T) {
	data := t.TempDir()
	s := startSystem(t, data, nil, "--stages", "ingest")
	eventID := fmt.Sprintf("restart-%d", time.Now().UnixNano())
	if code, body := s.post(rootLogin(t, eventID)); code != 200 {
		t.Fatalf("POST = %d %s", code, body)
	}
	s.kill() // SIGKILL: no graceful flush

	s = startSystem(t, data, []string{"CARACAL_LAKE_ROLL_PERIOD=1s"})
	row := waitLakeRow(t, filepath.Join(data, "lake"), eventID)
	s.stop()
	checkLakeRow(t, row)
}

// waitLakeRow polls the lake until the event's row is there.
func waitLakeRow(t *testing.T, lakeDir, eventID string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		for _, r := range laketest.ReadTable(t, filepath.Join(lakeDir, "aws_cloudtrail")) {
			if r["eventID"] == eventID {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s not in the lake within 90s", eventID)
		}
		time.Sleep(time.Second)
	}
}

func TestUnknownSourceIs404(t *testing.T) {
	s := startSystem(t, t.TempDir(), nil, "--stages", "ingest")
	resp, err := http.Post("http://"+s.httpAddr+"/http/nope", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown source = %d, want 404", resp.StatusCode)
	}
	s.stop()
}
