package alert

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/settings"
)

func sampleAlert() *envelope.Alert {
	return &envelope.Alert{
		ID: "AWS.CloudTrail.RootConsoleLogin", AlertID: "3f1c9a", CreatedAt: "2026-11-24T10:00:00.000000000Z", UpdatedAt: "2026-11-24T10:00:00.000000000Z",
		Severity: "High", Type: "RULE", Title: "AWS root console login from 198.51.100.23", Name: "Root account console login",
		Description: "Someone signed in as root.", Runbook: "Rotate the root password.", Tags: []string{"AWS", "Root"}, Version: "1",
		AlertContext: map[string]any{"sourceIPAddress": "198.51.100.23", "mfaUsed": "No"}, DedupString: "111122223333:198.51.100.23",
		EventCount: 1, LogTypes: []string{"AWS.CloudTrail"}, Events: []map[string]any{{"eventName": "ConsoleLogin"}},
	}
}

// httpReceiver records requests and answers with the queued statuses (then 200).
type httpReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	reqs     []*http.Request
	bodies   []map[string]any
	statuses []int
	ok       int
}

func newHTTPReceiver(t *testing.T, ok int, statuses ...int) *httpReceiver {
	r := &httpReceiver{statuses: statuses, ok: ok}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var body map[string]any
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("%s %s: body is not a JSON object: %v", req.Method, req.URL.Path, err)
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, req)
		r.bodies = append(r.bodies, body)
		status := r.ok
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		if status == 429 || status == 503 {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func fastRetry() Retry {
	return Retry{MaxAttempts: 3, Initial: time.Millisecond, Max: 5 * time.Millisecond}
}

func build(t *testing.T, kind string, e Endpoint) Destination {
	t.Helper()
	d, err := NewDestination("d-"+kind, kind, e, "", "", "", nil, Filter{}, fastRetry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func dig(v any, path ...string) any {
	for _, p := range path {
		switch t := v.(type) {
		case map[string]any:
			v = t[p]
		case []any:
			var i int
			fmt.Sscan(p, &i)
			if i >= len(t) {
				return nil
			}
			v = t[i]
		default:
			return nil
		}
	}
	return v
}

func TestDestinationRequests(t *testing.T) {
	cases := []struct {
		kind   string
		ok     int
		e      func(url string) Endpoint
		path   string
		header map[string]string
		check  func(t *testing.T, body map[string]any)
	}{
		{"slack", 200, func(u string) Endpoint { return Endpoint{URL: u + "/services/T0/B0/X"} }, "/services/T0/B0/X", nil, func(t *testing.T, b map[string]any) {
			if b["text"] != "[High] AWS root console login from 198.51.100.23" || dig(b, "blocks", "0", "type") != "header" ||
				dig(b, "blocks", "0", "text", "text") != "[High] AWS root console login from 198.51.100.23" || dig(b, "blocks", "1", "fields", "0", "text") != "*Severity*\nHigh" {
				t.Errorf("slack body %v", b)
			}
		}},
		{"msteams", 200, func(u string) Endpoint { return Endpoint{URL: u + "/webhookb2/x"} }, "/webhookb2/x", nil, func(t *testing.T, b map[string]any) {
			if b["type"] != "message" || dig(b, "attachments", "0", "contentType") != "application/vnd.microsoft.card.adaptive" ||
				dig(b, "attachments", "0", "content", "type") != "AdaptiveCard" || dig(b, "attachments", "0", "content", "body", "1", "type") != "FactSet" {
				t.Errorf("teams body %v", b)
			}
		}},
		{"discord", 204, func(u string) Endpoint { return Endpoint{URL: u + "/api/webhooks/1/x"} }, "/api/webhooks/1/x", nil, func(t *testing.T, b map[string]any) {
			if dig(b, "embeds", "0", "title") != "AWS root console login from 198.51.100.23" || dig(b, "embeds", "0", "color") != float64(0xE53935) {
				t.Errorf("discord body %v", b)
			}
		}},
		{"pagerduty", 202, func(u string) Endpoint { return Endpoint{URL: u + "/v2/enqueue", Token: "R0UTING"} }, "/v2/enqueue", nil, func(t *testing.T, b map[string]any) {
			if b["routing_key"] != "R0UTING" || b["event_action"] != "trigger" || b["dedup_key"] != "3f1c9a" ||
				dig(b, "payload", "severity") != "error" || dig(b, "payload", "source") != "caracal" || dig(b, "payload", "component") != "AWS.CloudTrail" ||
				dig(b, "payload", "summary") != "AWS root console login from 198.51.100.23" || dig(b, "payload", "timestamp") != "2026-11-24T10:00:00.000000000Z" {
				t.Errorf("pagerduty body %v", b)
			}
		}},
		{"opsgenie", 202, func(u string) Endpoint { return Endpoint{URL: u + "/v2/alerts", Token: "gk"} }, "/v2/alerts", map[string]string{"Authorization": "GenieKey gk"}, func(t *testing.T, b map[string]any) {
			if b["alias"] != "3f1c9a" || b["priority"] != "P2" || b["source"] != "caracal" || dig(b, "details", "sourceIPAddress") != "198.51.100.23" ||
				len(b["message"].(string)) > 130 {
				t.Errorf("opsgenie body %v", b)
			}
		}},
		{"jira", 201, func(u string) Endpoint {
			return Endpoint{URL: u + "/", Username: "bot@example.com", Token: "jt", Project: "SEC"}
		}, "/rest/api/2/issue", map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("bot@example.com:jt"))}, func(t *testing.T, b map[string]any) {
			if dig(b, "fields", "project", "key") != "SEC" || dig(b, "fields", "issuetype", "name") != "Task" ||
				dig(b, "fields", "summary") != "[High] AWS root console login from 198.51.100.23" || !strings.Contains(fmt.Sprint(dig(b, "fields", "description")), "sourceIPAddress: 198.51.100.23") {
				t.Errorf("jira body %v", b)
			}
		}},
		{"github", 201, func(u string) Endpoint { return Endpoint{URL: u, Token: "ghp", Repository: "acme/sec"} }, "/repos/acme/sec/issues",
			map[string]string{"Authorization": "Bearer ghp", "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}, func(t *testing.T, b map[string]any) {
				if b["title"] != "[High] AWS root console login from 198.51.100.23" || !strings.Contains(b["body"].(string), "| Rule | AWS.CloudTrail.RootConsoleLogin |") ||
					fmt.Sprint(b["labels"]) != "[caracal severity:high]" {
					t.Errorf("github body %v", b)
				}
			}},
		{"splunk", 200, func(u string) Endpoint { return Endpoint{URL: u, Token: "hec", Index: "security"} }, "/services/collector/event", map[string]string{"Authorization": "Splunk hec"}, func(t *testing.T, b map[string]any) {
			if b["sourcetype"] != "caracal:alert" || b["index"] != "security" || b["time"] != float64(1795514400) || dig(b, "event", "alertId") != "3f1c9a" || dig(b, "event", "id") != "AWS.CloudTrail.RootConsoleLogin" {
				t.Errorf("splunk body %v", b)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.kind, func(t *testing.T) {
			r := newHTTPReceiver(t, c.ok)
			d := build(t, c.kind, c.e(r.URL))
			if err := d.Deliver(context.Background(), sampleAlert()); err != nil {
				t.Fatal(err)
			}
			if len(r.reqs) != 1 {
				t.Fatalf("%d requests", len(r.reqs))
			}
			req := r.reqs[0]
			if req.Method != http.MethodPost || req.URL.Path != c.path || req.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s %s (%s)", req.Method, req.URL.Path, req.Header.Get("Content-Type"))
			}
			for k, v := range c.header {
				if req.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, req.Header.Get(k), v)
				}
			}
			c.check(t, r.bodies[0])
		})
	}
}

