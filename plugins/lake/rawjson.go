package lake

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/valyala/fastjson"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// Events reach the lake as JSON. They are encoded into columns in one pass
// over their bytes, with the same conversions as EncodeColumns: no parse
// tree (building, holding and resetting fastjson's trees was a third of
// the lake stage's time) and no copy of a string without escapes, whose
// column value points into the event until the pending rows reach the
// column writers (which copy them). The event's bytes stay unchanged and
// referenced until then.

// maxDepth bounds nesting, as fastjson does, so a hostile event cannot
// exhaust the stack.
const maxDepth = 300

var errSyntax = errors.New("not a JSON object: malformed JSON")

// EncodeJSON appends a row given as a JSON object to per-column value
// slices; see EncodeColumns. A key repeated in one object counts once (its
// first value), as fastjson reads it.
func (t *Table) EncodeJSON(cols [][]parquet.Value, raw []byte) error {
	s := jsonRow{b: raw, cols: cols}
	defer s.release()
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return errors.New("not a JSON object")
	}
	if err := s.object(t.root, 0, 0, 0, 0); err != nil {
		return err
	}
	s.ws()
	if s.i != len(s.b) {
		return errSyntax
	}
	return nil
}

// jsonRow is the read position in one event and the columns it goes to.
type jsonRow struct {
	b    []byte
	i    int
	cols [][]parquet.Value
	p    *fastjson.Parser // unescapes the rare escaped string
}

var unescapers fastjson.ParserPool

func (s *jsonRow) release() {
	if s.p != nil {
		unescapers.Put(s.p)
	}
}

func (s *jsonRow) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips white space and reports the byte there (0 at the end).
func (s *jsonRow) next() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads the string at s.i (its opening quote) and returns its raw
// content and whether it holds escapes.
func (s *jsonRow) str() (raw []byte, escaped bool, err error) {
	start := s.i + 1
	end := bytes.IndexByte(s.b[start:], '"')
	if end < 0 {
		return nil, false, errSyntax
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
	return nil, false, errSyntax
}

// unescape returns a string's content with its escapes resolved exactly as
// fastjson (and so every other stage) resolves them, in new memory.
func (s *jsonRow) unescape(raw []byte) []byte {
	if s.p == nil {
		s.p = unescapers.Get()
	}
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	v, err := s.p.ParseBytes(quoted)
	if err != nil {
		return raw
	}
	return bytes.Clone(v.GetStringBytes())
}

// text reads a string value, unescaped.
func (s *jsonRow) text() ([]byte, error) {
	raw, escaped, err := s.str()
	if err != nil || !escaped {
		return raw, err
	}
	return s.unescape(raw), nil
}

// literal reads true, false or null.
func (s *jsonRow) literal(word string) error {
	if !bytes.HasPrefix(s.b[s.i:], unsafe.Slice(unsafe.StringData(word), len(word))) {
		return errSyntax
	}
	s.i += len(word)
	return nil
}

// number reads a number's text.
func (s *jsonRow) number() ([]byte, error) {
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
			break
		}
		s.i++
	}
	if s.i == start {
		return nil, errSyntax
	}
	return s.b[start:s.i], nil
}

// skip reads past the value at s.i and returns its bytes.
func (s *jsonRow) skip(depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errors.New("not a JSON object: nested too deeply")
	}
	c := s.next()
	start := s.i
	var err error
	switch c {
	case '"':
		_, _, err = s.str()
	case '{', '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		s.i++
		if s.next() == end {
			s.i++
			break
		}
		for err == nil {
			if c == '{' {
				if s.next() != '"' {
					return nil, errSyntax
				}
				if _, _, err = s.str(); err != nil {
					return nil, err
				}
				if s.next() != ':' {
					return nil, errSyntax
				}
				s.i++
			}
			if _, err = s.skip(depth + 1); err != nil {
				return nil, err
			}
			switch s.next() {
			case ',':
				s.i++
				continue
			case end:
				s.i++
			default:
				err = errSyntax
			}
			break
		}
	case 't':
		err = s.literal("true")
	case 'f':
		err = s.literal("false")
	case 'n':
		err = s.literal("null")
	default:
		_, err = s.number()
	}
	if err != nil {
		return nil, err
	}
	return s.b[start:s.i], nil
}

