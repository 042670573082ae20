package enrich

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// Set is every lookup table of a deployment.
type Set struct {
	tables map[string]*Table
	order  []*Table
	// byLogType lists (table, path) pairs to look up per log type.
	byLogType map[string][]assoc // "*": every log type
	// reads is the top-level keys the associations read (nil: all).
	reads *envelope.Keys
}

type assoc struct {
	t    *Table
	path string
	keys []string // path split on "." with "[*]" removed
}

// LoadSet loads every table defined in dir (an empty set when there is no
// such directory); any table that cannot be loaded is an error.
func LoadSet(ctx context.Context, dir string) (*Set, error) {
	defs, err := LoadDefs(dir)
	if err != nil {
		return nil, err
	}
	return newSet(defs, func(d *Def) (*Table, error) { return NewTable(ctx, d) })
}

// LoadSetFrom is LoadSet for a path a user named (a command's --lookups):
// a directory of definitions or one definition file, which must be there.
// (A stage's lookups_dir may be absent: it has no tables.)
func LoadSetFrom(ctx context.Context, path string) (*Set, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("lookup tables: %w", err)
	}
	if ext := filepath.Ext(path); !info.IsDir() && ext != ".yml" && ext != ".yaml" {
		return nil, fmt.Errorf("lookup tables %s: name a table definition (*.yml, which names its data) or a directory of them", path)
	}
	return LoadSet(ctx, path)
}

// StartSet is LoadSet for a running stage, its tables refreshed until ctx
// ends. Stages of one process share a table of the same definition (one
// copy, one refresh), which the last of them to stop releases. A remote
// table (s3://, https://) out of reach at start does not stop the stage:
// it starts empty, onError hears why, and it is retried (Table.Run). One
// feed out of reach must not stop every event's processing; until it
// loads, events are not enriched from it. onError also hears of failed
// refreshes.
func StartSet(ctx context.Context, dir string, onError func(t *Table, err error)) (*Set, error) {
	defs, err := LoadDefs(dir)
	if err != nil {
		return nil, err
	}
	var releases []func()
	releaseAll := func() {
		for _, release := range releases {
			release()
		}
	}
	s, err := newSet(defs, func(d *Def) (*Table, error) {
		t, release, err := acquire(ctx, d, onError)
		if err != nil {
			return nil, err
		}
		releases = append(releases, release)
		return t, nil
	})
	if err != nil {
		releaseAll()
		return nil, err
	}
	context.AfterFunc(ctx, releaseAll)
	return s, nil
}

// newSet is the set of the tables defined, each opened by open.
func newSet(defs []*Def, open func(d *Def) (*Table, error)) (*Set, error) {
	s := &Set{tables: map[string]*Table{}, byLogType: map[string][]assoc{}}
	for _, d := range defs {
		if _, dup := s.tables[d.Name]; dup {
			return nil, fmt.Errorf("%s: lookup table %s defined twice", d.File, d.Name)
		}
		t, err := open(d)
		if err != nil {
			return nil, err
		}
		s.tables[d.Name] = t
		s.order = append(s.order, t)
		for lt, paths := range d.Associations {
			for _, p := range paths {
				s.byLogType[lt] = append(s.byLogType[lt], assoc{t: t, path: p, keys: SplitPath(p)})
			}
		}
	}
	reads := []string{envelope.FieldLogType, envelope.FieldEnrichment}
	for _, as := range s.byLogType {
		for _, a := range as {
			reads = append(reads, a.keys[0])
		}
	}
	s.reads = envelope.NewKeys(reads...)
	return s, nil
}

