package parse

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"sync"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// precheck trims a JSON event and, when keys is set, looks for the
// schema's required top-level keys before anything decodes the event: that
// pays when the event is tried against several log types and most reject
// it. A key that passes may still be missing; the full parse decides.
func (p *Parser) precheck(raw []byte, keys *keySearch) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, errors.New("not a JSON object")
	}
	for i := 0; keys != nil && i < len(p.required); i++ {
		if !keys.mayHave(raw, p.quoted[i], p.anchors[i], p.keyHashes[i]) {
			return nil, p.missing[i]
		}
	}
	return raw, nil
}

// keySearch answers the pre-check's question (may this event have key k?)
// for one event tried against several log types. The first type searches
// the event's bytes for its keys, which is quick when they are there (the
// common case: the source's usual type comes first). Once a type has turned
// the event away, the event's keys are indexed in one pass, so each further
// type costs a few lookups instead of a search of the whole event for each
// of its required keys.
type keySearch struct {
	later   bool // a type before this one turned the event away
	indexed bool
	anyKey  bool // a key is written with escapes: it may be any key
	bits    [keyBits / 64]uint64
}

// searchBytes is the search for the first type tried, shared: it only
// searches the bytes, and changes nothing.
var searchBytes = &keySearch{}

// keySearches are reused: a search is a few hundred bytes, and would
// otherwise be allocated for every event of a source with several types.
var keySearches = sync.Pool{New: func() any { return new(keySearch) }}

func getKeySearch() *keySearch { return keySearches.Get().(*keySearch) }

func (s *keySearch) put() {
	*s = keySearch{}
	keySearches.Put(s)
}

// keyBits sizes the Bloom filter of an event's keys (two bits a key): a
// 100-key event has a false positive under 1% of the time, and then the
// full parse decides.
const keyBits = 2048

// keyHash hashes a key from its length and its first and last eight
// bytes: cheap, and keys that share all three only cost a full parse.
func keyHash(k []byte) uint64 {
	var a, b uint64
	if n := len(k); n >= 8 {
		a, b = binary.LittleEndian.Uint64(k), binary.LittleEndian.Uint64(k[n-8:])
	} else {
		for i, c := range k {
			a |= uint64(c) << (8 * i)
		}
	}
	h := (a ^ uint64(len(k))<<56) * 0x9e3779b97f4a7c15
	h = (h ^ b ^ h>>29) * 0xbf58476d1ce4e5b9
	return h ^ h>>32
}

// unicodeEscape is how a key may be written that a byte search cannot see.
var unicodeEscape = []byte(`\u`)

// mayHave is false when raw surely has no key k: quoted is k in quotes,
// anchor its byte to look for (keyAnchor) and hash is keyHash(k).
func (s *keySearch) mayHave(raw, quoted []byte, anchor int, hash uint64) bool {
	if !s.later {
		return containsAt(raw, quoted, anchor) || bytes.Contains(raw, unicodeEscape)
	}
	if !s.indexed {
		s.index(raw)
	}
	return s.anyKey || s.has(hash)
}

func (s *keySearch) has(h uint64) bool {
	a, b := h%keyBits, (h>>32)%keyBits
	return s.bits[a/64]&(1<<(a%64)) != 0 && s.bits[b/64]&(1<<(b%64)) != 0
}

func (s *keySearch) add(h uint64) {
	a, b := h%keyBits, (h>>32)%keyBits
	s.bits[a/64] |= 1 << (a % 64)
	s.bits[b/64] |= 1 << (b % 64)
}

// index adds every key of raw, at any depth, to the filter: each string
// followed by a colon. Values are skipped, so this is one pass of
// envelope.StringEnd over the event. JSON that is not well formed only has
// to be indexed well enough not to lose a key the full parse would find,
// and the full parse then rejects it anyway.
func (s *keySearch) index(raw []byte) {
	s.indexed = true
	for i := 0; ; {
		q := bytes.IndexByte(raw[i:], '"')
		if q < 0 {
			return
		}
		start := i + q + 1
		end := envelope.StringEnd(raw, start)
		if end < 0 {
			s.anyKey = true // unterminated: leave it to the full parse
			return
		}
		i = end + 1
		j := i
		for j < len(raw) && (raw[j] == ' ' || raw[j] == '\t' || raw[j] == '\n' || raw[j] == '\r') {
			j++
		}
		if j == len(raw) || raw[j] != ':' {
			continue
		}
		key := raw[start:end]
		if bytes.IndexByte(key, '\\') >= 0 {
			s.anyKey = true
			return
		}
		s.add(keyHash(key))
		i = j + 1
	}
}

// containsAt is bytes.Contains(raw, needle), finding the candidates by
// needle[at], which should be a byte seldom seen. bytes.Index finds them
// by the first byte, a quote for a quoted key, which JSON has every few
// bytes: the five searches for CloudTrail's required keys were a sixth of
// classifying an event among several types.
func containsAt(raw, needle []byte, at int) bool {
	last := len(raw) - len(needle) + at // the last place needle[at] can be
	for i := at; i <= last; i++ {
		j := bytes.IndexByte(raw[i:last+1], needle[at])
		if j < 0 {
			return false
		}
		if i += j; string(raw[i-at:i-at+len(needle)]) == string(needle) {
			return true
		}
	}
	return false
}

// keyAnchor is the place in quoted (a key in quotes) of the byte that
// containsAt looks for: the rarest in JSON text by a rough ranking, an
// upper-case letter or a digit before any lower-case letter. Only a key
// of no bytes is looked for by a quote.
func keyAnchor(quoted []byte) int {
	const lower = "etaoinsrhldcumfpgwybvkxjqz" // most common first
	rarity := func(c byte) int {
		switch {
		case c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			return 2 * len(lower)
		case c >= 'a' && c <= 'z':
			return len(lower) + strings.IndexByte(lower, c)
		case c == '"' || c == ' ' || c == ':' || c == ',':
			return 0
		}
		return len(lower) / 2
	}
	best := 0
	for i := 1; i < len(quoted)-1; i++ {
		if rarity(quoted[i]) > rarity(quoted[best]) {
			best = i
		}
	}
	return best
}
