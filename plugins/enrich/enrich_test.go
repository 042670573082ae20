package enrich

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/minio/minio-go/v7"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/lake/laketest"
)

func TestCIDRLongestPrefix(t *testing.T) {
	var b CIDRBuilder
	for i, p := range []string{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "0.0.0.0/0", "2001:db8::/32", "2001:db8:bad::/48", "192.0.2.7/32"} {
		b.Add(netip.MustParsePrefix(p), i)
	}
	c := b.Index()
	for _, tc := range []struct {
		ip   string
		want int
	}{
		{"10.1.2.3", 2}, {"10.1.9.9", 1}, {"10.200.0.1", 0}, {"8.8.8.8", 3}, {"::ffff:10.1.2.3", 2},
		{"2001:db8:bad::1", 5}, {"2001:db8:1::1", 4}, {"192.0.2.7", 6}, {"192.0.2.8", 3},
	} {
		got, ok := c.Lookup(netip.MustParseAddr(tc.ip))
		if !ok || got != tc.want {
			t.Errorf("%s → %d %v, want %d", tc.ip, got, ok, tc.want)
		}
	}
	var v6only CIDRBuilder
	v6only.Add(netip.MustParsePrefix("2001:db8::/32"), 0)
	if _, ok := v6only.Index().Lookup(netip.MustParseAddr("10.0.0.1")); ok {
		t.Error("an IPv4 address matched an IPv6-only table")
	}
}

// Prefixes at the ends of the address spaces (whose ranges end at the
// last address), nested ones ending together, and IPv4-mapped prefixes
// (of /96 and longer: IPv4; shorter: IPv6, which IPv4 addresses are not).
func TestCIDREdges(t *testing.T) {
	var b CIDRBuilder
	for i, p := range []string{
		"255.255.255.255/32", "255.255.255.0/24", "255.0.0.0/8", "0.0.0.0/32",
		"::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", "ffff:ffff:ffff:ffff::/64",
		"::ffff:192.0.2.0/120", "::ffff:0:0/95", "2001:db8::/32", "2001:db8::/32",
	} {
		b.Add(netip.MustParsePrefix(p), i)
	}
	c := b.Index()
	for _, tc := range []struct {
		ip   string
		want int // -1: none
	}{
		{"255.255.255.255", 0}, {"255.255.255.254", 1}, {"255.255.254.255", 2}, {"254.255.255.255", -1},
		{"0.0.0.0", 3}, {"0.0.0.1", -1}, {"192.0.2.9", 7}, {"::ffff:192.0.2.9", 7}, {"192.0.3.1", -1},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 5}, {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 6},
		{"ffff:ffff:ffff:fffe::1", 4}, {"::", 4}, {"2001:db8::1", 10}, {"2001:db9::", 4},
	} {
		got, ok := c.Lookup(netip.MustParseAddr(tc.ip))
		if !ok {
			got = -1
		}
		if got != tc.want {
			t.Errorf("%s → %d, want %d", tc.ip, got, tc.want)
		}
	}
}

// The index agrees with a linear longest-prefix scan on random, heavily
// overlapping prefixes of every length (IPv4 below and above /16, IPv6),
// including equal prefixes inserted twice (the later value wins).
func TestCIDRIndexMatchesLinearScan(t *testing.T) {
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	var b CIDRBuilder
	var prefixes []netip.Prefix
	values := map[netip.Prefix]int{}
	addr := func(v6 bool) netip.Addr {
		if v6 {
			var b [16]byte
			b[0], b[1], b[2] = 0x20, 0x01, byte(rng.IntN(4))
			b[15] = byte(rng.IntN(256))
			return netip.AddrFrom16(b)
		}
		// Mostly few distinct high bytes, so prefixes nest and overlap;
		// sometimes anywhere, so addresses also fall outside every /16
		// that holds longer prefixes.
		near := func(base, n int) byte {
			if rng.IntN(5) == 0 {
				return byte(rng.IntN(256))
			}
			return byte(base + rng.IntN(n))
		}
		return netip.AddrFrom4([4]byte{near(10, 3), near(0, 4), near(0, 4), byte(rng.IntN(256))})
	}
	for i := 0; i < 3000; i++ {
		v6 := rng.IntN(4) == 0
		bits := rng.IntN(33)
		if v6 {
			bits = rng.IntN(129)
		}
		p := netip.PrefixFrom(addr(v6), bits).Masked()
		b.Add(p, i)
		if _, seen := values[p]; !seen {
			prefixes = append(prefixes, p)
		}
		values[p] = i
	}
	c := b.Index()
	for i := 0; i < 20000; i++ {
		a := addr(rng.IntN(4) == 0)
		want, wantOK, best := 0, false, -1
		for _, p := range prefixes {
			if p.Contains(a) && p.Bits() > best {
				want, wantOK, best = values[p], true, p.Bits()
			}
		}
		if got, ok := c.Lookup(a); got != want || ok != wantOK {
			t.Fatalf("%s: got %d %v, want %d %v (longest prefix /%d)", a, got, ok, want, wantOK, best)
		}
	}
}

