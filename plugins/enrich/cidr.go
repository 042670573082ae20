package enrich

import (
	"cmp"
	"encoding/binary"
	"math"
	"net/netip"
	"slices"
)

// CIDRIndex finds the longest prefix containing an address. The prefixes
// are flattened into disjoint ranges of addresses, each with the value of
// the longest prefix covering it, kept as two sorted arrays per address
// family (first addresses, values): a table of 300k prefixes takes a few
// megabytes, where a binary trie took 40, and a lookup is a binary search
// — for IPv4 within the ranges of the address's /16, found by a direct
// index of the 65,536 /16s.
type CIDRIndex struct {
	v4     []uint32
	v4vals []int32  // value of v4[i] to v4[i+1]-1; -1: none
	v4by16 []uint32 // per /16, and one past the last: the first range starting in it or after
	v6     []u128
	v6vals []int32
}

// CIDRBuilder collects prefixes for a CIDRIndex.
type CIDRBuilder struct {
	v4 []span[uint32]
	v6 []span[u128]
}

type u128 struct{ hi, lo uint64 }

func (a u128) compare(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func (a u128) next() (u128, bool) {
	if a.lo == math.MaxUint64 {
		return u128{a.hi + 1, 0}, a.hi != math.MaxUint64
	}
	return u128{a.hi, a.lo + 1}, true
}

// span is a prefix as its first and last addresses.
type span[A any] struct {
	first, last A
	value       int32
}

// Add adds a prefix; its value is an index chosen by the caller (≥ 0). Of
// a prefix added twice, the last value stays.
func (c *CIDRBuilder) Add(p netip.Prefix, value int) {
	p = p.Masked()
	a, bits := p.Addr(), p.Bits()
	if a.Is4() || a.Is4In6() && bits >= 96 {
		if a.Is4In6() {
			a, bits = a.Unmap(), bits-96
		}
		first := v4(a)
		c.v4 = append(c.v4, span[uint32]{first, first | uint32(uint64(1)<<(32-bits)-1), int32(value)})
		return
	}
	first := v6(a)
	last := first
	if bits < 64 {
		last = u128{first.hi | (uint64(1)<<(64-bits) - 1), math.MaxUint64}
	} else if bits < 128 {
		last.lo |= uint64(1)<<(128-bits) - 1
	}
	c.v6 = append(c.v6, span[u128]{first, last, int32(value)})
}

func v4(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func v6(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// Index is the prefixes added, ready for lookups.
func (c *CIDRBuilder) Index() *CIDRIndex {
	ix := &CIDRIndex{}
	ix.v4, ix.v4vals = flatten(c.v4, cmp.Compare[uint32], func(a uint32) (uint32, bool) { return a + 1, a != math.MaxUint32 })
	ix.v6, ix.v6vals = flatten(c.v6, u128.compare, u128.next)
	if len(ix.v4) > 0 {
		ix.v4by16 = make([]uint32, 1<<16+1)
		for h := range ix.v4by16 {
			i, _ := slices.BinarySearch(ix.v4, uint32(h)<<16)
			if h == 1<<16 {
				i = len(ix.v4)
			}
			ix.v4by16[h] = uint32(i)
		}
	}
	return ix
}

// flatten turns prefixes into the first addresses of disjoint ranges and
// their values: where prefixes nest, the innermost (longest) one's.
func flatten[A comparable](spans []span[A], compare func(a, b A) int, next func(A) (A, bool)) (starts []A, vals []int32) {
	// Outer prefixes before the ones they contain; of equal ones, the
	// last added last.
	slices.SortStableFunc(spans, func(a, b span[A]) int {
		if c := compare(a.first, b.first); c != 0 {
			return c
		}
		return compare(b.last, a.last)
	})
	emit := func(start A, v int32) {
		if n := len(starts); n > 0 && starts[n-1] == start {
			vals[n-1] = v // a range that ended up empty
			return
		}
		if n := len(vals); n > 0 && vals[n-1] == v {
			return // the range before goes on
		}
		starts, vals = append(starts, start), append(vals, v)
	}
	var open []span[A] // prefixes containing the current address, outermost first
	// closeBefore ends the open prefixes that end before addr (all of
	// them when all is set): after each, the prefix around it resumes.
	closeBefore := func(addr A, all bool) {
		for len(open) > 0 && (all || compare(open[len(open)-1].last, addr) < 0) {
			end := open[len(open)-1].last
			open = open[:len(open)-1]
			outer := int32(-1)
			if len(open) > 0 {
				outer = open[len(open)-1].value
			}
			if after, ok := next(end); ok {
				emit(after, outer)
			}
		}
	}
	for i, s := range spans {
		if i+1 < len(spans) && spans[i+1].first == s.first && spans[i+1].last == s.last {
			continue // the same prefix again: the last one stays
		}
		closeBefore(s.first, false)
		emit(s.first, s.value)
		open = append(open, s)
	}
	closeBefore(*new(A), true)
	return slices.Clip(starts), slices.Clip(vals)
}

// find is the value of the range containing addr in a family's arrays,
// searching starts[lo:hi] (the ranges that may start at or before addr
// and after starts[lo-1]).
func find[A any](starts []A, vals []int32, lo, hi int, addr A, compare func(a, b A) int) int32 {
	i, found := slices.BinarySearchFunc(starts[lo:hi], addr, compare)
	i += lo
	if !found {
		i-- // the range starting before addr
	}
	if i < 0 {
		return -1
	}
	return vals[i]
}

// Lookup returns the value of the longest prefix containing addr.
func (c *CIDRIndex) Lookup(addr netip.Addr) (int, bool) {
	addr = addr.Unmap()
	v := int32(-1)
	if addr.Is4() {
		if c.v4by16 != nil {
			a := v4(addr)
			v = find(c.v4, c.v4vals, int(c.v4by16[a>>16]), int(c.v4by16[a>>16+1]), a, cmp.Compare[uint32])
		}
	} else if addr.Is6() && len(c.v6) > 0 {
		v = find(c.v6, c.v6vals, 0, len(c.v6), v6(addr), u128.compare)
	}
	return int(v), v >= 0
}

// Bytes is the index's memory footprint.
func (c *CIDRIndex) Bytes() int {
	return cap(c.v4)*4 + cap(c.v4vals)*4 + cap(c.v4by16)*4 + cap(c.v6)*16 + cap(c.v6vals)*4
}
