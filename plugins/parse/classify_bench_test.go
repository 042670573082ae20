package parse

import (
	"strings"
	"testing"
)

// BenchmarkClassifyAmongAll is the demo source's case: an event classified
// among every log type, the pre-checks turning the others away. The JSON
// types are tried in name order, so CloudTrail comes first, GuardDuty after
// four others and WAFWebACL last.
func BenchmarkClassifyAmongAll(b *testing.B) {
	schemas, c := shipped(b)
	samples := map[string][]byte{"AWS.CloudTrail": sample(b)}
	for _, s := range schemas {
		for _, tc := range s.Tests {
			if !tc.Fails && samples[s.Schema] == nil {
				samples[s.Schema] = []byte(strings.TrimSpace(tc.Input))
			}
		}
	}
	for _, lt := range []string{"AWS.CloudTrail", "AWS.GuardDuty", "AWS.WAFWebACL"} {
		raw := samples[lt]
		if ev, f := c.ClassifyJSON(raw, nil, Origin{}); f != nil || ev.LogType != lt {
			b.Fatalf("the %s sample classifies as %v: %s", lt, ev, Describe(f))
		}
		b.Run(lt, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				c.ClassifyJSON(raw, nil, Origin{})
			}
		})
	}
}

// BenchmarkSplitRecords: the process stage asks of every raw record
// whether it is CloudTrail's Records wrapper; most are single events.
func BenchmarkSplitRecords(b *testing.B) {
	one := sample(b)
	wrapped := []byte(`{"Records":[` + strings.Repeat(string(one)+",", 9) + string(one) + `]}`)
	for name, raw := range map[string][]byte{"event": one, "wrapper-of-10": wrapped} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				SplitRecords(raw)
			}
		})
	}
}
