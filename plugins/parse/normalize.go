// Package parse turns raw events into normalized events: typed by a log
// schema (Panther's schema YAML), with the standard p_* fields and the
// indicator fields, or a classification failure that keeps the raw bytes.
package parse

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fastjson"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// Parser parses one log type's events by its schema: JSON by default, or
// text lines through the schema's csv, fastmatch, regex or native parser.
type Parser struct {
	Schema *schema.Schema
	fields []*node
	// required top-level keys, checked first as a cheap pre-check
	required  []string
	quoted    [][]byte // the required keys in quotes, as the pre-check looks for them
	anchors   []int    // the byte of each quoted key the pre-check finds it by
	keyHashes []uint64 // keyHash of each required key
	missing   []error  // the pre-check's answer for each required key
	read      reader   // nil for JSON
	// firstLineHeader: CSV with hasHeader and no columns, whose header is
	// the stream's first line when no header came with the event.
	firstLineHeader bool
	// derives is set when a field's value comes from elsewhere in the
	// event (copy, concat, split): those read the decoded map, so the map
	// path decodes the whole event first. A rename only changes the key a
	// field is read from (node.in).
	derives bool
	emits   bool // events are written as JSON as they are typed (emit.go)
	// The emit path reads the scanned fields from their keys, then writes
	// the derived (top-level) ones from a map of only what their paths
	// read: derivedRead below the top-level keys deriveTop, whose values
	// a JSON event's scan keeps (node.keep; jsonFields adds nodes that
	// only keep) and a line's reader holds.
	scanned, derived []*node
	derivedRead      readTree
	deriveTop        []string
	set              fieldSet // lookup over scanned
	jsonFields       []*node  // scanned, then the keep-only nodes
	jsonSet          fieldSet // lookup over jsonFields
}

// node is a compiled schema field.
type node struct {
	name       string
	in         string // the input's key: name, or a rename's from
	key        []byte // `"name":`, as emitted
	typ        string
	required   bool
	element    *node
	fields     []*node
	set        fieldSet // lookup over fields
	timeFmts   []string
	eventTime  bool
	embedded   bool
	indicators []string
	json       *jsonKinds // a json field's indicators, found within it
	xf         *transform // how the value is derived from the input, and checked
	// keep, from 1, is the place in state.kept of the value a top-level
	// node's key holds in a JSON event, for derived fields to read;
	// onlyKept nodes are not fields, only keys they read.
	keep     int
	onlyKept bool
	// An integer type's range, and how many characters of an integer's
	// text surely fit it (a sign counts), so that most need no check.
	lo, hi    int64
	intDigits int
}

// fits reports whether v is in the range of the field's integer type.
func (n *node) fits(v int64) bool { return v >= n.lo && v <= n.hi }

// checkInt refuses an integer outside the field type's range.
func (n *node) checkInt(v int64) error {
	if !n.fits(v) {
		return n.rangeErr(strconv.FormatInt(v, 10))
	}
	return nil
}

func (n *node) rangeErr(text string) error {
	return fmt.Errorf("%s is out of range for %s (%d to %d)", text, n.typ, n.lo, n.hi)
}

