package parse

import (
	"strings"
	"testing"

	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// derivedSchemas is a classifier over the custom schemas whose fields are
// derived from others, and each one's first test line.
func derivedSchemas(tb testing.TB) (*Classifier, map[string][]byte) {
	tb.Helper()
	c, err := LoadClassifier("testdata/derived")
	if err != nil {
		tb.Fatal(err)
	}
	c.now = classifier(tb).now
	lines := map[string][]byte{}
	for lt, p := range c.parsers {
		lines[lt] = []byte(strings.Split(strings.TrimSpace(p.Schema.Tests[0].Input), "\n")[0])
	}
	return c, lines
}

// Fields derived from others (copy, concat, split) at the top level are
// written by the emit path, after the fields read from their own keys:
// emitEvent writes these events itself, and what it writes is what the map
// path does (TestEmittedJSONMatchesEncodedMap checks the same on changed
// inputs, and the errors).
func TestDerivedFieldsAreEmitted(t *testing.T) {
	c, lines := derivedSchemas(t)
	for lt, line := range lines {
		p := c.parsers[lt]
		if !p.emits || len(p.derived) == 0 {
			t.Fatalf("%s: emits %v with %d derived fields", lt, p.emits, len(p.derived))
		}
		if _, err := c.emitEvent(p, line, nil, Origin{}, "row"); err != nil {
			t.Fatalf("%s: the emit path did not write %s: %v", lt, line, err)
		}
		ev := classifiedAlike(t, c, lt, line)
		if ev["at"] != ev["p_event_time"] || ev["at"] == nil {
			t.Errorf("%s: at %v, p_event_time %v: the concatenated time is the event time", lt, ev["at"], ev["p_event_time"])
		}
	}
	// A key given twice is read as the map path reads it (the last).
	twice := []byte(`{"id":"first","id":"last","action":"a","date":"2026-11-20","time":"10:04:05"}`)
	if ev := classifiedAlike(t, c, "Custom.AppAudit", twice); ev["id"] != "last" {
		t.Errorf("id %v, want the last", ev["id"])
	}
}

// BenchmarkDerivedFields: the custom schemas above, most of whose fields
// are derived, and CloudTrail with one field copied from a nested one.
func BenchmarkDerivedFields(b *testing.B) {
	c, lines := derivedSchemas(b)
	schemas, _ := shipped(b)
	for _, s := range schemas {
		if s.Schema == "AWS.CloudTrail" {
			s.Fields = append(s.Fields, schema.Field{Name: "actor_arn", Type: schema.TypeString, Copy: &schema.Copy{From: "userIdentity.arn"}})
			p, err := Compile(s)
			if err != nil {
				b.Fatal(err)
			}
			c.parsers[s.Schema] = p
			lines[s.Schema] = sample(b)
		}
	}
	for _, lt := range []string{"Custom.AppAudit", "Custom.Firewall", "AWS.CloudTrail"} {
		raw, p := lines[lt], c.parsers[lt]
		for _, path := range []string{"emitted", "maps"} {
			b.Run(lt+"/"+path, func(b *testing.B) {
				p.emits = path == "emitted"
				defer func() { p.emits = true }()
				b.SetBytes(int64(len(raw)))
				b.ReportAllocs()
				for b.Loop() {
					if _, f := c.ClassifyJSON(raw, []string{lt}, Origin{}); f != nil {
						b.Fatal(Describe(f))
					}
				}
			})
		}
	}
}

// FuzzDerivedFields: whatever the input, the emit path writes what the map
// path does for schemas with derived fields, or fails for the same reasons.
func FuzzDerivedFields(f *testing.F) {
	c, _ := derivedSchemas(f)
	for _, p := range c.parsers {
		for _, tc := range p.Schema.Tests {
			for _, line := range strings.Split(strings.TrimSpace(tc.Input), "\n") {
				f.Add([]byte(line))
			}
		}
	}
	f.Add([]byte(`{"id":"first","id":"last","action":"a","date":"2026-11-20","time":"10:04:05","actor":{"email":"a@b"},"actor":{"ip":"::1"}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, lt := range c.order {
			emitsAsMaps(t, c, lt, raw, []string{lt}, Origin{SourceID: "src"})
		}
	})
}
