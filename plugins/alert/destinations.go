package alert

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// HTTPDestination is a destination reached by one HTTP request per alert:
// Slack, Microsoft Teams, Discord, PagerDuty, Opsgenie, Jira, GitHub and
// Splunk differ only in how the request is built (Build); delivery,
// retries and attempt records are shared.
type HTTPDestination struct {
	Name      string
	Kind      string
	Filter    Filter
	Retry     Retry
	Client    *http.Client
	OnAttempt func(Attempt)
	Build     func(ctx context.Context, a *envelope.Alert) (*http.Request, error)
}

// ID implements Destination.
func (d *HTTPDestination) ID() string { return d.Name }

// Accepts implements Destination.
func (d *HTTPDestination) Accepts(a *envelope.Alert) bool { return d.Filter.Match(a) }

// Deliver sends the alert, retrying per the policy.
func (d *HTTPDestination) Deliver(ctx context.Context, a *envelope.Alert) error {
	return deliverWithRetry(ctx, d.Name, a.AlertID, d.Retry, d.OnAttempt, func(ctx context.Context) (int, time.Duration, error) {
		req, err := d.Build(ctx, a)
		if err != nil {
			return 0, 0, permanent{err}
		}
		req.Header.Set("User-Agent", "Caracal")
		return doHTTP(d.Client, req)
	})
}

// Endpoint settings of the HTTP destinations.
type Endpoint struct {
	URL        string            // webhook or API base URL
	Headers    map[string]string // extra headers
	Token      string            // API token / routing or integration key
	Username   string            // Jira account email
	Project    string            // Jira project key
	IssueType  string            // Jira issue type
	Repository string            // GitHub owner/repo
	Index      string            // Splunk index
}

func jsonRequest(ctx context.Context, url string, body any, headers map[string]string) (*http.Request, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req, nil
}

// Builders by destination type.
var builders = map[string]func(e Endpoint) func(context.Context, *envelope.Alert) (*http.Request, error){
	"slack":     slackRequest,
	"msteams":   teamsRequest,
	"discord":   discordRequest,
	"pagerduty": pagerDutyRequest,
	"opsgenie":  opsgenieRequest,
	"jira":      jiraRequest,
	"github":    githubRequest,
	"splunk":    splunkRequest,
}

// Default endpoints of the hosted services (overridable: tests point them
// at local receivers).
var defaultURLs = map[string]string{
	"pagerduty": "https://events.pagerduty.com/v2/enqueue",
	"opsgenie":  "https://api.opsgenie.com/v2/alerts",
	"github":    "https://api.github.com",
}

// truncate shortens s to at most n characters, the last of them "…".
// The services' limits count characters, not bytes, and a cut through a
// UTF-8 sequence would send them invalid text.
func truncate(s string, n int) string {
	if len(s) <= n || utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	end := 0
	for range n - 1 { // the characters kept before "…"
		_, size := utf8.DecodeRuneInString(s[end:])
		end += size
	}
	return s[:end] + "…"
}

func title(a *envelope.Alert) string {
	if a.Title != "" {
		return a.Title
	}
	return a.Name
}

// facts are the alert's key attributes, in a stable order.
func facts(a *envelope.Alert) [][2]string {
	out := [][2]string{{"Severity", a.Severity}, {"Rule", a.ID}, {"Type", a.Type}}
	if len(a.LogTypes) > 0 {
		out = append(out, [2]string{"Log types", strings.Join(a.LogTypes, ", ")})
	}
	out = append(out, [2]string{"Events", fmt.Sprint(a.EventCount)}, [2]string{"Alert ID", a.AlertID}, [2]string{"Created", a.CreatedAt})
	return out
}

// contextText renders the alert context as sorted "key: value" lines.
func contextText(a *envelope.Alert) string {
	keys := make([]string, 0, len(a.AlertContext))
	for k := range a.AlertContext {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := a.AlertContext[k]
		if v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			j, _ := json.Marshal(v)
			s = string(j)
		}
		fmt.Fprintf(&b, "%s: %s\n", k, s)
	}
	return b.String()
}

// slackText escapes what Slack's mrkdwn reads as control sequences: in
// event text, <!channel> would page the channel and <url|text> would be a
// disguised link.
var slackText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// slackCode is text for a Slack code block, which a ``` in it would close
// (Slack has no longer fences), after which its URLs became links: the
// backticks are kept apart by zero-width spaces.
func slackCode(s string) string {
	return strings.ReplaceAll(slackText(s), "`", "`\u200b")
}

// noMaskedLinks keeps event text from showing as a Markdown link whose
// text hides where it goes ([reset your password](https://evil...)) in
// Discord and Teams, which render Markdown: a zero-width space after "]"
// leaves the text as written.
var noMaskedLinks = strings.NewReplacer("](", "]\u200b(").Replace

