package parse

import (
	"bytes"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// Each hand-written indicator matcher agrees with the regular expression
// it replaced, on random strings made of the characters that matter to it.
func TestIndicatorMatchersAgreeWithTheirExpressions(t *testing.T) {
	var (
		accountIDRe  = regexp.MustCompile(`^\d{12}$`)
		instanceIDRe = regexp.MustCompile(`\bi-[0-9a-f]{8}(?:[0-9a-f]{9})?\b`)
		md5Re        = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
		sha1Re       = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
		macRe        = regexp.MustCompile(`^[0-9A-Fa-f]{2}(?:[-:][0-9A-Fa-f]{2}){5}$|^[0-9A-Fa-f]{12}$`)
		emailRe      = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	)
	rng := rand.New(rand.NewPCG(7, 8))
	gen := func(alphabet string, maxLen int, seeds ...string) string {
		if len(seeds) > 0 && rng.IntN(3) == 0 {
			s := []byte(seeds[rng.IntN(len(seeds))])
			for range rng.IntN(3) { // mutate a seed
				if len(s) > 0 {
					s[rng.IntN(len(s))] = alphabet[rng.IntN(len(alphabet))]
				}
			}
			return string(s)
		}
		b := make([]byte, rng.IntN(maxLen+1))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 200000 {
		s := gen("0123456789a", 14, "123456789012")
		if got, want := isDigits(s, 12), accountIDRe.MatchString(s); got != want {
			t.Fatalf("account id %q: %v, want %v", s, got, want)
		}
		s = gen("i-0123456789abcdefgA_/: .", 40, "i-0abc1234", "i-0abc1234def567890", "x/i-0abc1234def567890/y", "ai-0abc1234 i-12345678")
		if got, want := findInstanceID(s), instanceIDRe.FindString(s); got != want {
			t.Fatalf("instance id in %q: %q, want %q", s, got, want)
		}
		s = gen("0123456789abcdefABCDEFg", 41, "d41d8cd98f00b204e9800998ecf8427e", "da39a3ee5e6b4b0d3255bfef95601890afd80709")
		if got, want := isHex(s, 32), md5Re.MatchString(s); got != want {
			t.Fatalf("md5 %q: %v, want %v", s, got, want)
		}
		if got, want := isHex(s, 40), sha1Re.MatchString(s); got != want {
			t.Fatalf("sha1 %q: %v, want %v", s, got, want)
		}
		s = gen("0aF-:g", 18, "00:1a:2B-3c:4d:5e", "001a2b3c4d5e")
		if got, want := isMAC(s), macRe.MatchString(s); got != want {
			t.Fatalf("mac %q: %v, want %v", s, got, want)
		}
		s = gen("ab@. \t\v\n_", 10, "a@b.c", "alice@example.com", "a.b@c")
		if got, want := isEmail(s), emailRe.MatchString(s); got != want {
			t.Fatalf("email %q: %v, want %v", s, got, want)
		}
	}
}

// The ARN and IP indicators agree with the plain forms they replaced
// (strings.SplitN and FieldsFunc; netip's canonical text for every
// address).
func TestARNAndIPIndicatorsAgreeWithPlainForms(t *testing.T) {
	referenceARN := func(v string) []indicator {
		ix := NewIndicators()
		parts := strings.SplitN(v, ":", 6)
		if !strings.HasPrefix(v, "arn:") || len(parts) < 6 {
			return ix.found
		}
		ix.put(anyAWSARNs, v)
		if isDigits(parts[4], 12) {
			ix.put(anyAWSAccountIDs, parts[4])
		}
		if id := findInstanceID(parts[5]); id != "" {
			ix.put(anyAWSInstanceIDs, id)
		}
		for _, seg := range strings.FieldsFunc(parts[5], func(r rune) bool { return r == '/' || r == ':' }) {
			if isEmail(seg) {
				ix.put(anyEmails, strings.ToLower(seg))
			}
		}
		return ix.found
	}
	rng := rand.New(rand.NewPCG(9, 10))
	seeds := []string{"arn:aws:iam::123456789012:user/Alice", "arn:aws:sts::123456789012:assumed-role/R/Bob@Example.com",
		"arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234def567890", "arn:aws:s3:::bucket/a//b::c@d.e:/", "arn:::::"}
	for range 100000 {
		s := []byte(seeds[rng.IntN(len(seeds))])
		for range rng.IntN(4) {
			s[rng.IntN(len(s))] = ":/@.a1"[rng.IntN(6)]
		}
		ix := NewIndicators()
		ix.arn(string(s), true)
		if want := referenceARN(string(s)); !slices.Equal(ix.found, want) {
			t.Fatalf("%q: %v, want %v", s, ix.found, want)
		}
	}
	referenceHostOrIP := func(v string) []indicator {
		ix := NewIndicators()
		v = strings.Trim(v, "[]")
		if a, err := netip.ParseAddr(v); err == nil {
			ix.put(anyIPAddresses, a.Unmap().String())
		} else if strings.Contains(v, ".") && !strings.ContainsAny(v, " /\\@") {
			ix.put(anyDomainNames, strings.ToLower(strings.TrimSuffix(v, ".")))
		}
		return ix.found
	}
	hosts := []string{"10.0.0.1", "[2001:db8::1]", "fe80::1%eth0", "www.Example.com.", "1.2.3", "::ffff:1.2.3.4", "a b.c"}
	for range 100000 {
		s := []byte(hosts[rng.IntN(len(hosts))])
		for range rng.IntN(3) {
			s[rng.IntN(len(s))] = "0.:a%[ "[rng.IntN(7)]
		}
		ix := NewIndicators()
		ix.hostOrIP(string(s))
		if want := referenceHostOrIP(string(s)); !slices.Equal(ix.found, want) {
			t.Fatalf("host %q: %v, want %v", s, ix.found, want)
		}
	}
	for range 100000 {
		var a netip.Addr
		if rng.IntN(2) == 0 {
			a = netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), 0, byte(rng.IntN(3))})
		} else {
			var b [16]byte
			for i := range b {
				b[i] = byte(rng.IntN(3))
			}
			a = netip.AddrFrom16(b)
		}
		for _, text := range []string{a.String(), strings.ToUpper(a.StringExpanded())} {
			p, err := netip.ParseAddr(text)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := ipString(p, text), p.Unmap().String(); got != want {
				t.Fatalf("%q: %q, want %q", text, got, want)
			}
		}
	}
}

