// Package systest runs the real caracal binary as a user would, for the
// end-to-end tests, the chaos test and the benchmark: build it, start
// `caracal run` processes from the repository root with their own ports and
// data directory, post to the webhook source, and collect alerts at a local
// webhook receiver.
package systest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RepoRoot finds the repository root (the directory holding go.mod and
// pipelines/) from the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "pipelines")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root (go.mod + pipelines/) not found above the working directory")
		}
		dir = parent
	}
}

// Build compiles ./cmd/caracal into dir and returns the binary's path.
func Build(dir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caracal")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/caracal")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// FreeAddr returns a loopback address with a port free right now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Options for one `caracal run` process.
type Options struct {
	Bin      string
	DataDir  string   // CARACAL_DATA_DIR: embedded broker log and default lake
	HTTPAddr string   // CARACAL_HTTP_ADDRESS; empty picks a free port
	Env      []string // extra environment, e.g. CARACAL_BROKERS=...
	Args     []string // after `run`, e.g. --stages ingest
	// WaitHTTP waits for GET / on the webhook listener (only when the ingest
	// stage runs in this process).
	WaitHTTP bool
	// Wrap runs the binary through a command, e.g. `unshare`; the binary
	// and its arguments follow Wrap's.
	Wrap []string
}

// Process is a running `caracal run`.
type Process struct {
	Opts     Options
	HTTPAddr string
	// MetricsAddr serves Benthos's /metrics (Prometheus text).
	MetricsAddr string
	cmd         *exec.Cmd
	out         *Buffer
	done        chan struct{}
}

