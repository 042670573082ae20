package envelope

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// stdJSON is encoding/json's encoding of v without HTML escaping.
func stdJSON(t testing.TB, v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Scalars are written byte for byte as encoding/json writes them; events
// decode back to what encoding/json's encoding decodes to.
func TestEncodeEventMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	randString := func() string {
		pool := []string{"a", "é", "\u2028", "\u2029", "\"", "\\", "\n", "\t", "\r", "\x00", "\x1f", "\x7f", "<", ">", "&", "\xff", "\xe2\x80", "😀", "\U0010FFFF", " ",
			// Plain runs, so specials fall at every offset of appendJSONString's 8-byte steps.
			"abcdefgh", "aws-cli/2.15.0", "0123456", "x y"}
		var s string
		for range rng.IntN(16) {
			s += pool[rng.IntN(len(pool))]
		}
		return s
	}
	floats := []float64{0, math.Copysign(0, -1), 1, -1.5, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 1.5e300, -2.5e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, 0.1, 123456789.125}
	for range 2000 {
		floats = append(floats, math.Float64frombits(rng.Uint64()))
	}
	for _, f := range floats {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			if _, err := appendJSON(nil, f); err == nil {
				t.Errorf("%v encoded", f)
			}
			continue
		}
		got, err := appendJSON(nil, f)
		if want := stdJSON(t, f); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%v: %s, want %s (%v)", f, got, want, err)
		}
	}
	for range 20000 {
		s := randString()
		if got, want := appendJSONString(nil, s), stdJSON(t, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: %s, want %s", s, got, want)
		}
	}
	var value func(depth int) any
	value = func(depth int) any {
		switch rng.IntN(11) {
		case 0:
			return nil
		case 1:
			return rng.IntN(2) == 0
		case 2:
			return rng.Int64() - math.MaxInt64/2
		case 3:
			return rng.NormFloat64() * 1e6
		case 4:
			return []string{randString(), randString()}
		case 5:
			return uint16(rng.IntN(65536)) // as a GeoIP database gives numbers
		case 6, 7:
			if depth < 4 {
				m := map[string]any{}
				for range rng.IntN(5) {
					m[randString()] = value(depth + 1)
				}
				return m
			}
		case 8:
			if depth < 4 {
				l := []any{}
				for range rng.IntN(4) {
					l = append(l, value(depth+1))
				}
				return l
			}
		}
		return randString()
	}
	for range 500 {
		ev := map[string]any{"p_log_type": "X"}
		for range 8 {
			ev[randString()] = value(0)
		}
		got, err := EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("invalid JSON %s: %v", got, err)
		}
		if err := json.Unmarshal(stdJSON(t, ev), &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("%s decodes differently from encoding/json's encoding", got)
		}
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	ev, err := DecodeObject(benchEvent)
	if err != nil {
		b.Fatal(err)
	}
	ev["p_any_ip_addresses"] = []string{"10.1.2.3"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeEvent(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// JSONSizeAtMost is never below the encoding's length, whatever the
// strings hold (quotes, control bytes, HTML characters, invalid UTF-8).
func TestJSONSizeAtMost(t *testing.T) {
	nasty := "\"\\\x00\x1f<>&\u2028é\xff" + strings.Repeat("a", 40)
	values := []any{
		nil, true, int64(-1 << 62), 1.2345678901234567e-300, json.Number("123456789012345678901234567890"),
		nasty, []string{nasty, ""}, []any{nasty, map[string]any{nasty: []any{nil, false}}},
		map[string]any{"a": nasty, nasty: map[string]any{"b": []string{nasty}}, "": 3},
	}
	for _, v := range values {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if n := JSONSizeAtMost(v); n < len(b) {
			t.Errorf("JSONSizeAtMost(%#v) = %d, below its %d bytes of JSON", v, n, len(b))
		}
	}
	if JSONSizeAtMost(struct{}{}) < 1<<30 {
		t.Error("a type it does not know must count as unbounded")
	}
}

// AppendDecimal writes what parsing the text as a float and AppendFloat
// write, or declines; it takes the decimals log lines hold.
func TestAppendDecimal(t *testing.T) {
	for text, want := range map[string]string{
		"0.000": "0", "0.001": "0.001", "1.500": "1.5", "-007": "-7", "-0.000": "-0", "1500": "1500",
		"0.000001": "0.000001", "123456789012345": "123456789012345", "12345.6789": "12345.6789",
		"0.0000001": "", "1234567890123456": "", "1.": "", ".5": "", "+1": "", "1e5": "", "": "", "-": "", "0x10": "", "1_0": "",
	} {
		got, ok := AppendDecimal(nil, text)
		if want == "" {
			if ok {
				t.Errorf("AppendDecimal(%q) = %s, want it declined", text, got)
			}
			continue
		}
		if !ok || string(got) != want {
			t.Errorf("AppendDecimal(%q) = %s, %v; want %s", text, got, ok, want)
		}
	}
}

func FuzzAppendDecimal(f *testing.F) {
	for _, s := range []string{"0.000", "1.500", "-007", "0.000001", "0.0000009", "999999999999999.9", "100000000000000", "-0", "0.1", "9007199254740993"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		got, ok := AppendDecimal([]byte("x"), text)
		if !ok {
			if string(got) != "x" {
				t.Fatalf("declined %q but appended %q", text, got)
			}
			return
		}
		x, err := strconv.ParseFloat(text, 64)
		if err != nil {
			t.Fatalf("AppendDecimal(%q) = %s, but it is no float: %v", text, got, err)
		}
		want, err := AppendFloat([]byte("x"), x)
		if err != nil || string(got) != string(want) {
			t.Fatalf("AppendDecimal(%q) = %s, AppendFloat(ParseFloat) = %s (%v)", text, got, want, err)
		}
	})
}