// The indicator fields are written in name order, which sorting by
// anyField gives only while the constants follow the names; and they are
// the standard fields.
func TestAnyFieldsInNameOrder(t *testing.T) {
	names := anyFieldNames[:]
	if !slices.IsSorted(names) {
		t.Fatalf("anyField constants are not in name order: %v", names)
	}
	want := slices.Sorted(slices.Values(envelope.IndicatorFields))
	if !slices.Equal(names, want) {
		t.Fatalf("indicator fields %v, want the standard %v", names, want)
	}
}

// simpleURLHost gives url.Parse's host whenever it decides without it.
func TestSimpleURLHostAgreesWithURLParse(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	seeds := []string{"https://www.example.com:443/path?q=1#frag", "http://10.0.0.1/", "http://h", "https://a_b.example.com:/x",
		"http://user@host/", "https://[2001:db8::1]:443/", "http://host:8080:1/", "HTTP://Example.COM/", "http://h/a%20b",
		"http://h\\x/", "https://~h.-/?#", "http:///path", "http://h/é"}
	decided := 0
	for range 200000 {
		s := []byte(seeds[rng.IntN(len(seeds))])
		for range rng.IntN(3) {
			const alphabet = ":/?#@%[]\\ .a1-_\x7f\x01"
			s[rng.IntN(len(s))] = alphabet[rng.IntN(len(alphabet))]
		}
		host, ok := simpleURLHost(string(s))
		if !ok {
			continue
		}
		decided++
		u, err := url.Parse(string(s))
		if err != nil || u.Hostname() != host {
			t.Fatalf("%q: simpleURLHost %q, url.Parse %v (%v)", s, host, u, err)
		}
	}
	if decided < 20000 {
		t.Fatalf("decided only %d of 200000 without url.Parse", decided)
	}
}

