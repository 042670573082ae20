package parse

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/valyala/fastjson"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// The JSON schemas type events straight from fastjson's values; schemas
// with derived fields decode the event into a map first. Both must give
// the same result: the same fields, event time, indicators, or the same
// error. Every JSON schema's test inputs are checked, then random
// mutations of them (a value swapped for another type, null, a list, an
// object, a number where a string goes) to reach the error paths too.
func TestTypedJSONMatchesDecodedMap(t *testing.T) {
	schemas, err := schema.LoadDir("../../schemas")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	checked, failed := 0, 0
	for _, s := range schemas {
		fast, err := Compile(s)
		if err != nil {
			t.Fatal(err)
		}
		if fast.read != nil || fast.derives {
			continue
		}
		viaMap, _ := Compile(s)
		viaMap.derives = true // forces the decode-into-a-map path
		for _, tc := range s.Tests {
			for _, line := range strings.Split(strings.TrimSpace(tc.Input), "\n") {
				obj, err := envelope.DecodeObject([]byte(line))
				if err != nil {
					continue
				}
				inputs := [][]byte{[]byte(line)}
				for range 300 {
					inputs = append(inputs, mutate(rng, obj, false))
				}
				for _, in := range inputs {
					a, errA := fast.Parse(in)
					b, errB := viaMap.Parse(in)
					checked++
					if (errA == nil) != (errB == nil) || errA != nil && errA.Error() != errB.Error() {
						t.Fatalf("%s: errors differ on %s:\nfastjson: %v\nmap:      %v", s.Schema, in, errA, errB)
					}
					if errA != nil {
						failed++
						continue
					}
					if !reflect.DeepEqual(a.Fields, b.Fields) || !a.EventTime.Equal(b.EventTime) ||
						!reflect.DeepEqual(a.Indicators.Fields(), b.Indicators.Fields()) {
						t.Fatalf("%s: results differ on %s:\nfastjson: %v %v %v\nmap:      %v %v %v", s.Schema, in,
							a.Fields, a.EventTime, a.Indicators.Fields(), b.Fields, b.EventTime, b.Indicators.Fields())
					}
				}
			}
		}
	}
	t.Logf("checked %d, failed %d", checked, failed)
	if checked < 1000 || failed == 0 || failed == checked {
		t.Fatalf("checked %d inputs, %d failed: the mutations should reach both outcomes", checked, failed)
	}
}

var replacements = []any{nil, "text", "198.51.100.7", "2026-11-23T21:04:05Z", int64(12), 1.5, int64(1700000000), int64(70000), int64(3000000000),
	true, []any{}, []any{"a", int64(1)}, map[string]any{}, map[string]any{"x": "y"}, `{"k":"v"}`, `["a"]`, "  42 ",
	"q\"b\\s/é\n<&>\u2028", "NaN", "-Infinity", []any{nil, "x"}, map[string]any{"x": nil, "y": []any{nil}}}

// dupMarker stands for a key given twice: mutate writes it as the key of
// the same object it was put in.
const dupMarker = "\x00dup"

// mutate returns obj's JSON with one value somewhere inside replaced or
// set to null, or with dups one key of an object given twice (with a
// replacement before or after it); some come out indented. Of a key given
// twice fastjson reads the first, a decoded map holds the last: the paths
// that type from fastjson agree with each other, not with the map path.
func mutate(rng *rand.Rand, obj map[string]any, dups bool) []byte {
	cp := copyValue(obj).(map[string]any)
	var target any = cp
	dup := ""
	for depth := 0; ; depth++ {
		switch t := target.(type) {
		case map[string]any:
			keys := make([]string, 0, len(t))
			for k := range t {
				keys = append(keys, k)
			}
			if len(keys) == 0 {
				goto done
			}
			slices.Sort(keys)
			k := keys[rng.IntN(len(keys))]
			switch {
			case dups && rng.IntN(8) == 0:
				dup = k
				t[dupMarker] = replacements[rng.IntN(len(replacements))]
				goto done
			case rng.IntN(3) == 0 || depth > 4:
				t[k] = replacements[rng.IntN(len(replacements))]
				goto done
			}
			target = t[k]
		case []any:
			if len(t) == 0 {
				goto done
			}
			i := rng.IntN(len(t))
			switch rng.IntN(4) {
			case 0:
				t[i] = nil
				goto done
			case 1:
				t[i] = replacements[rng.IntN(len(replacements))]
				goto done
			}
			target = t[i]
		default:
			goto done
		}
	}
done:
	b, err := json.Marshal(cp)
	if err != nil {
		panic(err)
	}
	if dup != "" {
		key, _ := json.Marshal(dup)
		marker, _ := json.Marshal(dupMarker)
		b = bytes.Replace(b, marker, key, 1)
	}
	if rng.IntN(4) == 0 {
		var out bytes.Buffer
		if err := json.Indent(&out, b, "", "\t "); err != nil {
			panic(err)
		}
		b = out.Bytes()
	}
	return b
}

func copyValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = copyValue(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = copyValue(x)
		}
		return s
	}
	return v
}

// fastjson's parser accepts some things JSON does not (NaN, numbers with
// leading zeros, unknown escapes); events from outside must still be JSON.
func TestTypedJSONRefusesWhatJSONRefuses(t *testing.T) {
	c := classifier(t)
	line := string(sample(t))
	for _, bad := range []string{`NaN`, `01`, `1.`, `-`, `"\x41"`, `+1`, `Infinity`, `"a" "b"`,
		"\"a\x01b\"", `"\u00zz"`, `"\q"`, `[1,]`, `{"a":1,}`, `tru`, `1e`, `-01`, `1.5.2`, `"a`} {
		in := strings.Replace(line, `"eventVersion":"1.08"`, `"eventVersion":`+bad, 1)
		if in == line {
			t.Fatal("sample changed: eventVersion not found")
		}
		ev, fail := c.Classify([]byte(in), []string{"AWS.CloudTrail"}, Origin{})
		if fail == nil {
			t.Errorf("eventVersion %s: accepted as %v", bad, ev["eventVersion"])
		} else if !strings.Contains(fail.Reasons[0].Reason, "invalid JSON") {
			t.Errorf("eventVersion %s: reason %q, want invalid JSON", bad, fail.Reasons[0].Reason)
		}
	}
	// fastjson.Validate lets a control character before a string's last
	// escape through; so does the stage, on either path.
	in := strings.Replace(line, `"eventVersion":"1.08"`, "\"eventVersion\":\"1\x01\\n\"", 1)
	n, fail := c.ClassifyJSON([]byte(in), []string{"AWS.CloudTrail"}, Origin{})
	ev, mfail := c.Classify([]byte(in), []string{"AWS.CloudTrail"}, Origin{})
	if fail != nil || mfail != nil || !strings.Contains(string(n.JSON), `"eventVersion":"1\u0001\n"`) || ev["eventVersion"] != "1\x01\n" {
		t.Errorf("control character before an escape: %v %v %v", n, fail, mfail)
	}
}

// Events are written as JSON while they are typed (emit.go). That JSON
// must decode to what the map path encodes, key for key, or fail the same
// way, on every schema's test lines and random changes to them (JSON
// values or line tokens); and carry no key twice. The shipped schemas are
// checked, and custom ones whose fields are derived from others (copy,
// concat, split), which the emit path writes after the rest.
func TestEmittedJSONMatchesEncodedMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 17))
	t.Run("shipped", func(t *testing.T) { emittedMatchesEncodedMap(t, classifier(t), rng) })
	t.Run("derived", func(t *testing.T) {
		c, err := LoadClassifier("testdata/derived")
		if err != nil {
			t.Fatal(err)
		}
		c.now = classifier(t).now
		emittedMatchesEncodedMap(t, c, rng)
	})
}

func emittedMatchesEncodedMap(t *testing.T, c *Classifier, rng *rand.Rand) {
	checked, failed, emitted := 0, 0, 0
	o := Origin{SourceID: "src", SourceLabel: "Source \"One\"", Partition: 2, Offset: 99, Index: 3}
	for _, lt := range c.order {
		p := c.parsers[lt]
		if p.emits {
			emitted++
		}
		for _, tc := range p.Schema.Tests {
			for _, line := range strings.Split(strings.TrimSpace(tc.Input), "\n") {
				inputs := [][]byte{[]byte(line)}
				if obj, err := envelope.DecodeObject([]byte(line)); err == nil {
					for range 300 {
						inputs = append(inputs, mutate(rng, obj, true))
					}
				} else if p.read != nil {
					for range 100 {
						inputs = append(inputs, mutateLine(rng, line))
					}
				}
				for i, in := range inputs {
					candidates := []string{lt}
					if i%5 == 0 {
						candidates = nil // several candidates: the required-key pre-check runs
					}
					checked++
					if !emitsAsMaps(t, c, lt, in, candidates, o) {
						failed++
					}
				}
			}
		}
	}
	t.Logf("checked %d, failed %d, %d log types emit", checked, failed, emitted)
	// Every log type is written by the emit path: one that fell back to
	// maps would be several times slower (VPCDns and CloudTrailInsight
	// did, for a rename, at 18 and 23 µs an event, and schemas with a
	// derived field 5 to 7 times).
	if emitted < len(c.order) || checked < 1000 || failed == 0 || failed == checked {
		t.Fatalf("checked %d inputs, %d failed, %d log types emit: too weak", checked, failed, emitted)
	}
}

