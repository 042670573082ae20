package envelope

import (
	"math/rand/v2"
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
