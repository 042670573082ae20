// Package schema is the model of Panther's log schema YAML, read unchanged:
// the same keys a Panther user writes for a custom log type. The parse engine
// interprets it; the lake derives Parquet columns from it.
package schema

import (
	"math"

	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// Schema is one log type's schema file.
type Schema struct {
	Schema       string             `yaml:"schema" json:"schema"`
	Description  string             `yaml:"description,omitempty" json:"description,omitempty"`
	ReferenceURL string             `yaml:"referenceURL,omitempty" json:"referenceURL,omitempty"`
	Version      int                `yaml:"version" json:"version"`
	Parser       *Parser            `yaml:"parser,omitempty" json:"parser,omitempty"`
	Fields       []Field            `yaml:"fields" json:"fields"`
	Definitions  map[string][]Field `yaml:"definitions,omitempty" json:"definitions,omitempty"`
	Tests        []Test             `yaml:"tests,omitempty" json:"tests,omitempty"`
	File         string             `yaml:"-" json:"-"`       // where it was loaded from
	Extra        map[string]any     `yaml:",inline" json:"-"` // unknown keys, reported by lint
	Line         int                `yaml:"-" json:"-"`       // of the schema key, for errors
}

// UnmarshalYAML decodes a schema and notes the line of its name.
func (s *Schema) UnmarshalYAML(n *yaml.Node) error {
	type plain Schema // without this method
	if err := n.Decode((*plain)(s)); err != nil {
		return err
	}
	if v := yamlnode.Value(n, "schema"); v != nil {
		s.Line = v.Line
	}
	return nil
}

// HeaderFromFirstLine reports whether the schema reads its columns from
// its stream's first line: CSV with hasHeader and no columns.
func (s *Schema) HeaderFromFirstLine() bool {
	return s.Parser != nil && s.Parser.CSV != nil && s.Parser.CSV.HasHeader && len(s.Parser.CSV.Columns) == 0
}

// Parser selects how raw bytes become a record. Exactly one is set; none
// means JSON.
type Parser struct {
	Native    *NativeParser    `yaml:"native,omitempty" json:"native,omitempty"`
	CSV       *CSVParser       `yaml:"csv,omitempty" json:"csv,omitempty"`
	FastMatch *FastMatchParser `yaml:"fastmatch,omitempty" json:"fastmatch,omitempty"`
	Regex     *RegexParser     `yaml:"regex,omitempty" json:"regex,omitempty"`

	Extra map[string]any `yaml:",inline" json:"-"` // unknown keys: a typo, reported
	Line  int            `yaml:"-" json:"-"`       // in the schema file, for errors
}

// UnmarshalYAML decodes a parser and notes its line.
func (p *Parser) UnmarshalYAML(n *yaml.Node) error {
	type plain Parser // without this method
	if err := n.Decode((*plain)(p)); err != nil {
		return err
	}
	p.Line = n.Line
	return nil
}

// NativeParser names a parser written in Go (for formats a schema alone
// cannot describe).
type NativeParser struct {
	Name string `yaml:"name" json:"name"`
}

// CSVParser reads delimiter-separated lines.
type CSVParser struct {
	Delimiter    string            `yaml:"delimiter,omitempty" json:"delimiter,omitempty"`
	HasHeader    bool              `yaml:"hasHeader,omitempty" json:"hasHeader,omitempty"`
	Columns      []string          `yaml:"columns,omitempty" json:"columns,omitempty"`
	SkipPrefix   string            `yaml:"skipPrefix,omitempty" json:"skipPrefix,omitempty"`
	EmptyValues  []string          `yaml:"emptyValues,omitempty" json:"emptyValues,omitempty"`
	TrimSpace    bool              `yaml:"trimSpace,omitempty" json:"trimSpace,omitempty"`
	ExpandFields map[string]string `yaml:"expandFields,omitempty" json:"expandFields,omitempty"`
}

// FastMatchParser matches lines against %{field} patterns.
type FastMatchParser struct {
	Match        []string          `yaml:"match" json:"match"`
	EmptyValues  []string          `yaml:"emptyValues,omitempty" json:"emptyValues,omitempty"`
	TrimSpace    bool              `yaml:"trimSpace,omitempty" json:"trimSpace,omitempty"`
	ExpandFields map[string]string `yaml:"expandFields,omitempty" json:"expandFields,omitempty"`
}

// RegexParser matches lines against regular expressions with named captures.
type RegexParser struct {
	Match              []string          `yaml:"match" json:"match"`
	PatternDefinitions map[string]string `yaml:"patternDefinitions,omitempty" json:"patternDefinitions,omitempty"`
	EmptyValues        []string          `yaml:"emptyValues,omitempty" json:"emptyValues,omitempty"`
	TrimSpace          bool              `yaml:"trimSpace,omitempty" json:"trimSpace,omitempty"`
	ExpandFields       map[string]string `yaml:"expandFields,omitempty" json:"expandFields,omitempty"`
}

// IndicatorKinds are the values a field's `indicators` may list: each
// fills one or more p_any_* fields (the parse package's Indicators).
var IndicatorKinds = []string{"ip", "domain", "hostname", "url", "net_addr", "md5", "sha1", "sha256", "aws_arn", "aws_arn_only",
	"aws_account_id", "aws_instance_id", "aws_tag", "trace_id", "actor_id", "username", "email", "mac"}

// Field types.
const (
	TypeString    = "string"
	TypeInt       = "int"
	TypeSmallInt  = "smallint"
	TypeBigInt    = "bigint"
	TypeFloat     = "float"
	TypeBoolean   = "boolean"
	TypeTimestamp = "timestamp"
	TypeArray     = "array"
	TypeObject    = "object"
	TypeJSON      = "json"
	TypeRef       = "ref"
)

// IntRange is the range of an integer type's values, as Panther sizes
// them (smallint 16 bits, int 32, bigint 64); ok is false for the other
// types. The parse stage refuses a value outside it: the lake's column
// would wrap it.
func IntRange(typ string) (lo, hi int64, ok bool) {
	switch typ {
	case TypeSmallInt:
		return math.MinInt16, math.MaxInt16, true
	case TypeInt:
		return math.MinInt32, math.MaxInt32, true
	case TypeBigInt:
		return math.MinInt64, math.MaxInt64, true
	}
	return 0, 0, false
}

// Field is one column of a log type (or the element of an array).
type Field struct {
	Name           string    `yaml:"name,omitempty" json:"name,omitempty"`
	Type           string    `yaml:"type" json:"type"`
	Required       bool      `yaml:"required,omitempty" json:"required,omitempty"`
	Description    string    `yaml:"description,omitempty" json:"description,omitempty"`
	Element        *Field    `yaml:"element,omitempty" json:"element,omitempty"`
	Fields         []Field   `yaml:"fields,omitempty" json:"fields,omitempty"`
	Target         string    `yaml:"target,omitempty" json:"target,omitempty"`
	TimeFormat     string    `yaml:"timeFormat,omitempty" json:"timeFormat,omitempty"`
	TimeFormats    []string  `yaml:"timeFormats,omitempty" json:"timeFormats,omitempty"`
	IsEventTime    bool      `yaml:"isEventTime,omitempty" json:"isEventTime,omitempty"`
	IsEmbeddedJSON bool      `yaml:"isEmbeddedJSON,omitempty" json:"isEmbeddedJSON,omitempty"`
	Indicators     []string  `yaml:"indicators,omitempty" json:"indicators,omitempty"`
	Validate       *Validate `yaml:"validate,omitempty" json:"validate,omitempty"`
	// Transformations, applied before indicators are extracted.
	Rename *Rename `yaml:"rename,omitempty" json:"rename,omitempty"`
	Copy   *Copy   `yaml:"copy,omitempty" json:"copy,omitempty"`
	Concat *Concat `yaml:"concat,omitempty" json:"concat,omitempty"`
	Split  *Split  `yaml:"split,omitempty" json:"split,omitempty"`
	Mask   *Mask   `yaml:"mask,omitempty" json:"mask,omitempty"`

	Extra map[string]any `yaml:",inline" json:"-"` // unknown keys: a typo, reported
	Line  int            `yaml:"-" json:"-"`       // in the schema file, for errors
}

// UnmarshalYAML decodes a field and notes its line.
func (f *Field) UnmarshalYAML(n *yaml.Node) error {
	type plain Field // without this method
	if err := n.Decode((*plain)(f)); err != nil {
		return err
	}
	f.Line = n.Line
	return nil
}

// Validate restricts a field's values.
type Validate struct {
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	Deny  []string `yaml:"deny,omitempty" json:"deny,omitempty"`
	IP    string   `yaml:"ip,omitempty" json:"ip,omitempty"`     // ipv4, ipv6, any
	CIDR  string   `yaml:"cidr,omitempty" json:"cidr,omitempty"` // ipv4, ipv6, any
}

// Rename takes the field's value from another input key.
type Rename struct {
	From string `yaml:"from" json:"from"`
}

// Copy takes the field's value from another field path.
type Copy struct {
	From string `yaml:"from" json:"from"`
}

// Concat joins other fields' values.
type Concat struct {
	Paths     []string `yaml:"paths" json:"paths"`
	Separator string   `yaml:"separator,omitempty" json:"separator,omitempty"`
}

// Split takes one part of another field split by a separator.
type Split struct {
	From      string `yaml:"from" json:"from"`
	Separator string `yaml:"separator" json:"separator"`
	Index     int    `yaml:"index" json:"index"`
}

// Mask hides a value: `type: redact` replaces it with `to`, `type: hash`
// replaces it with a hash (`algorithm: sha256|md5`, optional `salt`).
type Mask struct {
	Type      string `yaml:"type" json:"type"`
	To        string `yaml:"to,omitempty" json:"to,omitempty"`
	Algorithm string `yaml:"algorithm,omitempty" json:"algorithm,omitempty"`
	Salt      string `yaml:"salt,omitempty" json:"salt,omitempty"`
}

// Test is a schema's own test case: an input and the expected normalized
// output (compared field by field, p_parse_time and p_row_id ignored).
type Test struct {
	Name   string           `yaml:"name" json:"name"`
	Input  string           `yaml:"input" json:"input"`
	Result []map[string]any `yaml:"result,omitempty" json:"result,omitempty"`
	Fails  bool             `yaml:"fails,omitempty" json:"fails,omitempty"`
}
