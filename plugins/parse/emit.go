package parse

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/native"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// The process stage hands events on as JSON. For a log type whose fields
// are all read from their own keys, the event is written as JSON while it
// is typed instead of being built as maps and then encoded: JSON input
// straight from fastjson's values (most strings are copied once, into the
// output, and nothing is allocated per field), line formats from their
// reader's map. What it writes decodes to the same values as the map
// path's: typedjson_test.go checks both on every schema's tests and on
// thousands of changed inputs, and FuzzClassify on whatever it finds.

// canEmit: no field of its own named like a standard p_* field (the map
// path lets the standard field win; written JSON would hold the key
// twice), and derived fields only at the top level. Line formats qualify
// too: their reader's values are written out field by field rather than
// typed in a map and encoded. A derived field that is the event time must
// be the only one: the map path takes the first in the schema's order,
// the emit path writes derived fields last.
func (p *Parser) canEmit() bool {
	for _, f := range p.fields {
		if strings.HasPrefix(f.name, "p_") {
			return false
		}
	}
	for _, f := range p.scanned {
		if f.derives() {
			return false // nested: the map path
		}
	}
	for _, f := range p.derived {
		if f.eventTime && eventTimeFields(p.fields) > 1 {
			return false
		}
	}
	return true
}

func eventTimeFields(fields []*node) int {
	n := 0
	for _, f := range fields {
		if f.eventTime {
			n++
		}
		n += eventTimeFields(f.fields)
		if f.element != nil {
			n += eventTimeFields([]*node{f.element})
		}
	}
	return n
}

// emitEvent types an event and writes it, with the standard fields. It is
// written into a reused buffer and then copied out at its size: a buffer
// sized for the event beforehand must guess, and its slack was as many
// bytes again for the garbage collector.
func (c *Classifier) emitEvent(p *Parser, raw []byte, keys *keySearch, o Origin, rowID string) ([]byte, error) {
	sc := emitScratches.Get().(*emitScratch)
	defer sc.put()
	b, err := c.emitInto(sc, sc.out[:0], p, raw, keys, o, rowID)
	if err != nil {
		return nil, err
	}
	if cap(b) <= maxKeptOut {
		sc.out = b
	}
	// make and copy, which the compiler makes one allocation left
	// unzeroed, rather than bytes.Clone's append, which zeroes its slack.
	out := make([]byte, len(b))
	copy(out, b)
	return out, nil
}

// maxKeptOut bounds the buffer a scratch keeps: a rare large event's is
// left to the collector rather than held.
const maxKeptOut = 64 << 10