// object encodes the object at s.i into group g's columns; fields it lacks
// are nulls.
func (s *jsonRow) object(g *col, r, d, rep, depth int) error {
	if depth > maxDepth {
		return errors.New("not a JSON object: nested too deeply")
	}
	var small [128]bool
	seen := g.seen(&small)
	s.i++ // {
	if s.next() == '}' {
		s.i++
	} else {
		for {
			if s.next() != '"' {
				return errSyntax
			}
			key, escaped, err := s.str()
			if err != nil {
				return err
			}
			if escaped {
				key = s.unescape(key)
			}
			if s.next() != ':' {
				return errSyntax
			}
			s.i++
			s.ws()
			if i, ok := g.child(key); ok && !seen[i] {
				seen[i] = true
				err = s.value(g.children[i], r, d, rep, depth+1)
			} else {
				_, err = s.skip(depth + 1)
			}
			if err != nil {
				return err
			}
			c := s.next()
			s.i++
			if c == '}' {
				break
			}
			if c != ',' {
				return errSyntax
			}
		}
	}
	for i, c := range g.children {
		if !seen[i] {
			nulls(s.cols, c, r, d)
		}
	}
	return nil
}

// value encodes the value at s.i into optional node c; d is the parent's
// definition level, rep the number of repeated ancestors (see encode).
func (s *jsonRow) value(c *col, r, d, rep, depth int) error {
	first := s.next()
	if first == 'n' {
		if err := s.literal("null"); err != nil {
			return err
		}
		nulls(s.cols, c, r, d)
		return nil
	}
	switch c.shape {
	case groupShape:
		if first != '{' {
			if _, err := s.skip(depth); err != nil {
				return err
			}
			nulls(s.cols, c, r, d)
			return nil
		}
		return s.object(c, r, d+1, rep, depth)
	case listShape:
		// As encodeItems: a lone value is a list of one; an empty list is
		// a null element one level down.
		item := c.children[0]
		if first != '[' {
			return s.value(item, r, d+2, rep+1, depth)
		}
		s.i++
		if s.next() == ']' {
			s.i++
			nulls(s.cols, item, r, d+1)
			return nil
		}
		for n := 0; ; n++ {
			ri := r
			if n > 0 {
				ri = rep + 1
			}
			if err := s.value(item, ri, d+2, rep+1, depth+1); err != nil {
				return err
			}
			c := s.next()
			s.i++
			if c == ']' {
				return nil
			}
			if c != ',' {
				return errSyntax
			}
		}
	}
	val, err := s.leaf(c.kind, first, depth)
	if err == errSyntax {
		return err
	}
	return appendLeaf(s.cols, c, val, err, r, d)
}

// jsonType names the JSON type a value starting with c has, for errors.
func jsonType(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

// leaf reads a leaf value of the given kind; first is its first byte.
func (s *jsonRow) leaf(kind string, first byte, depth int) (parquet.Value, error) {
	switch kind {
	case schema.TypeString:
		if first == '"' {
			b, err := s.text()
			return parquet.ByteArrayValue(b), err
		}
		b, err := s.skip(depth)
		return parquet.ByteArrayValue(b), err
	case schema.TypeJSON:
		b, err := s.skip(depth)
		return parquet.ByteArrayValue(b), err
	case schema.TypeInt, schema.TypeBigInt, schema.TypeSmallInt:
		b, err := s.numberOf("an integer", first, depth)
		if err != nil {
			return parquet.Value{}, err
		}
		text := unsafe.String(unsafe.SliceData(b), len(b))
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil { // a fraction or an exponent: as EncodeColumns, truncate
			f, ferr := strconv.ParseFloat(text, 64)
			if ferr != nil {
				return parquet.Value{}, fmt.Errorf("%q is not a number", string(b))
			}
			n = int64(f)
		}
		if kind == schema.TypeSmallInt {
			return parquet.Int32Value(int32(n)), nil
		}
		return parquet.Int64Value(n), nil
	case schema.TypeFloat:
		b, err := s.numberOf("a number", first, depth)
		if err != nil {
			return parquet.Value{}, err
		}
		f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(b), len(b)), 64)
		if err != nil {
			return parquet.Value{}, fmt.Errorf("%q is not a number", string(b))
		}
		return parquet.DoubleValue(f), nil
	case schema.TypeBoolean:
		switch first {
		case 't':
			return parquet.BooleanValue(true), s.literal("true")
		case 'f':
			return parquet.BooleanValue(false), s.literal("false")
		}
		return parquet.Value{}, s.wrongType("a boolean", first, depth)
	case schema.TypeTimestamp:
		if first != '"' {
			return parquet.Value{}, s.wrongType("a timestamp", first, depth)
		}
		b, err := s.text()
		if err != nil {
			return parquet.Value{}, err
		}
		tm, err := time.Parse(time.RFC3339Nano, unsafe.String(unsafe.SliceData(b), len(b)))
		if err != nil { // the error must not keep the event's bytes
			return parquet.Value{}, fmt.Errorf("%q is not an RFC 3339 time", string(b))
		}
		return parquet.Int64Value(tm.UnixMicro()), nil
	}
	return parquet.Value{}, fmt.Errorf("unknown column kind %q", kind)
}

