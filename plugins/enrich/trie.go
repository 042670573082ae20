package enrich

import (
	"net/netip"
)

// CIDRTrie maps prefixes to values and finds the longest prefix containing
// an address: a binary trie per address family, its nodes in one slice
// (int32 links) so a million prefixes cost tens of megabytes, not a pointer
// graph, and a lookup is at most 32 (IPv4) or 128 (IPv6) array steps.
type CIDRTrie struct {
	v4, v6 trie
}

type trie struct {
	nodes []node
}

type node struct {
	child [2]int32 // 0: none (the root is never a child)
	value int32    // index+1 into the values slice; 0: none
}

func (t *trie) insert(addr []byte, bits int, value int32) {
	if len(t.nodes) == 0 {
		t.nodes = append(t.nodes, node{})
	}
	n := int32(0)
	for i := 0; i < bits; i++ {
		b := (addr[i/8] >> (7 - uint(i%8))) & 1
		next := t.nodes[n].child[b]
		if next == 0 {
			t.nodes = append(t.nodes, node{})
			next = int32(len(t.nodes) - 1)
			t.nodes[n].child[b] = next
		}
		n = next
	}
	t.nodes[n].value = value
}

func (t *trie) lookup(addr []byte) int32 {
	if len(t.nodes) == 0 {
		return 0
	}
	best := t.nodes[0].value
	n := int32(0)
	for i := 0; i < len(addr)*8; i++ {
		b := (addr[i/8] >> (7 - uint(i%8))) & 1
		n = t.nodes[n].child[b]
		if n == 0 {
			break
		}
		if v := t.nodes[n].value; v != 0 {
			best = v
		}
	}
	return best
}

// Insert adds a prefix; its value is an index chosen by the caller (≥ 0).
func (c *CIDRTrie) Insert(p netip.Prefix, value int) {
	p = p.Masked()
	a := p.Addr()
	if a.Is4() || a.Is4In6() && p.Bits() >= 96 {
		if a.Is4In6() {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
			a = p.Addr()
		}
		b := a.As4()
		c.v4.insert(b[:], p.Bits(), int32(value)+1)
		return
	}
	b := a.As16()
	c.v6.insert(b[:], p.Bits(), int32(value)+1)
}

// Lookup returns the value of the longest prefix containing addr.
func (c *CIDRTrie) Lookup(addr netip.Addr) (int, bool) {
	addr = addr.Unmap()
	var v int32
	if addr.Is4() {
		b := addr.As4()
		v = c.v4.lookup(b[:])
	} else {
		b := addr.As16()
		v = c.v6.lookup(b[:])
	}
	return int(v) - 1, v != 0
}

// Bytes is the trie's memory footprint.
func (c *CIDRTrie) Bytes() int { return (cap(c.v4.nodes) + cap(c.v6.nodes)) * 12 }