func (c *Classifier) emitInto(sc *emitScratch, b []byte, p *Parser, raw []byte, keys *keySearch, o Origin, rowID string) ([]byte, error) {
	res := &sc.res
	st := &sc.st
	b = append(b, '{')
	var first bool
	if p.read != nil {
		rec := getRecord()
		sc.rec = rec // given back by sc.put
		rec.Borrow() // written out below, while raw is ours
		if err := p.read(rec, raw, p.header(o)); err != nil {
			return nil, err
		}
		var err error
		if b, first, err = st.emitRecord(b, p, rec, &sc.keys); err != nil {
			return nil, err
		}
		if p.derived != nil {
			if b, first, err = st.emitDerived(b, first, p.derived, recordRoot(rec, p.deriveTop)); err != nil {
				return nil, err
			}
		}
	} else {
		raw, err := p.precheck(raw, keys)
		if err != nil {
			return nil, err
		}
		s := envelope.NewStrictScanner(raw)
		if p.derived != nil {
			st.in, st.kept = raw, append(st.kept[:0], make([][]byte, len(p.deriveTop))...)
		}
		nb, none, err := st.scanFields(b, &s, p.jsonFields, &p.jsonSet, 0)
		if err == nil && !s.AtEnd() {
			err = envelope.ErrSyntax
		}
		s.Release()
		switch {
		case err == nil && (p.derived == nil || !st.dupKey):
			b, first = nb, none
		case p.derived != nil:
			return nil, errMapPath
		default:
			// fastjson decides (scanemit.go), from the start.
			sc.reset()
			if raw, err = p.validJSON(raw, nil); err != nil {
				return nil, err
			}
			jp, obj, err := parseTree(raw)
			if err != nil {
				return nil, err
			}
			sc.jp = jp // given back by sc.put, once the indicators in it are written
			if b, first, err = st.emitFields(b, p.scanned, &p.set, obj, ""); err != nil {
				return nil, err
			}
		}
		if p.derived != nil {
			root, err := keptRoot(st.kept, p.deriveTop, p.derivedRead)
			if err != nil {
				return nil, errMapPath
			}
			if b, first, err = st.emitDerived(b, first, p.derived, root); err != nil {
				return nil, err
			}
		}
	}
	now := c.now().UTC()
	eventTime := res.EventTime
	if eventTime.IsZero() {
		eventTime = now
	}
	if !first {
		b = append(b, ',')
	}
	// The keys are constants, written as they are.
	b = append(b, `"`+envelope.FieldLogType+`":`...)
	b = envelope.AppendString(b, p.Schema.Schema)
	b = append(b, `,"`+envelope.FieldEventTime+`":`...)
	if len(st.eventText) > 0 {
		b = append(b, st.eventText...) // as the event's own time field was written
	} else {
		b = appendQuotedTime(b, eventTime)
	}
	b = append(b, `,"`+envelope.FieldParseTime+`":`...)
	b = appendQuotedTime(b, now)
	b = append(b, `,"`+envelope.FieldRowID+`":`...)
	b = envelope.AppendString(b, rowID)
	b = append(b, `,"`+envelope.FieldSourceID+`":`...)
	b = envelope.AppendString(b, o.SourceID)
	b = append(b, `,"`+envelope.FieldSourceLabel+`":`...)
	b = envelope.AppendString(b, o.SourceLabel)
	b = append(b, `,"`+envelope.FieldSchemaVersion+`":`...)
	b = strconv.AppendInt(b, int64(p.Schema.Version), 10)
	b = res.Indicators.appendFields(b)
	return append(b, '}'), nil
}

// emitScratch is what writing one event needs besides its output, reused
// from event to event: nothing an event keeps points into it.
type emitScratch struct {
	res  Result
	ix   Indicators
	st   state
	out  []byte
	keys recordKeys
	// rec and jp, when set, are what the event was read with, given back
	// by put: emitInto defers nothing, since a function with deferred
	// calls and as many returns as it has pays for the runtime's defer
	// handling on every call.
	rec *native.Record
	jp  *fastjson.Parser
}

var emitScratches = sync.Pool{New: func() any {
	sc := &emitScratch{ix: Indicators{found: make([]indicator, 0, 16)}}
	sc.res.Indicators = &sc.ix
	sc.st.res = &sc.res
	return sc
}}

func (sc *emitScratch) put() {
	sc.reset()
	if sc.rec != nil {
		putRecord(sc.rec)
		sc.rec = nil
	}
	if sc.jp != nil {
		jsonParsers.Put(sc.jp)
		sc.jp = nil
	}
	emitScratches.Put(sc)
}

// reset forgets what was found in an event.
func (sc *emitScratch) reset() {
	clear(sc.ix.found) // drop the strings, which may be the input's
	sc.ix.found = sc.ix.found[:0]
	sc.res.EventTime = time.Time{}
	sc.st.eventText = sc.st.eventText[:0]
	sc.st.dupKey = false
	clear(sc.st.kept) // the input's
	sc.st.in = nil
}

// emitRecord writes a line reader's values in one pass, the last value
// of a key winning as in a map; first reports that none was written.
func (st *state) emitRecord(b []byte, p *Parser, rec *native.Record, keys *recordKeys) (_ []byte, first bool, _ error) {
	set := &p.set
	if set.ordered {
		return st.emitMapFields(b, true, p.scanned, rec.Map())
	}
	start := len(b)
	var seen fieldBits
	first = true
	vals := rec.Values()
	places := keys.of(p)
	for j := len(vals) - 1; j >= 0; j-- {
		v := &vals[j]
		i, known := places.field(j, v.Key)
		if !known {
			i, places = keys.learn(p, j, v.Key), keys.places
		}
		if i < 0 || seen.has(i) {
			continue
		}
		seen.add(i)
		f := p.scanned[i]
		mark := len(b)
		b = appendKey(b, first, f)
		nb, wrote, err := st.emitText(b, f, v, rec)
		if err != nil {
			// Which error is reported follows the fields' order, as in
			// the map path: write the values that way to find it.
			return st.emitMapFields(b[:start], true, p.scanned, rec.Map())
		}
		if b = nb; !wrote {
			b = b[:mark]
			continue
		}
		first = false
	}
	if !seen.covers(&set.required) {
		return st.emitMapFields(b[:start], true, p.scanned, rec.Map())
	}
	return b, first, nil
}

