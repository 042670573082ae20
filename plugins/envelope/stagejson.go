package envelope

import (
	"errors"
	"math"
	"strconv"
	"unsafe"

	"github.com/valyala/fastjson"
)

// DecodeEvent reads an event that a Caracal stage wrote (EncodeEvent) into
// the same values as DecodeObject, several times faster: one pass over the
// bytes (Scanner), no parse tree. Like fastjson it is lenient where the JSON
// grammar is not, so input from outside (webhooks) goes through
// DecodeObject; here malformed numbers are still refused.
func DecodeEvent(b []byte) (map[string]any, error) { return DecodeEventKeys(b, nil) }

// Keys is a set of top-level keys for DecodeEventKeys and ViewEventKeys,
// found as Names finds names: an event has dozens of keys and most are not
// kept, and a map lookup for each was a seventh of enriching an event.
type Keys struct {
	names Names
	order *KeyOrder // the events' key order, to find these keys fast
}

// NewKeys makes the set of keys.
func NewKeys(keys ...string) *Keys {
	k := &Keys{names: NewNames(keys)}
	k.order = NewKeyOrder(k.names)
	return k
}

// DecodeEventKeys is DecodeEvent keeping only the top-level keys in keep
// (every key when keep is nil): the values of the others are skipped, not
// decoded, so a reader that needs a few fields pays little for the rest.
func DecodeEventKeys(b []byte, keep *Keys) (map[string]any, error) {
	return decodeEvent(NewScanner(b), keep)
}

// ViewEventKeys is DecodeEventKeys whose strings point into b instead of
// being copied out of it: b must not change while the result is in use.
// For a short look at an event (does a rule match?), not for keeping it.
func ViewEventKeys(b []byte, keep *Keys) (map[string]any, error) {
	s := NewScanner(b)
	s.view = true
	return decodeEvent(s, keep)
}

// ViewValue decodes one JSON value (a Scanner.Skip result, say) as
// ViewEventKeys decodes values: its strings point into b.
func ViewValue(b []byte) (any, error) {
	s := NewScanner(b)
	s.view = true
	defer s.Release()
	v, err := s.decodeValue(0)
	if err == nil && !s.AtEnd() {
		err = ErrSyntax
	}
	return v, err
}

// ViewString is the string a JSON string token (a Scanner.Skip result)
// holds, pointing into b unless it has escapes; ok is false for any other
// value.
func ViewString(b []byte) (_ string, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", false
	}
	s := NewScanner(b)
	defer s.Release()
	text, err := s.Text()
	if err != nil || !s.AtEnd() {
		return "", false
	}
	return unsafe.String(unsafe.SliceData(text), len(text)), true
}

func decodeEvent(s Scanner, keep *Keys) (map[string]any, error) {
	defer s.Release()
	if s.Next() != '{' {
		return nil, errors.New("not a JSON object")
	}
	var m map[string]any
	var err error
	if keep != nil {
		m, err = s.decodeKept(keep)
	} else {
		m, err = s.decodeObject(0)
	}
	if err != nil {
		return nil, err
	}
	if !s.AtEnd() {
		return nil, ErrSyntax
	}
	return m, nil
}

