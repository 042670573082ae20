package lake

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/parquet-go/parquet-go"
	"github.com/valyala/fastjson"

	"github.com/caracal-sec/caracal/plugins/parse"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// refEncodeJSON is the lake's previous JSON encoder, over fastjson's parse
// tree: the reference EncodeJSON must agree with. A key repeated in one object counts once
// (its first value).
func (t *Table) refEncodeJSON(cols [][]parquet.Value, v *fastjson.Value) error {
	o, err := v.Object()
	if err != nil {
		return errors.New("not a JSON object")
	}
	return t.refObject(cols, t.root, o, 0, 0, 0)
}

func (t *Table) refObject(cols [][]parquet.Value, g *col, o *fastjson.Object, r, d, depth int) error {
	var small [128]bool
	seen := g.seen(&small)
	var err error
	o.Visit(func(k []byte, x *fastjson.Value) {
		i := slices.IndexFunc(g.children, func(c *col) bool { return c.name == string(k) })
		if i < 0 || seen[i] || err != nil {
			return
		}
		seen[i] = true
		err = t.refValue(cols, g.children[i], x, r, d, depth)
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
func (t *Table) refValue(cols [][]parquet.Value, c *col, x *fastjson.Value, r, d, depth int) error {
	if x.Type() == fastjson.TypeNull {
		nulls(cols, c, r, d)
		return nil
	}
	switch c.shape {
	case groupShape:
		o, err := x.Object()
		if err != nil {
			nulls(cols, c, r, d)
			return nil
		}
		return t.refObject(cols, c, o, r, d+1, depth)
	case listShape:
		items := []*fastjson.Value{x}
		if x.Type() == fastjson.TypeArray {
			items, _ = x.Array()
		}
		return encodeItems(cols, c, items, r, d, depth, func(it *fastjson.Value, r, d, depth int) error {
			return t.refValue(cols, c.children[0], it, r, d, depth)
		})
	}
	val, err := refLeaf(c.kind, x)
	return appendLeaf(cols, c, val, err, r, d)
}

// leafJSON is leaf for a parsed JSON value.
func refLeaf(kind string, x *fastjson.Value) (parquet.Value, error) {
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

// kindsSchema has a field of every kind, nested groups and lists of groups
// and of lists.
func kindsSchema(t testing.TB) *schema.Schema {
	t.Helper()
	s, err := schema.Parse("kinds.yml", []byte(`schema: Custom.Kinds
fields:
  - {name: time, type: timestamp, timeFormats: [rfc3339], isEventTime: true}
  - {name: s, type: string}
  - {name: i, type: bigint}
  - {name: small, type: smallint}
  - {name: f, type: float}
  - {name: b, type: boolean}
  - {name: j, type: json}
  - {name: tags, type: array, element: {type: string}}
  - name: obj
    type: object
    fields:
      - {name: x, type: string}
      - {name: list, type: array, element: {type: object, fields: [{name: n, type: int}, {name: at, type: timestamp, timeFormats: [rfc3339]}]}}
  - {name: matrix, type: array, element: {type: array, element: {type: float}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func kindsTable(t testing.TB) *Table {
	t.Helper()
	tab, err := LogTable(kindsSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// encodeBoth encodes raw with EncodeJSON and with the reference; ok is
// false when the reference could not parse raw.
func encodeBoth(tab *Table, raw []byte) (got, want [][]parquet.Value, gotErr, wantErr error) {
	got = make([][]parquet.Value, tab.Columns())
	want = make([][]parquet.Value, tab.Columns())
	gotErr = tab.EncodeJSON(got, raw)
	var p fastjson.Parser
	v, err := p.ParseBytes(raw)
	if err != nil {
		return got, want, gotErr, fmt.Errorf("not a JSON object: %w", err)
	}
	wantErr = tab.refEncodeJSON(want, v)
	return got, want, gotErr, wantErr
}

// sameColumns compares encoded rows; byte arrays of json-valued cells are
// compared as JSON, since the reference re-encodes what EncodeJSON copies.
func sameColumns(got, want [][]parquet.Value) error {
	for i := range want {
		if len(got[i]) != len(want[i]) {
			return fmt.Errorf("column %d: %d values, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range want[i] {
			g, w := got[i][j], want[i][j]
			if g.Kind() != w.Kind() || g.RepetitionLevel() != w.RepetitionLevel() || g.DefinitionLevel() != w.DefinitionLevel() || g.Column() != w.Column() {
				return fmt.Errorf("column %d value %d: %v, want %v", i, j, g, w)
			}
			if g.Kind() == parquet.ByteArray && !bytes.Equal(g.ByteArray(), w.ByteArray()) && !sameJSON(g.ByteArray(), w.ByteArray()) {
				return fmt.Errorf("column %d value %d: %q, want %q", i, j, g.ByteArray(), w.ByteArray())
			}
			if g.Kind() != parquet.ByteArray && !parquet.Equal(g, w) {
				return fmt.Errorf("column %d value %d: %v, want %v", i, j, g, w)
			}
		}
	}
	return nil
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return fmt.Sprint(x) == fmt.Sprint(y)
}

// EncodeJSON writes what the fastjson-based encoder wrote, value for
// value, on every shipped schema's test events and on the kinds table's
// edge cases: wrong types, nulls, lone values for lists, repeated and
// escaped keys, whitespace, unknown nested keys.
func TestEncodeJSONMatchesReference(t *testing.T) {
	kinds := kindsTable(t)
	cases := []string{
		`{"time":"2026-11-23T10:00:00.5Z","s":"plain","i":7,"small":-2,"f":1.5,"b":true,"j":{"a":[1,"x",null]},"tags":["a","b"],"obj":{"x":"y","list":[{"n":1,"at":"2026-01-01T00:00:00Z"},null,{"n":2.9}]},"matrix":[[1,2],[],null,[3]]}`,
		` { "s" : "esc\"aped\u00e9\ud83d\ude00 \u2028" , "tags" : "lone" , "obj" : "not an object" , "i" : 1e3 } `,
		`{"s":12.5,"j":"text","tags":[],"obj":{"list":[]},"unknown":{"deep":[{"x":[1,{"y":"}"}]}]},"b":false}`,
		`{"s":"first","s":"second","\u0073mall":3,"obj":{"x":"a","x":"b"}}`,
		`{"s":null,"i":null,"j":null,"tags":null,"obj":null,"matrix":[null,[null]]}`,
		`{"i":"not a number"}`,
		`{"f":true}`,
		`{"b":1}`,
		`{"time":12}`,
		`{"time":"yesterday"}`,
		`{"obj":{"list":[{"n":"x"}]}}`,
		`{"i":-9223372036854775808,"small":70000,"f":-0.0}`,
		`{"s":"\ud800 lone","j":{"k":"\u0001"}}`,
		`{}`,
	}
	for _, raw := range cases {
		encodesAsReference(t, kinds, raw)
	}
	c := shippedClassifier(t)
	n := 0
	for _, s := range shippedSchemas(t) {
		tab, err := LogTable(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range s.Tests {
			if tc.Fails {
				continue
			}
			// The events as the process stage writes them.
			_ = parse.ReadStream(strings.NewReader(tc.Input), func(raw []byte, o parse.Origin) error {
				ev, f := c.ClassifyJSON(raw, []string{s.Schema}, o)
				if f != nil || ev == nil {
					return nil
				}
				got, want, gotErr, wantErr := encodeBoth(tab, ev.JSON)
				if gotErr != nil || wantErr != nil {
					t.Errorf("%s: %v / reference %v", s.Schema, gotErr, wantErr)
					return nil
				}
				if err := sameColumns(got, want); err != nil {
					t.Errorf("%s: %v", s.Schema, err)
				}
				n++
				return nil
			})
		}
	}
	if n < 20 {
		t.Fatalf("compared %d schema test events", n)
	}
}

// encodesAsReference: EncodeJSON fails on raw when the reference does and
// otherwise writes the same columns.
func encodesAsReference(t *testing.T, tab *Table, raw string) {
	t.Helper()
	got, want, gotErr, wantErr := encodeBoth(tab, []byte(raw))
	if (gotErr == nil) != (wantErr == nil) {
		t.Errorf("%s: error %v, reference %v", raw, gotErr, wantErr)
		return
	}
	if gotErr == nil {
		if err := sameColumns(got, want); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

// TestEncodeJSONKeyPrediction: keys are matched first against the order
// the previous objects had (Scanner.OrderedKey); whatever the next object holds,
// a wrong or misleading prediction must give what the reference gives.
func TestEncodeJSONKeyPrediction(t *testing.T) {
	tab := kindsTable(t)
	same := `{"s":"a","small":1,"i":2,"obj":{"x":"y","list":[{"n":1},{"n":2}]},"tags":["t"]}`
	for _, raw := range []string{
		same, same, // learnt, then predicted
		`{"small":1,"s":"a","tags":["t"],"i":2,"obj":{"list":[{"n":1}],"x":"y"}}`, // another order
		`{"s" :"spaced","small" : 1 , "i":2}`,
		`{"sm":"prefix of small","small":3}`,
		`{"s":"a","smallish":4,"small":5}`,
		`{"\u0073":"escaped s","small":6}`,
		`{"s":"a","s":"again","small":7}`,
		`{"s":"a","unknown":1,"small":8}`,
		same,
		`{"sa:b":"a colon where the predicted key ends","small":9}`,
		`{"s":"a","small"`,
		`{"s":"a","small":`,
		`{"s"`,
		same,
	} {
		encodesAsReference(t, tab, raw)
	}
}

// FuzzEncodeJSON: on any input the reference parses, EncodeJSON fails when
// it fails and writes the same values when it succeeds; on any other input
// it fails without panicking.
func FuzzEncodeJSON(f *testing.F) {
	for _, seed := range []string{
		`{"time":"2026-11-23T10:00:00Z","s":"a\"b","i":1,"tags":["x"],"obj":{"list":[{"n":1}]}}`,
		`{"j":{"a":[true,false,null,1.5e3,"s"]},"matrix":[[1.5],[]],"b":true}`,
		`{"s":{"x":1},"tags":"one","obj":[1]}`,
	} {
		f.Add([]byte(seed))
	}
	tab := kindsTable(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, want, gotErr, wantErr := encodeBoth(tab, raw)
		if !json.Valid(raw) {
			return // EncodeJSON may be stricter than fastjson's parser
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("%q: error %v, reference %v", raw, gotErr, wantErr)
		}
		if gotErr == nil {
			if err := sameColumns(got, want); err != nil {
				t.Fatalf("%q: %v", raw, err)
			}
		}
	})
}

// A row that fails part way leaves no value behind in any column, the
// repeated ones (which take any number of values a row) included, and
// neither does one encoded into the previous row's file that belongs to
// another hour (addRaw).
func TestDroppedRowsLeaveNoValues(t *testing.T) {
	tab := tables(t).Table("aws_cloudtrail")
	good := func(id string) string {
		return `{"p_any_ip_addresses":["198.51.100.23","10.0.0.1"],"resources":[{"ARN":"a"},{"ARN":"b","type":"t"}],` +
			`"eventID":"` + id + `","p_log_type":"AWS.CloudTrail","p_event_time":"2026-11-23T21:04:05Z","userIdentity":{"type":"Root"}}`
	}
	rows := []string{
		good("a"),
		// Lists and a group written before the bad time.
		`{"p_any_ip_addresses":["1.1.1.1","2.2.2.2","3.3.3.3"],"resources":[{"ARN":"x"},{},{"type":"y"}],"userIdentity":{"type":"Root"},"eventTime":"yesterday"}`,
		good("b"),
		// Another hour: encoded, then dropped from this file.
		`{"p_any_ip_addresses":["4.4.4.4"],"resources":[{"ARN":"z"}],"eventID":"c","p_log_type":"AWS.CloudTrail","p_event_time":"2026-11-23T22:04:05Z"}`,
		good("d"),
	}
	f := newOpenFile(tab, fileKey{table: tab.Name}, 1<<20)
	want := make([][]parquet.Value, tab.Columns())
	hour := time.Date(2026, 11, 23, 21, 0, 0, 0, time.UTC)
	for _, raw := range rows {
		f.markRow()
		if err := tab.EncodeJSON(f.cols, []byte(raw)); err != nil || !tab.rowBelongs(f.cols, hour) {
			f.dropRow()
			continue
		}
		f.keepRow()
		if err := tab.EncodeJSON(want, []byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	if f.pending != 3 {
		t.Fatalf("%d rows kept, want 3", f.pending)
	}
	for i := range want {
		if g, w := fmt.Sprint(f.cols[i]), fmt.Sprint(want[i]); g != w {
			t.Errorf("column %v:\n got %s\nwant %s", tab.Schema.Columns()[i], g, w)
		}
	}
}
