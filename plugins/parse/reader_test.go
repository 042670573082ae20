package parse

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

func mustSchema(t testing.TB, y string) *Parser {
	t.Helper()
	s, err := schema.Parse("test.yml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// classifierOf is a classifier over the one schema the YAML y defines,
// its clock fixed (p_parse_time must match between its two paths).
func classifierOf(t testing.TB, y string) *Classifier {
	t.Helper()
	s, err := schema.Parse("test.yml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClassifier([]*schema.Schema{s})
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return time.Date(2026, 11, 24, 1, 2, 3, 0, time.UTC) }
	return c
}

func parseOK(t *testing.T, p *Parser, line, header string) map[string]any {
	t.Helper()
	var h []byte
	if header != "" {
		h = []byte(header)
	}
	res, err := p.ParseLine([]byte(line), h)
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return res.Fields
}

func parseFails(t *testing.T, p *Parser, line, want string) {
	t.Helper()
	_, err := p.ParseLine([]byte(line), nil)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("%q: error %v, want one containing %q", line, err, want)
	}
}

func TestCSVParser(t *testing.T) {
	p := mustSchema(t, csvSchema)
	got := parseOK(t, p, `1700000000; "alice; the admin";192.0.2.1; 42`, "")
	if got["user"] != "alice; the admin" || got["ip"] != "192.0.2.1" || got["bytes"] != int64(42) {
		t.Fatalf("got %v", got)
	}
	got = parseOK(t, p, `1700000000;-;N/A;7`, "")
	if _, ok := got["user"]; ok {
		t.Fatalf("empty value kept: %v", got)
	}
	if _, err := p.ParseLine([]byte("# a comment"), nil); err != errSkip {
		t.Fatalf("skipPrefix line: %v, want errSkip", err)
	}
	parseFails(t, p, `1700000000;alice`, "2 values, want 4 columns")
	parseFails(t, p, `-;alice;192.0.2.1;1`, "missing required field time")
	parseFails(t, p, `1700000000;alice;192.0.2.1;many`, "not an integer")
}

func TestCSVHeader(t *testing.T) {
	p := mustSchema(t, `
schema: Custom.CSVHeader
parser:
  csv:
    hasHeader: true
fields:
  - {name: a, type: string, required: true}
  - {name: b, type: int}
`)
	got := parseOK(t, p, "5,x", "b,a")
	if got["a"] != "x" || got["b"] != int64(5) {
		t.Fatalf("header order not applied: %v", got)
	}
	if _, err := p.ParseLine([]byte("b,a"), []byte("b,a")); err != errSkip {
		t.Fatalf("the header line itself: %v, want errSkip", err)
	}
	parseFails(t, p, "5,x", "no header line")
	// A '#' header names its first column without the mark.
	got = parseOK(t, p, "5,x", "#b,a")
	if got["a"] != "x" || got["b"] != int64(5) {
		t.Fatalf("'#' header: %v", got)
	}
	got = parseOK(t, p, "x,5", "# a,b")
	if got["a"] != "x" || got["b"] != int64(5) {
		t.Fatalf("'# ' header: %v", got)
	}
}

const csvHeaderSchema = `
schema: Custom.CSVHeader
parser:
  csv:
    hasHeader: true
fields:
  - {name: time, type: timestamp, timeFormat: unix, isEventTime: true, required: true}
  - {name: ip, type: string, indicators: [ip]}
  - {name: msg, type: string}
`

// A CSV header without a '#' is the file's first line: caracal parse,
// detect and schemas test take a CSV schema's columns from it (with
// hasHeader and no columns), where every line failed with "no header line
// arrived"; a '#' header still comes as Origin.Header, its mark dropped.
// The header is not an event, and other log types still read the first
// line as one.
func TestCSVHeaderIsTheFirstLine(t *testing.T) {
	c := classifierOf(t, csvHeaderSchema)
	for _, header := range []string{"time,ip,msg", "msg,time,ip", "#time,ip,msg"} {
		var lines []string
		for _, row := range [][3]string{{"1700000000", "192.0.2.1", "hello"}, {"1700000001", "192.0.2.2", "bye"}} {
			vals := map[string]string{"time": row[0], "ip": row[1], "msg": row[2]}
			var cols []string
			for _, col := range strings.Split(strings.TrimPrefix(header, "#"), ",") {
				cols = append(cols, vals[col])
			}
			lines = append(lines, strings.Join(cols, ","))
		}
		file := filepath.Join(t.TempDir(), "events.csv")
		if err := os.WriteFile(file, []byte(header+"\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		failed, err := printEvents(c, []string{file}, []string{"Custom.CSVHeader"}, "cli", &out, &errOut)
		if err != nil || failed != 0 || strings.Count(out.String(), "\n") != 2 {
			t.Fatalf("%s: failed %d, %v: %s%s", header, failed, err, out.String(), errOut.String())
		}
		if !strings.Contains(out.String(), `"msg":"bye"`) || !strings.Contains(out.String(), `"p_any_ip_addresses":["192.0.2.2"]`) {
			t.Errorf("%s: %s", header, out.String())
		}
		// Both paths agree, on the header line and on an event.
		o := Origin{FirstLine: []byte(header)}
		if strings.HasPrefix(header, "#") {
			o = Origin{Header: []byte(header)}
		}
		for _, in := range append([]string{header}, lines...) {
			emitsAsMaps(t, c, "Custom.CSVHeader", []byte(in), nil, o)
		}
	}
}

func TestFastMatchParser(t *testing.T) {
	p := mustSchema(t, accessSchema)
	got := parseOK(t, p, `192.0.2.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326`, "")
	if got["user"] != "frank" || got["path"] != "/a.gif" || got["proto"] != "HTTP/1.0" || got["status"] != int64(200) || got["time"] != "2000-10-10T20:55:36.000000000Z" {
		t.Fatalf("got %v", got)
	}
	got = parseOK(t, p, `192.0.2.1 404`, "")
	if got["status"] != int64(404) {
		t.Fatalf("second pattern: %v", got)
	}
	parseFails(t, p, `garbage`, "matches none of the 2 patterns")
	if _, err := compileFastPattern("%{a}%{b}"); err == nil {
		t.Fatal("adjacent fields without a separator accepted")
	}
}

func TestRegexParser(t *testing.T) {
	p := mustSchema(t, syslogSchema)
	got := parseOK(t, p, `web1 sshd[4242]: Failed password for invalid user root from 203.0.113.5`, "")
	if got["host"] != "web1" || got["pid"] != int64(4242) || got["user"] != "root" || got["ip"] != "203.0.113.5" {
		t.Fatalf("got %v", got)
	}
	parseFails(t, p, `web1 sshd[1]: Accepted password for root from 203.0.113.5`, "does not match")
	parseFails(t, p, `web1 sshd[1]: Failed password for root from 999.1.1.1`, "not an ipv4 address")
	for _, bad := range []string{"match: ['%{NOPE:x}']", "match: ['(unclosed']", "match: ['no captures']"} {
		_, err := schema.Parse("bad.yml", []byte("schema: Custom.Bad\nparser:\n  regex:\n    "+bad+"\nfields:\n  - {name: x, type: string}\n"))
		if err != nil {
			t.Fatal(err)
		}
		s, _ := schema.Parse("bad.yml", []byte("schema: Custom.Bad\nparser:\n  regex:\n    "+bad+"\nfields:\n  - {name: x, type: string}\n"))
		if _, err := Compile(s); err == nil {
			t.Errorf("regex %s compiled", bad)
		}
	}
}

func TestTransformations(t *testing.T) {
	p := mustSchema(t, `
schema: Custom.Transform
fields:
  - {name: user, type: string, rename: {from: userName}, indicators: [username]}
  - {name: city, type: string, copy: {from: geo.city}}
  - {name: full, type: string, concat: {paths: [first, last], separator: " "}}
  - {name: domain, type: string, split: {from: email, separator: "@", index: -1}, indicators: [domain]}
  - {name: password, type: string, mask: {type: redact}}
  - {name: ssn, type: string, mask: {type: hash, algorithm: sha256, salt: "pepper"}, indicators: [username]}
  - {name: level, type: string, validate: {allow: [info, warn, error]}}
  - {name: tag, type: string, validate: {deny: [secret]}}
  - {name: net, type: string, validate: {cidr: ipv4}}
  - {name: geo, type: object, fields: [{name: city, type: string}]}
`)
	res, err := p.Parse([]byte(`{"userName":"alice","geo":{"city":"Lyon"},"first":"Ada","last":"Lovelace","email":"ada@example.org","password":"hunter2","ssn":"123-45-6789","level":"warn","tag":"ok","net":"10.0.0.0/8"}`))
	if err != nil {
		t.Fatal(err)
	}
	got := res.Fields
	want := map[string]any{"user": "alice", "city": "Lyon", "full": "Ada Lovelace", "domain": "example.org", "password": "REDACTED",
		"ssn": "b6e8d2b3fcb07fcd2e1a1bd0a2e1c0b7d2d9ba9e5c0c0f1f0a7c41b0a1d4e5f6", "level": "warn", "tag": "ok", "net": "10.0.0.0/8"}
	for k, v := range want {
		if k == "ssn" {
			continue // checked below: a salted hash, never the value
		}
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if s, _ := got["ssn"].(string); len(s) != 64 || strings.Contains(s, "6789") {
		t.Errorf("ssn not hashed: %v", got["ssn"])
	}
	for _, ind := range res.Indicators.Fields()["p_any_usernames"] {
		if ind == "123-45-6789" {
			t.Error("a masked value leaked into the indicators")
		}
	}
	for body, reason := range map[string]string{
		`{"level":"debug"}`:       "not in validate.allow",
		`{"tag":"secret"}`:        "in validate.deny",
		`{"net":"10.0.0.1"}`:      "not an ipv4 CIDR",
		`{"net":"2001:db8::/32"}`: "not an ipv4 CIDR",
	} {
		if _, err := p.Parse([]byte(body)); err == nil || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: error %v, want %q", body, err, reason)
		}
	}
}

// A rename only changes the key a field is read from, so a schema whose
// one transformation is a rename is written by the emit path, and it
// writes what the map path does: the from key's value under the field's
// name, the name's own key in the input left out, a key two fields read
// given to both, at any depth, and a missing required one named as the
// schema names it.
func TestRenameIsReadFromItsKey(t *testing.T) {
	c := classifierOf(t, `
schema: Custom.Rename
fields:
  - {name: eventId, type: string, required: true, rename: {from: eventID}}
  - {name: eventID, type: string}
  - {name: copyOfId, type: string, rename: {from: eventID}}
  - {name: src, type: object, fields: [{name: resolver-endpoint, type: string, required: true, rename: {from: resolver_endpoint}, indicators: [username]}]}
  - {name: addr, type: string, rename: {from: ip}, validate: {ip: any}, indicators: [ip]}
`)
	if p := c.parsers["Custom.Rename"]; !p.emits || p.derives {
		t.Fatalf("a rename-only schema: emits %v, derives %v", p.emits, p.derives)
	}
	for in, want := range map[string]string{
		`{"eventID":"a","eventId":"ignored","src":{"resolver_endpoint":"r-1","resolver-endpoint":"ignored"},"ip":"192.0.2.1"}`: `{"eventId":"a","eventID":"a","copyOfId":"a","src":{"resolver-endpoint":"r-1"},"addr":"192.0.2.1","p_any_usernames":["r-1"],"p_any_ip_addresses":["192.0.2.1"]}`,
		`{"src":{"resolver_endpoint":"r-2"},"eventID":"b"}`:                                                                    `{"eventId":"b","eventID":"b","copyOfId":"b","src":{"resolver-endpoint":"r-2"},"p_any_usernames":["r-2"]}`,
	} {
		a := classifiedAlike(t, c, "Custom.Rename", []byte(in))
		w, _ := envelope.DecodeObject([]byte(want))
		for k, v := range w {
			if !reflect.DeepEqual(a[k], v) {
				t.Errorf("%s: %s = %v, want %v", in, k, a[k], v)
			}
		}
		for k := range a {
			if _, ok := w[k]; !ok && !strings.HasPrefix(k, "p_") {
				t.Errorf("%s: unexpected field %s in %v", in, k, a)
			}
		}
	}
	for in, reason := range map[string]string{
		`{"eventId":"a","src":{"resolver_endpoint":"r"}}`:          "missing required field eventId",
		`{"eventID":"a","src":{"resolver-endpoint":"r"}}`:          "missing required field src.resolver-endpoint",
		`{"eventID":"a","src":{"resolver_endpoint":"r"},"ip":"x"}`: "not an any address",
	} {
		failsAlike(t, c, "Custom.Rename", []byte(in), reason)
	}
}

// classifiedAlike classifies in as log type lt both ways, written as JSON
// while typed and built as a map, fails the test unless both accept it
// and give the same event, and returns that event.
func classifiedAlike(t *testing.T, c *Classifier, lt string, in []byte) map[string]any {
	t.Helper()
	o := Origin{SourceID: "src"}
	got, fail := c.ClassifyJSON(in, []string{lt}, o)
	if fail != nil {
		t.Fatalf("%s: %s", in, Describe(fail))
	}
	ev, fail := c.Classify(in, []string{lt}, o)
	if fail != nil {
		t.Fatalf("%s: map path: %s", in, Describe(fail))
	}
	a, err := envelope.DecodeObject(got.JSON)
	if err != nil {
		t.Fatal(err)
	}
	mapped, _ := envelope.EncodeEvent(ev)
	b, _ := envelope.DecodeObject(mapped)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("%s: paths differ:\nJSON: %s\nmap:  %s", in, got.JSON, mapped)
	}
	return a
}

// failsAlike checks that both ways refuse in as log type lt, for a reason
// holding reason.
func failsAlike(t *testing.T, c *Classifier, lt string, in []byte, reason string) {
	t.Helper()
	o := Origin{SourceID: "src"}
	_, viaJSON := c.ClassifyJSON(in, []string{lt}, o)
	_, viaMap := c.Classify(in, []string{lt}, o)
	for path, fail := range map[string]*envelope.ClassificationFailure{"JSON": viaJSON, "map": viaMap} {
		if fail == nil || !strings.Contains(Describe(fail), reason) {
			t.Errorf("%s (%s path): %v, want %q", in, path, fail, reason)
		}
	}
}

// FuzzCSVSplit: a line is split as a fresh encoding/csv reader reads it,
// or refused for the same reason, whether splitPlain takes it or a reused
// reader reads it after the lines before.
func FuzzCSVSplit(f *testing.F) {
	for _, line := range []string{"a,b,c", " a, b ,c ", "a,,b,", "", "x", `a,"b,c",d`, "a\tb\tc", "a;b", "a b  c", "é·ü·x", "a\rb", "a,b\n", "a\"b\nc,d", `"x","y"`, `"unclosed,z`, `"p";q`} {
		f.Add([]byte(line), uint8(0), false)
		f.Add([]byte(line), uint8(1), true)
	}
	delims := []rune{',', '\t', ';', ' ', '|', '·'}
	var splitters []*csvSplitter
	for _, d := range delims {
		splitters = append(splitters, newCSVSplitter(d, false), newCSVSplitter(d, true))
	}
	f.Fuzz(func(t *testing.T, line []byte, d uint8, trim bool) {
		delim := delims[int(d)%len(delims)]
		sp := splitters[2*(int(d)%len(delims))]
		if trim {
			sp = splitters[2*(int(d)%len(delims))+1]
		}
		got, err := sp.split(line)
		r := csv.NewReader(bytes.NewReader(line))
		r.Comma, r.LazyQuotes, r.FieldsPerRecord, r.TrimLeadingSpace = delim, true, -1, trim
		want, wantErr := r.Read()
		if !slices.Equal(got, want) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("%q split on %q (trim %v): %q (%v), csv reads %q (%v)", line, delim, trim, got, err, want, wantErr)
		}
	})
}

// A delimiter csv would refuse on every line is refused when the schema
// compiles.
func TestCSVDelimiterRefused(t *testing.T) {
	for _, d := range []string{`'"'`, `"\n"`} {
		s, err := schema.Parse("bad.yml", []byte("schema: Custom.Bad\nparser:\n  csv:\n    delimiter: "+d+"\n    columns: [a]\nfields:\n  - {name: a, type: string}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Compile(s); err == nil || !strings.Contains(err.Error(), "csv delimiter") {
			t.Errorf("delimiter %s: %v", d, err)
		}
	}
}

// BenchmarkCustomReaders types a line of each custom line parser, by the
// schemas of the tests above.
func BenchmarkCustomReaders(b *testing.B) {
	for _, tc := range []struct {
		name, schema, line string
		o                  Origin
	}{
		{"csv", csvSchema, `1700000000;alice;192.0.2.1;42`, Origin{}},
		{"csv-quoted", csvSchema, `1700000000;"alice; the admin";192.0.2.1;42`, Origin{}},
		{"csv-header", csvHeaderSchema, `192.0.2.1,1700000000,hello`, Origin{Header: []byte("#ip,time,msg")}},
		{"fastmatch", accessSchema, `192.0.2.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326`, Origin{}},
		{"regex", syslogSchema, `web1 sshd[4242]: Failed password for invalid user root from 203.0.113.5`, Origin{}},
	} {
		c := classifierOf(b, tc.schema)
		lt, raw := c.order[0], []byte(tc.line)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, f := c.ClassifyJSON(raw, []string{lt}, tc.o); f != nil {
					b.Fatal(Describe(f))
				}
			}
		})
	}
}

