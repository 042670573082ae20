package envelope

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"strconv"
	"unsafe"

	"github.com/valyala/fastjson"
)

// Scanner reads a JSON document token by token, once, without building a
// parse tree: readers that want a few values of an event (the lake's
// columns, the keys a rule reads) skip the rest at the cost of finding
// its end. Strings are resolved exactly as fastjson (and so every other
// stage) resolves them. Where fastjson's parser is lenient (numbers,
// escapes) the Scanner is too; callers check what they convert.
type Scanner struct {
	b []byte
	i int
	p *fastjson.Parser // unescapes the rare escaped string
	// view: decoded strings point into the document (ViewEventKeys).
	view bool
	// strict: refuse what the JSON grammar refuses, as fastjson.Validate
	// does, rather than only what breaks the reading.
	strict bool
}

// MaxDepth bounds nesting, as fastjson does, so hostile input cannot
// exhaust the stack.
const MaxDepth = 300

// ErrSyntax is the error for malformed JSON.
var ErrSyntax = errors.New("not a JSON object: malformed JSON")

// ErrTooDeep is the error for JSON nested deeper than MaxDepth.
var ErrTooDeep = errors.New("not a JSON object: nested too deeply")

// NewScanner starts reading b.
func NewScanner(b []byte) Scanner { return Scanner{b: b} }

// NewStrictScanner starts reading b, which may be anything from outside:
// besides what breaks the reading it refuses what fastjson.Validate
// refuses (control characters in strings, unknown escapes, numbers off
// the grammar), so that a document read to its end without error is
// valid JSON. It does not bound nesting as fastjson does: callers give
// depths to the readers that take them.
func NewStrictScanner(b []byte) Scanner { return Scanner{b: b, strict: true} }

var unescapers fastjson.ParserPool

// Release returns what the Scanner borrowed; call it when done.
func (s *Scanner) Release() {
	if s.p != nil {
		unescapers.Put(s.p)
		s.p = nil
	}
}

func (s *Scanner) ws() {
	// One look-up a byte, cheap enough that the readers calling ws stay
	// inlined.
	for s.i < len(s.b) && isSpace[s.b[s.i]] {
		s.i++
	}
}

// isSpace flags JSON's white space.
var isSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// Next skips white space and reports the byte there (0 at the end).
func (s *Scanner) Next() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// Expect reads past the next byte if it is c.
func (s *Scanner) Expect(c byte) bool {
	if s.Next() == c {
		s.i++
		return true
	}
	return false
}

// AtEnd reports whether only white space is left.
func (s *Scanner) AtEnd() bool {
	s.ws()
	return s.i == len(s.b)
}

// Str reads the string at the read position (its opening quote) and
// returns its raw content, which points into the document, and whether it
// holds escapes.
func (s *Scanner) Str() (raw []byte, escaped bool, err error) {
	if s.Next() != '"' {
		return nil, false, ErrSyntax
	}
	start := s.i + 1
	if !s.strict {
		return s.laxStr(start)
	}
	for j := start + stringRun(s.b[start:]); j < len(s.b); j += stringRun(s.b[j:]) {
		switch s.b[j] {
		case '"':
			s.i = j + 1
			return s.b[start:j], escaped, nil
		case '\\':
			escaped = true
			n := 2
			if s.strict {
				n = escapeLen(s.b[j:])
			}
			if n == 0 || j+n > len(s.b) {
				return nil, false, ErrSyntax
			}
			j += n
		default: // a control character
			if s.strict {
				return nil, false, ErrSyntax
			}
			j++
		}
	}
	return nil, false, ErrSyntax
}

// laxStr is Str past the opening quote at start when only a quote or a
// backslash matter: IndexByte finds them many bytes at a time, where
// stringRun also looks for control characters eight at a time (strings
// are half of what the detect stage spends reading an event).
func (s *Scanner) laxStr(start int) (raw []byte, escaped bool, err error) {
	for j := start; ; {
		q := bytes.IndexByte(s.b[j:], '"')
		if q < 0 {
			return nil, false, ErrSyntax
		}
		q += j
		k := bytes.IndexByte(s.b[j:q], '\\')
		if k < 0 {
			s.i = q + 1
			return s.b[start:q], escaped, nil
		}
		escaped = true
		if j += k + 2; j > len(s.b) {
			return nil, false, ErrSyntax
		}
	}
}