// Buffer is a concurrency-safe output buffer.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start launches the process and, with WaitHTTP, waits until it serves.
func Start(o Options) (*Process, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	if o.HTTPAddr == "" {
		if o.HTTPAddr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	metrics, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	p := &Process{Opts: o, HTTPAddr: o.HTTPAddr, MetricsAddr: metrics, out: &Buffer{}, done: make(chan struct{})}
	argv := append(append(append([]string{}, o.Wrap...), o.Bin, "run"), o.Args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Dir = root
	p.cmd.Env = append(os.Environ(),
		"CARACAL_HTTP_ADDRESS="+o.HTTPAddr,
		"CARACAL_METRICS_ADDRESS="+metrics,
		"CARACAL_DATA_DIR="+o.DataDir,
		"CARACAL_LAKE_URL=",
		"CARACAL_BROKERS=",
		"CARACAL_ALERT_WEBHOOK_URL=",
	)
	p.cmd.Env = append(p.cmd.Env, o.Env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	if !o.WaitHTTP {
		return p, nil
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + p.HTTPAddr + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("caracal exited before serving:\n%s", p.Tail(60))
		default:
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("caracal did not serve GET / within 90s:\n%s", p.Tail(60))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output is everything the process printed.
func (p *Process) Output() string { return p.out.String() }

// Tail is the last n lines the process printed.
func (p *Process) Tail(n int) string {
	lines := strings.Split(p.out.String(), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Post sends body to the source at path (e.g. "demo") and returns the status
// and response body.
func (p *Process) Post(path string, body []byte) (int, string, error) {
	resp, err := http.Post("http://"+p.HTTPAddr+"/http/"+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// Stop sends SIGTERM and waits for the exit; a non-zero exit is an error.
func (p *Process) Stop(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("caracal did not exit within %s of SIGTERM:\n%s", timeout, p.Tail(60))
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("caracal exited with %d after SIGTERM:\n%s", code, p.Tail(60))
	}
	return nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Receiver is a local webhook destination that records every alert POSTed.
type Receiver struct {
	*httptest.Server
	Alerts chan map[string]any
	mu     sync.Mutex
	all    []map[string]any
}

// NewReceiver starts a receiver; Close it when done.
func NewReceiver() *Receiver {
	r := &Receiver{Alerts: make(chan map[string]any, 100000)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var a map[string]any
		if req.Method != http.MethodPost || json.NewDecoder(req.Body).Decode(&a) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		a["_received"] = time.Now() // for latency measurements; not part of the payload
		r.mu.Lock()
		r.all = append(r.all, a)
		r.mu.Unlock()
		select {
		case r.Alerts <- a:
		default:
		}
		w.WriteHeader(http.StatusOK)
	}))
	return r
}

// All returns every alert received so far.
func (r *Receiver) All() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.all...)
}

// RootLoginAccount is the AWS account id in the RootLogin event.
const RootLoginAccount = "111122223333"

// RootLogin returns the sample CloudTrail root console login
// (testdata/cloudtrail/root_console_login.json) with the given event id and
// source IP, so each call can be told apart downstream.
func RootLogin(eventID, sourceIP string) ([]byte, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(root, "testdata/cloudtrail/root_console_login.json"))
	if err != nil {
		return nil, err
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	ev["eventID"] = eventID
	if sourceIP != "" {
		ev["sourceIPAddress"] = sourceIP
	}
	return json.Marshal(ev)
}

// CloudTrailEvent is a realistic ~1.2 KB CloudTrail management event (a
// routine read by an IAM user) for load tests.
func CloudTrailEvent(rng *rand.Rand, eventID, sourceIP string, at time.Time) map[string]any {
	user, name := cloudTrailChoice(rng)
	return cloudTrailEvent(user, name, eventID, sourceIP, at.Format(time.RFC3339), fmt.Sprintf(requestIDFormat, rng.Uint64()))
}

// requestIDFormat writes a CloudTrail event's requestID from a random number.
const requestIDFormat = "req-%016x"

var (
	cloudTrailNames = []string{"DescribeInstances", "GetObject", "AssumeRole", "ListBuckets", "DescribeSecurityGroups", "GetCallerIdentity", "PutObject", "CreateTags"}
	cloudTrailUsers = []string{"alice", "bob", "ci-deployer", "terraform", "carol"}
)

// cloudTrailChoice draws an event's user and API call.
func cloudTrailChoice(rng *rand.Rand) (user, name int) {
	return rng.IntN(len(cloudTrailUsers)), rng.IntN(len(cloudTrailNames))
}

func cloudTrailEvent(user, name int, eventID, sourceIP, eventTime, requestID string) map[string]any {
	u := cloudTrailUsers[user]
	return map[string]any{
		"eventVersion": "1.08", "eventTime": eventTime,
		"eventSource": "ec2.amazonaws.com", "eventName": cloudTrailNames[name],
		"awsRegion": "eu-west-1", "sourceIPAddress": sourceIP,
		"userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1.0 exe/x86_64.debian.12 prompt/off command/ec2.describe-instances",
		"eventID":   eventID, "requestID": requestID,
		"eventType": "AwsApiCall", "readOnly": true, "recipientAccountId": "111122223333", "managementEvent": true,
		"eventCategory": "Management",
		"userIdentity": map[string]any{
			"type": "IAMUser", "principalId": "AIDAEXAMPLEEXAMPLE", "accountId": "111122223333",
			"arn": "arn:aws:iam::111122223333:user/" + u, "userName": u, "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
			"sessionContext": map[string]any{"attributes": map[string]any{"creationDate": "2026-11-23T08:00:00Z", "mfaAuthenticated": "false"}},
		},
		"requestParameters": map[string]any{"instancesSet": map[string]any{"items": []any{map[string]any{"instanceId": "i-0abc1234def567890"}}}, "filterSet": map[string]any{}},
		"responseElements":  nil,
		"tlsDetails":        map[string]any{"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256", "clientProvidedHostHeader": "ec2.eu-west-1.amazonaws.com"},
		"resources":         []any{map[string]any{"ARN": "arn:aws:ec2:eu-west-1:111122223333:instance/i-0abc1234def567890", "accountId": "111122223333", "type": "AWS::EC2::Instance"}},
	}
}

// CloudTrailJSON appends the JSON of CloudTrailEvent's events, byte for
// byte as json.Marshal writes them, from templates marshalled once: a
// load generator that shares the machine with what it measures should
// take little of its CPU (marshalling a map per event took half a core
// of make bench's two). The zero value is ready to use; not safe for
// concurrent use.
type CloudTrailJSON struct {
	templates [][][]byte // by user and name: the event split around its variable values
}

// The placeholders of a template's variable values, listed in
// cloudTrailSlots in the order json.Marshal's sorted keys put them.
const slotID, slotTime, slotRequest, slotIP = "@@id@@", "@@time@@", "@@req@@", "@@ip@@"

var cloudTrailSlots = []string{slotID, slotTime, slotRequest, slotIP}

// Append appends one event drawn from rng as CloudTrailEvent draws it.
// eventID and sourceIP must be plain ASCII that JSON keeps as it is.
func (c *CloudTrailJSON) Append(dst []byte, rng *rand.Rand, eventID, sourceIP string, at time.Time) []byte {
	if c.templates == nil {
		c.templates = cloudTrailTemplates()
	}
	user, name := cloudTrailChoice(rng)
	parts := c.templates[user*len(cloudTrailNames)+name]
	dst = append(dst, parts[0]...)
	dst = append(dst, eventID...)
	dst = append(dst, parts[1]...)
	dst = at.AppendFormat(dst, time.RFC3339)
	dst = append(dst, parts[2]...)
	dst = fmt.Appendf(dst, requestIDFormat, rng.Uint64())
	dst = append(dst, parts[3]...)
	dst = append(dst, sourceIP...)
	return append(dst, parts[4]...)
}

// cloudTrailTemplates marshals every user and name with placeholders and
// splits each at them.
func cloudTrailTemplates() [][][]byte {
	var out [][][]byte
	for user := range cloudTrailUsers {
		for name := range cloudTrailNames {
			b, err := json.Marshal(cloudTrailEvent(user, name, slotID, slotIP, slotTime, slotRequest))
			if err != nil {
				panic(err)
			}
			out = append(out, splitAtSlots(b))
		}
	}
	return out
}

// splitAtSlots splits b at the placeholders, which must occur once each
// in cloudTrailSlots' order.
func splitAtSlots(b []byte) [][]byte {
	parts := make([][]byte, 0, len(cloudTrailSlots)+1)
	for _, slot := range cloudTrailSlots {
		i := bytes.Index(b, []byte(slot))
		if i < 0 {
			panic("systest: CloudTrail template lacks " + slot)
		}
		parts = append(parts, b[:i])
		b = b[i+len(slot):]
	}
	return append(parts, b)
}
