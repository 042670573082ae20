// Package lake writes Caracal's topics to Parquet on object storage: one
// table per log type (columns follow its schema) plus classification
// failures, rule matches, rule errors, alerts and system errors, partitioned
// by hour, under deterministic names so a replayed batch overwrites its files
// instead of duplicating rows.
package lake

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	fastjson "github.com/goccy/go-json"

	"github.com/parquet-go/parquet-go"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// Table is a lake table's Parquet layout and how to encode rows into it.
type Table struct {
	Name   string
	Schema *parquet.Schema
	root   *col
	ncols  int
	// TimeField is the row field that decides the hour partition.
	TimeField string
	// LogType is a log table's log type.
	LogType string
	// logTypeCol and timeCol are the leaf columns of p_log_type and
	// TimeField (-1 if none), where addRaw reads an encoded row's.
	logTypeCol, timeCol int
	// repeated are the leaf columns below a list, in order: the only
	// ones that take other than one value a row.
	repeated []int
	// blooms are the bloom filters written per row group for the p_any_*
	// indicator columns, so `caracal search` skips row groups without
	// the value it looks for.
	blooms []parquet.BloomFilterColumn
	// skipBounds are the writer options for the columns whose page
	// bounds are not computed.
	skipBounds []parquet.WriterOption
}

// col is a compiled schema node: the Parquet node plus what the row
// encoder needs (column index of leaves, value kind).
type col struct {
	name     string
	kind     string             // a schema type, or "list" / "group"
	shape    shape              // kind, for the encoders' hot paths
	leaf     leafKind           // a leaf's kind, for the JSON encoder's
	index    int                // leaf column index
	children []*col             // group fields in Parquet order; list: the element
	names    envelope.Names     // group: child index by field name
	order    *envelope.KeyOrder // group: the order its objects' keys come in
	leaves   []*col             // group and list: every leaf below, for nulls
	// leaf: its null value at each repetition and definition level it can
	// take, made once: rows of wide schemas are mostly nulls. Group and
	// list: the leaves' columns and their nulls at each level (nulls).
	nullAt         []parquet.Value
	leafCols       []int
	leafChild      []int // group: the child each leaf is below
	nullRows       [][]parquet.Value
	maxRep, maxDef int
}

// leafKind is a leaf's schema type as a small number.
type leafKind uint8

const (
	stringLeaf leafKind = iota
	jsonLeaf
	intLeaf
	smallIntLeaf
	floatLeaf
	booleanLeaf
	timestampLeaf
)

var leafKinds = map[string]leafKind{
	schema.TypeString: stringLeaf, schema.TypeJSON: jsonLeaf, schema.TypeInt: intLeaf, schema.TypeBigInt: intLeaf,
	schema.TypeSmallInt: smallIntLeaf, schema.TypeFloat: floatLeaf, schema.TypeBoolean: booleanLeaf,
	schema.TypeTimestamp: timestampLeaf,
}

// shape tells leaves, groups and lists apart without comparing kinds.
type shape uint8

const (
	leafShape shape = iota
	groupShape
	listShape
)

func (c *col) null(r, d int) parquet.Value {
	if r <= c.maxRep && d <= c.maxDef {
		return c.nullAt[r*(c.maxDef+1)+d]
	}
	return parquet.Value{}.Level(r, d, c.index)
}

func (c *col) indexChildren() {
	names := make([]string, len(c.children))
	for i, k := range c.children {
		names[i] = k.name
	}
	c.names = envelope.NewNames(names)
	c.order = envelope.NewKeyOrder(c.names)
}

// seen returns a group's flags of children already read, in small when
// they fit (no allocation per object).
func (c *col) seen(small *[128]bool) []bool {
	if len(c.children) <= len(small) {
		return small[:len(c.children)]
	}
	return make([]bool, len(c.children))
}