// EnrichJSON is Enrich for an event as JSON, as the parse stage hands it
// on: only the top-level keys the associations read are decoded, and
// p_enrichment is added to the JSON as it is. It returns nil when nothing
// was added.
func (s *Set) EnrichJSON(raw []byte) ([]byte, error) {
	if s == nil || len(s.byLogType) == 0 {
		return nil, nil
	}
	// A look, not a copy: only the rows found (the tables' own) are kept,
	// and they are written out below.
	ev, err := envelope.ViewEventKeys(raw, s.reads)
	if err != nil {
		return nil, err
	}
	if _, ok := ev[envelope.FieldEnrichment]; ok {
		// Enriched before: merge into what it has.
		if ev, err = envelope.DecodeEvent(raw); err != nil {
			return nil, err
		}
		if !s.Enrich(ev) {
			return nil, nil
		}
		return envelope.EncodeEvent(ev)
	}
	if !s.enrich(ev, true) {
		return nil, nil
	}
	body := bytes.TrimSpace(raw) // an object: DecodeEventKeys checked
	body = body[:len(body)-1]    // without its closing brace
	out := make([]byte, 0, len(raw)+512)
	out = append(out, body...)
	if len(bytes.TrimSpace(body[1:])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"`+envelope.FieldEnrichment+`":`...)
	if out, err = envelope.AppendJSON(out, ev[envelope.FieldEnrichment]); err != nil {
		return nil, err
	}
	return append(out, '}'), nil
}

// Associates reports whether an event of log type lt has anything to
// look up.
func (s *Set) Associates(lt string) bool {
	return s != nil && (len(s.byLogType[lt]) > 0 || len(s.byLogType["*"]) > 0)
}

// Tables lists the tables, by name.
func (s *Set) Tables() []*Table { return s.order }

// Lookup returns the row for key in the named table, or nil (the rules'
// lookup(table, key)).
func (s *Set) Lookup(table string, key any) any {
	if s == nil {
		return nil
	}
	t := s.tables[table]
	if t == nil || key == nil {
		return nil
	}
	if row := t.Index().Get(KeyString(key)); row != nil {
		return row
	}
	return nil
}

// SplitPath is an association's field path as it is looked up: its field
// names ("resources[*].ARN" and "resources.ARN" both read the ARN of
// each element of resources).
func SplitPath(p string) []string {
	p = strings.ReplaceAll(p, "[*]", "")
	return strings.Split(p, ".")
}

// values collects the scalar values at a path, descending into arrays.
func values(v any, keys []string, out []string) []string {
	if len(keys) == 0 {
		switch t := v.(type) {
		case nil:
		case string:
			out = append(out, t)
		case []any:
			for _, x := range t {
				out = values(x, nil, out)
			}
		case []string:
			out = append(out, t...)
		case map[string]any:
		default:
			out = append(out, KeyString(t))
		}
		return out
	}
	switch t := v.(type) {
	case map[string]any:
		return values(t[keys[0]], keys[1:], out)
	case []any:
		for _, x := range t {
			out = values(x, keys, out)
		}
	}
	return out
}

// Enrich adds p_enrichment.<table>.<path> for every hit of the event's log
// type's associations: the row, or a list of rows when several values of
// the path hit. It reports whether anything was added.
func (s *Set) Enrich(event map[string]any) bool { return s.enrich(event, false) }

// enrich is Enrich; with asJSON, a row added is its JSON (json.RawMessage)
// rather than a map, for an event about to be written out.
func (s *Set) enrich(event map[string]any, asJSON bool) bool {
	if s == nil {
		return false
	}
	lt, _ := event[envelope.FieldLogType].(string)
	as := s.byLogType[lt]
	if all := s.byLogType["*"]; len(all) > 0 {
		as = append(as[:len(as):len(as)], all...)
	}
	if len(as) == 0 {
		return false
	}
	added := false
	for _, a := range as {
		ix := a.t.Index()
		var hits []any
		var found []int // rows in hits: each once
		for _, v := range values(event, a.keys, nil) {
			if ix.mmdb != nil {
				if row := ix.Get(v); row != nil {
					hits = append(hits, row)
				}
				continue
			}
			i := ix.find(v)
			if i < 0 || slices.Contains(found, i) {
				continue
			}
			found = append(found, i)
			if asJSON {
				hits = append(hits, json.RawMessage(ix.rows.appendJSON(nil, i)))
			} else {
				hits = append(hits, ix.row(i))
			}
		}
		if len(hits) == 0 {
			continue
		}
		enr, _ := event[envelope.FieldEnrichment].(map[string]any)
		if enr == nil {
			enr = map[string]any{}
			event[envelope.FieldEnrichment] = enr
		}
		tab, _ := enr[a.t.Def.Name].(map[string]any)
		if tab == nil {
			tab = map[string]any{}
			enr[a.t.Def.Name] = tab
		}
		if len(hits) == 1 {
			tab[a.path] = hits[0]
		} else {
			tab[a.path] = hits
		}
		added = true
	}
	return added
}
