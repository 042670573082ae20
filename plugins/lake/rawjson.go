package lake

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/valyala/fastjson"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// Events reach the lake as JSON. Decoding each one into maps only to walk
// them into columns was half of the lake stage's CPU (and most of its
// garbage), so events are parsed with fastjson (no per-value allocation)
// and their columns encoded straight from the parsed values, with the same
// conversions as EncodeColumns.

// parsers holds fastjson parsers. A parsed event's strings point into its
// parser's buffer, and the column values point at those strings until the
// pending rows reach the column writers (which copy them), so a parser
// stays with its row until then (see openFile.flushPending).
var parsers fastjson.ParserPool

// EncodeJSON appends a row given as a parsed JSON object to per-column
// value slices; see EncodeColumns. A key repeated in one object counts once
// (its first value).
func (t *Table) EncodeJSON(cols [][]parquet.Value, v *fastjson.Value) error {
	o, err := v.Object()
	if err != nil {
		return errors.New("not a JSON object")
	}
	return t.encodeObject(cols, t.root, o, 0, 0, 0)
}

func (t *Table) encodeObject(cols [][]parquet.Value, g *col, o *fastjson.Object, r, d, depth int) error {
	var small [128]bool
	seen := small[:0]
	if len(g.children) <= len(small) {
		seen = small[:len(g.children)]
	} else {
		seen = make([]bool, len(g.children))
	}
	var err error
	o.Visit(func(k []byte, x *fastjson.Value) {
		i, ok := g.byName[string(k)]
		if !ok || seen[i] || err != nil {
			return
		}
		seen[i] = true
		err = t.encodeJSON(cols, g.children[i], x, r, d, depth)
	})
	if err != nil {
		return err
	}
	for i, c := range g.children {
		if !seen[i] {
			nulls(cols, c, r, d)
		}
	}
	return nil
}

// encodeJSON is encode for a parsed JSON value.
func (t *Table) encodeJSON(cols [][]parquet.Value, c *col, x *fastjson.Value, r, d, depth int) error {
	if x.Type() == fastjson.TypeNull {
		nulls(cols, c, r, d)
		return nil
	}
	switch c.kind {
	case "group":
		o, err := x.Object()
		if err != nil {
			nulls(cols, c, r, d)
			return nil
		}
		return t.encodeObject(cols, c, o, r, d+1, depth)
	case "list":
		items := []*fastjson.Value{x}
		if x.Type() == fastjson.TypeArray {
			items, _ = x.Array()
		}
		return encodeItems(cols, c, items, r, d, depth, func(it *fastjson.Value, r, d, depth int) error {
			return t.encodeJSON(cols, c.children[0], it, r, d, depth)
		})
	}
	val, err := leafJSON(c.kind, x)
	return appendLeaf(cols, c, val, err, r, d)
}

// leafJSON is leaf for a parsed JSON value.
func leafJSON(kind string, x *fastjson.Value) (parquet.Value, error) {
	typ := x.Type()
	switch kind {
	case schema.TypeString:
		if typ == fastjson.TypeString {
			b, _ := x.StringBytes()
			return parquet.ByteArrayValue(b), nil
		}
		return parquet.ByteArrayValue(x.MarshalTo(nil)), nil
	case schema.TypeJSON:
		return parquet.ByteArrayValue(x.MarshalTo(nil)), nil
	case schema.TypeInt, schema.TypeBigInt, schema.TypeSmallInt:
		if typ != fastjson.TypeNumber {
			return parquet.Value{}, fmt.Errorf("want an integer, got %s", typ)
		}
		n, err := x.Int64()
		if err != nil { // a fraction or an exponent: as EncodeColumns, truncate
			f, ferr := x.Float64()
			if ferr != nil {
				return parquet.Value{}, ferr
			}
			n = int64(f)
		}
		if kind == schema.TypeSmallInt {
			return parquet.Int32Value(int32(n)), nil
		}
		return parquet.Int64Value(n), nil
	case schema.TypeFloat:
		if typ != fastjson.TypeNumber {
			return parquet.Value{}, fmt.Errorf("want a number, got %s", typ)
		}
		f, err := x.Float64()
		return parquet.DoubleValue(f), err
	case schema.TypeBoolean:
		if typ != fastjson.TypeTrue && typ != fastjson.TypeFalse {
			return parquet.Value{}, fmt.Errorf("want a boolean, got %s", typ)
		}
		return parquet.BooleanValue(typ == fastjson.TypeTrue), nil
	case schema.TypeTimestamp:
		if typ != fastjson.TypeString {
			return parquet.Value{}, fmt.Errorf("want a timestamp, got %s", typ)
		}
		b, _ := x.StringBytes()
		tm, err := time.Parse(time.RFC3339Nano, unsafe.String(unsafe.SliceData(b), len(b)))
		if err != nil { // the error must not keep the parser's bytes
			return parquet.Value{}, fmt.Errorf("%q is not an RFC 3339 time", string(b))
		}
		return parquet.Int64Value(tm.UnixMicro()), nil
	}
	return parquet.Value{}, fmt.Errorf("unknown column kind %q", kind)
}

// addRaw encodes an event given as JSON into its file.
func (b *Batch) addRaw(r *Record) error {
	p := parsers.Get()
	v, err := p.ParseBytes(r.Raw)
	if err != nil {
		parsers.Put(p)
		b.w.fail(r, fmt.Errorf("not a JSON object: %w", err))
		return nil
	}
	tab, err := b.w.Tables.logTable(string(v.GetStringBytes(envelope.FieldLogType)))
	if err != nil {
		parsers.Put(p)
		b.w.fail(r, err)
		return nil
	}
	var at any
	if t := v.GetStringBytes(tab.TimeField); t != nil {
		at = string(t)
	}
	encode := func(cols [][]parquet.Value) error { return tab.EncodeJSON(cols, v) }
	placed, err := b.place(r, tab, at, encode, p)
	if !placed {
		parsers.Put(p)
	}
	return err
}
