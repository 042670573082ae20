package native

import (
	"bytes"
	"encoding/binary"
	"strings"
	"unsafe"
)

// Record is one line's values in the order a parser found them, each a
// text or a list of texts. It stands in for a map per line: the process
// stage writes the values out in one pass and reuses the Record for the
// next line. A key set twice keeps its last value, as in a map.
type Record struct {
	values []Value
	tokens []string // the tokenizer's list, reused
	items  []string // the lists' items, reused
	borrow bool     // texts point into the line (Borrow)
	// plain: the tokenized line is printable ASCII, without a backslash,
	// and no field holds a quote, so every piece of it is written to JSON
	// as it is (Plain).
	plain bool
	line  string // the text tokenized
}

// Value is one key's text, or its list when IsList (the other is stale).
type Value struct {
	Key    string
	Text   string
	List   []string
	IsList bool
}

// Reset empties the record for the next line.
func (r *Record) Reset() {
	r.values, r.items, r.borrow, r.plain, r.line = r.values[:0], r.items[:0], false, false, ""
}

// Plain reports whether text is a piece of a line the tokenizer found
// plain: printable ASCII without a quote or a backslash, which JSON writes
// as it is (envelope.AppendStringPlain). Writing a line's values then
// skips a second look at each of their bytes to escape them.
func (r *Record) Plain(text string) bool {
	if !r.plain || len(text) == 0 {
		return r.plain
	}
	p, base := uintptr(unsafe.Pointer(unsafe.StringData(text))), uintptr(unsafe.Pointer(unsafe.StringData(r.line)))
	return p >= base && p+uintptr(len(text)) <= base+uintptr(len(r.line))
}

// Borrow lets the texts of the next line point into it instead of into a
// copy, for a caller that is done with the values before the line can
// change (the process stage writes them out at once); Reset ends it.
// Otherwise each line is copied once and the values point into the copy.
func (r *Record) Borrow() { r.borrow = true }

// Text is the line as the record's values may point into it.
func (r *Record) Text(line []byte) string {
	if r.borrow {
		return unsafe.String(unsafe.SliceData(line), len(line))
	}
	return string(line)
}

// Put adds a text value.
func (r *Record) Put(key, text string) {
	// Only the fields that count are written: a whole Value is copied with
	// the garbage collector's bulk barrier, a tenth of reading an ALB line,
	// and each pointer written costs a barrier while it runs.
	v := r.next()
	v.Key, v.Text, v.IsList = key, text, false
}

// PutList adds a list value.
func (r *Record) PutList(key string, list []string) {
	v := r.next()
	v.Key, v.List, v.IsList = key, list, true
}

// putSplit adds s's parts between seps as a list, without empty and "-"
// parts, and nothing when none is left. The items are kept in the
// record's reused list.
func (r *Record) putSplit(key, s, sep string) {
	start := len(r.items)
	for p := range strings.SplitSeq(s, sep) {
		if p != "" && p != "-" {
			r.items = append(r.items, p)
		}
	}
	if end := len(r.items); end > start {
		r.PutList(key, r.items[start:end:end])
	}
}

// next is a new value at the end of the record, holding what a value of
// an earlier line left there: Put and PutList write what they use.
func (r *Record) next() *Value {
	if len(r.values) == cap(r.values) {
		r.values = append(r.values, Value{})
	} else {
		r.values = r.values[:len(r.values)+1]
	}
	return &r.values[len(r.values)-1]
}

// Values are the values in the order they were put.
func (r *Record) Values() []Value { return r.values }

// Any is the value as a decoded map holds it: a string, or a []any of strings.
func (v *Value) Any() any {
	if !v.IsList {
		return v.Text
	}
	out := make([]any, len(v.List))
	for i, s := range v.List {
		out[i] = s
	}
	return out
}

// Map is the record as a map, for the paths that type maps.
func (r *Record) Map() map[string]any {
	m := make(map[string]any, len(r.values))
	for i := range r.values {
		m[r.values[i].Key] = r.values[i].Any()
	}
	return m
}

// Truncate drops the values put after the first n.
func (r *Record) Truncate(n int) { r.values = r.values[:n] }

// fields tokenizes a line as Fields does into the record's reused list;
// the list is valid until the next line.
func (r *Record) fields(line []byte) ([]string, error) {
	s := r.Text(line)
	backslash := bytes.IndexByte(line, '\\') >= 0
	f, quoted, err := appendFields(r.tokens[:0], s, backslash)
	if err == nil {
		r.tokens = f
		// Two quotes a quoted field and none elsewhere: no field holds one.
		r.line = s
		r.plain = !backslash && printableASCII(line) && bytes.Count(line, []byte{'"'}) == 2*quoted
	}
	return f, err
}

// spaceFields splits a line at runs of white space as strings.Fields does,
// into the record's reused list, valid until the next line. A line whose
// only white space is spaces, as a log line's is, is split with
// IndexByte: Fields looks at every byte as a possible Unicode space, and
// that was a sixth of typing a VPC Flow line.
func (r *Record) spaceFields(line []byte) []string {
	s, out := r.Text(line), r.tokens[:0]
	if !printableASCII(line) {
		for tok := range strings.FieldsSeq(s) {
			out = append(out, tok)
		}
		r.tokens = out
		return out
	}
	for tok, i := nextSpaceField(s, 0); tok != ""; tok, i = nextSpaceField(s, i) {
		out = append(out, tok)
	}
	r.tokens = out
	r.line, r.plain = s, bytes.IndexByte(line, '"') < 0 && bytes.IndexByte(line, '\\') < 0
	return out
}

// firstFields is the first three of s's fields as strings.Fields splits
// them, and how many there are. In a line the tokenizer found plain
// (printable ASCII) the only white space is the space.
func firstFields(s string, plain bool) (first [3]string, n int) {
	if !plain {
		for part := range strings.FieldsSeq(s) {
			if n < len(first) {
				first[n] = part
			}
			n++
		}
		return first, n
	}
	for tok, i := nextSpaceField(s, 0); tok != ""; tok, i = nextSpaceField(s, i) {
		if n < len(first) {
			first[n] = tok
		}
		n++
	}
	return first, n
}

// nextSpaceField is the field of printable ASCII text s at or after i,
// split at spaces with IndexByte (strings.Fields looks at every byte as a
// possible Unicode space), and where it ends; "" when none is left.
func nextSpaceField(s string, i int) (field string, end int) {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	j := strings.IndexByte(s[i:], ' ')
	if j < 0 {
		j = len(s) - i
	}
	return s[i : i+j], i + j
}

// printableASCII reports whether s holds no control character (tabs and
// line breaks among them) and no byte of 0x80 or more, eight bytes at a
// time.
func printableASCII(s []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	// Sixteen bytes a round, the rest cut off as it is read: so written,
	// the compiler drops the bounds checks that were most of the loop.
	for len(s) >= 16 {
		w, v := binary.LittleEndian.Uint64(s), binary.LittleEndian.Uint64(s[8:])
		// A byte below 0x20 borrows into its own top bit; none does
		// without one.
		if ((w-ones*0x20)&^w|w|(v-ones*0x20)&^v|v)&highs != 0 {
			return false
		}
		s = s[16:]
	}
	for _, c := range s {
		if c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return true
}
