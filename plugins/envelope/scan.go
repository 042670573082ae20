package envelope

import (
	"bytes"
	"errors"
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

var unescapers fastjson.ParserPool

// Release returns what the Scanner borrowed; call it when done.
func (s *Scanner) Release() {
	if s.p != nil {
		unescapers.Put(s.p)
		s.p = nil
	}
}

func (s *Scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

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
	end := bytes.IndexByte(s.b[start:], '"')
	if end < 0 {
		return nil, false, ErrSyntax
	}
	end += start
	if bytes.IndexByte(s.b[start:end], '\\') < 0 {
		s.i = end + 1
		return s.b[start:end], false, nil
	}
	for j := start; j < len(s.b); j++ {
		switch s.b[j] {
		case '\\':
			j++
		case '"':
			s.i = j + 1
			return s.b[start:j], true, nil
		}
	}
	return nil, false, ErrSyntax
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
	if s.i == start {
		return nil, ErrSyntax
	}
	return s.b[start:s.i], nil
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
		_, _, err = s.Str()
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
				if _, _, err = s.Str(); err != nil {
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