// standardFields are the p_* columns of every log table.
func standardFields() []schema.Field {
	fs := []schema.Field{
		{Name: envelope.FieldLogType, Type: schema.TypeString},
		{Name: envelope.FieldEventTime, Type: schema.TypeTimestamp, TimeFormat: "rfc3339"},
		{Name: envelope.FieldParseTime, Type: schema.TypeTimestamp, TimeFormat: "rfc3339"},
		{Name: envelope.FieldRowID, Type: schema.TypeString},
		{Name: envelope.FieldSourceID, Type: schema.TypeString},
		{Name: envelope.FieldSourceLabel, Type: schema.TypeString},
		{Name: envelope.FieldSchemaVersion, Type: schema.TypeBigInt},
		{Name: envelope.FieldEnrichment, Type: schema.TypeJSON},
	}
	for _, f := range envelope.IndicatorFields {
		fs = append(fs, schema.Field{Name: f, Type: schema.TypeArray, Element: &schema.Field{Type: schema.TypeString}})
	}
	return fs
}

// LogTable is the table of one log type: its schema's fields plus p_*.
func LogTable(s *schema.Schema) (*Table, error) {
	fields := make([]schema.Field, 0, len(s.Fields)+24)
	for _, f := range s.Fields {
		fields = append(fields, s.Resolve(f))
	}
	fields = append(fields, standardFields()...)
	t, err := NewTable(envelope.TableName(s.Schema), fields, envelope.FieldEventTime, s)
	if err != nil {
		return nil, err
	}
	t.LogType = s.Schema
	return t, nil
}

func str(n string) schema.Field { return schema.Field{Name: n, Type: schema.TypeString} }
func ts(n string) schema.Field {
	return schema.Field{Name: n, Type: schema.TypeTimestamp, TimeFormat: "rfc3339"}
}
func js(n string) schema.Field { return schema.Field{Name: n, Type: schema.TypeJSON} }
func strList(n string) schema.Field {
	return schema.Field{Name: n, Type: schema.TypeArray, Element: &schema.Field{Type: schema.TypeString}}
}

// FailuresTable holds classification failures.
func FailuresTable() *Table {
	t, _ := NewTable(envelope.TableFailures, []schema.Field{
		str("raw"), str("raw_encoding"), str(envelope.FieldSourceID), str(envelope.FieldSourceLabel),
		str("request_id"), str(envelope.FieldRowID), strList("log_types_tried"),
		{Name: "reasons", Type: schema.TypeArray, Element: &schema.Field{Type: schema.TypeObject, Fields: []schema.Field{str("log_type"), str("reason")}}},
		ts("received_at"), ts("failed_at"),
	}, "received_at", nil)
	return t
}

// MatchesTable holds rule matches (or rule errors): the rule's fields as
// columns, the event itself as JSON (events of any log type share it).
func MatchesTable(name string) *Table {
	fields := []schema.Field{
		str(envelope.FieldRuleID), str(envelope.FieldRuleSeverity), strList(envelope.FieldRuleTags),
		js(envelope.FieldRuleReports), str(envelope.FieldAlertTitle), js(envelope.FieldAlertContext),
		str(envelope.FieldDedupString), str(envelope.FieldMatchType), str(envelope.FieldRuleError),
		str(envelope.FieldAlertID), ts(envelope.FieldAlertCreationTime), ts(envelope.FieldAlertUpdateTime),
		str(envelope.FieldAlertSeverity), js("event"),
	}
	fields = append(fields, standardFields()...)
	t, _ := NewTable(name, fields, envelope.FieldEventTime, nil)
	return t
}

// AlertsTable holds alerts (or system errors), with Panther's webhook
// names, and the indicators of the events they carry (alertRow), by which
// `caracal search` finds them.
func AlertsTable(name string) *Table {
	fields := []schema.Field{
		str("id"), str("alertId"), ts("createdAt"), ts("updatedAt"), str("severity"), str("type"),
		str("link"), str("title"), str("name"), str("description"), str("runbook"), strList("tags"),
		str("version"), js("alertContext"), str("dedupString"), {Name: "eventCount", Type: schema.TypeBigInt},
		strList("logTypes"), js("events"), js("reports"), strList("outputIds"),
	}
	for _, f := range envelope.IndicatorFields {
		fields = append(fields, strList(f))
	}
	t, _ := NewTable(name, fields, "createdAt", nil)
	return t
}

