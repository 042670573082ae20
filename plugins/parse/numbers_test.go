package parse

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// numbersSchema has one field of each numeric type, read from JSON and,
// in numbersCSV, from a CSV line: both paths (emit and map) of both.
const numbersSchema = `
schema: Custom.Numbers
fields:
  - {name: s, type: smallint}
  - {name: i, type: int}
  - {name: b, type: bigint}
  - {name: f, type: float}
`

const numbersCSV = `
schema: Custom.NumbersCSV
parser:
  csv:
    columns: [s, i, b, f]
fields:
  - {name: s, type: smallint}
  - {name: i, type: int}
  - {name: b, type: bigint}
  - {name: f, type: float}
`

// numberCase is a value for one field, as JSON and as CSV text, and the
// reason it is refused ("" when it is accepted).
type numberCase struct {
	field, json, csv, reason string
}

func checkNumbers(t *testing.T, cases []numberCase) {
	t.Helper()
	js, csv := classifierOf(t, numbersSchema), classifierOf(t, numbersCSV)
	cols := map[string]int{"s": 0, "i": 1, "b": 2, "f": 3}
	for _, tc := range cases {
		line := make([]string, 4)
		line[cols[tc.field]] = tc.csv
		for _, in := range []struct {
			c   *Classifier
			lt  string
			raw string
		}{
			{js, "Custom.Numbers", `{"` + tc.field + `":` + tc.json + `}`},
			{csv, "Custom.NumbersCSV", strings.Join(line, ",")},
		} {
			// The emit path and the map path agree (emitsAsMaps), and
			// the reason is the one wanted.
			ok := emitsAsMaps(t, in.c, in.lt, []byte(in.raw), []string{in.lt}, Origin{})
			_, fail := in.c.Classify([]byte(in.raw), []string{in.lt}, Origin{})
			switch {
			case tc.reason == "" && !ok:
				t.Errorf("%s: refused: %s", in.raw, Describe(fail))
			case tc.reason != "" && ok:
				t.Errorf("%s: accepted, want %q", in.raw, tc.reason)
			case tc.reason != "" && !strings.Contains(fail.Reasons[0].Reason, tc.reason):
				t.Errorf("%s: %q, want %q", in.raw, fail.Reasons[0].Reason, tc.reason)
			}
		}
	}
}

// Each integer type holds its size (smallint 16 bits, int 32, bigint 64):
// a value outside it is refused (the lake's smallint column is 32 bits,
// and 3000000000 was stored as -1294967296).
func TestIntegerRanges(t *testing.T) {
	checkNumbers(t, []numberCase{
		{"s", "32767", "32767", ""},
		{"s", "-32768", "-32768", ""},
		{"s", "32768", "32768", "field s: 32768 is out of range for smallint (-32768 to 32767)"},
		{"s", "3000000000", "3000000000", "field s: 3000000000 is out of range for smallint (-32768 to 32767)"},
		{"s", `"-40000"`, "-040000", "field s: -40000 is out of range for smallint"},
		{"s", "7e4", "70000", "field s: 70000 is out of range for smallint"},
		{"i", "2147483647", "2147483647", ""},
		{"i", "-2147483648", "-2147483648", ""},
		{"i", "2147483648", "2147483648", "field i: 2147483648 is out of range for int (-2147483648 to 2147483647)"},
		{"i", "-3000000000", "-3000000000", "field i: -3000000000 is out of range for int"},
		{"b", "9223372036854775807", "9223372036854775807", ""},
		{"b", "-9223372036854775808", "-9223372036854775808", ""},
		{"b", "9223372036854775808", "9223372036854775808", "is out of range for bigint (-9223372036854775808 to 9223372036854775807)"},
		{"b", `"99999999999999999999"`, "99999999999999999999", "field b: 99999999999999999999 is out of range for bigint"},
		{"b", "1e20", "100000000000000000000", "0 is out of range for bigint"},
	})
}

// A float is a finite number: strconv reads NaN and Inf(inity), which JSON
// cannot hold, and an event with one failed to encode (caracal parse
// stopped there).
func TestFloatsAreFinite(t *testing.T) {
	checkNumbers(t, []numberCase{
		{"f", "1.5", "1.5", ""},
		{"f", `"-2.5e3"`, "-2.5e3", ""},
		{"f", `"NaN"`, "NaN", `field f: "NaN" is not a finite number`},
		{"f", `"nan"`, "nan", `field f: "nan" is not a finite number`},
		{"f", `"Infinity"`, "Infinity", `field f: "Infinity" is not a finite number`},
		{"f", `"-Inf"`, "-Inf", `field f: "-Inf" is not a finite number`},
		{"f", `" +inf "`, " +inf ", `field f: " +inf " is not a finite number`},
		{"f", `"1e400"`, "1e400", `field f: "1e400" is not a number`},
	})
}

// caracal parse reports an event it cannot write as JSON as it reports a
// failure, and goes on with the next.
func TestParseCommandGoesOnPastAnEventNotWritten(t *testing.T) {
	cl := classifierOf(t, numbersSchema)
	cl.Enrich = func(ev map[string]any) bool {
		if ev["i"] == int64(2) {
			ev["bad"] = math.NaN() // what no parse gives any more
		}
		return true
	}
	file := filepath.Join(t.TempDir(), "events.json")
	if err := os.WriteFile(file, []byte(`{"i":1}`+"\n"+`{"i":2}`+"\n"+`{"i":3}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	failed, err := printEvents(cl, []string{file}, nil, "cli", &out, &errOut)
	if err != nil || failed != 1 || strings.Count(out.String(), "\n") != 2 || !strings.Contains(out.String(), `"i":3`) {
		t.Fatalf("failed %d, %v; out %s", failed, err, out.String())
	}
	if want := file + ":2: the event is not written: json: unsupported value: NaN"; !strings.Contains(errOut.String(), want) {
		t.Fatalf("stderr %q, want %q", errOut.String(), want)
	}
}