// Text is cut to the services' limits in characters, never through a
// UTF-8 sequence, with "…" as the last character.
func TestTruncateCountsCharacters(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{strings.Repeat("é", 150), 150, strings.Repeat("é", 150)}, // 300 bytes, 150 characters: fits
		{strings.Repeat("é", 151), 150, strings.Repeat("é", 149) + "…"},
		{"a" + strings.Repeat("😀", 300), 256, "a" + strings.Repeat("😀", 254) + "…"},
		{"abcdef", 4, "abc…"},
	} {
		got := truncate(c.s, c.n)
		if got != c.want || !utf8.ValidString(got) || utf8.RuneCountInString(got) > c.n {
			t.Errorf("truncate(%.12q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
	// Slack's header takes 150 characters.
	r := newHTTPReceiver(t, 200)
	a := sampleAlert()
	a.Title = strings.Repeat("é", 200)
	if err := build(t, "slack", Endpoint{URL: r.URL}).Deliver(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if h := fmt.Sprint(dig(r.bodies[0], "blocks", "0", "text", "text")); h != "[High] "+strings.Repeat("é", 142)+"…" {
		t.Errorf("slack header %q (%d characters)", h, utf8.RuneCountInString(h))
	}
}

func TestDestinationRetries(t *testing.T) {
	for _, kind := range []string{"slack", "pagerduty", "splunk"} {
		e := func(u string) Endpoint { return Endpoint{URL: u, Token: "t"} }
		r := newHTTPReceiver(t, 200, 503, 429)
		if err := build(t, kind, e(r.URL)).Deliver(context.Background(), sampleAlert()); err != nil || len(r.reqs) != 3 {
			t.Errorf("%s: 503, 429 then 200: err %v after %d requests, want success after 3", kind, err, len(r.reqs))
		}
		r = newHTTPReceiver(t, 200, 400)
		if err := build(t, kind, e(r.URL)).Deliver(context.Background(), sampleAlert()); err == nil || len(r.reqs) != 1 {
			t.Errorf("%s: 400 must fail at once: err %v after %d requests", kind, err, len(r.reqs))
		}
		r = newHTTPReceiver(t, 500)
		if err := build(t, kind, e(r.URL)).Deliver(context.Background(), sampleAlert()); err == nil || len(r.reqs) != 3 {
			t.Errorf("%s: 500 forever: err %v after %d requests, want failure after max_attempts 3", kind, err, len(r.reqs))
		}
	}
}

func TestDestinationConfigErrors(t *testing.T) {
	for kind, want := range map[string]string{
		"pagerduty": "needs token (the routing key)", "opsgenie": "needs token", "jira": "needs url", "github": "needs token",
		"slack": "needs url", "email": "needs url", "carrier-pigeon": "unknown type",
	} {
		_, err := NewDestination("x", kind, Endpoint{}, "", "", "", nil, Filter{}, Retry{}, nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", kind, err, want)
		}
	}
	if _, err := NewDestination("x", "jira", Endpoint{URL: "https://x.atlassian.net"}, "", "", "", nil, Filter{}, Retry{}, nil); err == nil || !strings.Contains(err.Error(), "needs username") {
		t.Errorf("jira without username: %v", err)
	}
	if _, err := NewDestination("x", "github", Endpoint{Token: "t", Repository: "norepo"}, "", "", "", nil, Filter{}, Retry{}, nil); err == nil {
		t.Error("github repository without owner accepted")
	}
	// A URL no delivery could use is refused at once (it passed lint and
	// the start, then failed every alert), without quoting it: a Slack
	// webhook URL is a secret.
	for _, tc := range []struct{ kind, url string }{
		{"webhook", "notaurl"}, {"slack", "htp://hooks.slack.com/services/T0/B0/SECRET"}, {"email", "https://smtp.example.com"}, {"splunk", "https://"},
	} {
		_, err := NewDestination("x", tc.kind, Endpoint{URL: tc.url, Token: "t"}, "", "", "f@example.com", []string{"t@example.com"}, Filter{}, Retry{}, nil)
		if err == nil || !strings.Contains(err.Error(), "url: ") || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s %s: %v, want the URL refused without quoting it", tc.kind, tc.url, err)
		}
	}
	if _, err := NewDestination("x", "email", Endpoint{URL: "smtps://smtp.example.com:465"}, "", "", "f@example.com", []string{"t@example.com"}, Filter{}, Retry{}, nil); err != nil {
		t.Errorf("smtps URL refused: %v", err)
	}
}

// Destinations builds a root config's destinations, and refuses two with
// one id: OutputIds and delivery records name destinations by id.
func TestDestinationsNeedDistinctIDs(t *testing.T) {
	parse := func(yaml, webhookURL string) *settings.Settings { return parseSettings(t, yaml, webhookURL) }
	two := `destinations:
  - {id: soc, type: slack, url: "https://hooks.slack.com/a"}
  - {id: oncall, type: pagerduty, token: k}
`
	dests, err := Destinations(parse(two, "http://127.0.0.1:9/hook"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range dests {
		ids = append(ids, d.ID())
	}
	if got := strings.Join(ids, ","); got != "soc,oncall,"+EnvWebhookID {
		t.Errorf("destinations %s, want soc,oncall,%s", got, EnvWebhookID)
	}
	for _, c := range []struct{ yaml, webhook, want string }{
		{two + `  - {id: soc, type: webhook, url: "http://127.0.0.1:9/x"}` + "\n", "", "two destinations have the id soc: give each"},
		{`destinations: [{id: env-webhook, url: "http://127.0.0.1:9/x"}]`, "http://127.0.0.1:9/y", "CARACAL_ALERT_WEBHOOK_URL adds"},
		{`destinations: [{id: pd, type: pagerduty}]`, "", "destination pd: type pagerduty needs token"},
		{`destinations: []`, "notaurl", "CARACAL_ALERT_WEBHOOK_URL: destination env-webhook: url: scheme"},
	} {
		if _, err := Destinations(parse(c.yaml, c.webhook), nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.yaml, err, c.want)
		}
	}
}

// parseSettings reads the caracal section of a root config, as the stages do.
func parseSettings(t *testing.T, yaml, webhookURL string) *settings.Settings {
	t.Helper()
	spec := service.NewConfigSpec().Fields(settings.Fields(DestinationFields()...)...)
	conf, err := spec.ParseYAML(yaml, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := settings.Parse(conf)
	if err != nil {
		t.Fatal(err)
	}
	st.AlertWebhookURL = webhookURL
	return st
}

// min_severity is read in any case (Benthos's lint accepts "high"), and a
// severity that is none of Panther's refuses the config: read as Info, it
// let every alert through.
func TestDestinationMinSeverity(t *testing.T) {
	dests, err := Destinations(parseSettings(t, `destinations: [{id: pager, type: pagerduty, token: k, min_severity: high}]`, ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	for sev, want := range map[string]bool{"Medium": false, "High": true, "Critical": true} {
		a := sampleAlert()
		a.Severity = sev
		if got := dests[0].Accepts(a); got != want {
			t.Errorf("min_severity high: a %s alert accepted %v, want %v", sev, got, want)
		}
	}
	_, err = Destinations(parseSettings(t, `destinations: [{id: pager, type: pagerduty, token: k, min_severity: severe}]`, ""), nil)
	if want := `destination pager: min_severity: unknown severity "severe": use one of Info, Low, Medium, High, Critical`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("min_severity severe: error %v, want %q", err, want)
	}
}

// smtpServer is a minimal SMTP server: it records one message per DATA and
// answers RCPT with the queued codes first.
type smtpServer struct {
	ln       net.Listener
	mu       sync.Mutex
	msgs     []string
	from, to []string
	rcpt     []string // replies to RCPT, in order (then 250)
}

func newSMTP(t *testing.T, rcpt ...string) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, rcpt: rcpt}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	say := func(l string) { fmt.Fprintf(c, "%s\r\n", l) }
	say("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-test")
			say("250 8BITMIME")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			s.mu.Lock()
			s.from = append(s.from, strings.TrimSpace(line[10:]))
			s.mu.Unlock()
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			s.mu.Lock()
			reply := "250 ok"
			if len(s.rcpt) > 0 {
				reply, s.rcpt = s.rcpt[0], s.rcpt[1:]
			}
			if strings.HasPrefix(reply, "250") {
				s.to = append(s.to, strings.TrimSpace(line[8:]))
			}
			s.mu.Unlock()
			say(reply)
		case cmd == "DATA":
			say("354 go ahead")
			var msg strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(l)
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, msg.String())
			s.mu.Unlock()
			say("250 queued")
		case cmd == "QUIT":
			say("221 bye")
			return
		case cmd == "RSET", cmd == "NOOP":
			say("250 ok")
		default:
			say("502 unknown")
		}
	}
}

