package native

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// parseMap runs a parser and gives its record as a map.
func parseMap(fn Func, line, header []byte) (map[string]any, error) {
	var rec Record
	if err := fn(&rec, line, header); err != nil {
		return nil, err
	}
	return rec.Map(), nil
}

func TestFields(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  string
	}{
		{`a b  c`, []string{"a", "b", "c"}, ""},
		{`x "GET / HTTP/1.1" y`, []string{"x", "GET / HTTP/1.1", "y"}, ""},
		{`"say \"hi\" \\ there" [06/Feb/2019:00:00:38 +0000] -`, []string{`say "hi" \ there`, "06/Feb/2019:00:00:38 +0000", "-"}, ""},
		{`"" z`, []string{"", "z"}, ""},
		{`"ends in \\" "\x stays" "\"`, nil, "unterminated quoted"},
		{`"ends in \\" "\x stays"`, []string{`ends in \`, `\x stays`}, ""},
		{`a [b c]d`, []string{"a", "b c", "d"}, ""},
		{`"open`, nil, "unterminated quoted"},
		{`[open`, nil, "unterminated [bracketed]"},
		{`"a"b`, nil, "not a space"},
	}
	for _, c := range cases {
		got, err := Fields([]byte(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Fields(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("Fields(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

func TestSplitHostPort(t *testing.T) {
	for in, want := range map[string][2]string{
		"192.0.2.1:443":     {"192.0.2.1", "443"},
		"2001:db8::1:51234": {"2001:db8::1", "51234"},
		"[2001:db8::1]:80":  {"2001:db8::1", "80"},
		"-":                 {"", ""},
		"10.0.0.1":          {"10.0.0.1", ""},
	} {
		h, p := splitHostPort(in)
		if h != want[0] || p != want[1] {
			t.Errorf("splitHostPort(%q) = %q, %q; want %q", in, h, p, want)
		}
	}
}

func TestVPCFlowHeaderAndOrder(t *testing.T) {
	header := []byte("version srcaddr dstaddr action log-status pkt-srcaddr flow-direction")
	if !IsHeader(header) {
		t.Fatal("a VPC Flow header is not recognised")
	}
	if IsHeader([]byte("2 123456789010 eni-1 1.2.3.4 5.6.7.8 1 2 6 1 1 1 1 ACCEPT OK")) {
		t.Fatal("a record taken for a header")
	}
	m, err := parseMap(parseVPCFlow, []byte("5 10.0.0.1 10.0.0.2 REJECT OK 192.0.2.9 ingress"), header)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"version": "5", "srcAddr": "10.0.0.1", "dstAddr": "10.0.0.2", "action": "REJECT",
		"status": "OK", "pktSrcAddr": "192.0.2.9", "flowDirection": "ingress"}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %v, want %v", m, want)
	}
	if _, err := parseMap(parseVPCFlow, header, nil); !errors.Is(err, ErrHeader) {
		t.Fatalf("a header line as a record: %v, want ErrHeader", err)
	}
	if _, err := parseMap(parseVPCFlow, []byte("5 10.0.0.1"), header); err == nil {
		t.Fatal("a short record parsed")
	}
}

func TestAuroraObjectWithCommas(t *testing.T) {
	m, err := parseMap(parseAuroraMySQLAudit, []byte(`1,h,u,c,1,2,QUERY,db,'INSERT INTO t VALUES (1,\'x,y\')',0`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if m["object"] != `INSERT INTO t VALUES (1,'x,y')` || m["retCode"] != "0" || m["database"] != "db" {
		t.Fatalf("got %v", m)
	}
}

func TestLookup(t *testing.T) {
	for _, n := range []string{"AWS.ALB", "AWS.VPCFlow", "AWS.S3ServerAccess", "AWS.AuroraMySQLAudit"} {
		if _, err := Lookup(n); err != nil {
			t.Error(err)
		}
	}
	if _, err := Lookup("Nope"); err == nil || !strings.Contains(err.Error(), "AWS.ALB") {
		t.Fatalf("unknown parser error %v should list the known ones", err)
	}
}

const albLine = `https 2026-11-20T23:39:43.945958Z app/my-lb/50dc6c495c0c9188 192.0.2.10:2817 10.0.0.1:80 0.086 0.048 0.037 200 200 0 57 "GET https://www.example.com:443/ HTTP/1.1" "curl/7.46.0" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 "Root=1-58337281-1d84f3d73c47ec4e58577259" "www.example.com" "arn:aws:acm:us-east-2:123456789012:certificate/12345678-1234-1234-1234-123456789012" 1 2026-11-20T23:39:43.859000Z "authenticate,forward" "-" "-" "10.0.0.1:80" "200" "-" "-"`

const vpcLine = `2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK`

const s3Line = `79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be awsexamplebucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE REST.GET.VERSIONING - "GET /awsexamplebucket1?versioning HTTP/1.1" 200 - 113 - 7 - "-" "S3Console/0.4" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader awsexamplebucket1.s3.us-west-1.amazonaws.com TLSV1.2`

// Every native parser must survive any input: an error, never a panic,
// and a result only with string or list-of-string values.
func FuzzNative(f *testing.F) {
	for _, s := range []string{albLine, vpcLine, s3Line, `1764028800123456,db,admin,10.0.1.15,4578,1211,QUERY,payments,'SELECT 1',0`,
		`"`, `[`, `a "b`, "version srcaddr", "- - - -", ",,,,,,,,,"} {
		f.Add([]byte(s), []byte(""))
	}
	f.Add([]byte("3 10.0.0.1"), []byte("version srcaddr"))
	f.Fuzz(func(t *testing.T, line, header []byte) {
		for _, name := range Names() {
			fn, _ := Lookup(name)
			m, err := parseMap(fn, line, header)
			if err != nil {
				continue
			}
			for k, v := range m {
				switch v := v.(type) {
				case string:
					if v == "" || v == "-" {
						t.Fatalf("%s: placeholder %q kept for %s", name, v, k)
					}
				case []any:
					for _, e := range v {
						if _, ok := e.(string); !ok {
							t.Fatalf("%s: %s has a non-string element %T", name, k, e)
						}
					}
				default:
					t.Fatalf("%s: %s is a %T", name, k, v)
				}
			}
		}
	})
}

func BenchmarkALB(b *testing.B)     { benchNative(b, "AWS.ALB", albLine) }
func BenchmarkVPCFlow(b *testing.B) { benchNative(b, "AWS.VPCFlow", vpcLine) }
func BenchmarkS3(b *testing.B)      { benchNative(b, "AWS.S3ServerAccess", s3Line) }

func benchNative(b *testing.B, name, line string) {
	fn, _ := Lookup(name)
	raw := []byte(line)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	var rec Record
	for b.Loop() {
		rec.Reset()
		if err := fn(&rec, raw, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// spaceFields splits as strings.Fields does, whatever white space or bytes
// the line holds: tabs, runs of spaces, Unicode spaces, invalid UTF-8.
func FuzzSpaceFields(f *testing.F) {
	for _, s := range []string{vpcLine, albLine, "", " ", "a", "  a  b  ", "a\tb", "a\u00a0b c", "a\x85b", "\xff\xfe x",
		"12345678 12345678", "1234567\x1f", "a\x7fb c", "123456789abcdef\x1f", "12345678\x80bcdefgh x", "0123456789abcdef0123456789abcde\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var rec Record
		got := rec.spaceFields([]byte(s))
		if want := strings.Fields(s); !slices.Equal(got, want) {
			t.Fatalf("spaceFields(%q) = %q, want %q", s, got, want)
		}
		plain := true
		for i := 0; i < len(s); i++ {
			plain = plain && s[i] >= 0x20 && s[i] < 0x80
		}
		if printableASCII([]byte(s)) != plain {
			t.Fatalf("printableASCII(%q) = %v", s, !plain)
		}
	})
}

func TestTrimBracketsIsTrim(t *testing.T) {
	for _, s := range []string{"", "[", "]", "[]", "[::1]", "[[::1]]", "]x[", "x]", "[x", "10.0.0.1", "a[b]c", "[a]b"} {
		if got, want := TrimBrackets(s), strings.Trim(s, "[]"); got != want {
			t.Errorf("TrimBrackets(%q) = %q, strings.Trim %q", s, got, want)
		}
	}
}

// firstFields splits as strings.Fields does: by spaces alone in a plain
// (printable ASCII) text, by any Unicode white space otherwise.
func TestFirstFieldsSplitsAsFields(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	printable, anyText := []string{" ", "  ", "a", "GET", "/x?y=1", "-"}, []string{" ", "\t", "\n", "\u0085", "\u00a0", "é", "a", "-"}
	for range 20000 {
		plain := rng.IntN(2) == 0
		pool := anyText
		if plain {
			pool = printable
		}
		var sb strings.Builder
		for range rng.IntN(9) {
			sb.WriteString(pool[rng.IntN(len(pool))])
		}
		s := sb.String()
		got, n := firstFields(s, plain)
		want := strings.Fields(s)
		if n != len(want) {
			t.Fatalf("firstFields(%q, %v): %d fields, want %d", s, plain, n, len(want))
		}
		for i := 0; i < min(n, 3); i++ {
			if got[i] != want[i] {
				t.Fatalf("firstFields(%q, %v) = %q, want %q", s, plain, got, want)
			}
		}
	}
}