// DeliveriesTable holds one row per attempt to deliver an alert.
func DeliveriesTable() *Table {
	t, _ := NewTable(envelope.TableDeliveries, []schema.Field{
		str("destination"), str("alert_id"), {Name: "attempt", Type: schema.TypeBigInt}, {Name: "status", Type: schema.TypeBigInt},
		str("error"), ts("at"),
	}, "at", nil)
	return t
}

// NewTable compiles fields into a Parquet schema.
func NewTable(name string, fields []schema.Field, timeField string, s *schema.Schema) (*Table, error) {
	t := &Table{Name: name, TimeField: timeField}
	group := parquet.Group{}
	kids := map[string]*col{}
	for _, f := range fields {
		n, c, err := t.node(f, s, 0)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", name, err)
		}
		group[f.Name] = n
		kids[f.Name] = c
	}
	t.Schema = parquet.NewSchema(name, group)
	t.root = &col{kind: "group", shape: groupShape}
	// Parquet orders group fields by name; the encoder follows that order
	// and numbers leaves depth first, as the schema does.
	for _, f := range t.Schema.Fields() {
		t.root.children = append(t.root.children, kids[f.Name()])
	}
	t.root.indexChildren()
	t.ncols = 0
	t.number(t.root, 0, 0)
	for _, l := range t.root.leaves {
		if l.maxRep > 0 {
			t.repeated = append(t.repeated, l.index)
		}
	}
	t.logTypeCol, t.timeCol = t.topLeaf(envelope.FieldLogType), t.topLeaf(timeField)
	for _, f := range envelope.IndicatorFields {
		if _, ok := t.Schema.Lookup(f, "list", "element"); ok {
			// 10 bits per value: about a 1% false positive rate.
			t.blooms = append(t.blooms, parquet.SplitBlockFilter(10, f, "list", "element"))
		}
	}
	if t.ncols != len(t.Schema.Columns()) {
		return nil, fmt.Errorf("table %s: %d leaf columns, schema has %d", name, t.ncols, len(t.Schema.Columns()))
	}
	// Min and max per page of a log's own text columns (user agents,
	// request parameters, ids) prune nothing, as their rows come in no
	// order, and computing them was a tenth of writing. The same holds for
	// the indicator lists, which bloom filters serve instead (engines do
	// not prune a list's contains() by its bounds either). The other p_*
	// columns keep theirs: the log type and sources are constant in a
	// file, and row ids ordered.
	for _, path := range t.Schema.Columns() {
		leaf, _ := t.Schema.Lookup(path...)
		ownText := !strings.HasPrefix(path[0], "p_") || strings.HasPrefix(path[0], "p_any_")
		if ownText && leaf.Node.Type().Kind() == parquet.ByteArray {
			// Both places a page's bounds go: the column index and,
			// computed apart, the page's header.
			t.skipBounds = append(t.skipBounds, parquet.SkipPageBounds(path...), parquet.SkipPageStatistics(path...))
		}
	}
	return t, nil
}

// topLeaf is the column index of a top-level leaf field, or -1.
func (t *Table) topLeaf(name string) int {
	if i, ok := t.root.names.Find(name); ok && t.root.children[i].shape == leafShape {
		return t.root.children[i].index
	}
	return -1
}