func writeTable(t testing.TB, dir, name, def, data, dataFile string) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, name+".yml"), []byte(def), 0o644)
	os.WriteFile(filepath.Join(dir, dataFile), []byte(data), 0o644)
}

func TestEnrichStringAndCIDRTablesWithArrays(t *testing.T) {
	dir := t.TempDir()
	writeTable(t, dir, "accounts", `name: accounts
primary_key: id
data: accounts.jsonl
associations:
  AWS.CloudTrail: [recipientAccountId, "resources[*].accountId"]
`, `{"id":"111122223333","env":"prod"}
{"id":"444455556666","env":"dev"}
`, "accounts.jsonl")
	writeTable(t, dir, "bad", `name: bad
primary_key: cidr
key_type: cidr
data: bad.csv
associations:
  AWS.CloudTrail: [p_any_ip_addresses]
`, "cidr,reason\n203.0.113.0/24,scanner\n2001:db8::/32,v6 scanner\n", "bad.csv")
	set, err := LoadSet(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	ev := map[string]any{
		"p_log_type":         "AWS.CloudTrail",
		"recipientAccountId": "111122223333",
		"resources":          []any{map[string]any{"accountId": "444455556666"}, map[string]any{"accountId": "999999999999"}},
		"p_any_ip_addresses": []string{"10.0.0.1", "203.0.113.9", "2001:db8::5"},
	}
	if !set.Enrich(ev) {
		t.Fatal("no enrichment")
	}
	enr := ev["p_enrichment"].(map[string]any)
	acc := enr["accounts"].(map[string]any)
	if acc["recipientAccountId"].(map[string]any)["env"] != "prod" {
		t.Errorf("string hit: %v", acc)
	}
	if acc["resources[*].accountId"].(map[string]any)["env"] != "dev" {
		t.Errorf("array path hit: %v", acc)
	}
	ips, ok := enr["bad"].(map[string]any)["p_any_ip_addresses"].([]any)
	if !ok || len(ips) != 2 {
		t.Fatalf("two CIDR hits (v4 and v6) expected: %v", enr["bad"])
	}
	if set.Lookup("bad", "203.0.113.200").(map[string]any)["reason"] != "scanner" || set.Lookup("bad", "198.51.100.1") != nil || set.Lookup("nope", "x") != nil {
		t.Error("rule lookup() helper")
	}
	other := map[string]any{"p_log_type": "AWS.ALB", "recipientAccountId": "111122223333"}
	if set.Enrich(other) {
		t.Error("a log type without associations was enriched")
	}

	// The process stage enriches events as JSON: decoding only the keys the
	// associations read and appending p_enrichment must give what the map
	// path gives, for a hit, a miss, an empty event and one enriched before.
	for _, in := range []string{
		`{"p_log_type":"AWS.CloudTrail","recipientAccountId":"111122223333","eventName":"X","resources":[{"accountId":"444455556666"}],"p_any_ip_addresses":["203.0.113.9","2001:db8::5"],"n":1.5}`,
		`{"p_log_type":"AWS.CloudTrail","recipientAccountId":"000000000000"}`,
		`{"p_log_type":"AWS.ALB","recipientAccountId":"111122223333"}`,
		` {"p_log_type":"AWS.CloudTrail","p_any_ip_addresses":["203.0.113.1"]} `,
		`{"p_log_type":"AWS.CloudTrail","recipientAccountId":"111122223333","p_enrichment":{"other":{"x":{"y":1}}}}`,
	} {
		full, err := envelope.DecodeEvent([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		added := set.Enrich(full)
		out, err := set.EnrichJSON([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if (out != nil) != added {
			t.Fatalf("%s: EnrichJSON gave %s, map path added %v", in, out, added)
		}
		if out == nil {
			continue
		}
		got, err := envelope.DecodeObject(out)
		if err != nil {
			t.Fatalf("%s: invalid JSON %s: %v", in, out, err)
		}
		if n := bytes.Count(out, []byte(`"p_enrichment"`)); n != 1 {
			t.Errorf("%s: p_enrichment %d times in %s", in, n, out)
		}
		want, _ := envelope.DecodeObject(must(envelope.EncodeEvent(full)))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %s\nwant %v", in, out, want)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestRefreshSwapsAndKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	writeTable(t, dir, "t", "name: t\nprimary_key: k\ndata: t.csv\nrefresh: 1h\n", "k,v\na,1\n", "t.csv")
	defs, err := LoadDefs(dir)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := NewTable(context.Background(), defs[0])
	if err != nil {
		t.Fatal(err)
	}
	old := tab.Index()
	if old.Get("a")["v"] != "1" {
		t.Fatal("first load")
	}
	os.WriteFile(filepath.Join(dir, "t.csv"), []byte("k,v\na,2\nb,3\n"), 0o644)
	if err := tab.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tab.Index().Get("a")["v"] != "2" || tab.Index().Get("b") == nil || old.Get("a")["v"] != "1" {
		t.Fatal("refresh must swap in a new index and leave the old one intact for readers")
	}
	same := tab.Index()
	if err := tab.Refresh(context.Background()); err != nil || tab.Index() != same {
		t.Fatal("unchanged data must not rebuild the index")
	}
	os.WriteFile(filepath.Join(dir, "t.csv"), []byte("k,v\n\"broken\n"), 0o644)
	if err := tab.Refresh(context.Background()); err == nil {
		t.Fatal("bad data must fail the refresh")
	}
	if tab.Index() != same {
		t.Fatal("a failed refresh must keep the last good index")
	}
}

func TestBadDefinitionsAndData(t *testing.T) {
	for _, def := range []string{
		"name: x\ndata: y.csv\n",                                  // no primary key
		"name: x\nprimary_key: k\ndata: y.csv\nkey_type: regex\n", // bad key type
		"name: x\nprimary_key: k\ndata: y.csv\nfrmat: csv\n",      // unknown key
		"name: x\nprimary_key: k\ndata: ftp://h/y.csv\n",          // unsupported scheme
		"name: x\nprimary_key: k\ndata: y.csv\nrefresh: -5m\n",    // refreshing would silently stop
	} {
		d, err := ParseDef("x.yml", []byte(def))
		if err == nil {
			_, err = OpenSource(d.Data)
		}
		if err == nil {
			t.Errorf("accepted %q", def)
		}
	}
	if _, err := Build(&Def{Name: "c", PrimaryKey: "k", KeyType: "cidr"}, []map[string]any{{"k": "not-a-cidr"}}, ""); err == nil {
		t.Error("a bad CIDR key was accepted")
	}
	for _, data := range []string{`{"not":"an array"}`, `[{"k":"a"}] [{"k":"b"}]`, `[{"k":"a"},`, `[1]`, ``} {
		if _, err := Load(&Def{Name: "j", PrimaryKey: "k", Format: "json"}, []byte(data), ""); err == nil {
			t.Errorf("json %q was accepted as rows", data)
		}
	}
}

func TestHTTPSourceUsesETag(t *testing.T) {
	var gets, notModified atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		gets.Add(1)
		w.Header().Set("ETag", `"v1"`)
		w.Write([]byte(`[{"k":"a","v":1}]`))
	}))
	defer srv.Close()
	tab, err := NewTable(context.Background(), &Def{Name: "h", PrimaryKey: "k", KeyType: "string", Format: "json", Data: srv.URL + "/t.json"})
	if err != nil {
		t.Fatal(err)
	}
	if err := tab.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if gets.Load() != 1 || notModified.Load() != 1 || tab.Index().Get("a") == nil {
		t.Fatalf("gets %d, 304s %d", gets.Load(), notModified.Load())
	}
}

// A feed's API key travels in its URL: a failed fetch's error, which
// goes to the logs and a SYSTEM_ERROR alert, names the host only.
func TestHTTPSourceErrorsWithholdTheKey(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	for _, data := range []string{srv.URL + "/ips.csv?apikey=s3cr3t", "http://127.0.0.1:1/ips.csv?apikey=s3cr3t"} {
		_, err := NewTable(context.Background(), &Def{Name: "feed", PrimaryKey: "k", KeyType: "string", Format: "csv", Data: data})
		if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "/…") {
			t.Errorf("fetching %s: %v, want an error naming the host only", data, err)
		}
	}
	srv.Close()
	if shown := shownData("https://feed.example.com/ips.csv?apikey=s3cr3t"); shown != "https://feed.example.com/…" {
		t.Errorf("the SYSTEM_ERROR's data: %q", shown)
	}
}

func TestS3SourceMinIO(t *testing.T) {
	_, bucket := laketest.MinIO(t, "caracal-lookup")
	src, err := newS3Source("s3://" + bucket + "/tables/bad.csv")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(s string) {
		if _, err := src.client.PutObject(ctx, bucket, "tables/bad.csv", strings.NewReader(s), int64(len(s)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("cidr,reason\n203.0.113.0/24,one\n")
	tab, err := NewTable(ctx, &Def{Name: "s3", PrimaryKey: "cidr", KeyType: "cidr", Format: "csv", Data: "s3://" + bucket + "/tables/bad.csv"})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Index().Get("203.0.113.5")["reason"] != "one" {
		t.Fatal("first load from S3")
	}
	put("cidr,reason\n203.0.113.0/24,two\n")
	if err := tab.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if tab.Index().Get("203.0.113.5")["reason"] != "two" {
		t.Fatal("refresh from S3")
	}
}

func randomPrefixes(n int) []netip.Prefix {
	out := make([]netip.Prefix, n)
	var b [4]byte
	for i := range out {
		rand.Read(b[:])
		bits := 16 + int(b[3])%17 // /16 to /32
		out[i] = netip.PrefixFrom(netip.AddrFrom4(b), bits).Masked()
	}
	return out
}

func BenchmarkCIDRLookup1M(b *testing.B) {
	prefixes := randomPrefixes(1_000_000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var c CIDRBuilder
	for i, p := range prefixes {
		c.Add(p, i)
	}
	ix := c.Index()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(prefixes)
	addrs := make([]netip.Addr, 4096)
	for i := range addrs {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], uint32(i)*2654435761)
		addrs[i] = netip.AddrFrom4(a)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ix.Lookup(addrs[i%len(addrs)])
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "MB/1M-prefixes")
}

func BenchmarkStringLookup1M(b *testing.B) {
	rows := make([]map[string]any, 1_000_000)
	for i := range rows {
		rows[i] = map[string]any{"k": fmt.Sprintf("%012d", i), "v": "x"}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ix, err := Build(&Def{Name: "s", PrimaryKey: "k", KeyType: "string"}, rows, "")
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = fmt.Sprintf("%012d", i*241)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ix.Get(keys[i%len(keys)])
	}
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "MB-index+rows/1M-keys")
}

func BenchmarkEnrichEvent(b *testing.B) {
	dir := b.TempDir()
	var csv bytes.Buffer
	csv.WriteString("cidr,reason\n")
	for _, p := range randomPrefixes(100_000) {
		fmt.Fprintf(&csv, "%s,x\n", p)
	}
	os.WriteFile(filepath.Join(dir, "t.csv"), csv.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "t.yml"), []byte("name: t\nprimary_key: cidr\nkey_type: cidr\ndata: t.csv\nassociations:\n  AWS.CloudTrail: [sourceIPAddress, p_any_ip_addresses]\n"), 0o644)
	set, err := LoadSet(context.Background(), dir)
	if err != nil {
		b.Fatal(err)
	}
	ev := map[string]any{"p_log_type": "AWS.CloudTrail", "sourceIPAddress": "10.1.2.3", "p_any_ip_addresses": []string{"10.1.2.3", "198.51.100.4"}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		delete(ev, "p_enrichment")
		set.Enrich(ev)
	}
}

// GeoIP / ASN from a MaxMind-format database the test builds itself.
func TestMMDBTable(t *testing.T) {
	dir := t.TempDir()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "Caracal-Test-ASN", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, asn := range map[string]uint32{"203.0.113.0/24": 64500, "2001:db8::/32": 64501} {
		_, n, _ := net.ParseCIDR(cidr)
		if err := tree.Insert(n, mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(asn),
			"autonomous_system_organization": mmdbtype.String(fmt.Sprintf("Example AS%d", asn)),
		}); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := os.Create(filepath.Join(dir, "asn.mmdb"))
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.WriteFile(filepath.Join(dir, "asn.yml"), []byte("name: asn\ndescription: ASN of every IP\ndata: asn.mmdb\n"), 0o644)
	set, err := LoadSet(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	ev := map[string]any{"p_log_type": "AWS.VPCFlow", "p_any_ip_addresses": []any{"203.0.113.7", "198.51.100.1"}}
	if !set.Enrich(ev) {
		t.Fatal("no ASN enrichment (mmdb tables associate p_any_ip_addresses of every log type)")
	}
	row := ev["p_enrichment"].(map[string]any)["asn"].(map[string]any)["p_any_ip_addresses"].(map[string]any)
	if fmt.Sprint(row["autonomous_system_number"]) != "64500" || row["autonomous_system_organization"] != "Example AS64500" {
		t.Fatalf("asn row %v", row)
	}
	if set.Lookup("asn", "2001:db8::9").(map[string]any)["autonomous_system_organization"] != "Example AS64501" || set.Lookup("asn", "10.0.0.1") != nil {
		t.Fatal("mmdb lookup()")
	}
}

// BenchmarkEnrichJSON is the process stage's enrichment of one CloudTrail
// event as the parse stage hands it on (1.3 KB with its p_* fields), with
// the shipped lookup tables: most events hit no row.
func BenchmarkEnrichJSON(b *testing.B) {
	set, err := LoadSet(context.Background(), "../../lookups")
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile("../../testdata/cloudtrail/root_console_login.json")
	if err != nil {
		b.Fatal(err)
	}
	ev := append(bytes.TrimSpace(raw)[:len(bytes.TrimSpace(raw))-1:len(bytes.TrimSpace(raw))-1],
		`,"p_log_type":"AWS.CloudTrail","p_event_time":"2026-11-23T21:04:05Z","p_parse_time":"2026-11-23T21:04:06.123456789Z",`+
			`"p_row_id":"0b8f2e3c4d5a6b7c8d9e0f1a2b3c4d5e","p_source_id":"demo","p_source_label":"Demo webhook",`+
			`"p_any_ip_addresses":["198.51.100.23"],"p_any_aws_account_ids":["111122223333"],"p_any_aws_arns":["arn:aws:iam::111122223333:root"]}`...)
	b.SetBytes(int64(len(ev)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := set.EnrichJSON(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzEnrichJSON: enriching an event as JSON (only the keys associations
// read are decoded, p_enrichment is added to the JSON as it is) gives what
// decoding the whole event, Enrich and encoding give, for every event that
// decodes: nothing when nothing hit, else the same event.
func FuzzEnrichJSON(f *testing.F) {
	set, err := LoadSet(context.Background(), "../../lookups")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		`{"p_log_type":"AWS.CloudTrail","sourceIPAddress":"192.0.2.200","p_any_ip_addresses":["192.0.2.200","198.51.100.1"]}`,
		`{"p_log_type":"AWS.CloudTrail","sourceIPAddress":"198.51.100.1","p_any_ip_addresses":["192.0.2.1","192.0.2.129"],"eventName":"X"}`,
		`{"p_log_type":"AWS.VPCFlow","srcAddr":"2001:db8:bad::1","dstAddr":"192.0.2.7","p_enrichment":{"other":{"x":1}}}`,
		`{"p_log_type":"AWS.VPCFlow","srcAddr":"10.0.0.1","dstAddr":"10.0.0.2"}`,
		`{"p_log_type":"AWS.CloudTrail","sourceIPAddress":["192.0.2.3",{"a":"192.0.2.4"},5],"p_enrichment":null}`,
		` { } `,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := envelope.DecodeEvent(raw)
		if err != nil || !utf8.Valid(raw) {
			// Keys no association reads are skipped, not decoded, and
			// the JSON path keeps bytes that are not UTF-8 as they are.
			return
		}
		got, err := set.EnrichJSON(raw)
		if err != nil {
			t.Fatalf("%q: %v, the whole event decodes", raw, err)
		}
		if !set.Enrich(ev) {
			if got != nil {
				t.Fatalf("%q: nothing hit, yet EnrichJSON gave %s", raw, got)
			}
			return
		}
		if got == nil {
			t.Fatalf("%q: Enrich added %v, EnrichJSON nothing", raw, ev[envelope.FieldEnrichment])
		}
		enriched, err := envelope.DecodeEvent(got)
		if err != nil {
			t.Fatalf("%q gave %q: %v", raw, got, err)
		}
		// Decoders keep one of a key given twice: p_enrichment must not
		// be added beside one the event has.
		if n, was := enrichmentKeys(got), enrichmentKeys(raw); n > max(was, 1) {
			t.Fatalf("%q gave %q: p_enrichment %d times", raw, got, n)
		}
		want, err := envelope.EncodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		if wantEv, _ := envelope.DecodeEvent(want); !reflect.DeepEqual(enriched, wantEv) {
			t.Fatalf("%q:\n got %v\nwant %v", raw, enriched, wantEv)
		}
	})
}

func enrichmentKeys(event []byte) int {
	n := 0
	envelope.EachField(event, func(k, _ []byte) {
		if string(k) == envelope.FieldEnrichment {
			n++
		}
	})
	return n
}

// A stage starts without a remote table it cannot reach: the table is
// empty, onError hears why, and it is retried until it loads. LoadSet
// (the commands) still fails on it, and on a local table that is missing.
func TestStartSetOutlivesAFeedOutOfReach(t *testing.T) {
	var up atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ip,list\n198.51.100.7,feed\n"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	def := "name: feed\nprimary_key: ip\nkey_type: cidr\ndata: " + srv.URL + "/ips.csv\nrefresh: 50ms\nassociations:\n  AWS.CloudTrail: [sourceIPAddress]\n"
	if err := os.WriteFile(filepath.Join(dir, "feed.yml"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSet(context.Background(), dir); err == nil || !strings.Contains(err.Error(), "lookup table feed: ") {
		t.Fatalf("LoadSet of a feed out of reach: %v, want an error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reported atomic.Int32
	set, err := StartSet(ctx, dir, func(tab *Table, err error) {
		if !tab.Loaded() && strings.Contains(err.Error(), "503") {
			reported.Add(1)
		}
	})
	if err != nil {
		t.Fatalf("StartSet with a feed out of reach: %v", err)
	}
	if reported.Load() == 0 || set.Lookup("feed", "198.51.100.7") != nil {
		t.Fatalf("feed out of reach: %d reports, lookup %v; want a report and no row", reported.Load(), set.Lookup("feed", "198.51.100.7"))
	}
	up.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for set.Lookup("feed", "198.51.100.7") == nil {
		if time.Now().After(deadline) {
			t.Fatal("the feed was not loaded within 10 s of coming back")
		}
		time.Sleep(20 * time.Millisecond)
	}

	local := t.TempDir()
	writeTable(t, local, "gone", "name: gone\nprimary_key: k\ndata: gone.csv\n", "", "other.csv")
	if _, err := StartSet(ctx, local, func(*Table, error) {}); err == nil {
		t.Fatal("StartSet accepted a local table whose file is missing")
	}
}

// Tables as security teams keep them: account ids as JSON numbers (which
// decode to floats and printed as 1.11122223333e+11 never matched), a CSV
// saved by Excel with a byte order mark, a CIDR with a space before it.
func TestTablesAsTeamsWriteThem(t *testing.T) {
	ix, err := Load(&Def{Name: "accounts", PrimaryKey: "account_id", KeyType: "string", Format: "json"},
		[]byte(`[{"account_id": 111122223333, "name": "prod-root"}]`), "")
	if err != nil {
		t.Fatal(err)
	}
	if row := ix.Get(KeyString("111122223333")); row == nil || row["name"] != "prod-root" {
		t.Errorf("numeric key: %v", row)
	}
	if row := ix.Get(KeyString(float64(111122223333))); row == nil {
		t.Error("a numeric value looked up does not find the numeric key")
	}
	ix, err = Load(&Def{Name: "bad_ips", PrimaryKey: "cidr", KeyType: "cidr", Format: "csv"},
		[]byte("\ufeffcidr,source\n 192.0.2.0/24,feed\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if row := ix.Get("192.0.2.7"); row == nil || row["source"] != "feed" {
		t.Errorf("BOM'd CSV: %v", row)
	}
}

// A path a user names loads the tables of a directory or of one
// definition; one that is not there, or is not a definition, is an error
// rather than no tables.
func TestLoadSetFrom(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"bad.yml":   "name: bad_ips\nprimary_key: cidr\nkey_type: cidr\ndata: bad.csv\n",
		"bad.csv":   "cidr,reason\n192.0.2.0/24,scanner\n",
		"users.yml": "name: users\nprimary_key: id\ndata: users.csv\n",
		"users.csv": "id,name\nu1,alice\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	set, err := LoadSetFrom(ctx, dir)
	if err != nil || set.Lookup("bad_ips", "192.0.2.7") == nil || set.Lookup("users", "u1") == nil {
		t.Fatalf("directory: %v", err)
	}
	set, err = LoadSetFrom(ctx, filepath.Join(dir, "bad.yml"))
	if err != nil || set.Lookup("bad_ips", "192.0.2.7") == nil || len(set.Tables()) != 1 {
		t.Fatalf("one definition: %v", err)
	}
	for path, want := range map[string]string{
		filepath.Join(dir, "missing"): "lookup tables: stat " + filepath.Join(dir, "missing") + ": no such file or directory",
		filepath.Join(dir, "bad.csv"): "lookup tables " + filepath.Join(dir, "bad.csv") + ": name a table definition (*.yml, which names its data) or a directory of them",
	} {
		if _, err := LoadSetFrom(ctx, path); err == nil || err.Error() != want {
			t.Errorf("LoadSetFrom(%s): %v, want %s", path, err, want)
		}
	}
}

// Rows kept compactly come back as decoding the data gave them: JSON
// values of every kind, rows with different columns, names and strings
// that need escaping, strings that are not UTF-8 (CSV keeps their bytes),
// a CSV column named twice (its last one's values); the last row of a
// key given twice wins; and written as JSON a row is the same row.
func TestRowsComeBackAsTheDataHadThem(t *testing.T) {
	jsonl := `{"k":"a","n":1.5,"big":111122223333,"t":true,"z":null,"list":[1,"x",{"y":[]}],"obj":{"p":{"q":"r"}}}
{"k":"b","only here":"\"quoted\"\n\u2028 ünï \u0001"}
{"k":"c"}
{"k":7,"n":-0.000001}
{"k":"a","n":2}
`
	want := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(jsonl), "\n") {
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatal(err)
		}
		want[KeyString(row["k"])] = row
	}
	ix, err := Load(&Def{Name: "j", PrimaryKey: "k", Format: "jsonl"}, []byte(jsonl), "")
	if err != nil {
		t.Fatal(err)
	}
	csvData := "k,\"col \"\"x\"\"\",k2,\"col \"\"x\"\"\"\na,\"1,2\",\xff\xfe,last\nb,\"multi\nline\",\"say \"\"hi\"\"\",\nb,again,,dup\n"
	cix, err := Load(&Def{Name: "c", PrimaryKey: "k", Format: "csv"}, []byte(csvData), "")
	if err != nil {
		t.Fatal(err)
	}
	want2 := map[string]map[string]any{
		"a": {"k": "a", `col "x"`: "last", "k2": "\xff\xfe"},
		"b": {"k": "b", `col "x"`: "dup", "k2": ""},
	}
	for _, tc := range []struct {
		ix   *Index
		rows int
		want map[string]map[string]any
	}{{ix, 5, want}, {cix, 3, want2}} {
		if tc.ix.Rows() != tc.rows {
			t.Errorf("%d rows, want %d", tc.ix.Rows(), tc.rows)
		}
		for k, row := range tc.want {
			if got := tc.ix.Get(k); !reflect.DeepEqual(got, row) {
				t.Errorf("%s: got %#v, want %#v", k, got, row)
			}
			var fromJSON map[string]any
			b := tc.ix.rows.appendJSON(nil, tc.ix.find(k))
			if err := json.Unmarshal(b, &fromJSON); err != nil {
				t.Fatalf("%s: %s: %v", k, b, err)
			}
			if row["k2"] == "\xff\xfe" {
				row = maps.Clone(row)
				row["k2"] = "\ufffd\ufffd" // JSON has no other bytes
			}
			if !reflect.DeepEqual(fromJSON, row) {
				t.Errorf("%s as JSON: %s, want %v", k, b, row)
			}
		}
		if tc.ix.Get("d") != nil || tc.ix.Get("") != nil {
			t.Error("a key not in the table was found")
		}
	}
}

// Stages of one process (caracal run's process and detect stages) started
// on the same definitions share one copy of each table, loaded and
// refreshed once; each stage releases it as it stops, and the last one to
// stop forgets it. A definition that differs is a table of its own.
func TestStartedSetsShareTables(t *testing.T) {
	var gets atomic.Int32
	var body atomic.Value
	var down atomic.Bool
	body.Store("ip,list\n198.51.100.0/24,one\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		if down.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write([]byte(body.Load().(string)))
	}))
	defer srv.Close()
	def := "name: feed\nprimary_key: ip\nkey_type: cidr\ndata: " + srv.URL + "/ips.csv\nrefresh: 20ms\nassociations:\n  %s: [ip]\n"
	process, detect, other := t.TempDir(), t.TempDir(), t.TempDir()
	writeTable(t, process, "feed", fmt.Sprintf(def, "AWS.CloudTrail"), "", "unused.csv")
	// Associations are the stage's own: the table is the same.
	writeTable(t, detect, "feed", fmt.Sprintf(def, "AWS.VPCFlow"), "", "unused.csv")
	writeTable(t, other, "feed", strings.Replace(fmt.Sprintf(def, "AWS.VPCFlow"), "refresh: 20ms", "refresh: 1h", 1), "", "unused.csv")

	var errs [2]atomic.Int32
	start := func(dir string, i int) (*Set, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		set, err := StartSet(ctx, dir, func(*Table, error) { errs[i].Add(1) })
		if err != nil {
			t.Fatal(err)
		}
		return set, cancel
	}
	p, stopP := start(process, 0)
	defer stopP()
	gotGets := gets.Load()
	d, stopD := start(detect, 1)
	defer stopD()
	if p.Tables()[0] != d.Tables()[0] || gets.Load() != gotGets {
		t.Fatalf("two stages with the same table: %p and %p, %d fetches; want one table loaded once", p.Tables()[0], d.Tables()[0], gets.Load())
	}
	o, stopO := start(other, 0)
	if o.Tables()[0] == p.Tables()[0] {
		t.Fatal("a table with another refresh was shared")
	}
	stopO()

	// One refresh serves both stages.
	body.Store("ip,list\n198.51.100.0/24,two\n")
	waitFor(t, "the refresh", func() bool { return p.Lookup("feed", "198.51.100.1").(map[string]any)["list"] == "two" })
	if p.Tables()[0].Index() != d.Tables()[0].Index() {
		t.Fatal("the stages see different versions of the table")
	}
	if ev := (map[string]any{"p_log_type": "AWS.VPCFlow", "ip": "198.51.100.1"}); p.Enrich(ev) || !d.Enrich(ev) {
		t.Fatal("each stage's associations: want VPC Flow enriched by detect's set only")
	}

	// A failed refresh is told to every stage holding the table.
	down.Store(true)
	waitFor(t, "both stages told of a failed refresh", func() bool { return errs[0].Load() > 0 && errs[1].Load() > 0 })

	key := sharedKey(p.Tables()[0].Def)
	held := func() bool {
		shared.Lock()
		defer shared.Unlock()
		return shared.tables[key] != nil
	}
	stopP()
	if !held() {
		t.Fatal("the table was dropped while the detect stage holds it")
	}
	stopD()
	waitFor(t, "the table released by its last stage", func() bool { return !held() })
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stages that start together on a table that cannot be loaded each get
// the error: one that waited for another's failed load loads it again
// itself rather than share that failure (the other may only have stopped).
func TestStartedSetsShareNoFailedLoad(t *testing.T) {
	dir := t.TempDir()
	writeTable(t, dir, "broken", "name: broken\nprimary_key: ip\ndata: missing.csv\n", "", "unused.csv")
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = StartSet(context.Background(), dir, func(*Table, error) {})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "missing.csv") {
			t.Errorf("stage %d: %v, want the table's load error", i, err)
		}
	}
	shared.Lock()
	defer shared.Unlock()
	if len(shared.tables) != 0 {
		t.Errorf("a failed table is kept: %v", shared.tables)
	}
}

// An inventory that rules look up event after event (100k accounts, every
// row hit in turn): after the first pass, a hit is a cached row.
func BenchmarkInventoryGet(b *testing.B) {
	rows := make([]map[string]any, 100_000)
	keys := make([]string, len(rows))
	for i := range rows {
		keys[i] = fmt.Sprintf("%012d", i)
		rows[i] = map[string]any{"account": keys[i], "owner": "team-" + keys[i][8:], "env": "prod", "tier": float64(i % 3), "pci": i%7 == 0}
	}
	ix, err := Build(&Def{Name: "accounts", PrimaryKey: "account", KeyType: "string"}, rows, "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ix.Get(keys[i%len(keys)]) == nil {
			b.Fatal("a row is missing")
		}
	}
}