// skipStr reads past the string at the read position. Lax, it only
// finds the closing quote: the first not escaped by an odd run of
// backslashes before it. Where laxStr looks for quotes and then for
// backslashes among the bytes before, this looks at most strings' bytes
// once (values skipped are most of what the detect and enrich stages
// read of an event).
func (s *Scanner) skipStr() error {
	if s.strict {
		_, _, err := s.Str()
		return err
	}
	if s.Next() != '"' {
		return ErrSyntax
	}
	q := StringEnd(s.b, s.i+1)
	if q < 0 {
		return ErrSyntax
	}
	s.i = q + 1
	return nil
}

// StringEnd returns the index of the quote that closes the JSON string
// whose text starts at b[start], or -1: the first quote after an even run
// of backslashes (each pair is one escaped backslash). It only looks for
// the end, not at what the string holds.
func StringEnd(b []byte, start int) int {
	q := bytes.IndexByte(b[start:], '"')
	if q < 0 {
		return -1
	}
	if q += start; q == start || b[q-1] != '\\' {
		return q // most strings: no backslash before their quote (inlined)
	}
	return escapedStringEnd(b, start, q)
}

// escapedStringEnd is StringEnd from a quote q after a backslash.
func escapedStringEnd(b []byte, start, q int) int {
	for {
		k := q
		for k > start && b[k-1] == '\\' {
			k--
		}
		if (q-k)%2 == 0 {
			return q
		}
		next := bytes.IndexByte(b[q+1:], '"')
		if next < 0 {
			return -1
		}
		q += 1 + next
	}
}

// stringRun is the length of b's leading run without a quote, a
// backslash or a control character: what a JSON string holds as it is.
func stringRun(b []byte) int { return plainRun(b, false) }

// plainRun is the length of b's leading run without a quote, a backslash
// or a control character, nor with ascii a byte of 0x80 or more, found
// eight bytes at a time.
func plainRun(b []byte, ascii bool) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	var high uint64 // flags bytes ≥ 0x80 when ascii
	if ascii {
		high = highs
	}
	// first is the position of the first byte of b[i:i+8] that stops the run, or 8.
	first := func(i int) int {
		w := binary.LittleEndian.Uint64(b[i:])
		quote, backslash := w^(ones*'"'), w^(ones*'\\')
		// The lowest flag of each test marks the first byte it finds exactly.
		found := ((w-ones*0x20)&^w | (quote-ones)&^quote | (backslash-ones)&^backslash) & highs
		return bits.TrailingZeros64(found|w&high) / 8
	}
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if k := first(i); k < 8 {
			return i + k
		}
	}
	if i < len(b) && len(b) >= 8 {
		// The last eight bytes, overlapping those found plain, rather
		// than the rest byte by byte.
		return len(b) - 8 + first(len(b)-8)
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == '"' || c == '\\' || ascii && c >= 0x80 {
			break
		}
	}
	return i
}

// escapeLen is the length of the valid escape sequence b starts with, or
// 0: one of \" \\ \/ \b \f \n \r \t, or \u and four hex digits.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		if len(b) < 6 {
			return 0
		}
		for _, c := range b[2:6] {
			if (c < '0' || c > '9') && (c|0x20 < 'a' || c|0x20 > 'f') {
				return 0
			}
		}
		return 6
	}
	return 0
}

// Unescape returns a string's raw content with its escapes resolved, in
// new memory.
func (s *Scanner) Unescape(raw []byte) []byte {
	if s.p == nil {
		s.p = unescapers.Get()
	}
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	v, err := s.p.ParseBytes(quoted)
	if err != nil {
		return bytes.Clone(raw)
	}
	return bytes.Clone(v.GetStringBytes())
}

// Text reads a string, unescaped; without escapes it points into the
// document.
func (s *Scanner) Text() ([]byte, error) {
	raw, escaped, err := s.Str()
	if err != nil || !escaped {
		return raw, err
	}
	return s.Unescape(raw), nil
}

