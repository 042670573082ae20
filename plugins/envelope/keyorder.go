package envelope

import (
	"encoding/binary"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// KeyOrder recognises the keys of objects of one kind (a log type's
// events, a schema's nested object), which list their keys in one order:
// it learns every key, kept or not, so that the next key is mostly
// recognised by one comparison with the key that followed the previous
// one last time, instead of being read and looked up. The lake and parse
// stages read every key with it, the detect and enrich stages the few
// they keep of many.
type KeyOrder struct {
	names Names
	mu    sync.Mutex // serialises learning new keys
	vocab atomic.Pointer[vocabulary]
}

// vocabulary is the keys a KeyOrder has seen. It only grows, by copy, so
// a key's place in it never changes and readers need no lock.
type vocabulary struct {
	keys  []learntKey    // by place
	index map[string]int // place by key
	// next[0] is the place (plus one; 0 for none) of the key that came
	// first in the last object read, next[i+1] of the one after place i.
	next []atomic.Int32
}

// learntKey is a key as written without white space, `"key":`, and its
// position among the names (-1 for none): one read for a predicted key.
type learntKey struct {
	keyed string
	pos   int
	// head and tail are keyed's first and last eight bytes, when it has
	// eight to sixteen (most keys): two comparisons of words then stand for
	// a call to compare memory, a third of recognising a key.
	head, tail uint64
}

func newLearntKey(key string, pos int) learntKey {
	k := learntKey{keyed: `"` + key + `":`, pos: pos}
	if n := len(k.keyed); n >= 8 && n <= 16 {
		k.head = binary.LittleEndian.Uint64([]byte(k.keyed[:8]))
		k.tail = binary.LittleEndian.Uint64([]byte(k.keyed[n-8:]))
	}
	return k
}

// startsWith reports whether b starts with k's keyed text.
func (k *learntKey) startsWith(b []byte) bool {
	n := len(k.keyed)
	if n < 8 || n > 16 || len(b) < n {
		return len(b) >= n && string(b[:n]) == k.keyed
	}
	return binary.LittleEndian.Uint64(b) == k.head && binary.LittleEndian.Uint64(b[n-8:]) == k.tail
}

// NoKey is OrderedKey's place for a key that has none: no prediction is
// made or learnt after it.
const NoKey = -2

// Hostile input could bring endless new keys: past these bounds keys are
// looked up, not learnt.
const (
	maxVocabulary = 1024
	maxLearntKey  = 128
)

// NewKeyOrder learns the key order of objects whose keys of interest are
// names.
func NewKeyOrder(names Names) *KeyOrder {
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
			if k := &v.keys[p]; k.startsWith(s.b[s.i:]) {
				s.i += len(k.keyed)
				return p, k.pos, k.pos >= 0, nil
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
	pos = v.keys[place].pos
	return place, pos, pos >= 0, nil
}

// learn gives key a place (-1 past the bounds) in a new vocabulary.
func (o *KeyOrder) learn(key string) (*vocabulary, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := o.vocab.Load()
	if place, ok := v.index[key]; ok {
		return v, place
	}
	if len(v.keys) >= maxVocabulary || len(key) > maxLearntKey {
		return v, -1
	}
	key = strings.Clone(key) // it points into the object being read
	pos, found := o.names.Find(key)
	if !found {
		pos = -1
	}
	n := &vocabulary{
		keys:  append(v.keys[:len(v.keys):len(v.keys)], newLearntKey(key, pos)),
		index: maps.Clone(v.index),
		next:  make([]atomic.Int32, len(v.next)+1),
	}
	n.index[key] = len(v.keys)
	for i := range v.next {
		n.next[i].Store(v.next[i].Load())
	}
	o.vocab.Store(n)
	return n, len(v.keys)
}