// emitsAsMaps checks that ClassifyJSON writes what Classify's map path
// encodes, or fails for the same reasons; false when both failed.
func emitsAsMaps(t testing.TB, c *Classifier, lt string, in []byte, candidates []string, o Origin) bool {
	t.Helper()
	got, failA := c.ClassifyJSON(in, candidates, o)
	ev, failB := c.Classify(in, candidates, o)
	if (failA == nil) != (failB == nil) || (got == nil) != (ev == nil) {
		t.Fatalf("%s: outcomes differ on %s:\nJSON: %v %v\nmap:  %v %v", lt, in, got, failA, ev, failB)
	}
	if failA != nil {
		if !reflect.DeepEqual(failA.Reasons, failB.Reasons) {
			t.Fatalf("%s: reasons differ on %s:\nJSON: %v\nmap:  %v", lt, in, failA.Reasons, failB.Reasons)
		}
		return false
	}
	if got == nil {
		return true // a header line: not an event, for both
	}
	want, err := envelope.EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	a, err := envelope.DecodeObject(got.JSON)
	if err != nil {
		t.Fatalf("%s: emitted invalid JSON %s: %v", lt, got.JSON, err)
	}
	b, _ := envelope.DecodeObject(want)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("%s: events differ on %s:\nJSON: %s\nmap:  %s", lt, in, got.JSON, want)
	}
	if n := strings.Count(string(got.JSON), `"p_row_id"`); n != 1 || got.RowID != a["p_row_id"] || got.LogType != a["p_log_type"] {
		t.Fatalf("%s: p_row_id %d times, RowID %q, LogType %q in %s", lt, n, got.RowID, got.LogType, got.JSON)
	}
	if keys := topKeys(t, got.JSON); keys != len(a) {
		t.Fatalf("%s: %d keys written, %d distinct, in %s", lt, keys, len(a), got.JSON)
	}
	return true
}

var lineTokens = []string{"-", "abc", "12", "", "1.5", "70000", "3000000000", "NaN", "Inf", "2026-11-23T21:04:05Z", `"a quoted token"`, "[bracketed x]", "198.51.100.7:443"}

// mutateLine returns line with a token replaced, two tokens swapped or the
// line cut short.
func mutateLine(rng *rand.Rand, line string) []byte {
	f := strings.Fields(line)
	if len(f) == 0 {
		return []byte(line)
	}
	switch rng.IntN(3) {
	case 0:
		f[rng.IntN(len(f))] = lineTokens[rng.IntN(len(lineTokens))]
	case 1:
		i, j := rng.IntN(len(f)), rng.IntN(len(f))
		f[i], f[j] = f[j], f[i]
	default:
		f = f[:rng.IntN(len(f))]
	}
	return []byte(strings.Join(f, " "))
}

func topKeys(t testing.TB, b []byte) int {
	t.Helper()
	v, err := fastjson.ParseBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return v.GetObject().Len()
}

// A text canonicalInt passes is exactly what reading and writing it as
// an int64 gives, and a text it refuses that reads as one is written
// differently or is too long to be sure of.
func TestCanonicalIntIsWhatAppendIntWrites(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	texts := []string{"0", "-0", "00", "7", "-7", "+7", "007", "9223372036854775807", "-9223372036854775808", "999999999999999999", "1000000000000000000", "", "-", "1e3", " 1"}
	for range 50000 {
		b := make([]byte, rng.IntN(21))
		for i := range b {
			b[i] = "0123456789-+ x"[min(rng.IntN(16), 13)%14]
		}
		texts = append(texts, string(b))
	}
	for _, s := range texts {
		n, err := strconv.ParseInt(s, 10, 64)
		same := err == nil && strconv.FormatInt(n, 10) == s
		if canonicalInt(s) && !same {
			t.Fatalf("canonicalInt(%q) but it is written %d (%v)", s, n, err)
		}
		if !canonicalInt(s) && same && len(strings.TrimPrefix(s, "-")) <= 18 {
			t.Fatalf("canonicalInt(%q) refuses what is written as it reads", s)
		}
	}
}