// PlainText is Text that also reports whether the string is plain:
// printable ASCII without escapes, which JSON writes as it is. Finding
// that while reading spares a writer (AppendStringPlain) the second look
// at every byte that AppendString takes.
func (s *Scanner) PlainText() (text []byte, plain bool, err error) {
	if s.Next() != '"' {
		return nil, false, ErrSyntax
	}
	start := s.i + 1
	if j := start + plainRun(s.b[start:], true); j < len(s.b) && s.b[j] == '"' {
		s.i = j + 1
		return s.b[start:j], true, nil
	}
	text, err = s.Text()
	return text, false, err
}

// Key reads an object's key and the colon after it.
func (s *Scanner) Key() ([]byte, error) {
	k, err := s.Text()
	if err != nil {
		return nil, err
	}
	if !s.Expect(':') {
		return nil, ErrSyntax
	}
	return k, nil
}

// More reads the separator after an object's or array's member: true if
// another member follows, false at the closing byte end.
func (s *Scanner) More(end byte) (bool, error) {
	switch s.Next() {
	case ',':
		s.i++
		return true, nil
	case end:
		s.i++
		return false, nil
	}
	return false, ErrSyntax
}

// Literal reads true, false or null.
func (s *Scanner) Literal(word string) error {
	s.ws()
	if !bytes.HasPrefix(s.b[s.i:], unsafe.Slice(unsafe.StringData(word), len(word))) {
		return ErrSyntax
	}
	s.i += len(word)
	return nil
}

// Number reads a number's text.
func (s *Scanner) Number() ([]byte, error) {
	s.ws()
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
			break
		}
		s.i++
	}
	if s.i == start || s.strict && !isNumber(s.b[start:s.i]) {
		return nil, ErrSyntax
	}
	return s.b[start:s.i], nil
}