// fence is a Markdown code fence longer than any backtick run in s, which
// could otherwise close it (CommonMark).
func fence(s string) string {
	longest, run := 0, 0
	for _, c := range s {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

// jiraNoformat keeps text from closing the {noformat} block that shows it,
// after which it could add Jira markup: links, [~user] mentions.
var jiraNoformat = regexp.MustCompile(`(?i)\{noformat`)

func slackRequest(e Endpoint) func(context.Context, *envelope.Alert) (*http.Request, error) {
	return func(ctx context.Context, a *envelope.Alert) (*http.Request, error) {
		var fields []map[string]any
		for _, f := range facts(a) {
			fields = append(fields, map[string]any{"type": "mrkdwn", "text": "*" + f[0] + "*\n" + slackText(f[1])})
		}
		blocks := []map[string]any{
			{"type": "header", "text": map[string]any{"type": "plain_text", "text": truncate("["+a.Severity+"] "+title(a), 150)}},
			{"type": "section", "fields": fields[:min(len(fields), 10)]},
		}
		if c := contextText(a); c != "" {
			blocks = append(blocks, map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": truncate("```"+slackCode(c)+"```", 3000)}})
		}
		if a.Runbook != "" {
			blocks = append(blocks, map[string]any{"type": "context", "elements": []map[string]any{{"type": "mrkdwn", "text": truncate("Runbook: "+slackText(a.Runbook), 3000)}}})
		}
		body := map[string]any{"text": truncate(slackText(fmt.Sprintf("[%s] %s", a.Severity, title(a))), 3000), "blocks": blocks}
		return jsonRequest(ctx, e.URL, body, e.Headers)
	}
}

func teamsRequest(e Endpoint) func(context.Context, *envelope.Alert) (*http.Request, error) {
	return func(ctx context.Context, a *envelope.Alert) (*http.Request, error) {
		var fs []map[string]string
		for _, f := range facts(a) {
			fs = append(fs, map[string]string{"title": f[0], "value": noMaskedLinks(f[1])})
		}
		body := []map[string]any{
			{"type": "TextBlock", "text": "[" + a.Severity + "] " + noMaskedLinks(title(a)), "weight": "Bolder", "size": "Medium", "wrap": true},
			{"type": "FactSet", "facts": fs},
		}
		if c := contextText(a); c != "" {
			body = append(body, map[string]any{"type": "TextBlock", "text": noMaskedLinks(c), "wrap": true, "fontType": "Monospace"})
		}
		card := map[string]any{
			"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": body,
		}
		msg := map[string]any{"type": "message", "attachments": []map[string]any{{
			"contentType": "application/vnd.microsoft.card.adaptive", "content": card,
		}}}
		return jsonRequest(ctx, e.URL, msg, e.Headers)
	}
}

// discordColors by severity (decimal RGB).
var discordColors = map[string]int{"Critical": 0x8B0000, "High": 0xE53935, "Medium": 0xFB8C00, "Low": 0xFDD835, "Info": 0x1E88E5}

func discordRequest(e Endpoint) func(context.Context, *envelope.Alert) (*http.Request, error) {
	return func(ctx context.Context, a *envelope.Alert) (*http.Request, error) {
		var fields []map[string]any
		for _, f := range facts(a) {
			fields = append(fields, map[string]any{"name": f[0], "value": truncate(noMaskedLinks(f[1]), 1024), "inline": true})
		}
		embed := map[string]any{
			"title": truncate(noMaskedLinks(title(a)), 256), "description": truncate(noMaskedLinks(contextText(a)), 4096),
			"color": discordColors[a.Severity], "fields": fields, "timestamp": a.CreatedAt,
		}
		body := map[string]any{"content": truncate(fmt.Sprintf("[%s] %s", a.Severity, noMaskedLinks(title(a))), 2000), "embeds": []any{embed},
			// Event text in the title must not ping @everyone, roles or users.
			"allowed_mentions": map[string]any{"parse": []string{}}}
		return jsonRequest(ctx, e.URL, body, e.Headers)
	}
}

// PagerDuty Events API v2 severities.
var pagerDutySeverity = map[string]string{"Critical": "critical", "High": "error", "Medium": "warning", "Low": "info", "Info": "info"}

func pagerDutyRequest(e Endpoint) func(context.Context, *envelope.Alert) (*http.Request, error) {
	return func(ctx context.Context, a *envelope.Alert) (*http.Request, error) {
		sev := pagerDutySeverity[a.Severity]
		if sev == "" {
			sev = "warning"
		}
		component := ""
		if len(a.LogTypes) > 0 {
			component = a.LogTypes[0]
		}
		body := map[string]any{
			"routing_key":  e.Token,
			"event_action": "trigger",
			// PagerDuty merges triggers with the same key: a redelivered
			// alert updates the incident instead of opening another.
			"dedup_key": a.AlertID,
			"payload": map[string]any{
				"summary": truncate(title(a), 1024), "source": "caracal", "severity": sev,
				"timestamp": a.CreatedAt, "component": component, "group": a.ID, "class": a.Type,
				"custom_details": map[string]any{"alertId": a.AlertID, "ruleId": a.ID, "eventCount": a.EventCount,
					"description": a.Description, "runbook": a.Runbook, "alertContext": a.AlertContext, "tags": a.Tags},
			},
		}
		return jsonRequest(ctx, e.URL, body, e.Headers)
	}
}

// Opsgenie priorities.
var opsgeniePriority = map[string]string{"Critical": "P1", "High": "P2", "Medium": "P3", "Low": "P4", "Info": "P5"}

func opsgenieRequest(e Endpoint) func(context.Context, *envelope.Alert) (*http.Request, error) {
	return func(ctx context.Context, a *envelope.Alert) (*http.Request, error) {
		details := map[string]string{"ruleId": a.ID, "alertId": a.AlertID, "severity": a.Severity, "eventCount": fmt.Sprint(a.EventCount)}
		for k, v := range a.AlertContext {
			if s, ok := v.(string); ok {
				details[k] = truncate(s, 8000)
			}
		}
		prio := opsgeniePriority[a.Severity]
		if prio == "" {
			prio = "P3"
		}
		body := map[string]any{
			"message": truncate(title(a), 130), "alias": a.AlertID, // Opsgenie de-duplicates on alias
			"description": truncate(a.Description+"\n\n"+contextText(a)+"\nRunbook: "+a.Runbook, 15000),
			"priority":    prio, "tags": a.Tags, "details": details, "source": "caracal", "entity": a.ID,
		}
		h := map[string]string{"Authorization": "GenieKey " + e.Token}
		for k, v := range e.Headers {
			h[k] = v
		}
		return jsonRequest(ctx, e.URL, body, h)
	}
}

func jiraRequest(e Endpoint) func(context.Context, *envelope.Alert) (*http.Request, error) {
	return func(ctx context.Context, a *envelope.Alert) (*http.Request, error) {
		issueType := e.IssueType
		if issueType == "" {
			issueType = "Task"
		}
		var desc strings.Builder
		fmt.Fprintf(&desc, "%s\n\n", a.Description)
		for _, f := range facts(a) {
			fmt.Fprintf(&desc, "*%s*: %s\n", f[0], f[1])
		}
		if c := contextText(a); c != "" {
			fmt.Fprintf(&desc, "\n{noformat}\n%s{noformat}\n", jiraNoformat.ReplaceAllString(c, "{ noformat"))
		}
		if a.Runbook != "" {
			fmt.Fprintf(&desc, "\n*Runbook*: %s\n", a.Runbook)
		}
		labels := []string{"caracal", "severity-" + strings.ToLower(a.Severity)}
		body := map[string]any{"fields": map[string]any{
			"project": map[string]string{"key": e.Project}, "issuetype": map[string]string{"name": issueType},
			"summary": truncate("["+a.Severity+"] "+title(a), 255), "description": desc.String(), "labels": labels,
		}}
		h := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(e.Username+":"+e.Token))}
		for k, v := range e.Headers {
			h[k] = v
		}
		return jsonRequest(ctx, strings.TrimRight(e.URL, "/")+"/rest/api/2/issue", body, h)
	}
}

func githubRequest(e Endpoint) func(context.Context, *envelope.Alert) (*http.Request, error) {
	return func(ctx context.Context, a *envelope.Alert) (*http.Request, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "%s\n\n| | |\n|---|---|\n", a.Description)
		for _, f := range facts(a) {
			fmt.Fprintf(&b, "| %s | %s |\n", f[0], strings.ReplaceAll(f[1], "|", `\|`))
		}
		if c := contextText(a); c != "" {
			f := fence(c)
			fmt.Fprintf(&b, "\n%s\n%s%s\n", f, c, f)
		}
		if a.Runbook != "" {
			fmt.Fprintf(&b, "\n**Runbook**: %s\n", a.Runbook)
		}
		body := map[string]any{"title": truncate("["+a.Severity+"] "+title(a), 256), "body": b.String(),
			"labels": []string{"caracal", "severity:" + strings.ToLower(a.Severity)}}
		h := map[string]string{"Authorization": "Bearer " + e.Token, "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
		for k, v := range e.Headers {
			h[k] = v
		}
		return jsonRequest(ctx, strings.TrimRight(e.URL, "/")+"/repos/"+e.Repository+"/issues", body, h)
	}
}

func splunkRequest(e Endpoint) func(context.Context, *envelope.Alert) (*http.Request, error) {
	return func(ctx context.Context, a *envelope.Alert) (*http.Request, error) {
		t, err := envelope.ParseTime(a.CreatedAt)
		if err != nil {
			t = time.Now()
		}
		body := map[string]any{"time": float64(t.UnixMilli()) / 1000, "source": "caracal", "sourcetype": "caracal:alert", "event": a}
		if e.Index != "" {
			body["index"] = e.Index
		}
		h := map[string]string{"Authorization": "Splunk " + e.Token}
		for k, v := range e.Headers {
			h[k] = v
		}
		return jsonRequest(ctx, strings.TrimRight(e.URL, "/")+"/services/collector/event", body, h)
	}
}
