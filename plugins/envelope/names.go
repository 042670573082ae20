package envelope

import (
	"sync/atomic"
	"unsafe"
)

// Names finds a name's position among a set of field names through a small
// open-addressed table hashed on the name's length and its first and last
// bytes: field names mostly differ there, and reading three bytes costs
// less than hashing the whole key for a map (a tenth of typing an ALB line
// went to map lookups).
type Names struct {
	slots []nameSlot
	byPos []string
	// keyed holds each name as an object key is mostly written, quoted
	// and with its colon, for KeyIn to compare at once.
	keyed []string
	// next predicts keys for KeyIn: the position (plus one; 0 for none)
	// of the name that came first in the last object read (next[0]) and
	// of the one that came after position i (next[i+1]). Atomic because
	// a set of names is shared by the goroutines reading with it; a stale
	// prediction only costs the lookup.
	next []atomic.Int32
}

// nameSlot is a name and its position; pos is -1 in an empty slot.
type nameSlot struct {
	name string
	pos  int
}

func nameHash(key string) uint {
	if key == "" {
		return 0
	}
	return uint(len(key))*0x9e37 ^ uint(key[0])*0x2f1 ^ uint(key[len(key)-1])*0x1f
}

// NewNames indexes names; a name given twice is found at its first place.
func NewNames(names []string) Names {
	size := 8
	for size < 2*len(names) {
		size *= 2
	}
	n := Names{slots: make([]nameSlot, size), byPos: names, next: make([]atomic.Int32, len(names)+1),
		keyed: make([]string, len(names))}
	for i, name := range names {
		n.keyed[i] = `"` + name + `":`
	}
	for i := range n.slots {
		n.slots[i].pos = -1
	}
	mask := uint(size - 1)
	for i, name := range names {
		if _, dup := n.Find(name); dup {
			continue
		}
		h := nameHash(name)
		for n.slots[h&mask].pos >= 0 {
			h++
		}
		n.slots[h&mask] = nameSlot{name, i}
	}
	return n
}

// Find returns the position of key.
func (n *Names) Find(key string) (int, bool) {
	if len(n.slots) == 0 {
		return 0, false
	}
	mask := uint(len(n.slots) - 1)
	for h := nameHash(key); ; h++ {
		slot := &n.slots[h&mask]
		if slot.pos < 0 {
			return 0, false
		}
		if slot.name == key {
			return slot.pos, true
		}
	}
}

// NoKey is KeyIn's prev after a key that is not among the names: no
// prediction is made or learnt.
const NoKey = -2

// KeyIn reads an object key and the colon after it and returns its
// position among names. Objects of one kind (a log type's events) list
// their keys in one order, so it first compares the key with the one
// that followed prev (the previous key's position, -1 before the first)
// last time, and looks it up only when that fails, noting what came
// instead. A key written with escapes is looked up, never predicted.
func (s *Scanner) KeyIn(names *Names, prev int) (pos int, found bool, err error) {
	if prev >= -1 && prev+1 < len(names.next) {
		if p := names.next[prev+1].Load(); p > 0 {
			if k := names.keyed[p-1]; len(s.b)-s.i >= len(k) && string(s.b[s.i:s.i+len(k)]) == k {
				s.i += len(k)
				return int(p - 1), true, nil
			}
			if s.KeyIs(names.byPos[p-1]) { // with white space
				return int(p - 1), true, nil
			}
		}
	}
	raw, escaped, err := s.Str()
	if err != nil {
		return 0, false, err
	}
	if !s.Expect(':') {
		return 0, false, ErrSyntax
	}
	if escaped {
		key := s.Unescape(raw)
		pos, found = names.Find(unsafe.String(unsafe.SliceData(key), len(key)))
		return pos, found, nil
	}
	pos, found = names.Find(unsafe.String(unsafe.SliceData(raw), len(raw)))
	if found && prev >= -1 && prev+1 < len(names.next) {
		names.next[prev+1].Store(int32(pos + 1))
	}
	return pos, found, nil
}