// number numbers the leaves; def and rep are c's own definition and
// repetition levels (every field is optional; a list adds a repeated
// level and an optional element).
func (t *Table) number(c *col, def, rep int) {
	switch c.shape {
	case groupShape, listShape:
		c.leaves, c.leafChild = c.leaves[:0], c.leafChild[:0]
		for ki, k := range c.children {
			if c.shape == groupShape {
				t.number(k, def+1, rep)
			} else {
				t.number(k, def+2, rep+1)
			}
			if k.shape == leafShape {
				c.leaves = append(c.leaves, k)
			} else {
				c.leaves = append(c.leaves, k.leaves...)
			}
			for len(c.leafChild) < len(c.leaves) {
				c.leafChild = append(c.leafChild, ki)
			}
		}
		// The leaves' nulls at each level the group's own null can take,
		// side by side: writing a missing group's nulls then reads two
		// flat lists instead of every leaf's node.
		c.maxRep, c.maxDef = rep, def
		c.leafCols = make([]int, len(c.leaves))
		c.nullRows = make([][]parquet.Value, (rep+1)*(def+1))
		for i, l := range c.leaves {
			c.leafCols[i] = l.index
		}
		for r := 0; r <= rep; r++ {
			for d := 0; d <= def; d++ {
				row := make([]parquet.Value, len(c.leaves))
				for i, l := range c.leaves {
					row[i] = l.null(r, d)
				}
				c.nullRows[r*(def+1)+d] = row
			}
		}
	default:
		c.index = t.ncols
		t.ncols++
		c.maxRep, c.maxDef = rep, def
		c.nullAt = make([]parquet.Value, (rep+1)*(def+1))
		for r := 0; r <= rep; r++ {
			for d := 0; d <= def; d++ {
				c.nullAt[r*(def+1)+d] = parquet.Value{}.Level(r, d, c.index)
			}
		}
	}
}

func (t *Table) node(f schema.Field, s *schema.Schema, depth int) (parquet.Node, *col, error) {
	if depth > 32 {
		return nil, nil, fmt.Errorf("field %s nests deeper than 32", f.Name)
	}
	if s != nil {
		f = s.Resolve(f)
	}
	c := &col{name: f.Name, kind: f.Type, leaf: leafKinds[f.Type]}
	var n parquet.Node
	switch f.Type {
	case schema.TypeString, schema.TypeJSON:
		n = parquet.String()
	case schema.TypeInt, schema.TypeBigInt:
		n = parquet.Int(64)
	case schema.TypeSmallInt:
		n = parquet.Int(32)
	case schema.TypeFloat:
		n = parquet.Leaf(parquet.DoubleType)
	case schema.TypeBoolean:
		n = parquet.Leaf(parquet.BooleanType)
	case schema.TypeTimestamp:
		n = parquet.TimestampAdjusted(parquet.Microsecond, true) // micros: what Athena, Trino and pyarrow read natively
	case schema.TypeObject:
		g := parquet.Group{}
		kids := map[string]*col{}
		for _, cf := range f.Fields {
			cn, cc, err := t.node(cf, s, depth+1)
			if err != nil {
				return nil, nil, err
			}
			g[cf.Name] = cn
			kids[cf.Name] = cc
		}
		c.kind, c.shape = "group", groupShape
		for _, gf := range g.Fields() {
			c.children = append(c.children, kids[gf.Name()])
		}
		c.indexChildren()
		n = g
	case schema.TypeArray:
		el, ec, err := t.node(*f.Element, s, depth+1)
		if err != nil {
			return nil, nil, err
		}
		c.kind, c.shape = "list", listShape
		c.children = []*col{ec}
		if depth == 0 && slices.Contains(envelope.IndicatorFields, f.Name) {
			el = indicatorElement(el)
		}
		// Elements are optional: a null inside a JSON array stays a null.
		return parquet.Optional(parquet.List(parquet.Optional(el))), c, nil
	default:
		return nil, nil, fmt.Errorf("field %s: type %q has no column mapping", f.Name, f.Type)
	}
	return parquet.Optional(n), c, nil
}

