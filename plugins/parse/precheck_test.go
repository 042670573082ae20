package parse

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// containsAt finds a needle by the byte keyAnchor picks: it answers as
// bytes.Contains does, for every required key of the shipped schemas in
// every schema test's input, and for random needles in random texts.
func TestContainsAtIsContains(t *testing.T) {
	schemas, c := shipped(t)
	var inputs [][]byte
	for _, s := range schemas {
		for _, tc := range s.Tests {
			inputs = append(inputs, []byte(tc.Input))
		}
	}
	inputs = append(inputs, sample(t), nil, []byte(`"`), []byte(`""`))
	for _, lt := range c.order {
		p := c.parsers[lt]
		for i, q := range p.quoted {
			for _, raw := range inputs {
				for _, in := range [][]byte{raw, bytes.ReplaceAll(raw, q, q[:len(q)-1]), q, q[1:]} {
					if got, want := containsAt(in, q, p.anchors[i]), bytes.Contains(in, q); got != want {
						t.Fatalf("%s: %q in %q: %v, want %v", lt, q, in, got, want)
					}
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	text := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = `"aAb1:`[rng.IntN(6)]
		}
		return b
	}
	for range 200000 {
		needle := append(append([]byte{'"'}, text(rng.IntN(5))...), '"')
		hay := text(rng.IntN(24))
		if rng.IntN(3) == 0 {
			at := rng.IntN(len(hay) + 1)
			hay = append(hay[:at:at], append(needle, hay[at:]...)...)
		}
		at := keyAnchor(needle)
		if rng.IntN(2) == 0 {
			at = rng.IntN(len(needle)) // any place finds it as well
		}
		if got, want := containsAt(hay, needle, at), bytes.Contains(hay, needle); got != want {
			t.Fatalf("%q (at %d) in %q: %v, want %v", needle, at, hay, got, want)
		}
	}
	if a := keyAnchor([]byte(`"eventVersion"`)); a != strings.IndexByte(`"eventVersion"`, 'V') {
		t.Errorf("the anchor of eventVersion is %d", a)
	}
}
