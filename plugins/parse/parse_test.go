package parse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/native"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

func classifier(t testing.TB) *Classifier {
	t.Helper()
	c, err := LoadClassifier("../../schemas")
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return time.Date(2026, 11, 24, 1, 2, 3, 0, time.UTC) }
	return c
}

// shipped is the shipped schemas and a classifier over them, its clock
// running as in the process stage.
func shipped(tb testing.TB) ([]*schema.Schema, *Classifier) {
	tb.Helper()
	schemas, err := schema.LoadDir("../../schemas")
	if err != nil {
		tb.Fatal(err)
	}
	c, err := NewClassifier(schemas)
	if err != nil {
		tb.Fatal(err)
	}
	return schemas, c
}

func sample(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/cloudtrail/root_console_login.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCloudTrailNormalized(t *testing.T) {
	c := classifier(t)
	o := Origin{SourceID: "demo", SourceLabel: "Demo", Partition: 3, Offset: 42, Index: 1}
	ev, fail := c.Classify(sample(t), nil, o)
	if fail != nil {
		t.Fatal(Describe(fail))
	}
	want := map[string]any{
		"p_log_type":            "AWS.CloudTrail",
		"p_event_time":          "2026-11-23T21:04:05.000000000Z",
		"p_parse_time":          "2026-11-24T01:02:03.000000000Z",
		"p_row_id":              envelope.RowID(3, 42, 1),
		"p_source_id":           "demo",
		"p_source_label":        "Demo",
		"eventTime":             "2026-11-23T21:04:05.000000000Z",
		"eventName":             "ConsoleLogin",
		"managementEvent":       true,
		"p_any_ip_addresses":    []string{"198.51.100.23"},
		"p_any_aws_account_ids": []string{"111122223333"},
		"p_any_aws_arns":        []string{"arn:aws:iam::111122223333:root"},
		"p_any_domain_names":    []string{"signin.aws.amazon.com"},
	}
	for k, v := range want {
		if fmt.Sprint(ev[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v", k, ev[k], v)
		}
	}
	if _, ok := ev["p_any_emails"]; ok {
		t.Error("empty indicator fields must be absent")
	}
	ui := ev["userIdentity"].(map[string]any)
	if ui["type"] != "Root" {
		t.Errorf("userIdentity.type = %v", ui["type"])
	}
	// additionalEventData is json: kept as an object for rules.
	if ad, ok := ev["additionalEventData"].(map[string]any); !ok || ad["MFAUsed"] != "No" {
		t.Errorf("additionalEventData = %#v", ev["additionalEventData"])
	}
}

// CloudTrail names a resource's ARN "ARN" (upper case): the schema's field
// must match it, or the ARN is dropped and is no indicator.
func TestCloudTrailResourceARN(t *testing.T) {
	c := classifier(t)
	raw := strings.Replace(string(sample(t)), `"requestParameters":null`,
		`"resources":[{"accountId":"444455556666","type":"AWS::S3::Bucket","ARN":"arn:aws:s3:::my-trail-bucket"}],"requestParameters":null`, 1)
	ev, fail := c.Classify([]byte(raw), []string{"AWS.CloudTrail"}, Origin{})
	if fail != nil {
		t.Fatal(Describe(fail))
	}
	res, _ := ev["resources"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["ARN"] != "arn:aws:s3:::my-trail-bucket" {
		t.Errorf("resources = %#v", ev["resources"])
	}
	if arns := fmt.Sprint(ev["p_any_aws_arns"]); !strings.Contains(arns, "arn:aws:s3:::my-trail-bucket") {
		t.Errorf("p_any_aws_arns = %s", arns)
	}
	if ids := fmt.Sprint(ev["p_any_aws_account_ids"]); !strings.Contains(ids, "444455556666") {
		t.Errorf("p_any_aws_account_ids = %s", ids)
	}
}

func TestRecordsWrapperAndFailures(t *testing.T) {
	c := classifier(t)
	one := strings.TrimSpace(string(sample(t)))
	wrapped := `{"Records":[` + one + `,` + strings.Replace(one, `"ConsoleLogin","awsRegion"`, `"GetObject","awsRegion"`, 1) + `]}`
	recs := SplitRecords([]byte(wrapped))
	if len(recs) != 2 {
		t.Fatalf("Records wrapper split into %d", len(recs))
	}
	// Only an object whose one key is Records is a wrapper, white space
	// or not.
	for raw, want := range map[string]int{
		" {\n\t\"Records\" : [{\"a\":1},{\"b\":2}]}": 2,
		`{"Records":[{"a":1}],"other":1}`:            1,
		`{"other":1,"Records":[{"a":1},{"b":2}]}`:    1,
		`{"Records":[]}`:                             1,
		`{"Records":{"a":1}}`:                        1,
	} {
		if got := SplitRecords([]byte(raw)); len(got) != want || want == 1 && string(got[0]) != raw {
			t.Errorf("%s: %d records %q, want %d", raw, len(got), got, want)
		}
	}
	for i, r := range recs {
		ev, f := c.Classify(r, []string{"AWS.CloudTrail"}, Origin{Index: i})
		if f != nil {
			t.Fatal(Describe(f))
		}
		if ev["p_row_id"] != envelope.RowID(0, 0, i) {
			t.Errorf("row id %v", ev["p_row_id"])
		}
	}

	for _, tc := range []struct {
		name, raw, reason string
	}{
		{"not json", "hello world", "not a JSON object"},
		{"missing required", `{"eventName":"x"}`, "missing required field"},
		{"wrong type", strings.Replace(one, `"managementEvent":true`, `"managementEvent":{"x":1}`, 1), "managementEvent"},
		{"bad time", strings.Replace(one, `"2026-11-23T21:04:05Z"`, `"yesterday"`, 1), "eventTime"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, f := c.Classify([]byte(tc.raw), []string{"AWS.CloudTrail"}, Origin{SourceID: "s"})
			if f == nil {
				t.Fatalf("parsed: %v", ev)
			}
			if f.Raw != tc.raw || f.RawEncoding != "utf8" || f.SourceID != "s" || len(f.Tried) != 1 {
				t.Errorf("failure = %+v", f)
			}
			if !strings.Contains(f.Reasons[0].Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", f.Reasons[0].Reason, tc.reason)
			}
		})
	}
	_, f := c.Classify([]byte{0xff, 0xfe, 0x00}, nil, Origin{})
	if f == nil || f.RawEncoding != "base64" || f.Raw != "//4A" {
		t.Errorf("binary failure = %+v", f)
	}
	_, f = c.Classify([]byte(one), []string{"Nope.Type"}, Origin{})
	if f == nil || f.Reasons[0].LogType != "Nope.Type" {
		t.Errorf("unknown candidate type: %+v", f)
	}
}

func TestTimeFormats(t *testing.T) {
	ref := time.Date(2026, 11, 23, 21, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v   any
		fmt string
	}{
		{"2026-11-23T21:04:05Z", "rfc3339"},
		{"2026-11-23T22:04:05+01:00", "rfc3339"},
		{"2026-11-23 21:04:05", "rfc3339"},
		{json.Number("1795467845"), "unix"},
		{"1795467845000", "unix_ms"},
		{json.Number("1795467845000000"), "unix_us"},
		{"1795467845000000000", "unix_ns"},
		{"23/Nov/2026:21:04:05 +0000", "%d/%b/%Y:%H:%M:%S %z"},
		{"2026.11.23 21h04m05", "layout=2006.01.02 15h04m05"},
	} {
		got, err := ParseTime(tc.v, []string{tc.fmt})
		if err != nil || !got.Equal(ref) {
			t.Errorf("ParseTime(%v, %s) = %v, %v", tc.v, tc.fmt, got, err)
		}
		if err := checkTimeFormat(tc.fmt); err != nil { // every format that parses is accepted when compiled
			t.Errorf("checkTimeFormat(%s): %v", tc.fmt, err)
		}
	}
	for format, want := range map[string]string{
		"rfc3399": `unknown timeFormat "rfc3399" (did you mean rfc3339?)`,
		"unixms":  `unknown timeFormat "unixms" (did you mean unix_ms?)`,
		"epoch":   `unknown timeFormat "epoch": use rfc3339, unix, unix_ms, unix_us, unix_ns, a strftime pattern`,
	} {
		if err := checkTimeFormat(format); err == nil || err.Error() != want && !strings.HasPrefix(err.Error(), want) {
			t.Errorf("checkTimeFormat(%s) = %v, want %q", format, err, want)
		}
		if _, err := ParseTime("2026-11-23T21:04:05Z", []string{format}); err == nil {
			t.Errorf("%s: a format checkTimeFormat refuses parsed a time", format)
		}
	}
	if _, err := ParseTime("nope", []string{"unix", "rfc3339"}); err == nil {
		t.Error("garbage parsed")
	}
}

func TestIndicators(t *testing.T) {
	ix := NewIndicators()
	ix.Add([]string{"ip"}, "::ffff:10.0.0.1")
	ix.Add([]string{"domain"}, "Example.COM.")
	ix.Add([]string{"domain"}, "203.0.113.9")
	ix.Add([]string{"domain"}, "AWS Internal")
	ix.Add([]string{"url"}, "https://evil.example.net:8443/x")
	ix.Add([]string{"net_addr"}, "[2001:db8::1]:443")
	ix.Add([]string{"aws_arn"}, "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234def567890")
	ix.Add([]string{"aws_arn"}, "arn:aws:sts::123456789012:assumed-role/Admin/alice@example.com")
	ix.Add([]string{"sha256"}, strings.Repeat("AB", 32))
	ix.Add([]string{"md5"}, "not-a-hash")
	ix.Add([]string{"mac"}, "00:1A:2b:3c:4d:5e")
	ix.Add([]string{"email"}, "Bob@Example.com")
	got := ix.Fields()
	want := map[string]string{
		"p_any_ip_addresses":     "[10.0.0.1 2001:db8::1 203.0.113.9]",
		"p_any_domain_names":     "[evil.example.net example.com]",
		"p_any_aws_account_ids":  "[123456789012]",
		"p_any_aws_instance_ids": "[i-0abc1234def567890]",
		"p_any_emails":           "[alice@example.com bob@example.com]",
		"p_any_sha256_hashes":    "[" + strings.Repeat("ab", 32) + "]",
		"p_any_mac_addresses":    "[00:1a:2b:3c:4d:5e]",
	}
	for k, v := range want {
		if fmt.Sprint(got[k]) != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["p_any_md5_hashes"]; ok {
		t.Error("an invalid md5 was recorded")
	}
	if len(got["p_any_aws_arns"]) != 2 {
		t.Errorf("arns = %v", got["p_any_aws_arns"])
	}
}

func TestSchemaValidation(t *testing.T) {
	for _, tc := range []struct{ yaml, err string }{
		{"schema: X\nfields: [{name: a, type: nope}]", "unknown type"},
		{"schema: X\nfields: [{name: t, type: timestamp}]", "timeFormat"},
		{"schema: X\nfields: [{name: a, type: array}]", "element"},
		{"schema: X\nfields: [{name: r, type: ref, target: missing}]", "definitions"},
		{"fields: [{name: a, type: string}]", "missing `schema`"},
		{"schema: X\nfields: [{name: a, type: string}]\nextraKey: 1", "unknown key"},
	} {
		if _, err := schema.Parse("x.yml", []byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.err)
		}
	}
}

func TestInferredSchemaParsesItsSamples(t *testing.T) {
	var samples []map[string]any
	raw := sample(t)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	samples = append(samples, m)
	s := Infer("Custom.Sample", samples)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := NewClassifier([]*schema.Schema{s})
	if err != nil {
		t.Fatal(err)
	}
	ev, f := c.Classify(raw, nil, Origin{})
	if f != nil {
		t.Fatal(Describe(f))
	}
	if ev["p_event_time"] != "2026-11-23T21:04:05.000000000Z" || ev["eventName"] != "ConsoleLogin" {
		t.Errorf("inferred parse: %v / %v", ev["p_event_time"], ev["eventName"])
	}
}

// A field seen with integers and fractions is a float (it was a string,
// so rules compared text and the lake stored text); with other kinds it
// is still a string.
func TestInferWidensIntegersToFloat(t *testing.T) {
	raw := []string{`{"ratio":0.5,"n":1,"list":[1,2.5],"mixed":1}`, `{"ratio":1,"n":2,"list":[3],"mixed":"x"}`}
	var samples []map[string]any
	for _, r := range raw {
		var m map[string]any
		if err := json.Unmarshal([]byte(r), &m); err != nil {
			t.Fatal(err)
		}
		samples = append(samples, m)
	}
	s := Infer("Custom.Numbers", samples)
	types := map[string]string{}
	for _, f := range s.Fields {
		types[f.Name] = f.Type
		if f.Element != nil {
			types[f.Name] += " of " + f.Element.Type
		}
	}
	if want := map[string]string{"ratio": "float", "n": "bigint", "list": "array of float", "mixed": "string"}; !reflect.DeepEqual(types, want) {
		t.Errorf("types %v, want %v", types, want)
	}
	c, err := NewClassifier([]*schema.Schema{s})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range raw {
		if ev, f := c.Classify([]byte(r), nil, Origin{}); f != nil || ev["ratio"] == nil {
			t.Errorf("%s: %v %v", r, ev, f)
		}
	}
}

// A lone timestamp field is the event time even when its name does not
// say so; with two, neither named as one, none is guessed.
func TestInferredEventTime(t *testing.T) {
	eventTime := func(s *schema.Schema) []string {
		var out []string
		for _, f := range s.Fields {
			if f.IsEventTime {
				out = append(out, f.Name)
			}
		}
		return out
	}
	one := []map[string]any{{"ts": "2026-11-23T21:04:05Z", "user": "bob"}}
	if got := eventTime(Infer("Custom.One", one)); fmt.Sprint(got) != "[ts]" {
		t.Errorf("one timestamp: event time %v", got)
	}
	two := []map[string]any{{"created": "2026-11-23T21:04:05Z", "seen": "2026-11-23T21:05:05Z"}}
	if got := eventTime(Infer("Custom.Two", two)); len(got) != 0 {
		t.Errorf("two timestamps: event time %v, want none guessed", got)
	}
	named := []map[string]any{{"created": "2026-11-23T21:04:05Z", "eventTime": "2026-11-23T21:05:05Z"}}
	if got := eventTime(Infer("Custom.Named", named)); fmt.Sprint(got) != "[eventTime]" {
		t.Errorf("a field named as the event time: %v", got)
	}
}

func FuzzClassify(f *testing.F) {
	f.Add([]byte(`{"eventName":"x"}`))
	f.Add([]byte(`{"Records":[{"a":1}]}`))
	f.Add([]byte("plain"))
	// Line values are written to JSON as they are only when the whole line
	// is plain: a quote inside an unquoted field, an escaped quote, a
	// control character or a non-ASCII byte must still be escaped.
	alb := `http 2026-11-20T23:39:43.945958Z app/my-lb/50dc6c495c0c9188 192.0.2.10:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2026-11-20T23:39:43.945958Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-"`
	for _, odd := range []string{`app/my"lb`, `app/my\lb`, "app/mylb", "app/myélb"} {
		f.Add([]byte(strings.Replace(alb, "app/my-lb", odd, 1)))
	}
	f.Add([]byte(strings.Replace(alb, `"curl/7.46.0"`, `"curl \"7\" \\ x"`, 1)))
	vpc := `2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK`
	for _, odd := range []string{`eni-"1`, `eni-\1`, "eni-1", "eni-é1"} {
		f.Add([]byte(strings.Replace(vpc, "eni-", odd, 1)))
	}
	one, _ := os.ReadFile("../../testdata/cloudtrail/root_console_login.json")
	f.Add(one)
	// Indicators within json fields, one behind an escape.
	f.Add([]byte(`{"eventVersion":"1.08","eventTime":"2026-11-23T21:04:05Z","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","awsRegion":"us-east-1",` +
		`"requestParameters":{"a":{"arn":"arn:aws:iam::210987654321:instance-profile/web"},"ownerAccountId":"444455556666","x":"\u0061rn:aws:s3:::b"},` +
		`"responseElements":{"items":[{"instanceId":"i-0123456789abcdef0"}]},"eventID":"x","eventType":"AwsApiCall","recipientAccountId":"111122223333"}`))
	// Every schema test input, one line at a time: the line formats' and
	// the JSON types' own samples.
	schemas, err := schema.LoadDir("../../schemas")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range schemas {
		for _, tc := range s.Tests {
			for _, line := range strings.Split(tc.Input, "\n") {
				f.Add([]byte(line))
			}
			// Keys the pre-check's index of a JSON event must still see
			// (it serves the types tried after the first, so GuardDuty's
			// sample): after an escaped quote, before a space and a
			// colon, and written with escapes.
			if in := strings.TrimSpace(tc.Input); s.Schema == "AWS.GuardDuty" && !tc.Fails {
				f.Add([]byte(strings.Replace(in, `"schemaVersion":"2.0",`, `"v":"a\" b","schemaVersion":"2.0","w":"c\" d",`, 1)))
				f.Add([]byte(strings.Replace(in, `"accountId":`, `"accountId" :`, 1)))
				f.Add([]byte(strings.Replace(in, `"accountId"`, `"account\u0049d"`, 1)))
			}
		}
	}
	c, err := NewClassifier(schemas)
	if err != nil {
		f.Fatal(err)
	}
	// A fixed clock: p_parse_time (and p_event_time when the event has
	// none) must match between the two calls below.
	c.now = func() time.Time { return time.Date(2026, 11, 30, 1, 2, 3, 0, time.UTC) }
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, r := range SplitRecords(raw) {
			ev, fail := c.Classify(r, nil, Origin{})
			if ev != nil && fail != nil {
				t.Fatalf("both an event and a failure for %q", r)
			}
			if ev == nil && fail == nil && !native.IsHeader(r) {
				// Only header lines are neither (the shipped schemas skip nothing else).
				t.Fatalf("neither an event nor a failure for %q", r)
			}
			// What the process stage hands on: the same event, as JSON.
			n, nfail := c.ClassifyJSON(r, nil, Origin{})
			if (n == nil) != (ev == nil) || (nfail == nil) != (fail == nil) {
				t.Fatalf("ClassifyJSON and Classify disagree on %q: %v %v / %v %v", r, n, nfail, ev, fail)
			}
			// The pre-check only turns away what the full parse would: the
			// first type to accept the event alone is the one found among all.
			alone, accepted := "", false
			for _, lt := range c.tryOrder(r) {
				if n1, f1 := c.ClassifyJSON(r, []string{lt}, Origin{}); f1 == nil {
					alone, accepted = lt, true
					if n1 == nil {
						alone = "" // not an event (a header line)
					}
					break
				}
			}
			if got := ""; accepted != (nfail == nil) || (n != nil && n.LogType != alone) || (n == nil && alone != "") {
				if n != nil {
					got = n.LogType
				}
				t.Fatalf("among all types %q is %q (failure %v), but alone the first to accept it is %q", r, got, nfail != nil, alone)
			}
			if ev != nil {
				want, err := envelope.EncodeEvent(ev)
				if err != nil {
					t.Fatalf("normalized event does not marshal: %v", err)
				}
				got, err := envelope.DecodeObject(n.JSON)
				if err != nil {
					t.Fatalf("ClassifyJSON wrote invalid JSON for %q: %s: %v", r, n.JSON, err)
				}
				back, _ := envelope.DecodeObject(want)
				if !reflect.DeepEqual(got, back) {
					t.Fatalf("ClassifyJSON and Classify differ on %q:\n%s\n%s", r, n.JSON, want)
				}
			}
		}
	})
}

