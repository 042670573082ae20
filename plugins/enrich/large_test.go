package enrich

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"fmt"
	mathrand "math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"testing"
)

// Large tables as threat-intel feeds come: a few hundred thousand rows of a
// key and a few columns (the CIDR one is about 22 MB of CSV). The data is
// generated, deterministically, not kept in the repository.
const largeRows = 300_000

var largeTables = sync.OnceValue(func() (t struct{ cidr, str []byte }) {
	keys, rng := mathrand.New(mathrand.NewPCG(1, 2)), mathrand.New(mathrand.NewPCG(3, 4))
	var b bytes.Buffer
	b.WriteString("cidr,threat_type,confidence,source,first_seen,description\n")
	for i := range largeRows {
		fmt.Fprintf(&b, "%s,%s,%d,%s,2026-%02d-%02dT%02d:00:00Z,%s\n", largeCIDR(keys, i),
			[]string{"botnet", "c2", "scanner", "phishing", "tor_exit"}[i%5], rng.IntN(101),
			[]string{"abuse.ch", "spamhaus", "internal", "emerging_threats"}[i%4],
			1+i%12, 1+i%28, i%24, fmt.Sprintf("campaign %d", rng.IntN(5000)))
	}
	t.cidr = bytes.Clone(b.Bytes())
	b.Reset()
	b.WriteString("indicator,kind,severity,source,first_seen,tags\n")
	for i := range largeRows {
		fmt.Fprintf(&b, "%s,domain,%s,%s,2026-%02d-%02d,%s\n", largeKey(i),
			[]string{"low", "medium", "high"}[i%3], []string{"abuse.ch", "spamhaus", "internal"}[i%3],
			1+i%12, 1+i%28, []string{"malware;dropper", "phishing", "c2;apt", "spam"}[i%4])
	}
	t.str = bytes.Clone(b.Bytes())
	return t
})

// largeCIDR is row i's prefix: IPv4 /16 to /32 outside 10.0.0.0/8 (kept
// for misses), and every tenth row IPv6 /32 to /128 inside 2001:db8::/32.
func largeCIDR(rng *mathrand.Rand, i int) netip.Prefix {
	if i%10 == 9 {
		var a [16]byte
		binary.BigEndian.PutUint64(a[:8], 0x20010db8_00000000|rng.Uint64()&0xffffffff)
		binary.BigEndian.PutUint64(a[8:], rng.Uint64())
		return netip.PrefixFrom(netip.AddrFrom16(a), 32+rng.IntN(97)).Masked()
	}
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], rng.Uint32())
	if a[0] == 10 {
		a[0] = 11
	}
	return netip.PrefixFrom(netip.AddrFrom4(a), 16+rng.IntN(17)).Masked()
}

// largeKey is row i's key; every 50th row repeats the one before's.
func largeKey(i int) string {
	if i%50 == 49 {
		i--
	}
	return fmt.Sprintf("host-%07d.example-%d.net", i*7919%largeRows, i%97)
}

// largeTable loads a generated table as a stage does (from a file, in a
// set that associates field "ip" or "key" of log type Large) and reports
// the bytes its loading allocated and the bytes the set keeps.
func largeTable(tb testing.TB, kind string) (s *Set, allocated, retained uint64) {
	tb.Helper()
	dir := tb.TempDir()
	data, def := largeTables().cidr, "name: large\nprimary_key: cidr\nkey_type: cidr\ndata: t.csv\nassociations:\n  Large: [ip]\n"
	if kind == "string" {
		data, def = largeTables().str, "name: large\nprimary_key: indicator\ndata: t.csv\nassociations:\n  Large: [key]\n"
	}
	writeTable(tb, dir, "large", def, string(data), "t.csv")
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	s, err := LoadSet(context.Background(), dir)
	if err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return s, after.TotalAlloc - before.TotalAlloc, after.HeapAlloc - before.HeapAlloc
}

