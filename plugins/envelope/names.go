package envelope

// Names finds a name's position among a set of field names through a small
// open-addressed table hashed on the name's length and its first and last
// bytes: field names mostly differ there, and reading three bytes costs
// less than hashing the whole key for a map (a tenth of typing an ALB line
// went to map lookups).
type Names struct {
	slots []nameSlot
	byPos []string
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
	n := Names{slots: make([]nameSlot, size), byPos: names}
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