func TestEmailDestination(t *testing.T) {
	s := newSMTP(t, "451 4.3.0 try again later")
	d, err := NewDestination("mail", "email", Endpoint{URL: "smtp://" + s.ln.Addr().String()}, "", "", "caracal@example.com",
		[]string{"soc@example.com", "oncall@example.com"}, Filter{}, fastRetry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Deliver(context.Background(), sampleAlert()); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.msgs) != 1 {
		t.Fatalf("%d messages, want 1 (the 451 attempt is retried)", len(s.msgs))
	}
	m := s.msgs[0]
	for _, want := range []string{"From: caracal@example.com\r\n", "To: soc@example.com, oncall@example.com\r\n",
		"Subject: [High] AWS root console login from 198.51.100.23\r\n", "Message-ID: <3f1c9a@example.com>\r\n",
		"sourceIPAddress: 198.51.100.23\r\n", "Runbook: Rotate the root password.\r\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("message lacks %q:\n%s", want, m)
		}
	}
	if fmt.Sprint(s.to) != "[<soc@example.com> <oncall@example.com>]" {
		t.Errorf("recipients %v", s.to)
	}
	// A permanent rejection is not retried.
	s2 := newSMTP(t, "550 5.1.1 no such user")
	d2, _ := NewDestination("mail", "email", Endpoint{URL: "smtp://" + s2.ln.Addr().String()}, "", "", "caracal@example.com", []string{"x@example.com"}, Filter{}, fastRetry(), nil)
	if err := d2.Deliver(context.Background(), sampleAlert()); err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("550: %v", err)
	}
	s2.mu.Lock()
	if len(s2.from) != 1 {
		t.Errorf("550 retried: %d attempts", len(s2.from))
	}
	s2.mu.Unlock()
}