// recordKeys remembers, for each place in a line's record, the key the
// last line of the parser had there and that key's field. A reader puts
// its keys in the same order line after line, and each key is the same
// string (a constant of the native parser, a column name of the schema),
// so one comparison of its address and length stands for a lookup by
// name (fieldSet.find, a twentieth of typing an ALB line). It lives in
// the emit scratch, which one goroutine holds at a time.
type recordKeys struct {
	parser *Parser
	places keyPlaces
}

type keyPlaces []keyPlace

type keyPlace struct {
	key   unsafe.Pointer // the key string's bytes; kept alive, so never another's
	n     int
	field int // -1: not a field
}

// of is what is remembered of p's records; it is forgotten when another
// parser's record came in between.
func (k *recordKeys) of(p *Parser) keyPlaces {
	if k.parser != p {
		k.parser, k.places = p, k.places[:0]
	}
	return k.places
}

// field is the field of the key at place j (-1: none) when it is the key
// remembered there; known is false otherwise, and learn finds it. (Small,
// so that it is inlined: a call per value cost a fortieth of an ALB line.)
func (ps keyPlaces) field(j int, key string) (field int, known bool) {
	if j < len(ps) && ps[j].key == unsafe.Pointer(unsafe.StringData(key)) && ps[j].n == len(key) {
		return ps[j].field, true
	}
	return 0, false
}

// learn finds the field of the key at place j of p's record (-1: none)
// and remembers it there; of(p) must have been called for p.
func (k *recordKeys) learn(p *Parser, j int, key string) int {
	field, ok := p.set.find(key)
	if !ok {
		field = -1
	}
	if j < maxKeyPlaces {
		for len(k.places) <= j {
			k.places = append(k.places, keyPlace{})
		}
		k.places[j] = keyPlace{unsafe.Pointer(unsafe.StringData(key)), len(key), field}
	}
	return field
}

// maxKeyPlaces bounds the places remembered: a line has some dozens.
const maxKeyPlaces = 256

// emitText is value on a line's value, writing JSON: the common types
// straight from the text, the rest through value.
func (st *state) emitText(b []byte, f *node, v *native.Value, rec *native.Record) (_ []byte, wrote bool, _ error) {
	if !v.IsList {
		switch f.typ {
		case schema.TypeString:
			if nb, ok := st.emitString(b, f, v.Text, rec.Plain(v.Text)); ok {
				return nb, true, nil
			}
		case schema.TypeInt, schema.TypeBigInt, schema.TypeSmallInt:
			text := trimSpace(v.Text)
			if canonicalInt(text) && len(text) <= f.intDigits { // written as it reads, and in range
				st.res.Indicators.AddPlain(f.indicators, text, true)
				return append(b, text...), true, nil
			}
			if n, err := strconv.ParseInt(text, 10, 64); err == nil && f.fits(n) {
				mark := len(b)
				b = strconv.AppendInt(b, n, 10)
				if len(f.indicators) > 0 {
					// The indicator is the number as written here: the
					// text itself when it reads the same (no sign, no
					// leading zeros).
					if string(b[mark:]) != text {
						text = string(b[mark:])
					}
					st.res.Indicators.AddPlain(f.indicators, text, true) // digits
				}
				return b, true, nil
			}
		case schema.TypeTimestamp:
			if nb, ok := st.emitTime(b, f, v.Text); ok {
				return nb, true, nil
			}
		case schema.TypeFloat:
			text := trimSpace(v.Text)
			if nb, ok := envelope.AppendDecimal(b, text); ok {
				return nb, true, nil
			}
			if x, err := strconv.ParseFloat(text, 64); err == nil {
				if nb, err := envelope.AppendFloat(b, x); err == nil {
					return nb, true, nil
				}
			}
		}
	} else if el := f.element; f.typ == schema.TypeArray && el.typ == schema.TypeString && el.xf == nil {
		b = append(b, '[')
		for i, s := range v.List {
			if i > 0 {
				b = append(b, ',')
			}
			plain := rec.Plain(s)
			st.res.Indicators.AddPlain(el.indicators, s, plain)
			b = envelope.AppendStringPlain(b, s, plain)
		}
		return append(b, ']'), true, nil
	}
	path := fieldPath{name: f.name}
	cv, err := st.value(f, v.Any(), path)
	if err != nil || cv == nil {
		return b, false, err
	}
	if b, err = envelope.AppendJSON(b, cv); err != nil {
		return nil, false, fmt.Errorf("field %s: %w", path, err)
	}
	return b, true, nil
}

