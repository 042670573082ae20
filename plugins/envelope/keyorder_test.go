package envelope

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// readKeys reads the keys of the JSON object doc with OrderedKey, skipping
// the values, and returns each key's position among the names (-1 when
// not one) and its place in o's order.
func readKeys(t *testing.T, o *KeyOrder, doc string) (positions, places []int) {
	t.Helper()
	s := NewScanner([]byte(doc))
	defer s.Release()
	s.Expect('{')
	prev := -1
	for more := !s.Expect('}'); more; {
		place, pos, found, err := s.OrderedKey(o, prev)
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if !found {
			pos = -1
		}
		positions, places = append(positions, pos), append(places, place)
		if _, err := s.Skip(1); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if more, err = s.More('}'); err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		prev = place
	}
	return positions, places
}

// wantPositions is what a lookup of every key of doc finds.
func wantPositions(t *testing.T, names *Names, doc string) []int {
	t.Helper()
	var want []int
	if err := EachField([]byte(doc), func(k, _ []byte) {
		pos, ok := names.Find(string(k))
		if !ok {
			pos = -1
		}
		want = append(want, pos)
	}); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	return want
}

// TestOrderedKeyFindsWhatFindFinds: whatever order objects give their keys
// in, kept or not, escaped or spaced, OrderedKey finds each key where a
// lookup finds it; and objects that repeat an order are read by it.
func TestOrderedKeyFindsWhatFindFinds(t *testing.T) {
	names := NewNames([]string{"eventName", "eventTime", "p_log_type", "sourceIPAddress"})
	o := NewKeyOrder(names)
	pool := []string{`"eventName"`, `"eventTime"`, `"p_log_type"`, `"sourceIPAddress"`, `"eventNames"`, `"event"`,
		`"userAgent"`, `"e\u0076entName"`, `"\u0078y"`, `"eventTime" `, `"a\"b"`, `""`}
	rng := rand.New(rand.NewPCG(1, 2))
	shapes := make([]string, 8)
	for i := range shapes {
		var b strings.Builder
		b.WriteByte('{')
		for j := range 1 + rng.IntN(8) {
			if j > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `%s:%d`, pool[rng.IntN(len(pool))], j)
		}
		b.WriteByte('}')
		shapes[i] = b.String()
	}
	for range 2000 {
		doc := shapes[rng.IntN(len(shapes))]
		got, _ := readKeys(t, o, doc)
		if want := wantPositions(t, &names, doc); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: positions %v, want %v", doc, got, want)
		}
	}
	// An object read twice in a row: the order then holds each key's
	// successor, known or not, as the prediction for the next read.
	doc := `{"userAgent":1,"eventTime":2,"eventName":3,"x":4}`
	readKeys(t, o, doc)
	_, places := readKeys(t, o, doc)
	v := o.vocab.Load()
	prev := -1
	for i, place := range places {
		if got := int(v.next[prev+1].Load()) - 1; got != place {
			t.Errorf("key %d: predicted place %d, read at %d", i, got, place)
		}
		prev = place
	}
}

// TestKeyOrderBounds: keys past the vocabulary's bounds are still found,
// but not learnt.
func TestKeyOrderBounds(t *testing.T) {
	names := NewNames([]string{"kept"})
	o := NewKeyOrder(names)
	long := strings.Repeat("k", maxLearntKey+1)
	for i := range maxVocabulary + 10 {
		doc := fmt.Sprintf(`{"key%d":1,"kept":2,%q:3}`, i, long)
		if got, _ := readKeys(t, o, doc); fmt.Sprint(got) != "[-1 0 -1]" {
			t.Fatalf("%s: positions %v", doc, got)
		}
	}
	v := o.vocab.Load()
	if len(v.keys) != maxVocabulary || len(v.next) != maxVocabulary+1 {
		t.Errorf("vocabulary of %d keys, %d predictions; want %d", len(v.keys), len(v.next), maxVocabulary)
	}
	if _, ok := v.index[long]; ok {
		t.Error("a key longer than maxLearntKey was learnt")
	}
}

// TestKeyOrderConcurrent: readers sharing an order while it learns (run
// with -race) each find what a lookup finds.
func TestKeyOrderConcurrent(t *testing.T) {
	names := NewNames([]string{"a", "c", "e"})
	o := NewKeyOrder(names)
	docs := []string{`{"a":1,"b":2,"c":3}`, `{"c":1,"d":2,"e":3,"a":4}`, `{"f":1,"a":2}`}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				doc := docs[(g+i)%len(docs)]
				if i%50 == 0 {
					doc = fmt.Sprintf(`{"new%d_%d":0,"e":1}`, g, i)
				}
				got, _ := readKeys(t, o, doc)
				if want := wantPositions(t, &names, doc); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: positions %v, want %v", doc, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// startsWith compares words for keys of eight to sixteen bytes written:
// it answers as a comparison of the bytes does, at every length.
func TestLearntKeyStartsWith(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	letters := []byte(`ab":`)
	word := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[rng.IntN(len(letters))]
		}
		return b
	}
	for range 200000 {
		k := newLearntKey(string(word(rng.IntN(18))), 0)
		b := word(rng.IntN(22))
		if rng.IntN(2) == 0 { // mostly the key, perhaps changed in one byte
			b = append([]byte(k.keyed), b...)
			if i := rng.IntN(len(b)); rng.IntN(2) == 0 {
				b[i] = letters[rng.IntN(len(letters))]
			}
		}
		if got, want := k.startsWith(b), bytes.HasPrefix(b, []byte(k.keyed)); got != want {
			t.Fatalf("%q starts with %q: %v, want %v", b, k.keyed, got, want)
		}
	}
}
