package detect

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse"
)

// Decoding only the keys rules read must not change a single result:
// every rule test event of the rule pack, as the process stage would
// write it (with indicator fields and keys no rule reads), gives the same
// matches, whole events included, as decoding everything.
func TestDecodeAndEvaluateMatchesFullDecode(t *testing.T) {
	rules, err := LoadDir("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Engine{NewEngine(rules), NewEngine(withWholeRules(t, rules)), NewEngine(withPantherKeyRules(t, rules))} {
		decodeAndEvaluateMatchesFullDecode(t, e, rules)
	}
}

func decodeAndEvaluateMatchesFullDecode(t *testing.T, e *Engine, rules []*Rule) {
	matched := 0
	for _, r := range rules {
		for _, tc := range r.Tests {
			for _, lt := range r.LogTypes {
				ev := map[string]any{"p_log_type": lt, "p_any_ip_addresses": []any{"198.51.100.1"},
					"p_row_id": "abc", "unreadByRules": map[string]any{"x": []any{int64(1), 2.5}}}
				for k, v := range tc.Log {
					ev[k] = envelope.PlainNumbers(v)
				}
				raw, err := envelope.EncodeEvent(ev)
				if err != nil {
					t.Fatal(err)
				}
				full, err := envelope.DecodeEvent(raw)
				if err != nil {
					t.Fatal(err)
				}
				want := e.Evaluate(full)
				got, err := e.DecodeAndEvaluate(raw)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("rule %s test %q as %s:\n got %v\nwant %v", r.RuleID, tc.Name, lt, got, want)
				}
				matched += len(want)
			}
		}
	}
	if matched < 50 {
		t.Fatalf("only %d matches over the rule tests: the check is too weak", matched)
	}
}