// indicatorElement is an indicator list's element, dictionary encoded.
// An indicator repeats from row to row (an account id, a role's ARN, a
// scanner's IP), and its bloom filter is then sized by the distinct values
// and built from the dictionary once, where a plain column's is sized by
// every value and built by reading its compressed pages back: the lake of
// lakebench's 200,000 CloudTrail events went from 13.5 MB to 10.1 MB (a
// third of each file was bloom filters), for 2% fewer instructions.
// There is no dictionary size limit (DictionaryMaxBytes): parquet-go
// v0.32.0 leaves the values written after a fall back to plain pages out
// of the bloom filter, and `caracal search` would miss their rows. A row
// group's rows bound the dictionary; indicators are short.
// Dictionaries for the log's own text columns made the writer a sixth
// slower for another fifth off the size, so they stay plain.
func indicatorElement(el parquet.Node) parquet.Node {
	return parquet.Encoded(el, &parquet.RLEDictionary)
}

// EncodeColumns appends a row (a JSON-decoded object) to per-column value
// slices, one per leaf column, following the Dremel encoding: every node is
// optional, so a missing value or object is a null at the parent's
// definition level; lists repeat their element. Encoding by column feeds
// the Parquet column writers directly, with no row in between to build and
// split again. On error, part of the row may have been appended.
func (t *Table) EncodeColumns(cols [][]parquet.Value, v map[string]any) error {
	return t.encodeGroup(cols, t.root.children, v, 0, 0, 0)
}

// Columns is the number of leaf columns, the length EncodeColumns wants.
func (t *Table) Columns() int { return t.ncols }

// encodeGroup writes the fields of a defined group; r is the repetition
// level for each column's first value, d the definition level reached.
func (t *Table) encodeGroup(cols [][]parquet.Value, fields []*col, v map[string]any, r, d, depth int) error {
	for _, c := range fields {
		var x any
		if v != nil {
			x = v[c.name]
		}
		if err := t.encode(cols, c, x, r, d, depth); err != nil {
			return err
		}
	}
	return nil
}

// nulls writes a null at (r, d) to every leaf below c.
func nulls(cols [][]parquet.Value, c *col, r, d int) {
	if r <= c.maxRep && d <= c.maxDef {
		k := r*(c.maxDef+1) + d
		if c.shape == leafShape {
			*grow(cols, c.index) = c.nullAt[k]
			return
		}
		row := c.nullRows[k]
		row = row[:len(c.leafCols)]
		for i, idx := range c.leafCols {
			*grow(cols, idx) = row[i]
		}
		return
	}
	if c.shape == leafShape {
		*grow(cols, c.index) = c.null(r, d)
		return
	}
	for _, l := range c.leaves {
		*grow(cols, l.index) = l.null(r, d)
	}
}

// grow lengthens column idx by one value and returns it. It only stores
// the new length, where append stores the whole slice: values are most
// of what encoding an event writes.
func grow(cols [][]parquet.Value, idx int) *parquet.Value {
	col := &cols[idx]
	n := len(*col)
	if n < cap(*col) {
		*col = (*col)[:n+1]
	} else {
		*col = append(*col, parquet.Value{})
	}
	return &(*col)[n]
}

// encode writes value x of optional node c; d is the parent's definition
// level, depth the number of repeated ancestors.
func (t *Table) encode(cols [][]parquet.Value, c *col, x any, r, d, depth int) error {
	if x == nil {
		nulls(cols, c, r, d)
		return nil
	}
	switch c.shape {
	case groupShape:
		m, ok := x.(map[string]any)
		if !ok {
			nulls(cols, c, r, d)
			return nil
		}
		return t.encodeGroup(cols, c.children, m, r, d+1, depth)
	case listShape:
		return encodeItems(cols, c, asList(x), r, d, depth, func(it any, r, d, depth int) error {
			return t.encode(cols, c.children[0], it, r, d, depth)
		})
	}
	val, err := leaf(c.kind, x)
	return appendLeaf(cols, c, val, err, r, d)
}

