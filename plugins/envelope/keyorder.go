package envelope

import (
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// KeyOrder is Names' key prediction (KeyIn) for readers that keep a few
// keys of objects with many, as the detect and enrich stages read events:
// it learns every key, kept or not, so that the next key is mostly
// recognised by one comparison with the key that followed the previous
// one last time, instead of being read and looked up.
type KeyOrder struct {
	names *Names
	mu    sync.Mutex // serialises learning new keys
	vocab atomic.Pointer[vocabulary]
}

// vocabulary is the keys a KeyOrder has seen. It only grows, by copy, so
// a key's place in it never changes and readers need no lock.
type vocabulary struct {
	keyed []string       // each key as written without white space: `"key":`
	pos   []int          // its position among the names, or -1
	index map[string]int // place by key
	// next[0] is the place (plus one; 0 for none) of the key that came
	// first in the last object read, next[i+1] of the one after place i.
	next []atomic.Int32
}

// Hostile input could bring endless new keys: past these bounds keys are
// looked up, not learnt.
const (
	maxVocabulary = 1024
	maxLearntKey  = 128
)

// NewKeyOrder learns the key order of objects whose keys of interest are
// names.
func NewKeyOrder(names *Names) *KeyOrder {
	o := &KeyOrder{names: names}
	o.vocab.Store(&vocabulary{index: map[string]int{}, next: make([]atomic.Int32, 1)})
	return o
}

// OrderedKey reads an object key and the colon after it. It returns the
// key's place in o's order, to be given as prev with the next key (-1
// before an object's first key; NoKey when the key has no place), and its
// position among o's names (found false when it is not one).
func (s *Scanner) OrderedKey(o *KeyOrder, prev int) (place, pos int, found bool, err error) {
	v := o.vocab.Load()
	if prev >= -1 && prev+1 < len(v.next) {
		if p := int(v.next[prev+1].Load()) - 1; p >= 0 {
			if k := v.keyed[p]; len(s.b)-s.i >= len(k) && string(s.b[s.i:s.i+len(k)]) == k {
				s.i += len(k)
				return p, v.pos[p], v.pos[p] >= 0, nil
			}
		}
	}
	raw, escaped, err := s.Str()
	if err != nil {
		return NoKey, 0, false, err
	}
	if !s.Expect(':') {
		return NoKey, 0, false, ErrSyntax
	}
	if escaped {
		raw = s.Unescape(raw)
	}
	key := unsafe.String(unsafe.SliceData(raw), len(raw))
	place, ok := v.index[key]
	switch {
	case ok:
	case escaped: // learnt keys are matched raw, so escaped ones are not learnt
		place = -1
	default:
		v, place = o.learn(key)
	}
	if place < 0 {
		pos, found = o.names.Find(key)
		return NoKey, pos, found, nil
	}
	if prev >= -1 && prev+1 < len(v.next) {
		v.next[prev+1].Store(int32(place + 1))
	}
	return place, v.pos[place], v.pos[place] >= 0, nil
}

// learn gives key a place (-1 past the bounds) in a new vocabulary.
func (o *KeyOrder) learn(key string) (*vocabulary, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := o.vocab.Load()
	if place, ok := v.index[key]; ok {
		return v, place
	}
	if len(v.keyed) >= maxVocabulary || len(key) > maxLearntKey {
		return v, -1
	}
	key = strings.Clone(key) // it points into the object being read
	pos, found := o.names.Find(key)
	if !found {
		pos = -1
	}
	n := &vocabulary{
		keyed: append(v.keyed[:len(v.keyed):len(v.keyed)], `"`+key+`":`),
		pos:   append(v.pos[:len(v.pos):len(v.pos)], pos),
		index: maps.Clone(v.index),
		next:  make([]atomic.Int32, len(v.next)+1),
	}
	n.index[key] = len(v.keyed)
	for i := range v.next {
		n.next[i].Store(v.next[i].Load())
	}
	o.vocab.Store(n)
	return n, len(v.keyed)
}
