package parse

import (
	"errors"
	"strconv"
	"unsafe"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// A JSON event is typed and written in one pass over its bytes
// (envelope.Scanner), without building fastjson's tree first: the tree
// was a third of typing a CloudTrail event. Strings without escapes are
// read where they lie in the event, which outlives the writing.
//
// This is the fast path of emitFields and does the same, value for value.
// The Scanner is strict: what it reads to the end is valid JSON, as
// fastjson.Validate has it. Whatever is not plain sailing (invalid JSON, a
// value that does not type, a missing required field, a schema whose
// fields are not looked up by key, nesting near fastjson's depth limit)
// gives an error here, and the event is validated and written again
// through fastjson's tree, which decides and reports as before.

// errUseTree: the schema's fields are not looked up by key.
var errUseTree = errors.New("write through the tree")

// scanMargin makes the Scanner refuse nesting a little before fastjson's
// limit, so that the tree decides an event that deep.
const scanMargin = 2

// scanFields writes the object at the read position's fields without
// braces, as emitFields does; first reports that none was written.
func (st *state) scanFields(b []byte, s *envelope.Scanner, fields []*node, set *fieldSet, depth int) (_ []byte, first bool, _ error) {
	if set.ordered {
		return nil, false, errUseTree
	}
	if depth+scanMargin > envelope.MaxDepth {
		return nil, false, envelope.ErrTooDeep
	}
	var seen, present fieldBits
	first = true
	s.Expect('{')
	prev := -1 // the previous key's place in set's order
	for more := !s.Expect('}'); more; {
		place, i, ok, err := s.OrderedKey(set.order, prev)
		if err != nil {
			return nil, false, err
		}
		prev = place
		switch {
		case !ok:
			_, err = s.Skip(depth + 1 + scanMargin)
		case seen.has(i): // a key given twice counts once: the first
			st.dupKey = true
			_, err = s.Skip(depth + 1 + scanMargin)
		case s.Next() == 'n':
			seen.add(i)
			err = s.Literal("null")
		default:
			seen.add(i)
			present.add(i)
			f := fields[i]
			start := s.Pos()
			if f.onlyKept { // a key derived fields read, not a field
				_, err = s.Skip(depth + 1 + scanMargin)
			} else {
				mark := len(b)
				b = appendKey(b, first, f)
				var wrote bool
				if b, wrote, err = st.scanValue(b, s, f, depth+1); err != nil {
					return nil, false, err
				}
				if !wrote {
					b = b[:mark]
				} else {
					first = false
				}
			}
			if f.keep != 0 && err == nil { // for derived fields to read
				st.kept[f.keep-1] = st.in[start:s.Pos()]
			}
		}
		if err != nil {
			return nil, false, err
		}
		if more, err = s.More('}'); err != nil {
			return nil, false, err
		}
	}
	if !present.covers(&set.required) {
		return nil, false, errUseTree
	}
	return b, first, nil
}

// scanValue is emitValue for the value at the read position.
func (st *state) scanValue(b []byte, s *envelope.Scanner, f *node, depth int) (_ []byte, wrote bool, err error) {
	start := s.Pos()
	c := s.Next()
	switch {
	// The cases are of different types, so their order is only that of
	// their frequency: most values are strings.
	case f.typ == schema.TypeString && c == '"':
		text, plain, err := s.PlainText()
		if err != nil {
			return nil, false, err
		}
		if nb, ok := st.emitString(b, f, unsafe.String(unsafe.SliceData(text), len(text)), plain); ok {
			return nb, true, nil
		}
	case (f.typ == schema.TypeObject || f.typ == schema.TypeRef) && c == '{':
		b = append(b, '{')
		if b, _, err = st.scanFields(b, s, f.fields, &f.set, depth); err != nil {
			return nil, false, err
		}
		return append(b, '}'), true, nil
	case f.typ == schema.TypeArray && (c != '"' || !f.embedded):
		b = append(b, '[')
		if c != '[' { // a lone value where a list is expected
			if b, _, err = st.scanItem(b, s, f.element, depth, 0); err != nil {
				return nil, false, err
			}
			return append(b, ']'), true, nil
		}
		if depth+scanMargin > envelope.MaxDepth {
			return nil, false, envelope.ErrTooDeep
		}
		s.Expect('[')
		for more, n := !s.Expect(']'), 0; more; {
			if b, n, err = st.scanItem(b, s, f.element, depth+1, n); err != nil {
				return nil, false, err
			}
			if more, err = s.More(']'); err != nil {
				return nil, false, err
			}
		}
		return append(b, ']'), true, nil
	case (f.typ == schema.TypeInt || f.typ == schema.TypeBigInt || f.typ == schema.TypeSmallInt) &&
		len(f.indicators) == 0 && (c == '-' || c >= '0' && c <= '9'):
		text, err := s.Number()
		if err != nil {
			return nil, false, err
		}
		if n, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(text), len(text)), 10, 64); err == nil && f.fits(n) {
			return strconv.AppendInt(b, n, 10), true, nil
		}
	case f.typ == schema.TypeTimestamp && c == '"':
		text, err := s.Text()
		if err != nil {
			return nil, false, err
		}
		if nb, ok := st.emitTime(b, f, unsafe.String(unsafe.SliceData(text), len(text))); ok {
			return nb, true, nil
		}
	case f.typ == schema.TypeJSON && (c != '"' || !f.embedded):
		mark := len(b)
		if b, err = s.AppendValue(b, depth+scanMargin); err != nil {
			return nil, false, err
		}
		if f.json != nil && f.json.mayHold(b[mark:], f.name) {
			// Read again, only for a value that may hold indicators.
			end := s.Pos()
			s.Seek(start)
			if err := st.res.Indicators.scanJSON(f.json, f.name, s, depth+scanMargin); err != nil {
				return nil, false, err
			}
			s.Seek(end)
		}
		return b, true, nil
	case f.typ == schema.TypeBoolean && c == 't':
		return append(b, "true"...), true, s.Literal("true")
	case f.typ == schema.TypeBoolean && c == 'f':
		return append(b, "false"...), true, s.Literal("false")
	}
	// The rest is typed from the decoded value, as emitValue does.
	s.Seek(start)
	x, err := s.Value(depth + scanMargin)
	if err != nil {
		return nil, false, err
	}
	cv, err := st.value(f, x, fieldPath{name: f.name})
	if err != nil || cv == nil {
		return b, false, err
	}
	if b, err = envelope.AppendJSON(b, cv); err != nil {
		return nil, false, err
	}
	return b, true, nil
}

// scanItem writes a list's item as emitValue does: a null is left out, an
// item that types to nothing is written as null. n counts the items
// written so far.
func (st *state) scanItem(b []byte, s *envelope.Scanner, el *node, depth, n int) ([]byte, int, error) {
	if s.Next() == 'n' {
		return b, n, s.Literal("null")
	}
	if n > 0 {
		b = append(b, ',')
	}
	mark := len(b)
	b, wrote, err := st.scanValue(b, s, el, depth)
	if err != nil {
		return nil, n, err
	}
	if !wrote {
		b = append(b[:mark], "null"...)
	}
	return b, n + 1, nil
}
