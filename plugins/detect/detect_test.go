package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/caracal-sec/caracal/plugins/enrich"
	"github.com/caracal-sec/caracal/plugins/envelope"
)

func rule(t testing.TB, y string) *Rule {
	t.Helper()
	r, err := ParseRule("test.yml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const base = `AnalysisType: rule
RuleID: Test.Rule
Enabled: true
LogTypes: [AWS.CloudTrail]
Severity: Medium
`

func TestConditionsAndHelpers(t *testing.T) {
	ev := map[string]any{
		"p_log_type":      "AWS.CloudTrail",
		"eventName":       "ConsoleLogin",
		"sourceIPAddress": "10.1.2.3",
		"userIdentity":    map[string]any{"type": "Root", "sessionContext": map[string]any{"attributes": map[string]any{"mfaAuthenticated": "false"}}},
		"resources":       []any{map[string]any{"arn": "arn:aws:s3:::bucket"}},
		"bytesOut":        int64(7),
	}
	for _, tc := range []struct {
		cond string
		want bool
	}{
		{`eventName == "ConsoleLogin"`, true},
		{`eventName in ["A", "ConsoleLogin"]`, true},
		{`userIdentity.type == "Root"`, true},
		{`missing?.field == "x"`, false},
		{`missing == nil`, true},
		{`deep_get(userIdentity, "sessionContext.attributes.mfaAuthenticated") == "false"`, true},
		{`deep_get(userIdentity, "nope.deeper", "dflt") == "dflt"`, true},
		{`deep_get(resources, "0.arn") startsWith "arn:aws:s3"`, true},
		{`cidr_match(sourceIPAddress, "10.0.0.0/8")`, true},
		{`cidr_match(sourceIPAddress, "192.168.0.0/16")`, false},
		{`cidr_match("not an ip", "10.0.0.0/8")`, false},
		{`re_match(eventName, "^Console(Login|Logout)$")`, true},
		{`bytesOut > 5 && bytesOut < 10`, true},
		{`$env["bytesOut"] == 7`, true},
		{`any(resources, .arn contains "bucket")`, true},
	} {
		r := rule(t, base+"Condition: '"+strings.ReplaceAll(tc.cond, "'", "''")+"'\n")
		got, err := r.Eval(ev)
		if err != nil || got != tc.want {
			t.Errorf("%s = %v, %v; want %v", tc.cond, got, err, tc.want)
		}
	}
}

func TestMatchRecordAndErrorIsolation(t *testing.T) {
	good := rule(t, strings.Replace(base, "RuleID: Test.Rule", "RuleID: Test.Good", 1)+`DisplayName: Good rule
Tags: [a, b]
Reports: {MITRE ATT&CK: [TA0001:T1078]}
OutputIds: [soc]
DedupPeriodMinutes: 30
Threshold: 3
Condition: eventName == "X"
Title: '"X by " + user'
Dedup: user
AlertContext: {who: user, n: 1 + 1}
DynamicSeverity: 'user == "root" ? "Critical" : "DEFAULT"'
`)
	bad := rule(t, strings.Replace(base, "RuleID: Test.Rule", "RuleID: Test.Bad", 1)+`Condition: 'eventName == "X" && (1 / zero) > 0 && nested.deeper.field == 1'
`)
	e := NewEngine([]*Rule{good, bad})
	out := e.Evaluate(map[string]any{"p_log_type": "AWS.CloudTrail", "eventName": "X", "user": "root", "zero": int64(0)})
	if len(out) != 2 {
		t.Fatalf("want a match and a rule error, got %d", len(out))
	}
	var m, re map[string]any
	for _, o := range out {
		if o[envelope.FieldMatchType] == envelope.TypeRule {
			m = o
		} else {
			re = o
		}
	}
	if m == nil || re == nil {
		t.Fatalf("types: %v", out)
	}
	checks := map[string]any{
		envelope.FieldRuleID: "Test.Good", envelope.FieldAlertTitle: "X by root", envelope.FieldDedupString: "root",
		envelope.FieldRuleSeverity: "Critical", envelope.FieldRuleDedupMin: 30, envelope.FieldRuleThresh: 3,
		envelope.FieldRuleTags: []string{"a", "b"}, envelope.FieldRuleOutputs: []string{"soc"},
		envelope.FieldRuleName: "Good rule", "eventName": "X",
	}
	for k, v := range checks {
		if fmt.Sprint(m[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if ctx := m[envelope.FieldAlertContext].(map[string]any); ctx["who"] != "root" || fmt.Sprint(ctx["n"]) != "2" {
		t.Errorf("alert context %v", ctx)
	}
	if re[envelope.FieldRuleID] != "Test.Bad" || re[envelope.FieldRuleError] == "" {
		t.Errorf("rule error record %v", re)
	}
	// Only the event's log type's rules run.
	if got := e.Evaluate(map[string]any{"p_log_type": "AWS.ALB", "eventName": "X"}); len(got) != 0 {
		t.Errorf("rules of another log type ran: %v", got)
	}
}

// DynamicSeverity is read as Panther's severity() is: "HIGH", what Python
// rules return, is High, and DEFAULT in any case is the YAML severity. A
// value that is no severity keeps the YAML severity in the match, and the
// rule's tests fail on it.
func TestDynamicSeverityCase(t *testing.T) {
	for gave, want := range map[string]string{"HIGH": "High", "critical": "Critical", "Low": "Low",
		"DEFAULT": "Medium", "default": "Medium", "Severe": "Medium", "": "Medium"} {
		r := rule(t, base+"Condition: 'true'\nDynamicSeverity: sev\n")
		ev := map[string]any{"p_log_type": "AWS.CloudTrail", "sev": gave}
		if got := r.Match(ev)[envelope.FieldRuleSeverity]; got != want {
			t.Errorf("DynamicSeverity %q: severity %v, want %s", gave, got, want)
		}
		r.Tests = []Test{{Name: "t", ExpectedResult: true, Log: ev}}
		res := RunTests([]*Rule{r})[0]
		if valid := want != "Medium" || strings.EqualFold(gave, "DEFAULT"); res.Passed != valid {
			t.Errorf("DynamicSeverity %q: rule test passed %v (%s), want %v", gave, res.Passed, res.Reason, valid)
		}
		if !res.Passed && !strings.Contains(res.Reason, "DynamicSeverity gave "+gave+"; want one of Info, Low") {
			t.Errorf("DynamicSeverity %q: rule test reason %q", gave, res.Reason)
		}
	}
}

// A matching rule whose Title, Dedup or DynamicSeverity fails on an event
// falls back to the default title, dedup string and severity, and its
// alert says why in its context, so a rule broken in production is seen.
func TestOutputErrorsAreInTheAlertContext(t *testing.T) {
	r := rule(t, base+`Condition: 'true'
Title: 'upper(missing)'
Dedup: 'repeat(user, -1)'
DynamicSeverity: sev
AlertContext:
  user: user
`)
	m := r.Match(map[string]any{"p_log_type": "AWS.CloudTrail", "user": "alice", "sev": "Severe"})
	ctx, _ := m[envelope.FieldAlertContext].(map[string]any)
	errs, _ := ctx[OutputErrorsKey].([]any)
	if m[envelope.FieldAlertTitle] != "Test.Rule" || m[envelope.FieldDedupString] != "Test.Rule" || m[envelope.FieldRuleSeverity] != "Medium" ||
		ctx["user"] != "alice" || len(errs) != 3 {
		t.Fatalf("match %v: want the defaults, the context, and 3 errors", m)
	}
	for i, want := range []string{"Title: ", "Dedup: ", "DynamicSeverity gave Severe"} {
		if s, _ := errs[i].(string); !strings.HasPrefix(s, want) {
			t.Errorf("error %d = %q, want it to start with %q", i, s, want)
		}
	}
	if _, err := json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	// A rule whose outputs work has no such entry.
	ok := rule(t, base+"Condition: 'true'\nTitle: user\n")
	if ctx := ok.Match(map[string]any{"p_log_type": "AWS.CloudTrail", "user": "alice"})[envelope.FieldAlertContext].(map[string]any); len(ctx) != 0 {
		t.Errorf("a rule without errors has context %v", ctx)
	}
}

// A rule that copies a large field into its title, dedup string or alert
// context gets a bounded match: it must still fit in a broker record.
func TestMatchOutputsAreBounded(t *testing.T) {
	r := rule(t, base+`Condition: eventName == "X"
Title: blob
Dedup: blob
AlertContext: {a: blob, b: blob, c: user}
`)
	blob := strings.Repeat("é", 20<<10) // 40 KiB, two bytes a character
	m := r.Match(map[string]any{"p_log_type": "AWS.CloudTrail", "eventName": "X", "blob": blob, "user": "root"})
	title, dedup := m[envelope.FieldAlertTitle].(string), m[envelope.FieldDedupString].(string)
	if len(title) != 1000 || len(dedup) != 1000 || !utf8.ValidString(title) || !utf8.ValidString(dedup) {
		t.Errorf("title and dedup string: %d and %d bytes (valid UTF-8: %v, %v), want 1000 each", len(title), len(dedup), utf8.ValidString(title), utf8.ValidString(dedup))
	}
	// A rule error quoting the large value it failed on is bounded too.
	failing := rule(t, base+`Condition: int(blob) > 0
`)
	re := failing.Match(map[string]any{"p_log_type": "AWS.CloudTrail", "blob": blob})
	if re[envelope.FieldMatchType] != envelope.TypeRuleError || len(fmt.Sprint(re[envelope.FieldRuleError])) > 4<<10 ||
		len(fmt.Sprint(re[envelope.FieldAlertTitle])) > 1000 || len(fmt.Sprint(re[envelope.FieldDedupString])) > 1000 {
		t.Errorf("rule error record: type %v, error %d bytes, title %d, dedup %d", re[envelope.FieldMatchType],
			len(fmt.Sprint(re[envelope.FieldRuleError])), len(fmt.Sprint(re[envelope.FieldAlertTitle])), len(fmt.Sprint(re[envelope.FieldDedupString])))
	}
	ctx := m[envelope.FieldAlertContext].(map[string]any)
	if ctx["a"] != blob || !strings.HasPrefix(fmt.Sprint(ctx["b"]), "omitted: ") || ctx["c"] != "root" {
		t.Errorf("alert context: a %d bytes, b %.40q, c %v", len(fmt.Sprint(ctx["a"])), ctx["b"], ctx["c"])
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, err string }{
		{base + "Condition: 'eventName =='", "test.yml:6: rule Test.Rule: Condition: unexpected token EOF"},
		{base + "Condition: 'contans(userAgent, \"curl\")'", "test.yml:6: rule Test.Rule: Condition: unknown function contans (did you mean the contains operator: a contains b?)"},
		{base + "Condition: 'true'\nAlertContext:\n  ip: ip_of(sourceIPAddress)", "test.yml:8: rule Test.Rule: AlertContext.ip: unknown function ip_of"},
		{base + "Condition: x\nSeverety: High", `test.yml:7: unknown key "Severety" (did you mean Severity?)`},
		{strings.Replace(base, "Medium", "Urgent", 1) + "Condition: x", `test.yml:5: rule Test.Rule: Severity "Urgent": use one of`},
		{strings.Replace(base, "LogTypes: [AWS.CloudTrail]\n", "", 1) + "Condition: x", "LogTypes"},
		{base, "missing Condition"},
		{base + "Condition: 'true'\nThreshold: 0", "test.yml:7: rule Test.Rule: Threshold 0: use 1"},
		{base + "Condition: 'true'\nDedupPeriodMinutes: -5", "test.yml:7: rule Test.Rule: DedupPeriodMinutes -5: use 0"},
		{base + "Condition: 'true'\nAlertStormLimit: -1", "test.yml:7: rule Test.Rule: AlertStormLimit -1: use 0"},
		{base + "Condition: '" + strings.Repeat("a + ", 6000) + "a'", "Condition"},
	} {
		if _, err := ParseRule("test.yml", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("err = %v, want it to mention %q", err, tc.err)
		}
	}
	dir := t.TempDir()
	y := base + "Condition: 'true'\n"
	os.WriteFile(filepath.Join(dir, "a.yml"), []byte(y), 0o644)
	os.WriteFile(filepath.Join(dir, "b.yml"), []byte(y), 0o644)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "already defined") {
		t.Errorf("duplicate RuleID: %v", err)
	}
}

// The shipped pack's own tests run in go test too, with the shipped
// lookup tables (as make yaml-test gives them).
func TestShippedRules(t *testing.T) {
	rules, err := LoadDir("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 {
		t.Fatal("no rules shipped")
	}
	set, err := enrich.LoadSetFrom(context.Background(), "../../lookups")
	if err != nil {
		t.Fatal(err)
	}
	SetLookup(set.Lookup)
	defer SetLookup(nil)
	for _, res := range RunTests(rules) {
		if !res.Passed {
			t.Errorf("%s / %s: %s", res.Rule, res.Test, res.Reason)
		}
	}
	for _, r := range rules {
		var pos, neg int
		for _, tc := range r.Tests {
			if tc.ExpectedResult {
				pos++
			} else {
				neg++
			}
		}
		if pos == 0 || neg == 0 {
			t.Errorf("%s needs positive and negative tests (%d/%d)", r.RuleID, pos, neg)
		}
		if len(r.Reports["MITRE ATT&CK"]) == 0 {
			t.Errorf("%s has no MITRE ATT&CK Reports", r.RuleID)
		}
	}
}

func TestDetectEvents(t *testing.T) {
	e := NewEngine([]*Rule{rule(t, base+"Condition: eventName == \"X\"\n")})
	var out bytes.Buffer
	in := strings.NewReader(`{"eventName":"X"}` + "\n" + `{"eventName":"Y"}` + "\n")
	if err := DetectEvents(e, "AWS.CloudTrail", in, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var m map[string]any
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &m) != nil || m["p_rule_id"] != "Test.Rule" {
		t.Fatalf("matches: %q", out.String())
	}
}

// BenchmarkEngine runs the whole shipped pack's CloudTrail rules over a
// realistic mix: nine routine calls (which match nothing, as in production)
// for each of the CloudTrail rules' own test events.
func BenchmarkEngine(b *testing.B) {
	rules, err := LoadDir("../../rules")
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(rules)
	routine := func(name, source string) map[string]any {
		return map[string]any{"p_log_type": "AWS.CloudTrail", "eventName": name, "eventSource": source, "awsRegion": "eu-west-1",
			"sourceIPAddress": "10.1.2.3", "recipientAccountId": "111122223333", "eventType": "AwsApiCall",
			"userIdentity":      map[string]any{"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/ci/x", "accountId": "111122223333"},
			"requestParameters": map[string]any{"instancesSet": map[string]any{"items": []any{map[string]any{"instanceId": "i-0abc"}}}}}
	}
	var events []map[string]any
	for _, r := range e.byType["AWS.CloudTrail"] {
		for _, t := range r.Tests {
			ev := map[string]any{"p_log_type": "AWS.CloudTrail"}
			for k, v := range t.Log {
				ev[k] = envelope.PlainNumbers(v)
			}
			events = append(events, ev)
		}
	}
	// Nine routine events for every rule test event.
	calls := [][2]string{{"DescribeInstances", "ec2.amazonaws.com"}, {"GetObject", "s3.amazonaws.com"}, {"AssumeRole", "sts.amazonaws.com"}, {"ListBuckets", "s3.amazonaws.com"}, {"Decrypt", "kms.amazonaws.com"}}
	for i, n := 0, 9*len(events); i < n; i++ {
		events = append(events, routine(calls[i%len(calls)][0], calls[i%len(calls)][1]))
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		e.Evaluate(events[i%len(events)])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(e.byType["AWS.CloudTrail"])), "ns/rule")
	b.ReportMetric(float64(len(e.byType["AWS.CloudTrail"])), "rules")
}

func TestLookupHelper(t *testing.T) {
	SetLookup(func(table string, key any) any {
		if table == "bad" && key == "203.0.113.9" {
			return map[string]any{"reason": "scanner"}
		}
		return nil
	})
	defer SetLookup(nil)
	r := rule(t, base+`Condition: 'lookup("bad", sourceIPAddress)?.reason == "scanner"'`+"\n")
	for ip, want := range map[string]bool{"203.0.113.9": true, "198.51.100.1": false} {
		if got, err := r.Eval(map[string]any{"sourceIPAddress": ip}); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", ip, got, err, want)
		}
	}
}

// re_match's pattern cache keeps its own copy of a pattern (one read from
// an event points into the record, which is reused) and stays bounded
// when patterns come from event data.
func TestRegexCacheCopiesAndIsBounded(t *testing.T) {
	buf := []byte("^abc$")
	p := unsafe.String(unsafe.SliceData(buf), len(buf))
	if _, err := cachedRegexp(p); err != nil {
		t.Fatal(err)
	}
	regexCache.Range(func(k, _ any) bool {
		if key := k.(string); unsafe.StringData(key) == unsafe.SliceData(buf) {
			t.Fatalf("the cache keeps the record's bytes as the key %q", key)
		}
		return true
	})
	for i := range 2 * maxCachedRegexps {
		if _, err := cachedRegexp(fmt.Sprintf("^p%d$", i)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	regexCache.Range(func(_, _ any) bool { n++; return true })
	if n > maxCachedRegexps {
		t.Fatalf("%d patterns cached, bound %d", n, maxCachedRegexps)
	}
}

// A rule that loops or builds strings without bound is stopped by its
// evaluation budget and reported as a RULE_ERROR, as any runtime error;
// the event's next rule and the next event still run. (Before, the first
// ran for hours and the second ran the process out of memory.)
func TestRunawayRuleIsARuleError(t *testing.T) {
	for _, cond := range []string{
		`let a = 1..999; all(a, {all(a, {all(a, {all(a, {# > 0})})})})`,
		`len(reduce(1..40, #acc + #acc, eventName)) > 0`,
	} {
		r := rule(t, base+"Condition: '"+cond+"'\n")
		for range 2 {
			m := r.Match(map[string]any{"p_log_type": "AWS.CloudTrail", "eventName": "X"})
			if m[envelope.FieldMatchType] != envelope.TypeRuleError || !strings.Contains(fmt.Sprint(m[envelope.FieldRuleError]), "budget exceeded") {
				t.Fatalf("%s: %v %v, want a RULE_ERROR naming the budget", cond, m[envelope.FieldMatchType], m[envelope.FieldRuleError])
			}
		}
	}
}

// A match always encodes: an alert context of NaN or ±Inf (expr's 0.0 / 0,
// 1.0 / 0), even nested, is written as text; json.Marshal refused it, and
// the detect stage failed the whole batch's matches with it. The event's
// own values are not changed.
func TestMatchWithNonFiniteContextEncodes(t *testing.T) {
	r := rule(t, base+`Condition: eventName == "X"
AlertContext: {ratio: '1.0 / 0', nan: '0.0 / 0', nested: '{"a": [1, -1.0 / 0]}', user: user}
`)
	user := map[string]any{"name": "root"}
	m := r.Match(map[string]any{"p_log_type": "AWS.CloudTrail", "eventName": "X", "user": user})
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("match does not encode: %v", err)
	}
	ctx := m[envelope.FieldAlertContext].(map[string]any)
	if ctx["ratio"] != "+Inf" || ctx["nan"] != "NaN" || fmt.Sprint(ctx["nested"]) != "map[a:[1 -Inf]]" || !strings.Contains(string(b), `"name":"root"`) {
		t.Errorf("context %v", ctx)
	}
}

// The output errors' entry is inside the alert context's 64 KiB bound:
// it used to be added after the bound was applied, so a context that
// filled it grew past it by up to 3 KiB of errors.
func TestOutputErrorsStayWithinTheContextBound(t *testing.T) {
	r := rule(t, base+`Condition: 'true'
Title: 'upper(missing)'
Dedup: 'repeat(user, -1)'
DynamicSeverity: sev
AlertContext: {a: blob, b: blob2}
`)
	blob := strings.Repeat("x", 40<<10)
	blob2 := strings.Repeat("y", 24<<10-40) // a and b just fit on their own
	m := r.Match(map[string]any{"p_log_type": "AWS.CloudTrail", "blob": blob, "blob2": blob2, "user": "alice", "sev": strings.Repeat("S", 2000)})
	ctx := m[envelope.FieldAlertContext].(map[string]any)
	b, err := json.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if errs, _ := ctx[OutputErrorsKey].([]any); len(errs) != 3 || len(b) > 64<<10+64 {
		t.Errorf("alert context of %d bytes with %d output errors, want the 3 errors within 64 KiB", len(b), len(errs))
	}
}