// isNumber: b is a number as the JSON grammar writes one.
func isNumber(b []byte) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i, n = i+1, n+1
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	lead := i
	if n := digits(); n == 0 || n > 1 && b[lead] == '0' {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

// Skip reads past the next value and returns its bytes; depth is the
// nesting already entered.
func (s *Scanner) Skip(depth int) ([]byte, error) {
	if depth > MaxDepth {
		return nil, ErrTooDeep
	}
	c := s.Next()
	start := s.i
	var err error
	switch c {
	case '"':
		err = s.skipStr()
	case '{', '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		s.i++
		if s.Expect(end) {
			break
		}
		for more := true; more && err == nil; {
			if c == '{' {
				if err = s.skipStr(); err != nil {
					break
				}
				if !s.Expect(':') {
					err = ErrSyntax
					break
				}
			}
			if _, err = s.Skip(depth + 1); err != nil {
				break
			}
			more, err = s.More(end)
		}
	case 't':
		err = s.Literal("true")
	case 'f':
		err = s.Literal("false")
	case 'n':
		err = s.Literal("null")
	default:
		_, err = s.Number()
	}
	if err != nil {
		return nil, err
	}
	return s.b[start:s.i], nil
}

// Pos is the read position, for Seek to return to.
func (s *Scanner) Pos() int { return s.i }

// Seek moves the read position back to one Pos reported.
func (s *Scanner) Seek(pos int) { s.i = pos }

// Value reads the next value as DecodeObject would decode it; depth is
// the nesting already entered.
func (s *Scanner) Value(depth int) (any, error) { return s.decodeValue(depth) }

// AppendValue reads the next value and appends it as AppendJSON writes
// what Value would read: strings escaped and numbers written the same way.
// Only key order may differ; an object that repeats a key is decoded
// first, so the last one wins as in a map.
func (s *Scanner) AppendValue(b []byte, depth int) ([]byte, error) {
	switch s.Next() {
	case '"':
		text, plain, err := s.PlainText()
		if err != nil {
			return nil, err
		}
		return AppendStringPlain(b, unsafe.String(unsafe.SliceData(text), len(text)), plain), nil
	case '{':
		return s.appendObject(b, depth)
	case '[':
		if depth > MaxDepth {
			return nil, ErrTooDeep
		}
		s.i++
		b = append(b, '[')
		var err error
		for more, n := !s.Expect(']'), 0; more; n++ {
			if n > 0 {
				b = append(b, ',')
			}
			if b, err = s.AppendValue(b, depth+1); err != nil {
				return nil, err
			}
			if more, err = s.More(']'); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case 't':
		return append(b, "true"...), s.Literal("true")
	case 'f':
		return append(b, "false"...), s.Literal("false")
	case 'n':
		return append(b, "null"...), s.Literal("null")
	}
	text, err := s.Number()
	if err != nil {
		return nil, err
	}
	n, f, isInt, err := numberParts(unsafe.String(unsafe.SliceData(text), len(text)))
	switch {
	case err != nil:
		return nil, err
	case isInt:
		return strconv.AppendInt(b, n, 10), nil
	}
	return appendJSONFloat(b, f)
}

// appendObject is AppendValue for an object. Its keys are remembered to
// notice a repeated one: compared pairwise while few, then in a map.
func (s *Scanner) appendObject(b []byte, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return nil, ErrTooDeep
	}
	start, mark := s.i, len(b)
	s.i++
	b = append(b, '{')
	var few [16][]byte
	keys := few[:0]
	var many map[string]bool
	for more, n := !s.Expect('}'), 0; more; n++ {
		k, plain, err := s.PlainText()
		if err != nil {
			return nil, err
		}
		if !s.Expect(':') {
			return nil, ErrSyntax
		}
		repeated := false
		if many != nil {
			repeated = many[string(k)]
			many[string(k)] = true
		} else {
			for _, prev := range keys {
				repeated = repeated || string(prev) == string(k)
			}
			if keys = append(keys, k); len(keys) == len(few) {
				many = make(map[string]bool, 2*len(few))
				for _, k := range keys {
					many[string(k)] = true
				}
			}
		}
		if repeated {
			s.i = start
			m, err := s.decodeObject(depth)
			if err != nil {
				return nil, err
			}
			return appendJSON(b[:mark], m)
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = AppendStringPlain(b, unsafe.String(unsafe.SliceData(k), len(k)), plain)
		b = append(b, ':')
		if b, err = s.AppendValue(b, depth+1); err != nil {
			return nil, err
		}
		if more, err = s.More('}'); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// ObjectField is the JSON of key's value in the JSON object obj (the last,
// if given twice, as a decoded map holds it); nil when obj is not an
// object or has no such key.
func ObjectField(obj []byte, key string) []byte {
	var found []byte
	err := EachField(obj, func(k, v []byte) {
		if string(k) == key {
			found = v
		}
	})
	if err != nil {
		return nil
	}
	return found
}

// EachKeptField calls fn with the position among o's names of each key of
// the JSON object obj that is one of them, and the JSON of its value, in
// order. The other values are skipped, and the keys recognised by o's
// order where it can.
func EachKeptField(obj []byte, o *KeyOrder, fn func(pos int, value []byte)) error {
	s := NewScanner(obj)
	defer s.Release()
	if !s.Expect('{') {
		return errors.New("not a JSON object")
	}
	prev := -1
	for more := !s.Expect('}'); more; {
		place, pos, found, err := s.OrderedKey(o, prev)
		if err != nil {
			return err
		}
		v, err := s.Skip(1)
		if err != nil {
			return err
		}
		if prev = place; found {
			fn(pos, v)
		}
		if more, err = s.More('}'); err != nil {
			return err
		}
	}
	if !s.AtEnd() {
		return ErrSyntax
	}
	return nil
}

// EachField calls fn with each key of the JSON object obj and the JSON of
// its value, in order, without decoding the values.
func EachField(obj []byte, fn func(key, value []byte)) error {
	s := NewScanner(obj)
	defer s.Release()
	if !s.Expect('{') {
		return errors.New("not a JSON object")
	}
	for more := !s.Expect('}'); more; {
		k, err := s.Key()
		if err != nil {
			return err
		}
		v, err := s.Skip(1)
		if err != nil {
			return err
		}
		fn(k, v)
		if more, err = s.More('}'); err != nil {
			return err
		}
	}
	if !s.AtEnd() {
		return ErrSyntax
	}
	return nil
}
