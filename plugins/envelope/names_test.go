package envelope

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestNamesFind(t *testing.T) {
	n := NewNames([]string{"eventName", "eventTime", "a", "", "eventName", "userIdentity"})
	for key, want := range map[string]int{"eventName": 0, "eventTime": 1, "a": 2, "": 3, "userIdentity": 5} {
		if got, ok := n.Find(key); !ok || got != want {
			t.Errorf("Find(%q) = %d, %v; want %d", key, got, ok, want)
		}
	}
	for _, key := range []string{"eventname", "b", "eventSource", "a very long key beyond every name"} {
		if got, ok := n.Find(key); ok {
			t.Errorf("Find(%q) = %d, want none", key, got)
		}
	}
}

// Names agrees with a map of first positions on random sets of names that
// share lengths and first and last bytes (the hash's inputs).
func TestNamesMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		names := make([]string, rng.IntN(80))
		first := map[string]int{}
		for i := range names {
			b := []byte("a" + strings.Repeat("x", rng.IntN(4)) + "z")
			if len(b) > 2 {
				b[1+rng.IntN(len(b)-2)] = "xyz"[rng.IntN(3)]
			}
			names[i] = string(b)
			if _, ok := first[names[i]]; !ok {
				first[names[i]] = i
			}
		}
		n := NewNames(names)
		for _, key := range append(names, "az", "axz", "ayyz", "b", "") {
			got, ok := n.Find(key)
			want, wantOK := first[key]
			if ok != wantOK || ok && got != want {
				t.Fatalf("names %q: Find(%q) = %d, %v; want %d, %v", names, key, got, ok, want, wantOK)
			}
		}
	}
}

// TestKeyIn: KeyIn finds keys by the order the last object had and
// learns the order of the next; keys it does not know or that are
// escaped are found (or not) as Find finds them and teach it nothing.
func TestKeyIn(t *testing.T) {
	names := NewNames([]string{"a", "b", "c"})
	// read returns the positions of the keys of doc (-1 for unknown ones).
	read := func(doc string) []int {
		t.Helper()
		s := NewScanner([]byte(doc))
		s.Expect('{')
		var got []int
		prev := -1
		for more := !s.Expect('}'); more; {
			pos, found, err := s.KeyIn(&names, prev)
			if err != nil {
				t.Fatalf("%s: %v", doc, err)
			}
			if prev = NoKey; found {
				prev = pos
			} else {
				pos = -1
			}
			got = append(got, pos)
			if _, err := s.Skip(1); err != nil {
				t.Fatal(err)
			}
			if more, err = s.More('}'); err != nil {
				t.Fatal(err)
			}
		}
		return got
	}
	predicted := func() []int32 {
		p := make([]int32, len(names.next))
		for i := range names.next {
			p[i] = names.next[i].Load()
		}
		return p
	}
	for _, c := range []struct {
		doc  string
		keys []int
		next []int32 // first, after a, after b, after c (position + 1)
	}{
		{`{"a":1,"b":2,"c":3}`, []int{0, 1, 2}, []int32{1, 2, 3, 0}},
		{`{"a":1,"b":2,"c":3}`, []int{0, 1, 2}, []int32{1, 2, 3, 0}},
		{`{"c":1,"a":2,"b":3}`, []int{2, 0, 1}, []int32{3, 2, 3, 1}},
		{`{"a":1,"x":2,"b":3}`, []int{0, -1, 1}, []int32{1, 2, 3, 1}},
		{`{"\u0062":1,"bb":2,"b":3}`, []int{1, -1, 1}, []int32{1, 2, 3, 1}},
		{`{"a" : 1, "c":2}`, []int{0, 2}, []int32{1, 3, 3, 1}},
		{`{}`, nil, []int32{1, 3, 3, 1}},
	} {
		if got := read(c.doc); !slices.Equal(got, c.keys) {
			t.Errorf("%s: keys %v, want %v", c.doc, got, c.keys)
		}
		if got := predicted(); !slices.Equal(got, c.next) {
			t.Errorf("%s: predictions %v, want %v", c.doc, got, c.next)
		}
	}
	var none Names
	s := NewScanner([]byte(`"a":1`))
	if _, found, err := s.KeyIn(&none, -1); found || err != nil {
		t.Errorf("KeyIn with no names: found %v, %v", found, err)
	}
}