// canonicalInt reports whether s is an integer as strconv.AppendInt writes
// it and ParseInt reads it: an optional minus, then digits without a
// leading zero, few enough for an int64. Such a text is written as it is,
// without reading and writing the number (most of typing a line's ports,
// status codes and byte counts).
func canonicalInt(s string) bool {
	d := strings.TrimPrefix(s, "-")
	return len(d) > 0 && len(d) <= 18 && (d[0] != '0' || d == s && len(d) == 1) && envelope.IsDigits(d)
}

// emitMapFields writes a top-level map's fields (a line reader's, or
// what derived fields read) one by one, as object would type them, after
// what b holds; first says no field was written before, and on return
// that none was at all.
func (st *state) emitMapFields(b []byte, first bool, fields []*node, in map[string]any) (_ []byte, _ bool, _ error) {
	for _, f := range fields {
		v, ok := in[f.in]
		if f.xf != nil && f.xf.derive != nil {
			v, ok = f.xf.derive(in) // a top-level map is the root
		}
		if !ok || v == nil {
			if f.required {
				return nil, false, fmt.Errorf("missing required field %s", f.name)
			}
			continue
		}
		path := fieldPath{name: f.name}
		cv, err := st.value(f, v, path)
		if err != nil {
			return nil, false, err
		}
		if cv == nil {
			continue
		}
		b = appendKey(b, first, f)
		first = false
		if b, err = envelope.AppendJSON(b, cv); err != nil {
			return nil, false, fmt.Errorf("field %s: %w", path, err)
		}
	}
	return b, first, nil
}

// appendKey writes a member's `"key":`, after a comma unless it is the
// object's first.
func appendKey(b []byte, first bool, f *node) []byte {
	if !first {
		b = append(b, ',')
	}
	return append(b, f.key...)
}

// fieldSet looks an object's fields up by key, so that an input object
// is written in one pass over its keys (fastjson's Get scans the keys for
// every field, a tenth of typing a CloudTrail event).
type fieldSet struct {
	names    envelope.Names
	order    *envelope.KeyOrder // the order input objects give the fields in
	required fieldBits          // fields[i] is required
	ordered  bool               // no lookup (over maxLookupFields, or a key twice): go by the fields' order
}

func newFieldSet(fields []*node) fieldSet {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.in
	}
	s := fieldSet{names: envelope.NewNames(names), ordered: len(fields) > maxLookupFields}
	s.order = envelope.NewKeyOrder(s.names)
	for i, f := range fields {
		if at, _ := s.names.Find(f.in); at != i {
			s.ordered = true // a key read twice is found at its first place only
		}
		if f.required && i < maxLookupFields {
			s.required.add(i)
		}
	}
	return s
}

// maxLookupFields bounds the fields of an object looked up by key. Wider
// objects go by the fields' order, one scan of the input's keys per field:
// a flat schema of 65 fields took 4x as long as one of 64 did when this
// bound was a uint64's 64 bits, one of 200 fields 16x.
const maxLookupFields = 512

// fieldBits is a set of field positions below maxLookupFields.
type fieldBits [maxLookupFields / 64]uint64