// numberOf reads a number where one is wanted.
func (s *jsonRow) numberOf(want string, first byte, depth int) ([]byte, error) {
	if first != '-' && (first < '0' || first > '9') {
		return nil, s.wrongType(want, first, depth)
	}
	return s.number()
}

// wrongType skips a value of the wrong type and says what was wanted; a
// malformed value is a syntax error instead.
func (s *jsonRow) wrongType(want string, first byte, depth int) error {
	if _, err := s.skip(depth); err != nil {
		return err
	}
	return fmt.Errorf("want %s, got %s", want, jsonType(first))
}

// topStrings returns the string values of two top-level keys of a JSON
// object (nil when absent or not strings), reading no further than it
// needs to.
func topStrings(raw []byte, k1, k2 string) (v1, v2 []byte, err error) {
	s := jsonRow{b: raw}
	defer s.release()
	if s.next() != '{' {
		return nil, nil, errors.New("not a JSON object")
	}
	s.i++
	if s.next() == '}' {
		return nil, nil, nil
	}
	found1, found2 := false, false
	for !found1 || !found2 {
		if s.next() != '"' {
			return nil, nil, errSyntax
		}
		key, escaped, err := s.str()
		if err != nil {
			return nil, nil, err
		}
		if escaped {
			key = s.unescape(key)
		}
		if s.next() != ':' {
			return nil, nil, errSyntax
		}
		s.i++
		var dst *[]byte
		switch {
		case !found1 && string(key) == k1:
			dst, found1 = &v1, true
		case !found2 && string(key) == k2:
			dst, found2 = &v2, true
		}
		if dst != nil && s.next() == '"' {
			if *dst, err = s.text(); err != nil {
				return nil, nil, err
			}
		} else if _, err := s.skip(0); err != nil {
			return nil, nil, err
		}
		c := s.next()
		s.i++
		if c == '}' {
			break
		}
		if c != ',' {
			return nil, nil, errSyntax
		}
	}
	return v1, v2, nil
}

// addRaw encodes an event given as JSON into its file. A partition's
// events mostly share a log type and an hour, so it is first encoded
// straight into the previous row's file and kept if its own p_log_type
// and hour columns say it belongs there. Otherwise (or if that fails) its
// log type and time are read first and it is placed as any row is.
func (b *Batch) addRaw(r *Record) error {
	if f := b.last; f != nil && f.key.topic == r.Topic && f.key.partition == r.Partition && f.table.logTypeCol >= 0 {
		f.markRow()
		if err := f.table.EncodeJSON(f.cols, r.Raw); err == nil && f.table.rowBelongs(f.cols, f.key.hour) {
			f.keepRow()
			return b.added(f, r)
		}
		f.dropRow()
	}
	// Log tables are partitioned by p_event_time (LogTable).
	logType, at, err := topStrings(r.Raw, envelope.FieldLogType, envelope.FieldEventTime)
	if err != nil {
		b.w.fail(r, fmt.Errorf("not a JSON object: %w", err))
		return nil
	}
	tab, err := b.w.Tables.logTable(string(logType))
	if err != nil {
		b.w.fail(r, err)
		return nil
	}
	hour, err := rawHour(at)
	_, err = b.place(r, tab, hour, err, rawRow{tab, r.Raw})
	return err
}

// rawHour is partitionHour for a time given as JSON string content.
func rawHour(at []byte) (time.Time, error) {
	if at == nil {
		return partitionHour(nil)
	}
	t, err := time.Parse(time.RFC3339Nano, unsafe.String(unsafe.SliceData(at), len(at)))
	if err != nil {
		return partitionHour(string(at)) // the same error, on a copy
	}
	return t.UTC().Truncate(time.Hour), nil
}

// rawRow is a row given as JSON.
type rawRow struct {
	tab *Table
	raw []byte
}

func (e rawRow) encode(cols [][]parquet.Value) error { return e.tab.EncodeJSON(cols, e.raw) }

// rowBelongs reports whether the row just encoded (the last value of each
// top-level column) has the table's log type and a time in that hour.
func (t *Table) rowBelongs(cols [][]parquet.Value, hour time.Time) bool {
	lt, at := cols[t.logTypeCol], cols[t.timeCol]
	if len(lt) == 0 || len(at) == 0 {
		return false
	}
	l, a := lt[len(lt)-1], at[len(at)-1]
	return !l.IsNull() && string(l.ByteArray()) == t.LogType &&
		!a.IsNull() && time.UnixMicro(a.Int64()).UTC().Truncate(time.Hour).Equal(hour)
}
