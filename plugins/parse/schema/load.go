package schema

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/suggest"
	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// Load reads one schema file.
func Load(path string) (*Schema, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse reads a schema from YAML; name is used in errors.
func Parse(name string, data []byte) (*Schema, error) {
	var s Schema
	if err := yaml.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	s.File = name
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &s, nil
}

// LoadDir reads every *.yml / *.yaml schema below dir, sorted by name.
func LoadDir(dir string) ([]*Schema, error) {
	var out []*Schema
	var errs []error
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if ext := filepath.Ext(path); ext != ".yml" && ext != ".yaml" {
			return nil
		}
		s, err := Load(path)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		out = append(out, s)
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		wd, _ := os.Getwd()
		return nil, fmt.Errorf("schemas directory %s does not exist (relative to %s): run from Caracal's directory or name another", dir, wd)
	}
	if err != nil {
		return nil, fmt.Errorf("schemas in %s: %w", dir, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	seen := map[string]*Schema{} // by lake table: each log type has its own
	for _, s := range out {
		table := envelope.TableName(s.Schema)
		if prev, dup := seen[table]; dup && prev.Schema == s.Schema {
			return nil, fmt.Errorf("schema %s defined twice: %s and %s", s.Schema, prev.File, s.File)
		} else if dup {
			return nil, fmt.Errorf("schemas %s (%s) and %s (%s) would share the lake table %s: rename one", prev.Schema, prev.File, s.Schema, s.File, table)
		}
		seen[table] = s
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Schema < out[j].Schema })
	return out, nil
}

// The keys of a schema and of a field, as the model reads them, for
// errors to list.
var (
	schemaKeys = yamlnode.Keys(Schema{})
	fieldKeys  = yamlnode.Keys(Field{})
	parserKeys = yamlnode.Keys(Parser{})
)

// types are the field types, in the order errors list them.
var types = []string{TypeString, TypeInt, TypeSmallInt, TypeBigInt, TypeFloat, TypeBoolean, TypeTimestamp, TypeArray, TypeObject, TypeJSON, TypeRef}

// Validate checks the schema's structure: names, types and their required
// companions (element, fields, target).
func (s *Schema) Validate() error {
	if s.Schema == "" {
		return errors.New("missing `schema` (the log type name, e.g. Custom.MyApp)")
	}
	if err := envelope.CheckLogType(s.Schema); err != nil {
		return atLine(s.Line, err)
	}
	if len(s.Fields) == 0 {
		return errors.New("missing `fields`")
	}
	for k := range s.Extra {
		return fmt.Errorf("unknown key %q%s", k, suggest.Hint(k, schemaKeys))
	}
	if s.Parser != nil {
		if err := s.Parser.check(); err != nil {
			return atLine(s.Parser.Line, err)
		}
	}
	return validateFields(s, s.Fields, "")
}

// check refuses a parser block that does not name exactly one parser:
// with two, one would silently win.
func (p *Parser) check() error {
	for k := range p.Extra {
		if k == "script" {
			return errors.New("parser: script (Starlark) is not supported: use native, csv, fastmatch or regex")
		}
		return fmt.Errorf("parser: unknown parser %q%s", k, suggest.Hint(k, parserKeys))
	}
	var set []string
	for _, c := range []struct {
		name string
		set  bool
	}{{"native", p.Native != nil}, {"csv", p.CSV != nil}, {"fastmatch", p.FastMatch != nil}, {"regex", p.Regex != nil}} {
		if c.set {
			set = append(set, c.name)
		}
	}
	if len(set) > 1 {
		return fmt.Errorf("parser: %s are given, a schema has exactly one parser", strings.Join(set, " and "))
	}
	return nil
}

// atLine prefixes err with the line it is about, when known.
func atLine(line int, err error) error {
	if line > 0 {
		return fmt.Errorf("line %d: %w", line, err)
	}
	return err
}

func validateFields(s *Schema, fields []Field, prefix string) error {
	names := map[string]bool{}
	for i := range fields {
		f := &fields[i]
		if f.Name == "" {
			return fmt.Errorf("line %d: field %d under %q has no name", f.Line, i, prefix)
		}
		if names[f.Name] {
			return fmt.Errorf("line %d: field %s%s defined twice", f.Line, prefix, f.Name)
		}
		names[f.Name] = true
		if err := validateField(s, f, prefix+f.Name); err != nil {
			return err
		}
	}
	return nil
}

func validateField(s *Schema, f *Field, path string) error {
	if err := checkField(s, f, path); err != nil {
		if f.Line > 0 {
			return fmt.Errorf("line %d: %w", f.Line, err)
		}
		return err
	}
	switch f.Type {
	case TypeArray:
		return validateField(s, f.Element, path+"[]")
	case TypeObject:
		return validateFields(s, f.Fields, path+".")
	}
	return nil
}

// checkField checks f itself, not the fields inside it.
func checkField(s *Schema, f *Field, path string) error {
	for k := range f.Extra {
		return fmt.Errorf("field %s: unknown key %q%s", path, k, suggest.Hint(k, fieldKeys))
	}
	for _, k := range f.Indicators {
		if !slices.Contains(IndicatorKinds, k) {
			return fmt.Errorf("field %s: unknown indicator %q%s", path, k, suggest.Hint(k, IndicatorKinds))
		}
	}
	if f.IsEventTime && f.Type != TypeTimestamp {
		return fmt.Errorf("field %s: isEventTime needs type timestamp (with its timeFormat), not %s", path, f.Type)
	}
	switch f.Type {
	case TypeString, TypeInt, TypeSmallInt, TypeBigInt, TypeFloat, TypeBoolean, TypeJSON:
	case TypeTimestamp:
		if f.TimeFormat == "" && len(f.TimeFormats) == 0 {
			return fmt.Errorf("field %s: timestamp needs timeFormat (rfc3339, unix, unix_ms, unix_us, unix_ns, a strftime pattern or layout=...)", path)
		}
	case TypeArray:
		if f.Element == nil {
			return fmt.Errorf("field %s: array needs element", path)
		}
	case TypeObject:
		if len(f.Fields) == 0 {
			return fmt.Errorf("field %s: object needs fields", path)
		}
	case TypeRef:
		if _, ok := s.Definitions[f.Target]; !ok {
			return fmt.Errorf("field %s: ref target %q is not in definitions%s", path, f.Target, suggest.DidYouMean(f.Target, slices.Sorted(maps.Keys(s.Definitions))))
		}
	default:
		return fmt.Errorf("field %s: unknown type %q%s", path, f.Type, suggest.Hint(f.Type, types))
	}
	return nil
}

// Resolve returns the field with a ref replaced by an object of its target's
// fields.
func (s *Schema) Resolve(f Field) Field {
	if f.Type != TypeRef {
		return f
	}
	f.Type = TypeObject
	f.Fields = s.Definitions[f.Target]
	return f
}