// A destination that gives up does not hold up the others; the failure is
// raised once (per hour) as a SYSTEM_ERROR on the others.
func TestFailingDestinationRaisesSystemError(t *testing.T) {
	broken := newHTTPReceiver(t, 500)
	good := newHTTPReceiver(t, 200)
	n := &notifier{log: nil, dests: []Destination{build(t, "slack", Endpoint{URL: broken.URL}), &Webhook{Name: "good", URL: good.URL, Retry: fastRetry()}}}
	n.log = testLogger()
	for i := 0; i < 2; i++ {
		a := sampleAlert()
		a.AlertID = fmt.Sprintf("a%d", i)
		if err := n.deliver(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	var types []string
	for _, b := range good.bodies {
		types = append(types, fmt.Sprint(b["type"]))
	}
	// The broken destination comes first: its failure is raised before
	// the good one gets the first alert.
	if fmt.Sprint(types) != "[SYSTEM_ERROR RULE RULE]" {
		t.Fatalf("good destination got %v, want both alerts and one SYSTEM_ERROR", types)
	}
	if !strings.Contains(fmt.Sprint(good.bodies[0]["title"]), "d-slack is failing") {
		t.Errorf("system error title: %v", good.bodies[0]["title"])
	}
}

// A stop in the middle of a delivery fails the batch, to be redelivered
// after the restart, and leaves the delivery reported as undone; one that
// ended (delivered, or given up on while running) is not.
func TestStopDuringDeliveryIsReportedUndone(t *testing.T) {
	broken := newHTTPReceiver(t, 503)
	good := newHTTPReceiver(t, 200)
	n := &notifier{log: testLogger(), dests: []Destination{
		&Webhook{Name: "soc", URL: good.URL, Retry: fastRetry()},
		&Webhook{Name: "pager", URL: broken.URL, Retry: fastRetry()}}}
	if err := n.deliver(context.Background(), sampleAlert()); err != nil {
		t.Fatal(err)
	}
	if left := n.undelivered(); left != "" {
		t.Fatalf("deliveries that ended reported undone: %q", left)
	}
	n.dests[1] = &Webhook{Name: "pager", URL: broken.URL, Retry: Retry{MaxAttempts: 1000, Initial: time.Millisecond, Max: time.Millisecond}}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	a := sampleAlert()
	a.AlertID = "cut-short"
	if err := n.deliver(ctx, a); err == nil {
		t.Fatal("a delivery cut short by the stop was acknowledged")
	}
	if left := n.undelivered(); !strings.Contains(left, "delivery of alert cut-short to pager not finished") || strings.Contains(left, "to soc") {
		t.Fatalf("reported undone: %q, want the cut-short delivery to pager alone", left)
	}
}

// A rule whose OutputIds name no destination (a typo) would alert nobody:
// that is raised as a SYSTEM_ERROR on every destination, once an hour per
// rule, and the alert itself still goes only where OutputIds say.
func TestUnroutedAlertRaisesSystemError(t *testing.T) {
	good := newHTTPReceiver(t, 200)
	n := &notifier{log: testLogger(), dests: []Destination{&Webhook{Name: "soc-slack", URL: good.URL, Retry: fastRetry()}}}
	for i, ids := range [][]string{{"soc-slak"}, {"soc-slak"}, {"soc-slack"}, nil} {
		a := sampleAlert()
		a.AlertID = fmt.Sprintf("a%d", i)
		a.OutputIDs = ids
		if err := n.deliver(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, b := range good.bodies {
		got = append(got, fmt.Sprintf("%v %v", b["type"], b["alertId"]))
	}
	if fmt.Sprint(got) != fmt.Sprint([]string{"SYSTEM_ERROR " + fmt.Sprint(good.bodies[0]["alertId"]), "RULE a2", "RULE a3"}) {
		t.Fatalf("destination got %v, want one SYSTEM_ERROR, then the alerts routed to it", got)
	}
	title := fmt.Sprint(good.bodies[0]["title"])
	for _, want := range []string{"OutputIds soc-slak", "destinations: soc-slack", "alert a0 was delivered nowhere"} {
		if !strings.Contains(title, want) {
			t.Errorf("system error title %q lacks %q", title, want)
		}
	}
}

func testLogger() *service.Logger { return service.MockResources().Logger() }

// A webhook URL's path is its secret (Slack, Teams, Discord): a failed
// request's error, which goes to the logs, the lake and other
// destinations' alerts, names the host only.
func TestDeliveryErrorsWithholdTheURLSecret(t *testing.T) {
	secretURL := "http://127.0.0.1:1/services/T0/B0/s3cr3tT0ken?key=qu3ry"
	for _, kind := range []string{"slack", "webhook", "msteams", "discord"} {
		var attempts []Attempt
		d, err := NewDestination("d-"+kind, kind, Endpoint{URL: secretURL, Token: "t"}, "", "", "", nil, Filter{}, fastRetry(),
			func(a Attempt) { attempts = append(attempts, a) })
		if err != nil {
			t.Fatal(err)
		}
		err = d.Deliver(context.Background(), sampleAlert())
		if err == nil || len(attempts) == 0 {
			t.Fatalf("%s: delivery to a closed port: %v after %d attempts", kind, err, len(attempts))
		}
		for _, text := range []string{err.Error(), attempts[0].Error} {
			if strings.Contains(text, "s3cr3t") || strings.Contains(text, "qu3ry") || !strings.Contains(text, "http://127.0.0.1:1/…") {
				t.Errorf("%s: error %q shows the URL's secret, or not its host", kind, text)
			}
		}
	}
}

// An alert whose transaction aborted after its delivery (a broker restart,
// a rebalance) comes to the notifier again: the replay must not post it
// again where it was delivered, and must retry where it failed.
func TestReplayedAlertIsNotPostedTwice(t *testing.T) {
	flaky := newHTTPReceiver(t, 200, 500, 500, 500) // fails the first delivery's 3 attempts
	good := newHTTPReceiver(t, 200)
	n := &notifier{log: testLogger(), dests: []Destination{
		&Webhook{Name: "flaky", URL: flaky.URL, Retry: fastRetry()},
		&Webhook{Name: "good", URL: good.URL, Retry: fastRetry()},
	}}
	a := sampleAlert()
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	batch := service.MessageBatch{service.NewMessage(raw)}
	for replay := 0; replay < 3; replay++ {
		if err := n.WriteBatch(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	count := func(r *httpReceiver, typ string) (n int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, b := range r.bodies {
			if b["type"] == typ && (typ != "RULE" || b["alertId"] == a.AlertID) {
				n++
			}
		}
		return n
	}
	if got := count(good, "RULE"); got != 1 {
		t.Errorf("the good destination got the alert %d times over 3 deliveries, want once", got)
	}
	if got := count(good, "SYSTEM_ERROR"); got != 1 {
		t.Errorf("the good destination got %d system errors about the flaky one, want 1", got)
	}
	// 3 failed attempts, then the first replay's successful one; the
	// second replay sends nothing.
	if got := count(flaky, "RULE"); got != 4 {
		t.Errorf("the flaky destination got %d requests, want 3 failed and 1 retried on replay", got)
	}
}

// The set of delivered alerts is bounded: past two generations a key is
// forgotten (a replay then re-sends, as after a crash).
func TestSentSetIsBounded(t *testing.T) {
	var s sentSet
	s.add("first")
	for i := 0; i < 2*sentGeneration; i++ {
		s.add(fmt.Sprint(i))
		if i == sentGeneration && !s.has("first") {
			t.Fatal("forgot a key one generation later")
		}
	}
	if s.has("first") {
		t.Error("kept a key two generations later")
	}
	if !s.has(fmt.Sprint(2*sentGeneration - 1)) {
		t.Error("forgot the latest key")
	}
	if n := len(s.cur) + len(s.prev); n > 2*sentGeneration {
		t.Errorf("holds %d keys, want at most %d", n, 2*sentGeneration)
	}
}

// A rule's OutputIds name its destinations outright: a named destination
// gets the alert whatever its filters (its min_severity, log types, tags,
// rule ids), one not named does not; without OutputIds the filters route.
func TestOutputIdsOverrideDestinationFilters(t *testing.T) {
	pager, soc := newHTTPReceiver(t, 200), newHTTPReceiver(t, 200)
	n := &notifier{log: testLogger(), dests: []Destination{
		&Webhook{Name: "pager", URL: pager.URL, Retry: fastRetry(),
			Filter: Filter{MinSeverity: "Critical", LogTypes: []string{"Okta.SystemLog"}, Tags: []string{"paging"}, RuleIDs: []string{"Other"}}},
		&Webhook{Name: "soc", URL: soc.URL, Retry: fastRetry()},
	}}
	for i, ids := range [][]string{{"pager"}, nil} {
		a := sampleAlert() // High, AWS.CloudTrail: the pager's filters refuse it
		a.AlertID = fmt.Sprintf("a%d", i)
		a.OutputIDs = ids
		if err := n.deliver(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	got := func(r *httpReceiver) (out []string) {
		for _, b := range r.bodies {
			out = append(out, fmt.Sprintf("%v %v", b["type"], b["alertId"]))
		}
		return out
	}
	if fmt.Sprint(got(pager)) != "[RULE a0]" || fmt.Sprint(got(soc)) != "[RULE a1]" {
		t.Fatalf("pager got %v, soc got %v; want the alert naming pager at pager only, the other at soc only", got(pager), got(soc))
	}
}

// Titles and alert context carry event fields, which whoever writes into
// the logs chooses (a user name, a SQL object, a user agent): they must not
// page a whole channel or team, nor break out of the code block that shows
// them to add links and mentions.
func TestEventTextCannotMentionOrFormat(t *testing.T) {
	a := sampleAlert()
	a.Title = "DROP by <!channel> on <https://evil.example/|reset your password> [reset it](https://evil.example/)"
	a.AlertContext = map[string]any{"object": "x\n```\n@acme/security-team <!here> [login](https://evil.example/)\n{noformat}\n[~admin]\n````"}
	deliver := func(kind string, e func(string) Endpoint) map[string]any {
		t.Helper()
		r := newHTTPReceiver(t, 200)
		if err := build(t, kind, e(r.URL)).Deliver(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		return r.bodies[0]
	}
	slack := deliver("slack", func(u string) Endpoint { return Endpoint{URL: u} })
	if s := fmt.Sprint(slack["text"]); strings.Contains(s, "<!channel>") || !strings.Contains(s, "&lt;!channel&gt;") {
		t.Errorf("slack text %q: a title's <!channel> must be escaped", s)
	}
	for i, b := range slack["blocks"].([]any) {
		if dig(b, "type") == "header" {
			continue // plain_text: Slack parses no mentions there
		}
		if j, _ := json.Marshal(b); strings.Contains(string(j), `\u003c!`) || strings.Contains(string(j), "<!") {
			t.Errorf("slack block %d lets event text mention: %s", i, j)
		}
	}
	var code string
	for _, b := range slack["blocks"].([]any) {
		if s, _ := dig(b, "text", "text").(string); strings.HasPrefix(s, "```") {
			code = s
		}
	}
	if strings.Count(code, "``") != 2 || !strings.HasSuffix(code, "```") {
		t.Errorf("slack context block %q: only its own fences may hold ``` (the context's would close it)", code)
	}
	discord := deliver("discord", func(u string) Endpoint { return Endpoint{URL: u} })
	teams := deliver("msteams", func(u string) Endpoint { return Endpoint{URL: u} })
	for name, body := range map[string]map[string]any{"discord": discord, "msteams": teams} {
		if j, _ := json.Marshal(body); strings.Contains(string(j), "](") {
			t.Errorf("%s renders event text as a masked link: %s", name, j)
		}
	}
	if p, ok := dig(discord, "allowed_mentions", "parse").([]any); !ok || len(p) != 0 {
		t.Errorf("discord allowed_mentions = %v, want parse: [] (no @everyone from event text)", discord["allowed_mentions"])
	}
	gh := fmt.Sprint(deliver("github", func(u string) Endpoint { return Endpoint{URL: u, Token: "ghp", Repository: "acme/sec"} })["body"])
	// The fence must be longer than any backtick run inside it.
	if !strings.Contains(gh, "\n`````\n") {
		t.Errorf("github body: the context's ``` closes the code block:\n%s", gh)
	}
	jira := fmt.Sprint(dig(deliver("jira", func(u string) Endpoint {
		return Endpoint{URL: u, Username: "bot@example.com", Token: "jt", Project: "SEC"}
	}), "fields", "description"))
	if n := strings.Count(strings.ToLower(jira), "{noformat}"); n != 2 {
		t.Errorf("jira description has %d {noformat}, want 2 (the context's must not close the block):\n%s", n, jira)
	}
}

// A destination that redirects must not get the alert and its
// credentials re-sent elsewhere: Go's client re-posts a 307/308 with the
// body and every header but Authorization and Cookie (an X-Api-Key from
// `headers:`, PagerDuty's routing key in the body) to whatever host the
// Location names.
func TestDestinationsDoNotFollowRedirects(t *testing.T) {
	elsewhere := newHTTPReceiver(t, 200)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/collect", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	for _, kind := range []string{"webhook", "slack", "pagerduty"} {
		d, err := NewDestination("d-"+kind, kind, Endpoint{URL: redirector.URL + "/hook", Token: "r0uting", Headers: map[string]string{"X-Api-Key": "k3y"}},
			"", "", "", nil, Filter{}, fastRetry(), nil)
		if err != nil {
			t.Fatal(err)
		}
		err = d.Deliver(context.Background(), sampleAlert())
		if err == nil || !strings.Contains(err.Error(), "307") {
			t.Errorf("%s: Deliver through a redirect = %v, want an error naming the 307", kind, err)
		}
	}
	if len(elsewhere.reqs) != 0 {
		t.Errorf("the redirect target got %d requests (X-Api-Key %q)", len(elsewhere.reqs), elsewhere.reqs[0].Header.Get("X-Api-Key"))
	}
}