// largeProbes are keys that hit (one per row, all rows) and keys that
// miss, for kind's table.
func largeProbes(kind string) (hits, misses []string) {
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	for i := range largeRows {
		if kind == "string" {
			hits = append(hits, largeKey(i))
			misses = append(misses, fmt.Sprintf("host-%07d.absent.net", i))
			continue
		}
		p := largeCIDR(rng, i)
		hits = append(hits, p.Addr().String())
		if i%10 == 9 {
			misses = append(misses, fmt.Sprintf("2001:db9::%x", i))
		} else {
			misses = append(misses, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		}
	}
	return hits, misses
}

// BenchmarkLargeTable: memory (MB allocated by a load, MB kept after it)
// and lookups of a 300k-row CIDR table and a 300k-row string table:
// Index.Get and the enrichment of an event (EnrichJSON) with a key that
// hits (any row: "hit"; one of a thousand rows: "hit-hot") and one that
// misses, and rules' lookup() of one that hits. The load is measured
// once; -benchtime 1s is plenty.
func BenchmarkLargeTable(b *testing.B) {
	for _, kind := range []string{"cidr", "string"} {
		set, allocated, retained := largeTable(b, kind)
		hits, misses := largeProbes(kind)
		csv, field := largeTables().cidr, "ip"
		if kind == "string" {
			csv, field = largeTables().str, "key"
		}
		b.Run(kind+"/load", func(b *testing.B) {
			for b.Loop() {
			}
			b.ReportMetric(float64(len(csv))/1e6, "MB-csv")
			b.ReportMetric(float64(allocated)/1e6, "MB-allocated")
			b.ReportMetric(float64(retained)/1e6, "MB-retained")
		})
		ix := set.Tables()[0].Index()
		for _, probe := range []struct {
			name string
			keys []string
		}{{"hit", hits}, {"hit-hot", hits[:1000]}, {"miss", misses}} {
			b.Run(kind+"/get-"+probe.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					ix.Get(probe.keys[i%len(probe.keys)])
					i++
				}
			})
			events := make([][]byte, 4096)
			for i := range events {
				events[i] = fmt.Appendf(nil, `{"p_log_type":"Large","p_event_time":"2026-11-23T21:04:05Z","%s":%q,"eventName":"X"}`, field, probe.keys[i*71%len(probe.keys)])
			}
			b.Run(kind+"/enrich-"+probe.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if _, err := set.EnrichJSON(events[i%len(events)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
		for _, probe := range []struct {
			name string
			keys []string
		}{{"hit", hits}, {"hit-hot", hits[:1000]}} {
			b.Run(kind+"/lookup-"+probe.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					set.Lookup("large", probe.keys[i%len(probe.keys)])
					i++
				}
			})
		}
		runtime.KeepAlive(set)
	}
}

// Every row of the large tables is found by its key (the last of rows with
// the same key; for CIDR keys, the longest prefix containing the address,
// checked against a map of every prefix), and keys not in them are not.
func TestLargeTablesFindEveryRow(t *testing.T) {
	if testing.Short() {
		t.Skip("loads two 300k-row tables")
	}
	for _, kind := range []string{"cidr", "string"} {
		set, _, _ := largeTable(t, kind)
		ix := set.Tables()[0].Index()
		data := largeTables().cidr
		if kind == "string" {
			data = largeTables().str
		}
		records, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		header, records := records[0], records[1:]
		// is reports whether got is record i (-1: nil).
		is := func(got map[string]any, i int) bool {
			if i < 0 || got == nil {
				return i < 0 && got == nil
			}
			for c, h := range header {
				if got[h] != records[i][c] {
					return false
				}
			}
			return len(got) == len(header)
		}
		if ix.Rows() != len(records) {
			t.Fatalf("%s: %d rows, want %d", kind, ix.Rows(), len(records))
		}
		hits, misses := largeProbes(kind)
		for _, k := range misses {
			if got := ix.Get(k); got != nil {
				t.Fatalf("%s: %s found %v, want nothing", kind, k, got)
			}
		}
		if kind == "string" {
			last := map[string]int{}
			for i, r := range records {
				last[r[0]] = i
			}
			for _, k := range hits {
				if got := ix.Get(k); !is(got, last[k]) {
					t.Fatalf("%s: got %v, want %v", k, got, records[last[k]])
				}
			}
			continue
		}
		last := map[netip.Prefix]int{}
		for i, r := range records {
			last[netip.MustParsePrefix(r[0])] = i
		}
		longest := func(a netip.Addr) int {
			for bits := a.BitLen(); bits >= 0; bits-- {
				if i, ok := last[netip.PrefixFrom(a, bits).Masked()]; ok {
					return i
				}
			}
			return -1
		}
		for i, r := range records {
			// The prefix's first and last addresses, and one of every
			// 100 rows' neighbours just outside it.
			p := netip.MustParsePrefix(r[0])
			probes := []netip.Addr{p.Addr(), lastAddr(p)}
			if i%100 == 0 {
				probes = append(probes, p.Addr().Prev(), lastAddr(p).Next())
			}
			for _, a := range probes {
				if !a.IsValid() {
					continue
				}
				if got, want := ix.Get(a.String()), longest(a); !is(got, want) {
					t.Fatalf("%s (row %d, %s): got %v, want row %d", a, i+1, p, got, want+1)
				}
			}
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