// The positions are masked into range: the compiler then drops the bounds
// checks, and callers only pass positions below maxLookupFields.
func (b *fieldBits) has(i int) bool { return b[(i>>6)&(len(b)-1)]&(1<<(i&63)) != 0 }
func (b *fieldBits) add(i int)      { b[(i>>6)&(len(b)-1)] |= 1 << (i & 63) }

// covers reports whether b holds every position of want.
func (b *fieldBits) covers(want *fieldBits) bool {
	for i := range b {
		if want[i]&^b[i] != 0 {
			return false
		}
	}
	return true
}

// find returns the position of the field read from key.
func (s *fieldSet) find(key string) (int, bool) { return s.names.Find(key) }

// emitFields writes the object's fields without braces, in the input's
// order; first reports that none was written. A key given twice counts
// once, as fastjson's Get reads it (the first).
func (st *state) emitFields(b []byte, fields []*node, set *fieldSet, in *fastjson.Object, prefix string) (_ []byte, first bool, _ error) {
	if set.ordered {
		return st.emitFieldsInOrder(b, fields, in, prefix)
	}
	start := len(b)
	var seen, present fieldBits
	var err error
	first = true
	in.Visit(func(k []byte, v *fastjson.Value) {
		i, ok := set.find(unsafe.String(unsafe.SliceData(k), len(k)))
		if !ok || err != nil || seen.has(i) {
			return
		}
		seen.add(i)
		if v.Type() == fastjson.TypeNull {
			return
		}
		present.add(i)
		f := fields[i]
		mark := len(b)
		b = appendKey(b, first, f)
		nb, wrote, e := st.emitValue(b, f, v, fieldPath{prefix: prefix, name: f.name})
		if e != nil {
			err = e
			return
		}
		if b = nb; !wrote {
			b = b[:mark]
			return
		}
		first = false
	})
	if err != nil || !present.covers(&set.required) {
		// Which error is reported follows the fields' order, as in the
		// map path: write the object again that way to find it.
		return st.emitFieldsInOrder(b[:start], fields, in, prefix)
	}
	return b, first, nil
}

// emitFieldsInOrder is emitFields going by the fields' order.
func (st *state) emitFieldsInOrder(b []byte, fields []*node, in *fastjson.Object, prefix string) (_ []byte, first bool, _ error) {
	first = true
	for _, f := range fields {
		v := in.Get(f.in)
		if v == nil || v.Type() == fastjson.TypeNull {
			if f.required {
				return nil, false, fmt.Errorf("missing required field %s%s", prefix, f.name)
			}
			continue
		}
		mark := len(b)
		b = appendKey(b, first, f)
		var wrote bool
		var err error
		if b, wrote, err = st.emitValue(b, f, v, fieldPath{prefix: prefix, name: f.name}); err != nil {
			return nil, false, err
		}
		if !wrote {
			b = b[:mark]
			continue
		}
		first = false
	}
	return b, first, nil
}