// FuzzDecodeAndEvaluate: on any bytes, deciding from the keys rules read
// (candidate rules, guards, nested paths, partial decoding) gives what a
// whole decode and every rule of the log type give: the same matches,
// rule errors included, for every event that decodes. Evaluate (the index
// over the whole event) must agree too. The seeds are the rule pack's
// test events as the process stage writes them.
func FuzzDecodeAndEvaluate(f *testing.F) {
	rules, err := LoadDir("../../rules")
	if err != nil {
		f.Fatal(err)
	}
	engines := []*Engine{NewEngine(rules), NewEngine(withWholeRules(f, rules)), NewEngine(withPantherKeyRules(f, rules))}
	for _, r := range rules {
		for _, tc := range r.Tests {
			ev := map[string]any{"p_log_type": r.LogTypes[0], "p_row_id": "abc"}
			for k, v := range tc.Log {
				ev[k] = envelope.PlainNumbers(v)
			}
			raw, err := envelope.EncodeEvent(ev)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		full, ferr := envelope.DecodeEvent(raw)
		for _, e := range engines {
			got, err := e.DecodeAndEvaluate(raw)
			if ferr != nil {
				// Values no rule reads are skipped, not decoded: a number
				// malformed there may pass unnoticed.
				continue
			}
			if err != nil {
				t.Fatalf("%q: DecodeAndEvaluate error %v, the whole event decodes", raw, err)
			}
			lt, _ := full[envelope.FieldLogType].(string)
			var want []map[string]any
			for _, r := range e.byType[lt] { // in RuleID order, as matches come
				if m := r.Match(full); m != nil {
					want = append(want, m)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q:\n got %v\nwant %v", raw, got, want)
			}
			if indexed := e.Evaluate(full); !reflect.DeepEqual(indexed, want) {
				t.Fatalf("%q: Evaluate\n got %v\nwant %v", raw, indexed, want)
			}
		}
	})
}

func TestConditionKeys(t *testing.T) {
	for src, want := range map[string][]string{
		`Condition: 'let u = userIdentity; eventName == "X" && u.type == "Root"'`: {"eventName", "u", "userIdentity"},
		`Condition: '$env["detail-type"] == "X" && $env.type == "Y"'`:             {"detail-type", "type"},
		`Condition: 'deep_get(requestParameters, "a.b") != nil'`:                  {"deep_get", "requestParameters"},
		// The Title is evaluated for a match only, from the whole event.
		`Condition: 'errorCode == nil'` + "\nTitle: 'upper(sourceIPAddress)'": {"errorCode"},
		// InlineFilters decide a match as the condition does.
		"Condition: 'errorCode == nil'\nInlineFilters:\n  - {KeyPath: userIdentity.type, Condition: Equals, Value: Root}": {"errorCode", "userIdentity"},
	} {
		keys, all := rule(t, base+src+"\n").conditionKeys()
		if all || !reflect.DeepEqual(sortedKeys(keys), want) {
			t.Errorf("%s: %v %v, want %v", src, sortedKeys(keys), all, want)
		}
	}
	for _, src := range []string{`Condition: '$env[eventSource] == "X"'`, `Condition: 'len($env) > 3'`,
		"Detection:\n  - KeyPath: '[*].x'\n    Condition: Exists\n"} {
		if _, all := rule(t, base+src+"\n").conditionKeys(); !all {
			t.Errorf("%s: want the whole event", src)
		}
	}
	// Such a rule has events it is a candidate for decoded whole; the
	// other rules still read their keys only.
	whole := rule(t, base+`Condition: 'eventName == "X" && len($env) > 3'`+"\n")
	keyed := rule(t, strings.Replace(base, "AWS.CloudTrail", "AWS.VPCFlow", 1)+`Condition: 'action == "REJECT"'`+"\n")
	e := NewEngine([]*Rule{whole, keyed})
	if p := e.plans[whole]; !p.whole || len(p.guards) != 1 {
		t.Errorf("the $env rule's plan: whole %v, %d guards; want whole, guarded by eventName", p.whole, len(p.guards))
	}
	if p := e.plans[keyed]; p.whole || len(p.reads) != 1 {
		t.Errorf("the keyed rule's plan: whole %v, reads %v; want its one key", p.whole, p.reads)
	}
}

// withWholeRules is rules and two that read the event as a whole, one
// guarded (a CloudTrail eventSource) and one not (every GuardDuty event):
// DecodeAndEvaluate decodes their candidates whole and the rest as before.
func withWholeRules(t testing.TB, rules []*Rule) []*Rule {
	return append(slices.Clip(rules),
		rule(t, strings.Replace(base, "Test.Rule", "Test.Whole.Guarded", 1)+`Condition: 'eventSource == "s3.amazonaws.com" && len($env) > 3'`+"\n"),
		rule(t, strings.NewReplacer("Test.Rule", "Test.Whole.Any", "AWS.CloudTrail", "AWS.GuardDuty").Replace(base)+`Condition: '$env[type] != nil'`+"\n"))
}

// withPantherKeyRules is rules and two CloudTrail rules whose
// InlineFilters read keys no rule of the pack reads (awsRegion,
// recipientAccountId), one with an expr Condition and one with a
// Detection: DecodeAndEvaluate must decode those keys for them. Their
// AlertTitle and DynamicSeverities read keys their logic does not.
func withPantherKeyRules(t testing.TB, rules []*Rule) []*Rule {
	filters := "InlineFilters:\n  - {Key: awsRegion, Condition: Equals, Value: us-east-1}\n  - {KeyPath: recipientAccountId, Condition: IsNotNullOrEmpty}\n" +
		"AlertTitle: '{eventName} by {userIdentity.arn} from {sourceIPAddress}'\n"
	return append(slices.Clip(rules),
		rule(t, strings.Replace(base, "Test.Rule", "Test.Panther.Condition", 1)+"Condition: eventName != nil\n"+filters),
		rule(t, strings.Replace(base, "Test.Rule", "Test.Panther.Detection", 1)+"Detection:\n  - {Key: eventSource, Condition: Exists}\n"+filters+
			"DynamicSeverities:\n  - {ChangeTo: HIGH, Conditions: [{Key: errorCode, Condition: IsNotNull}, {Key: eventVersion, Condition: Exists}]}\n"))
}

// A key only InlineFilters read is decoded for them: the filter holds on
// the event as on the whole event.
func TestDecodeAndEvaluateReadsInlineFilters(t *testing.T) {
	e := NewEngine([]*Rule{rule(t, base+"Detection:\n  - {Key: eventName, Condition: Equals, Value: X}\n"+
		"InlineFilters:\n  - {Key: awsRegion, Condition: Equals, Value: eu-west-1}\n")})
	for region, want := range map[string]int{"eu-west-1": 1, "us-east-1": 0} {
		raw, err := envelope.EncodeEvent(map[string]any{"p_log_type": "AWS.CloudTrail", "eventName": "X", "awsRegion": region})
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.DecodeAndEvaluate(raw)
		if err != nil || len(got) != want {
			t.Errorf("awsRegion %s: %d matches (%v), want %d", region, len(got), err, want)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// BenchmarkDecodeAndEvaluate runs the rule pack over a normalized
// CloudTrail event as the detect stage reads it from caracal.events.
func BenchmarkDecodeAndEvaluate(b *testing.B) {
	rules, err := LoadDir("../../rules")
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(rules)
	c, err := parse.LoadClassifier("../../schemas")
	if err != nil {
		b.Fatal(err)
	}
	line, err := os.ReadFile("../../testdata/cloudtrail/root_console_login.json")
	if err != nil {
		b.Fatal(err)
	}
	ev, fail := c.Classify(line, []string{"AWS.CloudTrail"}, parse.Origin{})
	if fail != nil {
		b.Fatal(parse.Describe(fail))
	}
	// A routine call by a role: no rule matches.
	ev["eventName"], ev["eventSource"] = "DescribeInstances", "ec2.amazonaws.com"
	ev["userIdentity"] = map[string]any{"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/ci/x", "accountId": "111122223333"}
	raw, err := envelope.EncodeEvent(ev)
	if err != nil {
		b.Fatal(err)
	}
	if m := e.Evaluate(ev); len(m) != 0 {
		b.Fatalf("the routine event matched %v", m[0]["p_rule_id"])
	}
	decodeAndEvaluate := func(name string, e *Engine) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.DecodeAndEvaluate(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	decodeAndEvaluate("keys rules read", e)
	// A rule reading the event as a whole, for S3 calls only: this EC2
	// call is still decoded by the keys rules read.
	decodeAndEvaluate("keys rules read beside a whole-event rule", NewEngine(withWholeRules(b, rules)))
	b.Run("whole event", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			full, err := envelope.DecodeEvent(raw)
			if err != nil {
				b.Fatal(err)
			}
			e.Evaluate(full)
		}
	})
}
