package parse

import (
	"fmt"
	"strings"
	"testing"
)

// wideClassifier is a classifier for Custom.Wide, a flat schema of n
// string fields (field_0...), every tenth required, and an event giving
// them all.
func wideClassifier(t testing.TB, n int) (*Classifier, []byte) {
	t.Helper()
	var y, ev strings.Builder
	y.WriteString("schema: Custom.Wide\nfields:\n")
	ev.WriteString("{")
	for i := range n {
		fmt.Fprintf(&y, "  - {name: field_%d, type: string, required: %v}\n", i, i%10 == 9)
		if i > 0 {
			ev.WriteString(",")
		}
		fmt.Fprintf(&ev, `"field_%d":"value number %d"`, i, i)
	}
	ev.WriteString("}")
	return classifierOf(t, y.String()), []byte(ev.String())
}

// Objects of more than 64 fields are looked up by key too, and written
// as the map path writes them: every field, a key given twice read once
// (the first), and a required field missing past the 64th reported.
func TestWideObjectsAreLookedUp(t *testing.T) {
	c, raw := wideClassifier(t, 200)
	if p := c.parsers["Custom.Wide"]; p.set.ordered {
		t.Fatal("200 fields go by the fields' order, not looked up by key")
	}
	twice := strings.Replace(string(raw), `"field_150":"value number 150"`, `"field_150":"first","field_150":"second"`, 1)
	for _, in := range []string{string(raw), twice} {
		a := classifiedAlike(t, c, "Custom.Wide", []byte(in))
		if len(a) < 200 || a["field_199"] != "value number 199" {
			t.Fatalf("%d keys, field_199 %v", len(a), a["field_199"])
		}
		if in == twice && a["field_150"] != "first" {
			t.Fatalf("a key given twice: field_150 = %v, want the first", a["field_150"])
		}
	}
	missing := strings.Replace(string(raw), `"field_139":"value number 139",`, "", 1)
	failsAlike(t, c, "Custom.Wide", []byte(missing), "missing required field field_139")
}

// BenchmarkWideObjects types flat events of 40 to 200 fields: the time
// per field stays the same past 64.
func BenchmarkWideObjects(b *testing.B) {
	for _, n := range []int{40, 64, 65, 100, 200} {
		c, raw := wideClassifier(b, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, f := c.ClassifyJSON(raw, []string{"Custom.Wide"}, Origin{}); f != nil {
					b.Fatal(Describe(f))
				}
			}
		})
	}
}
