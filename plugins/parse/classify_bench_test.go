package parse

import (
	"strings"
	"testing"
)

// BenchmarkClassifyAmongAll is the demo source's case: an event classified
// among every log type, the pre-checks turning the others away; here a
// GuardDuty finding, which several JSON types are tried before.
func BenchmarkClassifyAmongAll(b *testing.B) {
	schemas, c := shipped(b)
	var raw []byte
	for _, s := range schemas {
		if s.Schema == "AWS.GuardDuty" {
			raw = []byte(strings.TrimSpace(s.Tests[0].Input))
		}
	}
	if ev, f := c.ClassifyJSON(raw, nil, Origin{}); f != nil || ev.LogType != "AWS.GuardDuty" {
		b.Fatalf("the sample classifies as %v: %s", ev, Describe(f))
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		c.ClassifyJSON(raw, nil, Origin{})
	}
}
