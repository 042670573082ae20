package envelope

// Names finds a name's position among a set of field names by comparing
// it only with the names of its length (a few per length): for the short
// keys of events that is cheaper than hashing it for a map.
type Names struct {
	names []string
	byLen [][]int
}

// NewNames indexes names; a name given twice is found at its first place.
func NewNames(names []string) Names {
	n := Names{names: names}
	for i, name := range names {
		for len(n.byLen) <= len(name) {
			n.byLen = append(n.byLen, nil)
		}
		n.byLen[len(name)] = append(n.byLen[len(name)], i)
	}
	return n
}

// Find returns the position of key.
func (n *Names) Find(key string) (int, bool) {
	if len(key) >= len(n.byLen) {
		return 0, false
	}
	for _, i := range n.byLen[len(key)] {
		if n.names[i] == key {
			return i, true
		}
	}
	return 0, false
}