// decodeObject reads the object at the read position into a map (the last
// of a repeated key wins).
func (s *Scanner) decodeObject(depth int) (map[string]any, error) {
	if depth > MaxDepth {
		return nil, ErrTooDeep
	}
	s.Expect('{')
	m := make(map[string]any)
	for more := !s.Expect('}'); more; {
		key, err := s.Key()
		if err != nil {
			return nil, err
		}
		v, err := s.decodeValue(depth + 1)
		if err != nil {
			return nil, err
		}
		m[string(key)] = v
		if more, err = s.More('}'); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// decodeKept is decodeObject for an event, keeping only the keys in keep,
// which it finds by their order (KeyOrder) and names with keep's own
// strings.
func (s *Scanner) decodeKept(keep *Keys) (map[string]any, error) {
	s.Expect('{')
	m := make(map[string]any, min(len(keep.names.byPos), 16))
	prev := -1
	for more := !s.Expect('}'); more; {
		place, pos, found, err := s.OrderedKey(keep.order, prev)
		if err != nil {
			return nil, err
		}
		if prev = place; found {
			v, err := s.decodeValue(1)
			if err != nil {
				return nil, err
			}
			m[keep.names.byPos[pos]] = v
		} else if _, err := s.Skip(1); err != nil {
			return nil, err
		}
		if more, err = s.More('}'); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// decodeValue reads the next value as DecodeObject would decode it.
func (s *Scanner) decodeValue(depth int) (any, error) {
	switch s.Next() {
	case '"':
		raw, escaped, err := s.Str()
		if err != nil {
			return nil, err
		}
		if escaped {
			raw = s.Unescape(raw) // new memory: no copy needed
		} else if !s.view {
			return string(raw), nil
		}
		return unsafe.String(unsafe.SliceData(raw), len(raw)), nil
	case '{':
		return s.decodeObject(depth)
	case '[':
		if depth > MaxDepth {
			return nil, ErrTooDeep
		}
		s.Expect('[')
		out := []any{}
		for more := !s.Expect(']'); more; {
			v, err := s.decodeValue(depth + 1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			if more, err = s.More(']'); err != nil {
				return nil, err
			}
		}
		return out, nil
	case 't':
		return true, s.Literal("true")
	case 'f':
		return false, s.Literal("false")
	case 'n':
		return nil, s.Literal("null")
	}
	text, err := s.Number()
	if err != nil {
		return nil, err
	}
	return numberOf(unsafe.String(unsafe.SliceData(text), len(text)))
}

// numberOf is a number's value as DecodeObject gives it: an int64 when it
// is integral and exactly representable (all of int64 from integer
// literals; 1.0 or 1e3 up to 2^53), else a float64.
func numberOf(text string) (any, error) {
	n, f, isInt, err := numberParts(text)
	switch {
	case err != nil:
		return nil, err
	case isInt:
		return n, nil
	}
	return f, nil
}

// numberParts is numberOf without boxing: n when isInt, else f.
func numberParts(text string) (n int64, f float64, isInt bool, err error) {
	if n, err := strconv.ParseInt(text, 10, 64); err == nil {
		return n, 0, true, nil
	}
	f, err = strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, 0, false, errors.New("not a JSON object: malformed number " + text)
	}
	if n, ok := exactInt(f); ok {
		return n, 0, true, nil
	}
	return 0, f, false, nil
}

// exactInt is f as an int64 when f is integral and within ±2^53, where
// every integer is exact as a float64.
func exactInt(f float64) (int64, bool) {
	if f == math.Trunc(f) && f <= maxExactInt && f >= -maxExactInt {
		return int64(f), true
	}
	return 0, false
}

// Value copies one parsed JSON value out of fastjson's buffer into the value
// DecodeObject would give it: string, int64, float64, bool, nil, []any or
// map[string]any.
func Value(v *fastjson.Value) (any, error) {
	d := decoder{}
	x := d.value(v)
	return x, d.err
}

type decoder struct{ err error }

func (d *decoder) object(o *fastjson.Object) map[string]any {
	m := make(map[string]any, o.Len())
	o.Visit(func(k []byte, v *fastjson.Value) { m[string(k)] = d.value(v) })
	return m
}

// value copies v out of the parser's buffer, as DecodeObject would decode it.
func (d *decoder) value(v *fastjson.Value) any {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return string(b)
	case fastjson.TypeNumber:
		return d.number(v)
	case fastjson.TypeObject:
		o, _ := v.Object()
		return d.object(o)
	case fastjson.TypeArray:
		items, _ := v.Array()
		out := make([]any, len(items))
		for i, it := range items {
			out[i] = d.value(it)
		}
		return out
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	}
	return nil
}

// number is an int64 when the number is integral and exactly representable
// (all of int64 from integer literals; 1.0 or 1e3 up to 2^53), else a float64.
func (d *decoder) number(v *fastjson.Value) any {
	n, f, isInt := d.numberParts(v)
	if d.err != nil {
		return nil
	}
	if isInt {
		return n
	}
	return f
}

func (d *decoder) numberParts(v *fastjson.Value) (n int64, f float64, isInt bool) {
	if n, err := v.Int64(); err == nil {
		return n, 0, true
	}
	f, err := v.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		if d.err == nil {
			d.err = errors.New("not a JSON object: malformed number " + string(v.MarshalTo(nil)))
		}
		return 0, 0, false
	}
	if n, ok := exactInt(f); ok {
		return n, 0, true
	}
	return 0, f, false
}

// AppendValue appends v as AppendJSON writes Value(v), without copying it
// out first: numbers normalized the same way, strings escaped the same
// way. Only key order may differ, which no reader depends on; an object
// that repeats a key goes through Value, so the last one wins as in a map.
func AppendValue(b []byte, v *fastjson.Value) ([]byte, error) {
	d := decoder{}
	b = d.appendValue(b, v)
	return b, d.err
}

func (d *decoder) appendValue(b []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return appendJSONString(b, unsafe.String(unsafe.SliceData(s), len(s)))
	case fastjson.TypeNumber:
		n, f, isInt := d.numberParts(v)
		if isInt {
			return strconv.AppendInt(b, n, 10)
		}
		if d.err == nil {
			b, d.err = appendJSONFloat(b, f)
		}
		return b
	case fastjson.TypeObject:
		o, _ := v.Object()
		if repeatsKey(o) {
			x := d.value(v)
			if d.err == nil {
				b, d.err = appendJSON(b, x)
			}
			return b
		}
		b = append(b, '{')
		first := true
		o.Visit(func(k []byte, x *fastjson.Value) {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, unsafe.String(unsafe.SliceData(k), len(k)))
			b = append(b, ':')
			b = d.appendValue(b, x)
		})
		return append(b, '}')
	case fastjson.TypeArray:
		items, _ := v.Array()
		b = append(b, '[')
		for i, it := range items {
			if i > 0 {
				b = append(b, ',')
			}
			b = d.appendValue(b, it)
		}
		return append(b, ']')
	case fastjson.TypeTrue:
		return append(b, "true"...)
	case fastjson.TypeFalse:
		return append(b, "false"...)
	}
	return append(b, "null"...)
}

// repeatsKey reports whether an object holds a key twice. Objects are
// small, so the keys are compared pairwise (a map past 32 keys).
func repeatsKey(o *fastjson.Object) bool {
	n := o.Len()
	if n < 2 {
		return false
	}
	if n > 32 {
		seen := make(map[string]bool, n)
		dup := false
		o.Visit(func(k []byte, _ *fastjson.Value) {
			if seen[string(k)] {
				dup = true
			}
			seen[string(k)] = true
		})
		return dup
	}
	var keys [32][]byte
	i, dup := 0, false
	o.Visit(func(k []byte, _ *fastjson.Value) {
		for _, prev := range keys[:i] {
			if string(prev) == string(k) {
				dup = true
			}
		}
		keys[i] = k
		i++
	})
	return dup
}