// Compile prepares a parser for a schema.
func Compile(s *schema.Schema) (*Parser, error) {
	p := &Parser{Schema: s}
	read, err := newReader(s.Parser)
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", s.Schema, err)
	}
	p.read = read
	p.firstLineHeader = s.HeaderFromFirstLine()
	for _, f := range s.Fields {
		n, err := compileField(s, f, 0)
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", s.Schema, err)
		}
		p.fields = append(p.fields, n)
		p.derives = p.derives || n.derives()
		switch {
		case !f.Required || f.Copy != nil || f.Concat != nil || f.Split != nil:
			// derived from other keys: no cheap pre-check
		default:
			p.required = append(p.required, n.in)
		}
	}
	for _, k := range p.required {
		p.quoted = append(p.quoted, []byte(`"`+k+`"`))
		p.anchors = append(p.anchors, keyAnchor(p.quoted[len(p.quoted)-1]))
		p.keyHashes = append(p.keyHashes, keyHash([]byte(k)))
		p.missing = append(p.missing, fmt.Errorf("missing required field %s", k))
	}
	for _, n := range p.fields {
		if n.xf == nil || n.xf.derive == nil {
			p.scanned = append(p.scanned, n)
			continue
		}
		p.derived = append(p.derived, n)
		for _, path := range n.xf.from {
			p.derivedRead = p.derivedRead.add(path)
			if !slices.Contains(p.deriveTop, path[0]) {
				p.deriveTop = append(p.deriveTop, path[0])
			}
		}
	}
	p.jsonFields = p.scanned
	for j, k := range p.deriveTop {
		at := slices.IndexFunc(p.scanned, func(n *node) bool { return n.in == k })
		if at < 0 {
			p.jsonFields = append(p.jsonFields, &node{name: k, in: k, onlyKept: true})
			at = len(p.jsonFields) - 1
		}
		p.jsonFields[at].keep = j + 1
	}
	p.emits = p.canEmit()
	p.set = newFieldSet(p.scanned)
	p.jsonSet = p.set
	if len(p.jsonFields) > len(p.scanned) {
		p.jsonSet = newFieldSet(p.jsonFields)
	}
	return p, nil
}

func compileField(s *schema.Schema, f schema.Field, depth int) (*node, error) {
	if depth > 32 {
		return nil, fmt.Errorf("field %s: nesting deeper than 32 (a ref cycle?)", f.Name)
	}
	f = s.Resolve(f)
	n := &node{
		name: f.Name, in: f.Name, key: append(envelope.AppendString(nil, f.Name), ':'), typ: f.Type, required: f.Required, eventTime: f.IsEventTime,
		embedded: f.IsEmbeddedJSON, indicators: f.Indicators,
	}
	if f.Rename != nil {
		n.in = f.Rename.From
	}
	if f.Type == schema.TypeJSON {
		n.json = newJSONKinds(f.Indicators)
	}
	n.lo, n.hi, _ = schema.IntRange(f.Type)
	n.intDigits = len(strconv.FormatInt(n.hi, 10)) - 1 // 32767: 4
	xf, err := compileTransform(f)
	if err != nil {
		return nil, fmt.Errorf("field %s: %w", f.Name, err)
	}
	n.xf = xf
	if f.TimeFormat != "" {
		n.timeFmts = append(n.timeFmts, f.TimeFormat)
	}
	n.timeFmts = append(n.timeFmts, f.TimeFormats...)
	for _, tf := range n.timeFmts {
		if err := checkTimeFormat(tf); err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
	}
	if f.Element != nil {
		el, err := compileField(s, *f.Element, depth+1)
		if err != nil {
			return nil, err
		}
		n.element = el
	}
	if len(f.Fields) > 0 {
		for _, c := range f.Fields {
			cn, err := compileField(s, c, depth+1)
			if err != nil {
				return nil, err
			}
			n.fields = append(n.fields, cn)
		}
		n.set = newFieldSet(n.fields)
	}
	return n, nil
}

func (n *node) derives() bool {
	if n.xf != nil && n.xf.derive != nil || n.element != nil && n.element.derives() {
		return true
	}
	for _, c := range n.fields {
		if c.derives() {
			return true
		}
	}
	return false
}

// Result is a parsed event before the standard fields are added.
type Result struct {
	Fields     map[string]any
	EventTime  time.Time // zero when no isEventTime field had a value
	Indicators *Indicators
}

// Parse reads one event and types it by the schema. Fields the schema does
// not know are dropped (as Panther does); a missing required field or a
// value of the wrong type fails the event.
func (p *Parser) Parse(raw []byte) (*Result, error) { return p.ParseLine(raw, nil) }

// ParseLine is Parse for a line of a stream whose header line (CSV, VPC
// Flow custom formats) the sender sent first; header may be nil.
func (p *Parser) ParseLine(raw, header []byte) (*Result, error) {
	return p.parse(raw, header, searchBytes)
}