// emitValue is valueJSON writing JSON; wrote is false when the value
// types to nothing (the map path leaves such a key out).
func (st *state) emitValue(b []byte, f *node, v *fastjson.Value, path fieldPath) (_ []byte, wrote bool, _ error) {
	var err error
	switch {
	case (f.typ == schema.TypeObject || f.typ == schema.TypeRef) && v.Type() == fastjson.TypeObject:
		o, _ := v.Object()
		b = append(b, '{')
		if b, _, err = st.emitFields(b, f.fields, &f.set, o, path.String()+"."); err != nil {
			return nil, false, err
		}
		return append(b, '}'), true, nil
	case f.typ == schema.TypeArray && (v.Type() != fastjson.TypeString || !f.embedded):
		items := []*fastjson.Value{v} // a lone value where a list is expected
		if v.Type() == fastjson.TypeArray {
			items, _ = v.Array()
		}
		b = append(b, '[')
		in, n := path.String(), 0
		for i, it := range items {
			if it.Type() == fastjson.TypeNull {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			n++
			mark := len(b)
			var wrote bool
			if b, wrote, err = st.emitValue(b, f.element, it, fieldPath{prefix: in, index: i}); err != nil {
				return nil, false, err
			}
			if !wrote {
				b = append(b[:mark], "null"...)
			}
		}
		return append(b, ']'), true, nil
	case f.typ == schema.TypeString && v.Type() == fastjson.TypeString:
		// The bytes are fastjson's: written at once, and indicators are
		// written before emitEvent hands the parser back.
		if nb, ok := st.emitString(b, f, unsafeString(v), false); ok {
			return nb, true, nil
		}
	case (f.typ == schema.TypeInt || f.typ == schema.TypeBigInt || f.typ == schema.TypeSmallInt) &&
		len(f.indicators) == 0 && v.Type() == fastjson.TypeNumber:
		if n, err := v.Int64(); err == nil && f.fits(n) {
			return strconv.AppendInt(b, n, 10), true, nil
		}
	case f.typ == schema.TypeTimestamp && v.Type() == fastjson.TypeString:
		if nb, ok := st.emitTime(b, f, unsafeString(v)); ok {
			return nb, true, nil
		}
	case f.typ == schema.TypeJSON && (v.Type() != fastjson.TypeString || !f.embedded):
		mark := len(b)
		if b, err = envelope.AppendValue(b, v); err != nil {
			return nil, false, fmt.Errorf("invalid JSON: %w", err)
		}
		if f.json != nil && f.json.mayHold(b[mark:], f.name) {
			st.res.Indicators.addFastJSON(f.json, f.name, v)
		}
		return b, true, nil
	case f.typ == schema.TypeBoolean && v.Type() == fastjson.TypeTrue:
		return append(b, "true"...), true, nil
	case f.typ == schema.TypeBoolean && v.Type() == fastjson.TypeFalse:
		return append(b, "false"...), true, nil
	}
	x, err := envelope.Value(v)
	if err != nil {
		return nil, false, fmt.Errorf("invalid JSON: %w", err)
	}
	cv, err := st.value(f, x, path)
	if err != nil || cv == nil {
		return b, false, err
	}
	if b, err = envelope.AppendJSON(b, cv); err != nil {
		return nil, false, fmt.Errorf("field %s: %w", path, err)
	}
	return b, true, nil
}

// emitString writes a string field's text, validated and masked as the
// schema says, and records its indicators; plain says the text needs no
// escaping (envelope.AppendStringPlain). ok is false when validation
// refuses the text: value then reports why (its error copies the text,
// which may be fastjson's).
func (st *state) emitString(b []byte, f *node, s string, plain bool) (_ []byte, ok bool) {
	if f.xf != nil {
		var err error
		if s, err = f.xf.finish(s); err != nil {
			return b, false
		}
		plain = false // masked or changed: no longer the text looked at
	}
	if len(f.indicators) > 0 { // most fields have none: no call
		st.res.Indicators.AddPlain(f.indicators, s, plain)
	}
	return envelope.AppendStringPlain(b, s, plain), true
}

// emitTime writes a timestamp field's text as a time. ok is false when the
// text does not parse, left to value to report for the same reason.
func (st *state) emitTime(b []byte, f *node, text string) (_ []byte, ok bool) {
	t, err := parseTimeText(trimSpace(text), false, f.timeFmts)
	if err != nil {
		return b, false
	}
	had := !st.res.EventTime.IsZero()
	st.eventTime(f, t)
	mark := len(b)
	b = appendQuotedTime(b, t)
	if !had && !st.res.EventTime.IsZero() {
		st.eventText = append(st.eventText[:0], b[mark:]...) // p_event_time's text
	}
	return b, true
}

// unsafeString is a string value's bytes in fastjson's buffer, valid until
// the parser is reused.
func unsafeString(v *fastjson.Value) string {
	sb, _ := v.StringBytes()
	return unsafe.String(unsafe.SliceData(sb), len(sb))
}

// trimSpace is strings.TrimSpace for values, which rarely have space to
// trim: a look at their two ends settles most (strings.TrimSpace was 3%
// of typing an ALB line).
func trimSpace(s string) string {
	if n := len(s); n > 0 && s[0] > ' ' && s[0] < utf8.RuneSelf && s[n-1] > ' ' && s[n-1] < utf8.RuneSelf {
		return s
	}
	return strings.TrimSpace(s)
}

func appendQuotedTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = envelope.AppendTime(b, t)
	return append(b, '"')
}
