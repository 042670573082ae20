package parse

import (
	"bytes"
	"errors"
	"slices"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/native"
)

// Fields derived from others (copy, concat, split) read paths from the
// event's root, so the map path decodes the whole event first. The emit
// path writes the other fields as it reads them, then the derived ones
// from a map of only what their paths read.

// errMapPath sends an event of a schema with derived fields that the emit
// path cannot write to the map path, which reports the error the fields'
// order gives (or writes what the strict scanner refused).
var errMapPath = errors.New("left to the map path")

// emitDerived writes the derived fields from root, the part of the event
// they read; first reports that no field was written before or by it.
// Errors leave the event to the map path, which reports them in the
// fields' order.
func (st *state) emitDerived(b []byte, first bool, fields []*node, root map[string]any) ([]byte, bool, error) {
	b, first, err := st.emitMapFields(b, first, fields, root)
	if err != nil {
		return nil, false, errMapPath
	}
	return b, first, nil
}

// readTree is what derived fields read of an event: at each level the
// keys on their paths, each with the keys read below it; nil below a key
// means its whole value.
type readTree map[string]readTree

// add adds a path to the tree.
func (t readTree) add(path []string) readTree {
	if t == nil {
		t = readTree{}
	}
	at := t
	for i, k := range path {
		below, seen := at[k]
		switch {
		case seen && below == nil:
			return t // already read whole
		case i == len(path)-1:
			at[k] = nil
		case !seen:
			below = readTree{}
			at[k] = below
		}
		at = below
	}
	return t
}

// keptRoot decodes what derived fields read from the kept values of the
// top-level keys they start at (nil where the event has none), as
// DecodeObject decodes it (the last of a repeated key wins), its strings
// pointing into the event: what getPath finds in it is what it finds in
// the whole event.
func keptRoot(kept [][]byte, keys []string, t readTree) (map[string]any, error) {
	m := make(map[string]any, len(keys))
	for j, v := range kept {
		if v == nil {
			continue
		}
		var err error
		if below := t[keys[j]]; below != nil && bytes.TrimSpace(v)[0] == '{' {
			s := envelope.NewScanner(v)
			s.Next()
			m[keys[j]], err = viewObject(&s, below, 1)
			s.Release()
		} else {
			m[keys[j]], err = envelope.ViewValue(v)
		}
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

func viewObject(s *envelope.Scanner, t readTree, depth int) (map[string]any, error) {
	if depth > envelope.MaxDepth {
		return nil, envelope.ErrTooDeep
	}
	s.Expect('{')
	m := make(map[string]any, len(t))
	for more := !s.Expect('}'); more; {
		key, err := s.Key()
		if err != nil {
			return nil, err
		}
		below, read := t[string(key)]
		switch {
		case !read:
			_, err = s.Skip(depth + 1)
		case below != nil && s.Next() == '{':
			k := string(key) // before the scanner reuses its buffer
			m[k], err = viewObject(s, below, depth+1)
		default:
			k := string(key)
			var v []byte
			if v, err = s.Skip(depth + 1); err == nil {
				m[k], err = envelope.ViewValue(v)
			}
		}
		if err != nil {
			return nil, err
		}
		if more, err = s.More('}'); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// recordRoot is what derived fields read of a line: its values of the keys
// their paths start at, the last of a key winning as in Record.Map.
func recordRoot(rec *native.Record, keys []string) map[string]any {
	m := make(map[string]any, len(keys))
	vals := rec.Values()
	for i := range vals {
		if slices.Contains(keys, vals[i].Key) {
			m[vals[i].Key] = vals[i].Any()
		}
	}
	return m
}
