package schema

import (
	"fmt"
	"strings"

	"github.com/caracal-sec/caracal/plugins/suggest"
)

// FieldPath follows a path of field names from the schema's top level,
// as events are read along it: into objects (and refs to definitions),
// and through arrays to their elements' fields. It returns the field the
// path ends at. A json field holds anything, so a path that reaches one
// ends there: the json field is returned, whatever names follow. A name
// the schema does not have is a *PathError.
func (s *Schema) FieldPath(names []string) (*Field, error) {
	fields := s.Fields
	for i, name := range names {
		var f *Field
		for j := range fields {
			if fields[j].Name == name {
				f = &fields[j]
				break
			}
		}
		if f == nil {
			return nil, &PathError{Path: names[:i+1], Have: fieldNames(fields)}
		}
		el := s.Resolve(*f)
		for el.Type == TypeArray && el.Element != nil {
			el = s.Resolve(*el.Element)
		}
		switch {
		case i == len(names)-1:
			return f, nil
		case el.Type == TypeJSON:
			return f, nil
		case el.Type != TypeObject:
			return nil, &PathError{Path: names[:i+2], Type: s.typeName(*f)}
		}
		fields = el.Fields
	}
	return nil, &PathError{}
}

// PathError is a field path a schema does not have: its last name is not
// a field of the object before it (Have lists those), or the value before
// it is of a Type that has no fields.
type PathError struct {
	Path []string
	Have []string
	Type string
}

func (e *PathError) Error() string {
	if len(e.Path) == 0 {
		return `has no field ""`
	}
	parent, name := strings.Join(e.Path[:len(e.Path)-1], "."), e.Path[len(e.Path)-1]
	if e.Type != "" {
		return fmt.Sprintf("has no field %q: %s is of type %s, which has no fields", strings.Join(e.Path, "."), parent, e.Type)
	}
	meant := suggest.Nearest(name, e.Have)
	switch {
	case meant == "":
		return fmt.Sprintf("has no field %q", strings.Join(e.Path, "."))
	case parent != "":
		meant = parent + "." + meant
	}
	return fmt.Sprintf("has no field %q (did you mean %s?)", strings.Join(e.Path, "."), meant)
}

// typeName is a field's type as a path error names it: "string",
// "array of string".
func (s *Schema) typeName(f Field) string {
	f = s.Resolve(f)
	if f.Type == TypeArray && f.Element != nil {
		return "array of " + s.typeName(*f.Element)
	}
	return f.Type
}

func fieldNames(fields []Field) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.Name
	}
	return out
}