// BenchmarkCloudTrail parses a CloudTrail event into the JSON the process
// stage hands on: written while typed (what the stage does), and through
// maps and EncodeEvent (the path for log types with derived fields).
func BenchmarkCloudTrail(b *testing.B) {
	c := classifier(b)
	raw := sample(b)
	b.Run("emitted", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			if _, f := c.ClassifyJSON(raw, []string{"AWS.CloudTrail"}, Origin{}); f != nil {
				b.Fatal(Describe(f))
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("maps", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		b.ReportAllocs()
		for b.Loop() {
			ev, f := c.Classify(raw, []string{"AWS.CloudTrail"}, Origin{})
			if f != nil {
				b.Fatal(Describe(f))
			}
			if _, err := envelope.EncodeEvent(ev); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// Without a source's log types, JSON objects are tried against the JSON
// schemas and text lines against the line formats: each kind's fast
// rejection happens before any decoding.
func TestClassifyByKind(t *testing.T) {
	c := classifier(t)
	_, f := c.Classify([]byte("hello world"), nil, Origin{})
	if f == nil {
		t.Fatal("parsed")
	}
	for _, lt := range f.Tried {
		if c.parsers[lt].read == nil {
			t.Errorf("a text line was tried against JSON schema %s", lt)
		}
	}
	_, f = c.Classify([]byte(`{"x":1}`), nil, Origin{})
	for _, lt := range f.Tried {
		if c.parsers[lt].read != nil {
			t.Errorf("a JSON object was tried against line format %s", lt)
		}
	}
	if len(f.Tried) < 6 {
		t.Errorf("tried %v, want every JSON log type", f.Tried)
	}
	ev, f := c.Classify([]byte(`2 123456789010 eni-1 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK`), nil, Origin{})
	if f != nil || ev["p_log_type"] != "AWS.VPCFlow" {
		t.Fatalf("VPC Flow line: %v %v", ev, f)
	}
}

// BenchmarkLogTypes parses each log type's first schema test line into
// the JSON caracal_parse hands on.
func BenchmarkLogTypes(b *testing.B) {
	schemas, c := shipped(b)
	for _, s := range schemas {
		var raw []byte
		for _, tc := range s.Tests {
			if !tc.Fails {
				raw = []byte(strings.Split(strings.TrimSpace(tc.Input), "\n")[0])
				break
			}
		}
		if raw == nil {
			continue
		}
		b.Run(s.Schema, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, f := c.ClassifyJSON(raw, []string{s.Schema}, Origin{}); f != nil {
					b.Fatal(Describe(f))
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// The emit path lets a line's values point into the line (Record.Borrow);
// nothing it returns may, and the map path, whose events outlive the
// line, must not borrow even from a record the emit path used before.
func TestLineValuesOutliveTheLine(t *testing.T) {
	c := classifier(t)
	line := `http 2026-11-20T23:39:43.945958Z app/my-lb/50dc6c495c0c9188 192.0.2.10:2817 10.0.0.1:80 0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "-" "-" 0 2026-11-20T23:39:43.945958Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-"`
	for range 3 {
		buf := []byte(line)
		n, fail := c.ClassifyJSON(buf, []string{"AWS.ALB"}, Origin{})
		if fail != nil {
			t.Fatal(Describe(fail))
		}
		want := string(n.JSON)
		ev, fail := c.Classify(buf, []string{"AWS.ALB"}, Origin{})
		if fail != nil {
			t.Fatal(Describe(fail))
		}
		for i := range buf {
			buf[i] = 'x'
		}
		if string(n.JSON) != want {
			t.Fatalf("the emitted event changed with its line: %s", n.JSON)
		}
		if ev["elb"] != "app/my-lb/50dc6c495c0c9188" || ev["userAgent"] != "curl/7.46.0" {
			t.Fatalf("the map path's event changed with its line: %v", ev)
		}
	}
}

// recordKeys finds what fieldSet.find finds, whatever keys come at a
// place from line to line and parser to parser: the same key, another,
// one with the same text at another address, or none of the fields.
func TestRecordKeysFindsWhatFindFinds(t *testing.T) {
	c := classifier(t)
	parsers := []*Parser{c.parsers["AWS.ALB"], c.parsers["AWS.VPCFlow"], c.parsers["AWS.S3ServerAccess"]}
	var pool []string
	for _, p := range parsers {
		for _, f := range p.fields {
			pool = append(pool, f.in, strings.Clone(f.in), f.in+"x")
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	var keys recordKeys
	checked := 0
	for range 2000 {
		p := parsers[rng.IntN(len(parsers))]
		if rng.IntN(4) > 0 {
			p = parsers[0] // mostly one parser, as a stage sees
		}
		for j := range rng.IntN(40) {
			key := pool[rng.IntN(len(pool))]
			if rng.IntN(3) > 0 && j < len(p.fields) {
				key = p.fields[j].in // mostly the place's usual key
			}
			// As emitRecord asks.
			i, known := keys.of(p).field(j, key)
			if !known {
				i = keys.learn(p, j, key)
			}
			wantI, wantOK := p.set.find(key)
			if i >= 0 != wantOK || wantOK && i != wantI {
				t.Fatalf("%s: key %q at place %d: field %d; fieldSet.find: %d, %v", p.Schema.Schema, key, j, i, wantI, wantOK)
			}
			checked++
		}
	}
	if checked < 20000 {
		t.Fatalf("only %d lookups checked", checked)
	}
}

// Every field of every shipped schema is found at its place by the key it
// is read from (a rename's from), at any depth, and a key that is not a
// field's is not found.
func TestFieldSetFinds(t *testing.T) {
	c := classifier(t)
	var check func(fields []*node, set *fieldSet)
	checked := 0
	check = func(fields []*node, set *fieldSet) {
		if set.ordered {
			return
		}
		for i, f := range fields {
			if pos, ok := set.find(f.in); !ok || pos != i {
				t.Fatalf("field %s (key %s) at %d: found %d, %v", f.name, f.in, i, pos, ok)
			}
			for _, other := range []string{f.in + "x", "x" + f.in, strings.ToUpper(f.in), f.in[:len(f.in)-1], ""} {
				if pos, ok := set.find(other); ok && fields[pos].in != other {
					t.Fatalf("%q found as field %s", other, fields[pos].name)
				}
			}
			checked++
			check(f.fields, &f.set)
			if f.element != nil {
				check(f.element.fields, &f.element.set)
			}
		}
	}
	for _, p := range c.parsers {
		check(p.fields, &p.set)
	}
	if checked < 300 {
		t.Fatalf("checked only %d fields", checked)
	}
}

// escapedKeys finds the first letter of an object key.
var escapedKeys = regexp.MustCompile(`[{,]\s*"[A-Za-z]`)

// A source with no log types (the demo source) classifies among all: every
// shipped schema's own samples must come out as that log type, not as
// another schema that also accepts them.
func TestSamplesClassifyAsTheirLogTypeAmongAll(t *testing.T) {
	schemas, c := shipped(t)
	types := map[string]bool{}
	// CloudTrail's samples are the repository's, not in its schema file.
	ct, err := os.ReadFile("../../testdata/cloudtrail/root_console_login.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range schemas {
		tests := s.Tests
		if s.Schema == "AWS.CloudTrail" {
			tests = append(tests, schema.Test{Name: "root console login", Input: string(bytes.TrimSpace(ct))})
		}
		for _, tc := range tests {
			var lines [][]byte
			for _, l := range strings.Split(tc.Input, "\n") {
				lines = append(lines, SplitRecords([]byte(l))...) // CloudTrail's Records wrapper
			}
			for _, line := range lines {
				if own, _ := c.Classify(line, []string{s.Schema}, Origin{}); own == nil {
					continue // a sample of a failure, or a header line
				}
				ev, fail := c.Classify(line, nil, Origin{})
				switch {
				case fail != nil:
					t.Errorf("%s / %s: fails among all: %s", s.Schema, tc.Name, Describe(fail))
				case ev["p_log_type"] != s.Schema:
					t.Errorf("%s / %s: classified as %v among all", s.Schema, tc.Name, ev["p_log_type"])
				default:
					types[s.Schema] = true
				}
				// The same event with its keys written as escapes: JSON
				// allows them, and the pre-check must not reject them.
				if line[0] == '{' {
					esc := escapedKeys.ReplaceAllFunc(line, func(m []byte) []byte {
						i := bytes.IndexByte(m, '"')
						return fmt.Appendf(m[:i+1:i+1], `\u%04x`, m[i+1])
					})
					if ev, fail := c.Classify(esc, nil, Origin{}); fail != nil || ev["p_log_type"] != s.Schema {
						t.Errorf("%s / %s with escaped keys: %v %s", s.Schema, tc.Name, ev["p_log_type"], Describe(fail))
					}
				}
			}
		}
	}
	if len(types) != len(schemas) {
		t.Errorf("samples of %d of %d log types checked: %v", len(types), len(schemas), types)
	}
}

// Unix times written in decimal are read exactly: the time is the text's
// value in nanoseconds, digits below a nanosecond dropped toward zero (a
// float64 made 1700000000.25 s 1700000000.249999872). Exponents are read
// as floats; past int64 nanoseconds is an error.
func TestUnixTimesAreExact(t *testing.T) {
	texts := []string{"0", "1", "0000000001", "1418530010", "2147483648", "4294967295", "4294967296", "9999999999", "99999999999",
		"-1", "1.5", "+2", "1700000000.25", "1700000000.123456789", "1700000000.1234567899", "-1700000000.75", ".5", "5.",
		"1700000000123.456", "1700000000123456.7", "1700000000123456789", "9223372036.854775807", "1e9", "1.7e9", "", ".", "-", "1..2", "1.2.3", "NaN", "Inf", "0x10"}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 20000 {
		texts = append(texts, strconv.FormatInt(rng.Int64N(1<<32), 10), fmt.Sprintf("%d.%0*d", rng.Int64N(1<<32), 1+rng.IntN(12), rng.Int64N(1e12)))
	}
	for format, unit := range map[string]int64{"unix": 1e9, "unix_ms": 1e6, "unix_us": 1e3, "unix_ns": 1} {
		for _, s := range texts {
			got, err := parseOne(s, false, format)
			want, ok := new(big.Rat).SetString(s)
			if !ok || strings.ContainsAny(s, "eEx") { // the float path's
				if f, ferr := strconv.ParseFloat(s, 64); ferr == nil && math.Abs(f*float64(unit)) < math.MaxInt64 {
					if err != nil || !got.Equal(time.Unix(0, int64(f*float64(unit)))) {
						t.Errorf("%s %q: %v (%v), float path %v", format, s, got, err, time.Unix(0, int64(f*float64(unit))))
					}
				} else if err == nil {
					t.Errorf("%s %q: %v, want an error", format, s, got)
				}
				continue
			}
			ns := new(big.Int).Quo(new(big.Int).Mul(want.Num(), big.NewInt(unit)), want.Denom()) // toward zero
			if !ns.IsInt64() {
				if err == nil {
					t.Errorf("%s %q: %v, want an error", format, s, got)
				}
				continue
			}
			if err != nil || got.UnixNano() != ns.Int64() {
				t.Errorf("%s %q: %v (%v), want %v", format, s, got, err, time.Unix(0, ns.Int64()))
			}
		}
	}
}

// A fractional unix time keeps its digits through both paths, from a JSON
// number, a JSON string and a line's text.
func TestFractionalUnixTimeEvents(t *testing.T) {
	for _, tc := range []struct{ schema, lt, in string }{
		{"schema: Custom.T\nfields:\n  - {name: t, type: timestamp, timeFormat: unix, isEventTime: true}\n", "Custom.T", `{"t":1700000000.25}`},
		{"schema: Custom.T\nfields:\n  - {name: t, type: timestamp, timeFormat: unix, isEventTime: true}\n", "Custom.T", `{"t":"1700000000.25"}`},
		{"schema: Custom.T\nparser:\n  csv:\n    columns: [t]\nfields:\n  - {name: t, type: timestamp, timeFormat: unix_ms, isEventTime: true}\n", "Custom.T", `1700000000250.000`},
	} {
		c := classifierOf(t, tc.schema)
		if !emitsAsMaps(t, c, tc.lt, []byte(tc.in), nil, Origin{}) {
			t.Fatalf("%s: refused", tc.in)
		}
		ev, _ := c.Classify([]byte(tc.in), nil, Origin{})
		if ev["t"] != "2023-11-14T22:13:20.250000000Z" || ev["p_event_time"] != ev["t"] {
			t.Errorf("%s: t %v, p_event_time %v", tc.in, ev["t"], ev["p_event_time"])
		}
	}
}

// A json field's indicators are looked for within it, as Panther's
// CloudTrail parser took ARNs, account ids and instance ids from anywhere
// in the event: both paths (the map and the emitted JSON) find the same.
func TestIndicatorsWithinJSONFields(t *testing.T) {
	c := classifier(t)
	raw := []byte(`{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::111122223333:assumed-role/ci/x","accountId":"111122223333"},` +
		`"eventTime":"2026-11-23T21:04:05Z","eventSource":"ec2.amazonaws.com","eventName":"RunInstances","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.23",` +
		`"requestParameters":{"iamInstanceProfile":{"arn":"arn:aws:iam::210987654321:instance-profile/web"},"ownerAccountId":"444455556666","note":"123456789012",` +
		`"userName":"not-an-indicator-here","text":"launch i-0aaaaaaaaaaaaaaaa now"},` +
		`"responseElements":{"instancesSet":{"items":[{"instanceId":"i-0123456789abcdef0"}]}},"eventID":"x","eventType":"AwsApiCall","recipientAccountId":"111122223333"}`)
	want := map[string]string{
		"p_any_aws_account_ids":  "[111122223333 210987654321 444455556666]", // not the note's 12 digits
		"p_any_aws_arns":         "[arn:aws:iam::210987654321:instance-profile/web arn:aws:sts::111122223333:assumed-role/ci/x]",
		"p_any_aws_instance_ids": "[i-0123456789abcdef0]", // a whole value only
	}
	ev, fail := c.Classify(raw, []string{"AWS.CloudTrail"}, Origin{})
	if fail != nil {
		t.Fatal(Describe(fail))
	}
	n, fail := c.ClassifyJSON(raw, []string{"AWS.CloudTrail"}, Origin{})
	if fail != nil {
		t.Fatal(Describe(fail))
	}
	emitted, err := envelope.DecodeEvent(n.JSON)
	if err != nil {
		t.Fatal(err)
	}
	for field, w := range want {
		if got := fmt.Sprint(ev[field]); got != w {
			t.Errorf("map path: %s = %s, want %s", field, got, w)
		}
		if got := fmt.Sprint(emitted[field]); got != w {
			t.Errorf("emit path: %s = %s, want %s", field, got, w)
		}
	}
	if _, ok := ev["p_any_usernames"]; ok {
		t.Error("a shapeless kind was looked for within a json field")
	}
}

// A json field whose own name names an account takes an account id that is
// its whole value, on both paths (the emit path's pre-check missed it).
func TestAccountIDAsAJSONFieldsValue(t *testing.T) {
	s, err := schema.Parse("x.yml", []byte("schema: Custom.Owner\nfields:\n  - {name: name, type: string, required: true}\n  - {name: ownerAccountId, type: json, indicators: [aws_arn, aws_account_id]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClassifier([]*schema.Schema{s})
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"name":"x","ownerAccountId":"123456789012"}`)
	ev, fail := c.Classify(raw, nil, Origin{})
	n, nfail := c.ClassifyJSON(raw, nil, Origin{})
	if fail != nil || nfail != nil {
		t.Fatal(Describe(fail), Describe(nfail))
	}
	emitted, _ := envelope.DecodeEvent(n.JSON)
	for path, e := range map[string]map[string]any{"map": ev, "emit": emitted} {
		if fmt.Sprint(e["p_any_aws_account_ids"]) != "[123456789012]" {
			t.Errorf("%s path: p_any_aws_account_ids = %v", path, e["p_any_aws_account_ids"])
		}
	}
}