// parse is ParseLine; keys, when set, pre-checks the required keys before
// decoding (see precheck).
func (p *Parser) parse(raw, header []byte, keys *keySearch) (*Result, error) {
	if p.read != nil {
		rec := getRecord()
		defer putRecord(rec)
		if err := p.read(rec, raw, header); err != nil {
			return nil, err
		}
		return p.typed(rec.Map())
	}
	if !p.derives {
		jp, o, err := p.parseJSON(raw, keys)
		if err != nil {
			return nil, err
		}
		defer jsonParsers.Put(jp)
		res := &Result{Fields: make(map[string]any, o.Len()+12), Indicators: NewIndicators()}
		st := &state{res: res}
		if err := st.objectJSON(p.fields, o, res.Fields, ""); err != nil {
			return nil, err
		}
		return res, nil
	}
	raw, err := p.precheck(raw, keys)
	if err != nil {
		return nil, err
	}
	obj, err := envelope.DecodeObject(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return p.typed(obj)
}

var jsonParsers fastjson.ParserPool

// parseJSON parses a JSON event for typing straight from its values: only
// what the schema keeps is then copied out, where decoding into a map
// would build every value first and drop most of them. The caller puts
// the parser back into jsonParsers once done with the values.
func (p *Parser) parseJSON(raw []byte, keys *keySearch) (*fastjson.Parser, *fastjson.Object, error) {
	raw, err := p.validJSON(raw, keys)
	if err != nil {
		return nil, nil, err
	}
	return parseTree(raw)
}

// validJSON is raw when it passes the precheck and is valid JSON.
func (p *Parser) validJSON(raw []byte, keys *keySearch) ([]byte, error) {
	raw, err := p.precheck(raw, keys)
	if err != nil {
		return nil, err
	}
	// fastjson's parser is lenient about numbers and escapes it is not
	// asked to read; validating first keeps outside input to the JSON
	// grammar, as DecodeObject does.
	if err := fastjson.ValidateBytes(raw); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return raw, nil
}

// parseTree parses valid JSON that should be an object.
func parseTree(raw []byte) (*fastjson.Parser, *fastjson.Object, error) {
	jp := jsonParsers.Get()
	v, err := jp.ParseBytes(raw)
	if err != nil {
		jsonParsers.Put(jp)
		return nil, nil, fmt.Errorf("invalid JSON: %w", err)
	}
	o, err := v.Object()
	if err != nil {
		jsonParsers.Put(jp)
		return nil, nil, errors.New("not a JSON object")
	}
	return jp, o, nil
}

// objectJSON is object for a parsed JSON object, for schemas without
// derived fields. Of a key given twice, the first is read.
func (st *state) objectJSON(fields []*node, in *fastjson.Object, out map[string]any, prefix string) error {
	for _, f := range fields {
		v := in.Get(f.in)
		if v == nil || v.Type() == fastjson.TypeNull {
			if f.required {
				return fmt.Errorf("missing required field %s%s", prefix, f.name)
			}
			continue
		}
		cv, err := st.valueJSON(f, v, fieldPath{prefix: prefix, name: f.name})
		if err != nil {
			return err
		}
		if cv != nil {
			out[f.name] = cv
		}
	}
	return nil
}

// valueJSON is value for a parsed JSON value: objects and arrays are
// walked in place; scalars, embedded JSON strings and json fields are
// copied out and typed by value.
func (st *state) valueJSON(f *node, v *fastjson.Value, path fieldPath) (any, error) {
	switch {
	case (f.typ == schema.TypeObject || f.typ == schema.TypeRef) && v.Type() == fastjson.TypeObject:
		o, _ := v.Object()
		out := make(map[string]any, len(f.fields))
		if err := st.objectJSON(f.fields, o, out, path.String()+"."); err != nil {
			return nil, err
		}
		return out, nil
	case f.typ == schema.TypeArray && (v.Type() != fastjson.TypeString || !f.embedded):
		items := []*fastjson.Value{v} // a lone value where a list is expected
		if v.Type() == fastjson.TypeArray {
			items, _ = v.Array()
		}
		out := make([]any, 0, len(items))
		in := path.String()
		for i, it := range items {
			if it.Type() == fastjson.TypeNull {
				continue
			}
			cv, err := st.valueJSON(f.element, it, fieldPath{prefix: in, index: i})
			if err != nil {
				return nil, err
			}
			out = append(out, cv)
		}
		return out, nil
	}
	x, err := envelope.Value(v)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return st.value(f, x, path)
}

func (p *Parser) typed(obj map[string]any) (*Result, error) {
	// Room for the standard p_* fields standardize adds.
	res := &Result{Fields: make(map[string]any, len(obj)+12), Indicators: NewIndicators()}
	st := &state{res: res, root: obj}
	if err := st.object(p.fields, obj, res.Fields, ""); err != nil {
		return nil, err
	}
	return res, nil
}

type state struct {
	res  *Result
	root map[string]any // the input event, for transformations' paths
	// eventText is res.EventTime as the emit path wrote it in the event's
	// own field, quoted, for p_event_time to copy; empty when not written.
	eventText []byte
	// dupKey is set when the emit path read a field's key twice in an
	// object and kept the first, as fastjson does; the map path of a
	// schema with derived fields decodes the event whole, keeping the last.
	dupKey bool
	in     []byte   // the JSON event being scanned, while kept is in use
	kept   [][]byte // the values of node.keep's keys in it
}

func (st *state) object(fields []*node, in map[string]any, out map[string]any, prefix string) error {
	for _, f := range fields {
		v, ok := in[f.in]
		if f.xf != nil && f.xf.derive != nil {
			v, ok = f.xf.derive(st.root)
		}
		if !ok || v == nil {
			if f.required {
				return fmt.Errorf("missing required field %s%s", prefix, f.name)
			}
			continue
		}
		cv, err := st.value(f, v, fieldPath{prefix: prefix, name: f.name})
		if err != nil {
			return err
		}
		if cv != nil {
			out[f.name] = cv
		}
	}
	return nil
}

// fieldPath names a field in errors ("a.b", "a.list[2]"). It is built
// only when an error needs it: joining the path for every value was a
// tenth of typing an event.
type fieldPath struct {
	prefix string // "" at the top, else the parent's path and "."
	name   string // the field's name, or "" for a list's element...
	index  int    // ...at this index
}

func (p fieldPath) String() string {
	if p.name != "" {
		return p.prefix + p.name
	}
	return p.prefix + "[" + strconv.Itoa(p.index) + "]"
}

func (st *state) value(f *node, v any, path fieldPath) (any, error) {
	switch f.typ {
	case schema.TypeString:
		s, err := asString(v)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", path, err)
		}
		if f.xf != nil {
			if s, err = f.xf.finish(s); err != nil {
				return nil, fmt.Errorf("field %s: %w", path, err)
			}
		}
		st.res.Indicators.Add(f.indicators, s)
		return s, nil
	case schema.TypeInt, schema.TypeSmallInt, schema.TypeBigInt:
		n, err := f.asInt(v)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", path, err)
		}
		st.res.Indicators.Add(f.indicators, strconv.FormatInt(n, 10))
		return n, nil
	case schema.TypeFloat:
		x, err := asFloat(v)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", path, err)
		}
		return x, nil
	case schema.TypeBoolean:
		b, err := asBool(v)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", path, err)
		}
		return b, nil
	case schema.TypeTimestamp:
		t, err := ParseTime(v, f.timeFmts)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", path, err)
		}
		st.eventTime(f, t)
		return envelope.FormatTime(t), nil
	case schema.TypeJSON:
		if s, ok := v.(string); ok && f.embedded {
			var inner any
			if err := json.Unmarshal([]byte(s), &inner); err == nil {
				v = inner
			}
		}
		if f.json != nil {
			st.res.Indicators.addJSON(f.json, f.name, v)
		}
		return envelope.PlainNumbers(v), nil
	case schema.TypeObject, schema.TypeRef:
		if s, ok := v.(string); ok && f.embedded {
			var inner any
			if err := json.Unmarshal([]byte(s), &inner); err != nil {
				return nil, fmt.Errorf("field %s: embedded JSON: %w", path, err)
			}
			v = inner
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("field %s: want an object, got %s", path, kind(v))
		}
		out := make(map[string]any, len(f.fields))
		if err := st.object(f.fields, m, out, path.String()+"."); err != nil {
			return nil, err
		}
		return out, nil
	case schema.TypeArray:
		if s, ok := v.(string); ok && f.embedded {
			var inner any
			if err := json.Unmarshal([]byte(s), &inner); err != nil {
				return nil, fmt.Errorf("field %s: embedded JSON: %w", path, err)
			}
			v = inner
		}
		items, ok := v.([]any)
		if !ok {
			// A lone value where a list is expected is a one-element list.
			items = []any{v}
		}
		out := make([]any, 0, len(items))
		in := path.String()
		for i, it := range items {
			if it == nil {
				continue
			}
			cv, err := st.value(f.element, it, fieldPath{prefix: in, index: i})
			if err != nil {
				return nil, err
			}
			out = append(out, cv)
		}
		return out, nil
	}
	return nil, fmt.Errorf("field %s: unknown type %q", path, f.typ)
}