// encodeItems writes the items of a defined list column c whose parent is
// at (r, d): an empty list is a null element one level down; each item is
// encoded at its levels (+1 optional list, +1 repeated "list" group), the
// first at the parent's repetition level, the others repeating this list.
func encodeItems[T any](cols [][]parquet.Value, c *col, items []T, r, d, depth int, encodeItem func(it T, r, d, depth int) error) error {
	if len(items) == 0 {
		nulls(cols, c.children[0], r, d+1)
		return nil
	}
	for i, it := range items {
		ri := r
		if i > 0 {
			ri = depth + 1
		}
		if err := encodeItem(it, ri, d+2, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// appendLeaf appends a leaf value of column c, defined below (r, d).
func appendLeaf(cols [][]parquet.Value, c *col, val parquet.Value, err error, r, d int) error {
	if err != nil {
		return fmt.Errorf("column %s: %w", c.name, err)
	}
	putLeaf(cols, c, val, r, d)
	return nil
}

// putLeaf appends a leaf's value at its levels.
func putLeaf(cols [][]parquet.Value, c *col, val parquet.Value, r, d int) {
	// Levels set in place: Value.Level is not inlined, and copies the
	// value in and out.
	v := grow(cols, c.index)
	*v = val
	v.SetRepetitionLevel(r)
	v.SetDefinitionLevel(d + 1)
	v.SetColumnIndex(c.index)
}

// asList is a list column's value as items: a lone value is a list of one.
func asList(x any) []any {
	switch v := x.(type) {
	case []any:
		return v
	case []string:
		items := make([]any, len(v))
		for i, s := range v {
			items[i] = s
		}
		return items
	}
	return []any{x}
}

func leaf(kind string, x any) (parquet.Value, error) {
	switch kind {
	case schema.TypeString:
		switch s := x.(type) {
		case string:
			// No copy: the writer copies the bytes into its page buffer
			// and never writes to them.
			return parquet.ByteArrayValue(unsafe.Slice(unsafe.StringData(s), len(s))), nil
		default:
			b, err := fastjson.MarshalWithOption(x, fastjson.DisableHTMLEscape())
			return parquet.ByteArrayValue(b), err
		}
	case schema.TypeJSON:
		b, err := fastjson.MarshalWithOption(x, fastjson.DisableHTMLEscape())
		return parquet.ByteArrayValue(b), err
	case schema.TypeInt, schema.TypeBigInt, schema.TypeSmallInt:
		var n int64
		switch v := x.(type) {
		case int64:
			n = v
		case float64:
			n = int64(v)
		case int:
			n = int64(v)
		default:
			return parquet.Value{}, fmt.Errorf("want an integer, got %T", x)
		}
		if kind == schema.TypeSmallInt {
			return parquet.Int32Value(int32(n)), nil
		}
		return parquet.Int64Value(n), nil
	case schema.TypeFloat:
		switch v := x.(type) {
		case float64:
			return parquet.DoubleValue(v), nil
		case int64:
			return parquet.DoubleValue(float64(v)), nil
		}
		return parquet.Value{}, fmt.Errorf("want a number, got %T", x)
	case schema.TypeBoolean:
		b, ok := x.(bool)
		if !ok {
			return parquet.Value{}, fmt.Errorf("want a boolean, got %T", x)
		}
		return parquet.BooleanValue(b), nil
	case schema.TypeTimestamp:
		tm, err := asTime(x)
		if err != nil {
			return parquet.Value{}, err
		}
		return parquet.Int64Value(tm.UnixMicro()), nil
	}
	return parquet.Value{}, fmt.Errorf("unknown column kind %q", kind)
}

func asTime(x any) (time.Time, error) {
	switch v := x.(type) {
	case string:
		return envelope.ParseTime(v)
	case time.Time:
		return v, nil
	}
	return time.Time{}, fmt.Errorf("want a timestamp, got %T", x)
}