// A search value typed by hand is looked for as the parser stores it.
func TestStoredForm(t *testing.T) {
	for _, tc := range []struct{ column, in, want string }{
		{"p_any_md5_hashes", "D41D8CD98F00B204E9800998ECF8427E", "d41d8cd98f00b204e9800998ecf8427e"},
		{"p_any_sha256_hashes", " E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855 ", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"p_any_domain_names", "Evil.Example.COM.", "evil.example.com"},
		{"p_any_emails", "Alice@Example.com", "alice@example.com"},
		{"p_any_mac_addresses", "0A:1B:2C:3D:4E:5F", "0a:1b:2c:3d:4e:5f"},
		{"p_any_ip_addresses", "::ffff:198.51.100.7", "198.51.100.7"},
		{"p_any_ip_addresses", "2001:DB8::0:1", "2001:db8::1"},
		{"p_any_aws_arns", "arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:root"},
		{"p_any_usernames", "Bob", "Bob"},
	} {
		if got, ok := StoredForm(tc.column, tc.in); !ok || got != tc.want {
			t.Errorf("%s %q: %q %v, want %q", tc.column, tc.in, got, ok, tc.want)
		}
	}
	for _, tc := range []struct{ column, in string }{
		{"p_any_domain_names", "198.51.100.7"}, {"p_any_md5_hashes", "xyz"}, {"p_any_ip_addresses", "example.com"},
	} {
		if got, ok := StoredForm(tc.column, tc.in); ok {
			t.Errorf("%s %q: stored as %q, want not at all", tc.column, tc.in, got)
		}
	}
}

// A value added as plain writes its indicators exactly as one added
// without that knowledge, which looks at every byte to escape: whatever
// Add derives from a plain value (pieces, lower case, an address's text,
// a URL's host, unescaped by url.Parse) needs no escaping either.
func TestPlainIndicatorsWriteAsEscaped(t *testing.T) {
	kinds := []string{"ip", "domain", "url", "net_addr", "md5", "aws_arn", "aws_account_id", "aws_instance_id",
		"aws_tag", "trace_id", "actor_id", "username", "email", "mac"}
	values := []string{"192.0.2.10", "2001:DB8::1", "[2001:db8::2]:443", "10.0.0.1:80", "WWW.Example.COM.",
		"https://www.example.com:443/p?q=1", "http://a%22b.example.com/", "http://%5C.example.com/", "http://ex%41mple.com/", "http://ex%FFample.com/", "http://caf%C3%A9.example.com/",
		"https://user@host.example.com/", "http://[::ffff:192.0.2.1]/", "arn:aws:iam::123456789012:user/Bob@Example.com",
		"arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0", "D41D8CD98F00B204E9800998ECF8427E",
		"AA:BB:CC:DD:EE:FF", "Bob@Example.COM", "Root=1-58337281-1d84f3d73c47ec4e58577259", "a\"b", `c\d`, "é.example.com"}
	rng := rand.New(rand.NewPCG(9, 10))
	for range 2000 {
		var plain, escaped Indicators
		for range 1 + rng.IntN(6) {
			v := values[rng.IntN(len(values))]
			i := rng.IntN(len(kinds))
			k := kinds[i : i+1+rng.IntN(min(3, len(kinds)-i))]
			isPlain := isASCII(v) && string(envelope.AppendString(nil, v)) == `"`+v+`"`
			plain.AddPlain(k, v, isPlain)
			escaped.Add(k, v)
		}
		got := plain.appendFields(nil)
		if want := escaped.appendFields(nil); string(got) != string(want) {
			t.Fatalf("added as plain:\n%s\nadded as not:\n%s", got, want)
		}
		// And it is the JSON of the values themselves.
		var decoded map[string][]string
		if err := json.Unmarshal(append(append([]byte("{"), bytes.TrimPrefix(got, []byte(","))...), '}'), &decoded); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		if want := plain.Fields(); len(want) > 0 && !reflect.DeepEqual(decoded, want) {
			t.Fatalf("written %v, found %v", decoded, want)
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// appendFields writes the fields in name order, each field's values sorted
// and once, as Fields gives them: for a few indicators and for many.
func TestIndicatorsWrittenAsFields(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	kinds := []string{"ip", "domain", "aws_account_id", "trace_id", "username", "md5"}
	for range 500 {
		var ix Indicators
		for range rng.IntN(400) {
			k := kinds[rng.IntN(len(kinds))]
			var v string
			switch k {
			case "ip":
				v = netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(3)), byte(rng.IntN(50))}).String()
			case "domain":
				v = string(rune('a'+rng.IntN(26))) + ".example.com"
			case "aws_account_id":
				v = strings.Repeat(string(rune('0'+rng.IntN(10))), 12)
			case "md5":
				v = strings.Repeat(string(rune('a'+rng.IntN(6))), 32)
			default:
				v = string(rune('A' + rng.IntN(26)))
			}
			ix.AddPlain([]string{k}, v, true)
		}
		got := ix.appendFields(nil)
		var decoded map[string][]string
		if err := json.Unmarshal(append(append([]byte("{"), bytes.TrimPrefix(got, []byte(","))...), '}'), &decoded); err != nil {
			t.Fatalf("%s: %v", got, err)
		}
		want := ix.Fields()
		if len(want) > 0 && !reflect.DeepEqual(decoded, want) {
			t.Fatalf("written %v, want %v", decoded, want)
		}
		names := slices.Collect(maps.Keys(want))
		slices.Sort(names)
		last := -1
		for _, name := range names {
			at := bytes.Index(got, []byte(`"`+name+`"`))
			if at < last {
				t.Fatalf("%s written before the field ahead of it: %s", name, got)
			}
			last = at
		}
	}
}