// eventTime keeps the first event-time field's time as p_event_time.
func (st *state) eventTime(f *node, t time.Time) {
	if f.eventTime && st.res.EventTime.IsZero() {
		st.res.EventTime = t
	}
}

func kind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case json.Number, int64, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func asString(v any) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case json.Number:
		return t.String(), nil
	case int64:
		return strconv.FormatInt(t, 10), nil
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(t), nil
	default:
		b, err := json.Marshal(envelope.PlainNumbers(v))
		return string(b), err
	}
}

// asInt reads an integer for f, refusing one outside its type's range.
func (f *node) asInt(v any) (int64, error) {
	switch t := v.(type) {
	case int64:
		return t, f.checkInt(t)
	case float64:
		return f.floatInt(t, strconv.FormatFloat(t, 'g', -1, 64)) // as %v writes it
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n, f.checkInt(n)
		}
		if x, err := t.Float64(); err == nil {
			return f.floatInt(x, t.String()) // 1e3, or past an int64
		}
		return 0, fmt.Errorf("%s is not an integer", t)
	case string:
		s := strings.TrimSpace(t)
		n, err := strconv.ParseInt(s, 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return 0, f.rangeErr(s)
		}
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", t)
		}
		return n, f.checkInt(n)
	}
	return 0, fmt.Errorf("want an integer, got %s", kind(v))
}

// floatInt is asInt for a number read as a float, written text.
func (f *node) floatInt(x float64, text string) (int64, error) {
	switch {
	case x != math.Trunc(x):
		return 0, fmt.Errorf("%s is not an integer", text)
	case x < math.MinInt64 || x >= math.MaxInt64: // past an int64
		return 0, f.rangeErr(text)
	}
	return int64(x), f.checkInt(int64(x))
}

func asFloat(v any) (float64, error) {
	switch t := v.(type) {
	case float64:
		return t, nil
	case int64:
		return float64(t), nil
	case json.Number:
		return t.Float64()
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", t)
		}
		// ParseFloat reads NaN and Inf(inity), which JSON cannot hold:
		// the event would fail to encode.
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%q is not a finite number", t)
		}
		return f, nil
	}
	return 0, fmt.Errorf("want a number, got %s", kind(v))
}

func asBool(v any) (bool, error) {
	switch t := v.(type) {
	case bool:
		return t, nil
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(t))
		if err != nil {
			return false, fmt.Errorf("%q is not a boolean", t)
		}
		return b, nil
	}
	return false, fmt.Errorf("want a boolean, got %s", kind(v))
}