// The custom schemas of the line parsers' tests.
const (
	csvSchema = `
schema: Custom.CSV
parser:
  csv:
    delimiter: ";"
    columns: [time, user, ip, bytes]
    emptyValues: ["-", "N/A"]
    trimSpace: true
    skipPrefix: "#"
fields:
  - {name: time, type: timestamp, timeFormat: unix, isEventTime: true, required: true}
  - {name: user, type: string, indicators: [username]}
  - {name: ip, type: string, indicators: [ip]}
  - {name: bytes, type: bigint}
`
	accessSchema = `
schema: Custom.Access
parser:
  fastmatch:
    emptyValues: ["-"]
    match:
      - '%{ip} - %{user} [%{time}] "%{method} %{path} %{proto}" %{status} %{size}'
      - '%{ip} %{status}'
fields:
  - {name: ip, type: string, indicators: [ip], required: true}
  - {name: user, type: string}
  - {name: time, type: timestamp, timeFormat: "%d/%b/%Y:%H:%M:%S %z", isEventTime: true}
  - {name: method, type: string}
  - {name: path, type: string}
  - {name: proto, type: string}
  - {name: status, type: int}
  - {name: size, type: bigint}
`
	syslogSchema = `
schema: Custom.Syslog
parser:
  regex:
    patternDefinitions:
      IP: '\d{1,3}(?:\.\d{1,3}){3}'
      WORD: '\w+'
    match:
      - '%{WORD:host} sshd\[(?P<pid>\d+)\]: '
      - 'Failed password for (?:invalid user )?%{WORD:user} from %{IP:ip}'
fields:
  - {name: host, type: string}
  - {name: pid, type: int}
  - {name: user, type: string, indicators: [username]}
  - {name: ip, type: string, indicators: [ip], validate: {ip: ipv4}}
`
)