// isIPv4 is netip.ParseAddr reading an IPv4 address, for text near one.
func TestIsIPv4IsParseAddr(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	texts := []string{"", ".", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04",
		"1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ", "::ffff:1.2.3.4", "1.2.3.4%eth0", "999.1.1.1", "1.2.3.4:80"}
	for range 200000 {
		b := make([]byte, rng.IntN(17))
		for i := range b {
			b[i] = "0123456789.....:"[rng.IntN(16)]
			if rng.IntN(3) == 0 {
				b[i] = "0125."[rng.IntN(5)]
			}
		}
		texts = append(texts, string(b))
	}
	for _, s := range texts {
		a, err := netip.ParseAddr(s)
		if want := err == nil && a.Is4(); isIPv4(s) != want {
			t.Fatalf("isIPv4(%q) = %v, netip: %v %v", s, !want, a, err)
		}
	}
}

// netAddrHost is the host that netip.ParseAddrPort reads, or else the text
// before a sole colon, or else the text.
func TestNetAddrHost(t *testing.T) {
	reference := func(v string) string {
		if ap, err := netip.ParseAddrPort(v); err == nil {
			return ap.Addr().String()
		} else if i := strings.LastIndexByte(v, ':'); i > 0 && !strings.Contains(v[:i], ":") {
			return v[:i]
		}
		return v
	}
	rng := rand.New(rand.NewPCG(17, 18))
	seeds := []string{"10.0.0.1:80", "[2001:db8::1]:443", "[1.2.3.4]:80", "1.2.3.4%eth0:80", "[fe80::1%eth0]:8080", "host.example.com:22",
		":80", "1.2.3.4:", "1.2.3.4:99999", "01.2.3.4:80", "::1", "10.0.0.1"}
	for range 100000 {
		s := []byte(seeds[rng.IntN(len(seeds))])
		for range rng.IntN(3) {
			s[rng.IntN(len(s))] = "0:.[]a%"[rng.IntN(7)]
		}
		if got, want := netAddrHost(string(s)), reference(string(s)); got != want {
			t.Fatalf("netAddrHost(%q) = %q, want %q", s, got, want)
		}
	}
}

// Every indicator kind a schema may list (schema.IndicatorKinds, which lint
// checks schemas against) fills some p_any_* field from a value of its kind.
func TestEveryIndicatorKindIsHandled(t *testing.T) {
	sample := map[string]string{
		"ip": "192.0.2.1", "domain": "example.com", "hostname": "host.example.com", "url": "https://example.com/x",
		"net_addr": "192.0.2.1:443", "md5": strings.Repeat("a", 32), "sha1": strings.Repeat("a", 40), "sha256": strings.Repeat("a", 64),
		"aws_arn": "arn:aws:iam::123456789012:user/bob", "aws_arn_only": "arn:aws:iam::123456789012:user/bob",
		"aws_account_id": "123456789012", "aws_instance_id": "i-0abc1234def567890", "aws_tag": "env:prod",
		"trace_id": "1-5f84c7a5-9b6c2e1d", "actor_id": "u-1", "username": "bob", "email": "bob@example.com", "mac": "00:1a:2b:3c:4d:5e",
	}
	for _, kind := range schema.IndicatorKinds {
		v, ok := sample[kind]
		if !ok {
			t.Errorf("no sample for indicator kind %q", kind)
			continue
		}
		ix := NewIndicators()
		ix.Add([]string{kind}, v)
		if len(ix.Fields()) == 0 {
			t.Errorf("indicator kind %q filled nothing from %q", kind, v)
		}
	}
}
