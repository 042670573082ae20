package envelope

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"
)

func TestDecodeObject(t *testing.T) {
	got, err := DecodeObject([]byte(`{"i":42,"neg":-7,"f":0.25,"whole":3.0,"s":"x","b":true,"n":null,
		"list":[1,2.5,{"deep":9}],"obj":{"count":12,"ratio":1.5}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"i": int64(42), "neg": int64(-7), "f": 0.25, "whole": int64(3), "s": "x", "b": true, "n": nil,
		"list": []any{int64(1), 2.5, map[string]any{"deep": int64(9)}}, "obj": map[string]any{"count": int64(12), "ratio": 1.5}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	// Beyond 2^53 a float64 would round: the digits are kept exactly.
	big, err := DecodeObject([]byte(`{"id":9007199254740993,"nested":[{"id":-9223372036854775807}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if big["id"] != int64(9007199254740993) || big["nested"].([]any)[0].(map[string]any)["id"] != int64(-9223372036854775807) {
		t.Fatalf("large integers: %#v", big)
	}
	for _, bad := range []string{`null`, `[1]`, `{"a":`, ``, `"s"`} {
		if _, err := DecodeObject([]byte(bad)); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// benchEvent is a CloudTrail-sized event as the process stage writes it.
var benchEvent = []byte(`{"eventVersion":"1.08","eventTime":"2026-11-23T21:04:05Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"eu-west-1","sourceIPAddress":"10.1.2.3","userAgent":"aws-cli/2.15.0 Python/3.11.6 Linux/6.1.0 exe/x86_64.debian.12 prompt/off command/ec2.describe-instances","eventID":"bench-1","requestID":"req-0123456789abcdef","eventType":"AwsApiCall","readOnly":true,"recipientAccountId":"111122223333","managementEvent":true,"userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLEEXAMPLE","accountId":"111122223333","arn":"arn:aws:iam::111122223333:user/alice","userName":"alice","sessionContext":{"attributes":{"creationDate":"2026-11-23T08:00:00Z","mfaAuthenticated":"false"}}},"requestParameters":{"instancesSet":{"items":[{"instanceId":"i-0abc1234def567890"}]}},"p_any_ip_addresses":["10.1.2.3"],"p_any_aws_account_ids":["111122223333"],"p_event_time":"2026-11-23T21:04:05.000000000Z","p_row_id":"000000000000000000000000","p_schema_version":0}`)

func BenchmarkDecodeObject(b *testing.B) {
	raw := benchEvent
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeObject(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// DecodeEvent gives what DecodeObject gives for what stages write, and
// refuses what fastjson would let through but JSON does not.
func TestDecodeEventAgreesWithDecodeObject(t *testing.T) {
	for _, in := range []string{
		`{"i":42,"neg":-7,"f":0.25,"whole":3.0,"exp":1e3,"s":"x\"\\\u00e9\n<>&","b":true,"c":false,"n":null,` +
			`"list":[1,2.5,{"deep":9},[],{}],"obj":{"count":12,"ratio":1.5},"":"empty key"}`,
		// DecodeObject's exact path for integers beyond 2^53 (whole floats
		// such as 3.0 stay floats there, so none here).
		`{"big":9007199254740993,"min":-9223372036854775808,"huge":18446744073709551616,"f":0.5,"bigexp":1e20,"l":[-9007199254740993]}`,
		`{}`,
		string(benchEvent),
	} {
		want, err := DecodeObject([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeEvent([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %#v\nwant %#v", in, got, want)
		}
	}
	for _, bad := range []string{`null`, `[1]`, `{"a":`, ``, `"s"`, `{"a":NaN}`, `{"a":1-2}`, `{"a":[-inf]}`} {
		if _, err := DecodeEvent([]byte(bad)); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func BenchmarkDecodeEvent(b *testing.B) {
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvent(benchEvent); err != nil {
			b.Fatal(err)
		}
	}
}

// Whatever DecodeEvent accepts, even where fastjson is lenient, becomes
// values that encode back into strict JSON with the same content.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{string(benchEvent), `{"a":[1,{"b":null}],"c":"\u00e9\\"}`, `{"n":1e400}`, `{"s":"\x"}`, `{"a":-}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeEvent(b)
		checkDecodeKeys(t, b, ev, err)
		if err != nil {
			return
		}
		out, err := EncodeEvent(ev)
		if err != nil {
			t.Fatalf("decoded %q into values that do not encode: %v", b, err)
		}
		back, err := DecodeObject(out)
		if err != nil {
			t.Fatalf("re-encoded %q as invalid JSON %q: %v", b, out, err)
		}
		again, _ := EncodeEvent(back)
		if twice, err := DecodeObject(again); err != nil || !reflect.DeepEqual(twice, back) {
			t.Fatalf("round trip changed %q into %q (%v)", out, again, err)
		}
		checkAppendValue(t, b)
	})
}

// checkDecodeKeys: on JSON, DecodeEvent gives what the fastjson-based
// decoder it replaced gives (values, and whether it fails), and
// DecodeEventKeys and ViewEventKeys the same keys of it.
func checkDecodeKeys(t *testing.T, b []byte, ev map[string]any, err error) {
	t.Helper()
	if !json.Valid(b) {
		return // the Scanner may refuse what fastjson let through
	}
	want, wantErr := refDecodeEventKeys(b, nil)
	if (err != nil) != (wantErr != nil) || err == nil && !reflect.DeepEqual(ev, want) {
		t.Fatalf("%q: DecodeEvent %#v (%v), reference %#v (%v)", b, ev, err, want, wantErr)
	}
	keep := NewKeys("a", "eventName", "p_any_ip_addresses", "")
	got, err := DecodeEventKeys(b, keep)
	want, wantErr = refDecodeEventKeys(b, map[string]bool{"a": true, "eventName": true, "p_any_ip_addresses": true, "": true})
	if (err != nil) != (wantErr != nil) || err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: DecodeEventKeys %#v (%v), reference %#v (%v)", b, got, err, want, wantErr)
	}
	view, err := ViewEventKeys(b, keep)
	if (err != nil) != (wantErr != nil) || err == nil && !reflect.DeepEqual(view, want) {
		t.Fatalf("%q: ViewEventKeys %#v (%v), reference %#v (%v)", b, view, err, want, wantErr)
	}
}

// refDecodeEventKeys is the fastjson-based DecodeEventKeys that the
// Scanner-based one replaced: the reference it must agree with.
func refDecodeEventKeys(b []byte, keep map[string]bool) (map[string]any, error) {
	var p fastjson.Parser
	v, err := p.ParseBytes(b)
	if err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	o, err := v.Object()
	if err != nil {
		return nil, fmt.Errorf("not a JSON object: %s", v.Type())
	}
	d := decoder{}
	if keep == nil {
		m := d.object(o)
		return m, d.err
	}
	m := make(map[string]any, min(len(keep), o.Len()))
	o.Visit(func(k []byte, v *fastjson.Value) {
		if keep[string(k)] {
			m[string(k)] = d.value(v)
		}
	})
	return m, d.err
}

// checkAppendValue: AppendValue writes what AppendJSON(Value(v)) writes,
// up to key order, and fails where Value fails.
func checkAppendValue(t *testing.T, in []byte) {
	t.Helper()
	v, err := fastjson.ParseBytes(in)
	if err != nil {
		t.Fatalf("%q: %v", in, err)
	}
	got, gotErr := AppendValue([]byte("x"), v)
	x, wantErr := Value(v)
	if (gotErr != nil) != (wantErr != nil) {
		t.Fatalf("%q: AppendValue error %v, Value error %v", in, gotErr, wantErr)
	}
	if wantErr != nil {
		return
	}
	if got[0] != 'x' {
		t.Fatalf("%q: AppendValue overwrote what came before: %q", in, got)
	}
	want, err := AppendJSON(nil, x)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(got[1:], &g); err != nil {
		t.Fatalf("%q: AppendValue wrote invalid JSON %q: %v", in, got[1:], err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%q: AppendValue wrote %s, AppendJSON(Value) %s", in, got[1:], want)
	}
	if len(got)-1 != len(want) {
		t.Fatalf("%q: AppendValue wrote %d bytes (%s), AppendJSON(Value) %d (%s)", in, len(got)-1, got[1:], len(want), want)
	}
	// The Scanner writes what fastjson's tree gives, byte for byte (both
	// keep the input's key order) but for the order of a map's keys, which
	// an object that repeats a key goes through.
	if !json.Valid(in) {
		return // the Scanner may refuse what fastjson let through
	}
	sc := NewScanner(in)
	defer sc.Release()
	scanned, err := sc.AppendValue([]byte("x"), 0)
	if err != nil || !sc.AtEnd() || len(scanned) != len(got) {
		t.Fatalf("%q: Scanner.AppendValue wrote %s (%v), AppendValue %s", in, scanned, err, got)
	}
	if string(scanned) != string(got) {
		if err := json.Unmarshal(scanned[1:], &g); err != nil || !reflect.DeepEqual(g, w) {
			t.Fatalf("%q: Scanner.AppendValue wrote %s (%v), AppendValue %s", in, scanned, err, got)
		}
	}
}

func TestAppendValueMatchesValue(t *testing.T) {
	for _, in := range []string{
		`{"i":42,"neg":-7,"f":0.25,"whole":3.0,"exp":1e3,"s":"x\"\\\u00e9\n<>&\u2028","b":true,"c":false,"n":null,` +
			`"list":[1,2.5,{"deep":9},[],{}],"obj":{"count":12,"ratio":1.5},"":"empty key","tiny":1.5e-7,"bigf":1e300}`,
		`{"big":9007199254740993,"min":-9223372036854775808,"huge":18446744073709551616,"f":0.5,"bigexp":1e20,"l":[-9007199254740993]}`,
		`{"a":1,"b":{"x":1,"x":2},"a":3}`, // repeated keys: the last wins, as in a map
		`{"k\u0041":1,"kA":2}`,            // the same key once unescaped
		`[1,"s",null,true,{"a":[{}]}]`, `"\ud800"`, `-0`, `0.1`, `{}`, `[]`,
		`{"n":1e400}`, `[1,{"a":-1e999}]`,
		string(benchEvent),
	} {
		checkAppendValue(t, []byte(in))
	}
	var wide strings.Builder
	wide.WriteString("{")
	for i := range 40 {
		fmt.Fprintf(&wide, `"k%d":%d,`, i%39, i)
	}
	wide.WriteString(`"end":0}`)
	checkAppendValue(t, []byte(wide.String()))
}

func BenchmarkAppendValue(b *testing.B) {
	v := fastjson.MustParseBytes(benchEvent)
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		var err error
		if out, err = AppendValue(out[:0], v); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFormatTimeMatchesTimeFormat(t *testing.T) {
	zone := time.FixedZone("X", -7*3600-30*60)
	times := []time.Time{time.Time{}, time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 30, 1, 2, 3, 4, zone)}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		times = append(times, time.Unix(rng.Int64N(1<<36)-1<<35, rng.Int64N(1e9)).In(zone))
	}
	for _, tm := range times {
		if got, want := FormatTime(tm), tm.UTC().Format(TimeFormat); got != want {
			t.Fatalf("%v: %s, want %s", tm, got, want)
		}
	}
}

func BenchmarkFormatTime(b *testing.B) {
	tm := time.Date(2026, 11, 30, 1, 2, 3, 456789, time.UTC)
	for b.Loop() {
		FormatTime(tm)
	}
}

// BenchmarkParseTime reads the lake's and the process stage's times: our
// own layout, and AWS's with six digits of fraction and with none.
func BenchmarkParseTime(b *testing.B) {
	for _, s := range []string{"2026-11-30T01:02:03.456789000Z", "2026-11-20T23:39:43.945958Z", "2026-11-23T21:04:05Z"} {
		b.Run(strconv.Itoa(len(s)), func(b *testing.B) {
			for b.Loop() {
				if _, err := ParseTime(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// RowID is written by hand; it must stay the ids earlier versions wrote
// with fmt, or reprocessed records would get new ids.
func TestRowIDMatchesFormat(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := [][3]int64{{0, 0, 0}, {65535, math.MaxInt64, 65535}, {65536, -1, 70000}, {-1, math.MinInt64, -3}}
	for range 2000 {
		cases = append(cases, [3]int64{int64(int32(rng.Uint32())), int64(rng.Uint64()), int64(rng.IntN(1 << 20))})
	}
	for _, c := range cases {
		want := fmt.Sprintf("%04x%016x%04x", uint16(c[0]), uint64(c[1]), uint16(c[2]))
		if got := RowID(int32(c[0]), c[1], int(c[2])); got != want {
			t.Fatalf("RowID(%d, %d, %d) = %s, want %s", c[0], c[1], c[2], got, want)
		}
	}
}

// ParseTime reads what time.Parse reads, and refuses what it refuses: for
// FormatTime's own layout and its shorter fractions (read digit by digit)
// and for strings one byte away from them.
func TestParseTimeMatchesTimeParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	texts := []string{"2024-02-29T23:59:59.999999999Z", "2023-02-29T00:00:00.000000000Z", "2026-04-31T00:00:00.000000000Z",
		"2026-12-31T24:00:00.000000000Z", "2026-12-31T23:60:00.000000000Z", "2026-12-31T23:59:60.000000000Z",
		"0000-01-01T00:00:00.000000000Z", "9999-12-31T23:59:59.999999999Z", "2026-11-30T01:02:03Z", "2026-11-30T01:02:03.5+01:00",
		"2026-11-30T01:02:03.Z", "2026-11-30T01:02:03.945958Z", "2026-11-30T01:02:03.1234567890Z", "2026-11-30T01:02:03,5Z"}
	for range 20000 {
		s := []byte(FormatTime(time.Unix(rng.Int64N(1<<36)-1<<35, rng.Int64N(1e9))))
		if rng.IntN(2) == 0 { // a shorter fraction, or none
			k := rng.IntN(11)
			s = append(s[:len(s)-1-k], 'Z')
		}
		texts = append(texts, string(s))
		s[rng.IntN(len(s))] = "0123456789-:.TZ+ x"[rng.IntN(18)]
		texts = append(texts, string(s))
	}
	for _, s := range texts {
		got, err := ParseTime(s)
		want, wantErr := time.Parse(time.RFC3339Nano, s)
		if (err != nil) != (wantErr != nil) || got != want {
			t.Fatalf("ParseTime(%q) = %v, %v; time.Parse: %v, %v", s, got, err, want, wantErr)
		}
	}
}
