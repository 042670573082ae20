package detect

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func detectionRule(t testing.TB, detection string) *Rule {
	t.Helper()
	y := "AnalysisType: rule\nRuleID: T.Simple\nLogTypes: [AWS.CloudTrail]\nSeverity: Low\nDetection:\n" + detection
	r, err := ParseRule("t.yml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDetectionConditions(t *testing.T) {
	ev := map[string]any{
		"eventName": "ConsoleLogin", "count": int64(5), "ratio": 0.5, "num": json.Number("7"), "flag": true,
		"nothing": nil, "emptyStr": "", "ip": "10.1.2.3",
		"userIdentity": map[string]any{"type": "Root", "arn": "arn:aws:iam::111122223333:root"},
		"requestParameters": map[string]any{"ipPermissions": map[string]any{"items": []any{
			map[string]any{"ipRanges": map[string]any{"items": []any{map[string]any{"cidrIp": "10.0.0.0/8"}}}},
			map[string]any{"ipRanges": map[string]any{"items": []any{map[string]any{"cidrIp": "0.0.0.0/0"}, map[string]any{"cidrIp": "192.168.0.0/16"}}}},
		}}},
		"resources": []any{map[string]any{"type": "AWS::S3::Bucket", "arn": "arn:aws:s3:::a"}, map[string]any{"type": "AWS::IAM::Role"}},
		"tags":      []any{"a", "b"},
	}
	cases := []struct {
		name, det string
		want      bool
	}{
		{"equals string", "  - {Key: eventName, Condition: Equals, Value: ConsoleLogin}", true},
		{"equals other string", "  - {Key: eventName, Condition: Equals, Value: GetObject}", false},
		{"equals missing", "  - {Key: nope, Condition: Equals, Value: x}", false},
		{"not equal missing", "  - {Key: nope, Condition: DoesNotEqual, Value: x}", true},
		{"int64 equals yaml int", "  - {Key: count, Condition: Equals, Value: 5}", true},
		{"json.Number equals yaml int", "  - {Key: num, Condition: Equals, Value: 7}", true},
		{"float equals", "  - {Key: ratio, Condition: Equals, Value: 0.5}", true},
		{"string vs number", `  - {Key: count, Condition: Equals, Value: "5"}`, false},
		{"bool", "  - {Key: flag, Condition: Equals, Value: true}", true},
		{"greater", "  - {Key: count, Condition: IsGreaterThan, Value: 4}", true},
		{"greater equal", "  - {Key: count, Condition: IsGreaterThanOrEqual, Value: 5}", true},
		{"less", "  - {Key: num, Condition: IsLessThan, Value: 7}", false},
		{"less equal", "  - {Key: num, Condition: IsLessThanOrEqual, Value: 7}", true},
		{"greater on a string", "  - {Key: eventName, Condition: IsGreaterThan, Value: 1}", false},
		{"greater missing", "  - {Key: nope, Condition: IsGreaterThan, Value: 1}", false},
		{"contains", "  - {Key: eventName, Condition: Contains, Value: Login}", true},
		{"does not contain", "  - {Key: eventName, Condition: DoesNotContain, Value: Login}", false},
		{"contains on a number", "  - {Key: count, Condition: Contains, Value: \"5\"}", false},
		{"starts", "  - {Key: eventName, Condition: StartsWith, Value: Console}", true},
		{"does not start", "  - {Key: eventName, Condition: DoesNotStartWith, Value: Get}", true},
		{"ends", "  - {Key: eventName, Condition: EndsWith, Value: Login}", true},
		{"does not end", "  - {Key: eventName, Condition: DoesNotEndWith, Value: Login}", false},
		{"is in", "  - {Key: eventName, Condition: IsIn, Values: [GetObject, ConsoleLogin]}", true},
		{"is not in", "  - {Key: eventName, Condition: IsNotIn, Values: [GetObject]}", true},
		{"is in missing", "  - {Key: nope, Condition: IsIn, Values: [x]}", false},
		{"is not in missing", "  - {Key: nope, Condition: IsNotIn, Values: [x]}", true},
		{"exists", "  - {Key: eventName, Condition: Exists}", true},
		{"exists null", "  - {Key: nothing, Condition: Exists}", true},
		{"does not exist", "  - {Key: nope, Condition: DoesNotExist}", true},
		{"is null", "  - {Key: nothing, Condition: IsNull}", true},
		{"is null missing", "  - {Key: nope, Condition: IsNull}", true},
		{"is not null", "  - {Key: eventName, Condition: IsNotNull}", true},
		{"null or empty", "  - {Key: emptyStr, Condition: IsNullOrEmpty}", true},
		{"not null or empty", "  - {Key: tags, Condition: IsNotNullOrEmpty}", true},
		{"in cidr", "  - {Key: ip, Condition: IsIPAddressInCIDR, Value: 10.0.0.0/8}", true},
		{"not in cidr", "  - {Key: ip, Condition: IsIPAddressNotInCIDR, Value: 10.0.0.0/8}", false},
		{"always", "  - {Condition: AlwaysTrue, Key: x}", true},
		{"never", "  - {Condition: AlwaysFalse, Key: x}", false},
		{"always without a key", "  - {Condition: AlwaysTrue}", true},
		{"never without a key", "  - {Condition: AlwaysFalse}", false},
		{"always in a combinator", "  - Any:\n      - {Key: count, Condition: Equals, Value: 6}\n      - {Condition: AlwaysTrue}", true},
		{"never in a combinator", "  - All:\n      - {Key: count, Condition: Equals, Value: 5}\n      - {Condition: AlwaysFalse}", false},
		{"always for each element", "  - Key: resources\n    Condition: AllElements\n    Expressions:\n      - {Condition: AlwaysTrue}", true},
		{"never for an element", "  - Key: resources\n    Condition: AnyElement\n    Expressions:\n      - {Condition: AlwaysFalse}", false},
		{"key path", "  - {KeyPath: userIdentity.type, Condition: Equals, Value: Root}", true},
		{"deep key", "  - {DeepKey: [userIdentity, type], Condition: Equals, Value: Root}", true},
		{"deep key missing step", "  - {DeepKey: [userIdentity, nope, type], Condition: Equals, Value: Root}", false},
		{"wildcard any value", "  - {KeyPath: 'requestParameters.ipPermissions.items[*].ipRanges.items[*].cidrIp', Condition: Equals, Value: 0.0.0.0/0}", true},
		{"wildcard negation needs all", "  - {KeyPath: 'requestParameters.ipPermissions.items[*].ipRanges.items[*].cidrIp', Condition: DoesNotEqual, Value: 0.0.0.0/0}", false},
		{"list index", "  - {KeyPath: resources.1.type, Condition: Equals, Value: 'AWS::IAM::Role'}", true},
		{"all items and", "  - {Key: eventName, Condition: Equals, Value: ConsoleLogin}\n  - {Key: count, Condition: Equals, Value: 6}", false},
		{"any", "  - Any:\n      - {Key: count, Condition: Equals, Value: 6}\n      - {Key: count, Condition: Equals, Value: 5}", true},
		{"all", "  - All:\n      - {Key: count, Condition: Equals, Value: 5}\n      - {Key: flag, Condition: Equals, Value: false}", false},
		{"none", "  - None:\n      - {Key: count, Condition: Equals, Value: 6}\n      - {Key: flag, Condition: Equals, Value: false}", true},
		{"only one", "  - OnlyOne:\n      - {Key: count, Condition: Equals, Value: 5}\n      - {Key: flag, Condition: Equals, Value: true}", false},
		{"only one holds", "  - OnlyOne:\n      - {Key: count, Condition: Equals, Value: 5}\n      - {Key: flag, Condition: Equals, Value: false}", true},
		{"nested", "  - Any:\n      - All:\n          - {Key: count, Condition: Equals, Value: 5}\n          - {Key: flag, Condition: Equals, Value: true}\n      - {Key: nope, Condition: Exists}", true},
		{"any element", "  - Key: resources\n    Condition: AnyElement\n    Expressions:\n      - {Key: type, Condition: Equals, Value: 'AWS::S3::Bucket'}", true},
		{"all elements", "  - Key: resources\n    Condition: AllElements\n    Expressions:\n      - {Key: type, Condition: StartsWith, Value: 'AWS::'}", true},
		{"all elements fail", "  - Key: resources\n    Condition: AllElements\n    Expressions:\n      - {Key: arn, Condition: Exists}", false},
		{"no element", "  - Key: resources\n    Condition: NoElement\n    Expressions:\n      - {Key: type, Condition: Equals, Value: 'AWS::EC2::Instance'}", true},
		{"only one element", "  - Key: resources\n    Condition: OnlyOneElement\n    Expressions:\n      - {Key: arn, Condition: Exists}", true},
		{"any element of missing list", "  - Key: nope\n    Condition: AnyElement\n    Expressions:\n      - {Key: type, Condition: Exists}", false},
		{"no element of missing list", "  - Key: nope\n    Condition: NoElement\n    Expressions:\n      - {Key: type, Condition: Exists}", true},
	}
	for _, c := range cases {
		r := detectionRule(t, c.det)
		got, err := r.Eval(ev)
		if err != nil || got != c.want {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

func TestDetectionCompileErrors(t *testing.T) {
	for det, want := range map[string]string{
		"  - {Key: a, Condition: IsEqualTo, Value: 1}":         "line 6: unknown Condition \"IsEqualTo\" (one of: Equals, DoesNotEqual,",
		"  - {Key: a, Condition: Equal, Value: 1}":             "line 6: unknown Condition \"Equal\" (did you mean Equals?)",
		"  - {Key: a, Condition: IsGreaterThen, Value: 1}":     "line 6: unknown Condition \"IsGreaterThen\" (did you mean IsGreaterThan?)",
		"  - {Key: a, Condition: IsIn, Value: 1}":              "line 6: IsIn needs Values",
		"  - {Condition: Equals, Value: 1}":                    "line 6: a match expression needs Key",
		"  - {Value: 1}":                                       "Condition AlwaysTrue or AlwaysFalse alone",
		"  - {Key: a, Value: 1}":                               "line 6: missing Condition",
		"  - {Key: a, Condition: Equals, Valeu: 1}":            "unknown key \"Valeu\" in a match expression (did you mean Value?)",
		"  - {Key: a, Condition: IsGreaterThan, Value: x}":     "Value must be a number",
		"  - {Key: a, Condition: IsIPAddressInCIDR, Value: x}": "is not a CIDR",
		"  - {Key: a, Condition: AnyElement}":                  "needs Expressions",
		"  - Any: []":                                          "non-empty list",
		"  []":                                                 "non-empty list",
	} {
		y := "AnalysisType: rule\nRuleID: T.Bad\nLogTypes: [AWS.CloudTrail]\nSeverity: Low\nDetection:\n" + det
		if det == "  []" {
			y = "AnalysisType: rule\nRuleID: T.Bad\nLogTypes: [AWS.CloudTrail]\nSeverity: Low\nDetection: []\n"
		}
		_, err := ParseRule("t.yml", []byte(y))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", det, err, want)
		}
	}
	both := "AnalysisType: rule\nRuleID: T.Both\nLogTypes: [X]\nSeverity: Low\nCondition: 'true'\nDetection:\n  - {Key: a, Condition: Exists}\n"
	if _, err := ParseRule("t.yml", []byte(both)); err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("Condition and Detection together: %v", err)
	}
}

// InlineFilters must all hold before the logic, an expr Condition or a
// Detection, runs: an event they drop does not match, nor fails.
func TestInlineFilters(t *testing.T) {
	filters := "InlineFilters:\n  - {Key: awsRegion, Condition: Equals, Value: us-east-1}\n  - Any:\n      - {KeyPath: userIdentity.type, Condition: Equals, Value: Root}\n      - {Condition: AlwaysFalse}\n"
	detection := detectionRule(t, "  - {Key: eventName, Condition: Equals, Value: ConsoleLogin}\n"+filters)
	condition := rule(t, base+"Condition: 'eventName == \"ConsoleLogin\" && nested.deeper == 1'\n"+filters)
	root := map[string]any{"type": "Root"}
	for _, c := range []struct {
		name  string
		event map[string]any
		want  bool
	}{
		{"filters hold", map[string]any{"eventName": "ConsoleLogin", "awsRegion": "us-east-1", "userIdentity": root}, true},
		{"a filter fails", map[string]any{"eventName": "ConsoleLogin", "awsRegion": "eu-west-1", "userIdentity": root}, false},
		{"a filter's key is missing", map[string]any{"eventName": "ConsoleLogin", "awsRegion": "us-east-1"}, false},
	} {
		if got, err := detection.Eval(c.event); err != nil || got != c.want {
			t.Errorf("Detection, %s: %v, %v; want %v", c.name, got, err, c.want)
		}
		// The condition fails (nested is missing) whenever it runs.
		if _, err := condition.Eval(c.event); (err != nil) != c.want {
			t.Errorf("Condition, %s: error %v; want the condition run: %v", c.name, err, c.want)
		}
	}
	// What the filters require indexes the rule as the logic's guards do.
	if g := detection.guards; !g["eventName"]["ConsoleLogin"] || !g["awsRegion"]["us-east-1"] {
		t.Errorf("guards %v, want eventName and awsRegion", g)
	}
	y := "AnalysisType: rule\nRuleID: T.Bad\nLogTypes: [AWS.CloudTrail]\nSeverity: Low\nCondition: 'true'\nInlineFilters:\n  - {Key: a, Condition: Equal, Value: 1}\n"
	if _, err := ParseRule("t.yml", []byte(y)); err == nil || !strings.Contains(err.Error(), "InlineFilters: line 7: unknown Condition \"Equal\"") {
		t.Errorf("a bad filter: %v", err)
	}
}

// AlertTitle, Panther's title template, takes the event's values at its
// {KeyPath} placeholders; the title is the dedup string, as Title's is.
func TestAlertTitle(t *testing.T) {
	ev := map[string]any{"eventName": "ConsoleLogin", "n": int64(3), "ok": true, "none": nil,
		"userIdentity": map[string]any{"type": "Root", "arn": "arn:aws:iam::111122223333:root"},
		"resources":    []any{map[string]any{"type": "A"}, map[string]any{"type": "B"}},
	}
	for tmpl, want := range map[string]string{
		"{eventName} by {userIdentity.arn}":                   "ConsoleLogin by arn:aws:iam::111122223333:root",
		"n={n} ok={ok} id={userIdentity}":                     `n=3 ok=true id={"arn":"arn:aws:iam::111122223333:root","type":"Root"}`,
		"missing [{nope}] [{none}] [{n.deep}]":                "missing [] [] []",
		"types {resources[*].type}, first {resources.0.type}": `types ["A","B"], first A`,
		"no placeholders, a { alone":                          "no placeholders, a { alone",
		"{nope}":                                              "T.Simple", // nothing to say: the default title
	} {
		r := detectionRule(t, "  - {Condition: AlwaysTrue}\nAlertTitle: '"+tmpl+"'\n")
		m := r.Match(ev)
		if m["p_alert_title"] != want || m["p_dedup_string"] != want {
			t.Errorf("AlertTitle %q: title %q, dedup %q; want %q", tmpl, m["p_alert_title"], m["p_dedup_string"], want)
		}
	}
	r := detectionRule(t, "  - {Condition: AlwaysTrue}\nAlertTitle: '{userIdentity.arn} {resources[*].type} {p_log_type}'\n")
	if got := r.FieldsUsed(); strings.Join(got, ",") != "p_log_type,resources,userIdentity" {
		t.Errorf("FieldsUsed %v, want AlertTitle's placeholders", got)
	}
	for title, want := range map[string]string{
		"AlertTitle: 'a {}'\n":                  "t.yml:6: rule T.Simple: AlertTitle: placeholder {}: KeyPath \"\" has an empty segment",
		"AlertTitle: '{a..b}'\n":                "t.yml:6: rule T.Simple: AlertTitle: placeholder {a..b}",
		"Title: eventName\nAlertTitle: '{a}'\n": "t.yml:7: rule T.Simple: AlertTitle: give Title (an expr) or AlertTitle",
	} {
		y := "AnalysisType: rule\nRuleID: T.Simple\nLogTypes: [AWS.CloudTrail]\nSeverity: Low\nCondition: 'true'\n" + title
		if _, err := ParseRule("t.yml", []byte(y)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", title, err, want)
		}
	}
}

// DynamicSeverities: the first entry whose Conditions all hold sets the
// match's severity; when none holds the match keeps Severity.
func TestDynamicSeverities(t *testing.T) {
	r := detectionRule(t, `  - {Key: eventName, Condition: Exists}
DynamicSeverities:
  - ChangeTo: CRITICAL
    Conditions:
      - {KeyPath: userIdentity.type, Condition: Equals, Value: Root}
      - {Key: errorCode, Condition: DoesNotExist}
  - ChangeTo: Medium
    Conditions:
      - {KeyPath: userIdentity.type, Condition: Equals, Value: Root}
  - ChangeTo: info
    Conditions:
      - {Key: eventName, Condition: StartsWith, Value: Describe}
`)
	for _, c := range []struct {
		name  string
		event map[string]any
		want  string
	}{
		{"the first entry holds", map[string]any{"eventName": "X", "userIdentity": map[string]any{"type": "Root"}}, "Critical"},
		{"the second entry holds", map[string]any{"eventName": "X", "userIdentity": map[string]any{"type": "Root"}, "errorCode": "Denied"}, "Medium"},
		{"the third entry holds", map[string]any{"eventName": "DescribeInstances"}, "Info"},
		{"no entry holds", map[string]any{"eventName": "X"}, "Low"},
	} {
		if got := r.Match(c.event)["p_rule_severity"]; got != c.want {
			t.Errorf("%s: severity %v, want %s", c.name, got, c.want)
		}
	}
	if got := strings.Join(r.FieldsUsed(), ","); got != "errorCode,eventName,userIdentity" {
		t.Errorf("FieldsUsed %s, want the Conditions' keys too", got)
	}
	for dyn, want := range map[string]string{
		"DynamicSeverities:\n  - {ChangeTo: Urgent, Conditions: [{Condition: AlwaysTrue}]}\n":                     "t.yml: rule T.Simple: DynamicSeverities: line 7: ChangeTo \"Urgent\": use one of Info, Low",
		"DynamicSeverities:\n  - {ChangeTo: High, Condition: [{Condition: AlwaysTrue}]}\n":                        "line 7: unknown key \"Condition\" in a DynamicSeverities entry (did you mean Conditions?)",
		"DynamicSeverities:\n  - {ChangeTo: High}\n":                                                              "line 7: a DynamicSeverities entry needs ChangeTo (a severity) and Conditions",
		"DynamicSeverities:\n  - {ChangeTo: High, Conditions: []}\n":                                              "line 7: Conditions must be a non-empty list of match expressions",
		"DynamicSeverities:\n  - ChangeTo: High\n    Conditions:\n      - {Key: a, Condition: Equal, Value: 1}\n": "line 9: unknown Condition \"Equal\"",
		"DynamicSeverities: []\n": "DynamicSeverities must be a non-empty list",
		"DynamicSeverity: '\"High\"'\nDynamicSeverities:\n  - {ChangeTo: High, Conditions: [{Condition: AlwaysTrue}]}\n": "t.yml:7: rule T.Simple: DynamicSeverities: give DynamicSeverity (an expr) or DynamicSeverities",
	} {
		y := "AnalysisType: rule\nRuleID: T.Simple\nLogTypes: [AWS.CloudTrail]\nSeverity: Low\nCondition: 'true'\n" + dyn
		if _, err := ParseRule("t.yml", []byte(y)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", dyn, err, want)
		}
	}
}

// Every condition suggested for a misspelt one is one compileMatch knows.
func TestSuggestedConditionsExist(t *testing.T) {
	for _, c := range conditions {
		det := fmt.Sprintf("  - {Key: a, Condition: %s, Value: 1, Values: [1], Expressions: [{Key: b, Condition: Exists}]}", c)
		y := "AnalysisType: rule\nRuleID: T.C\nLogTypes: [AWS.CloudTrail]\nSeverity: Low\nDetection:\n" + det + "\n"
		if _, err := ParseRule("t.yml", []byte(y)); err != nil && strings.Contains(err.Error(), "unknown Condition") {
			t.Errorf("%s: %v", c, err)
		}
	}
}

// A Detection rule runs through Match like a Condition rule: same match
// record, same title and dedup handling.
func TestDetectionRuleMatches(t *testing.T) {
	r := detectionRule(t, "  - {Key: eventName, Condition: Equals, Value: ConsoleLogin}\n")
	m := r.Match(map[string]any{"eventName": "ConsoleLogin", "p_log_type": "AWS.CloudTrail"})
	if m == nil || m["p_rule_id"] != "T.Simple" || m["p_match_type"] != "RULE" {
		t.Fatalf("match = %v", m)
	}
	if r.Match(map[string]any{"eventName": "GetObject"}) != nil {
		t.Fatal("non-matching event matched")
	}
}

func BenchmarkDetection(b *testing.B) {
	ev := map[string]any{"eventName": "ConsoleLogin", "eventSource": "signin.amazonaws.com",
		"userIdentity": map[string]any{"type": "Root"}, "responseElements": map[string]any{"ConsoleLogin": "Success"}}
	simple := detectionRule(b, "  - {Key: eventName, Condition: Equals, Value: ConsoleLogin}\n  - {KeyPath: userIdentity.type, Condition: Equals, Value: Root}\n  - {KeyPath: responseElements.ConsoleLogin, Condition: Equals, Value: Success}\n")
	cond, err := ParseRule("c.yml", []byte("AnalysisType: rule\nRuleID: T.Cond\nLogTypes: [AWS.CloudTrail]\nSeverity: Low\nCondition: eventName == \"ConsoleLogin\" && userIdentity?.type == \"Root\" && responseElements?.ConsoleLogin == \"Success\"\n"))
	if err != nil {
		b.Fatal(err)
	}
	for name, r := range map[string]*Rule{"Detection": simple, "Condition": cond} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, _ := r.Eval(ev); !ok {
					b.Fatal("no match")
				}
			}
		})
	}
}
