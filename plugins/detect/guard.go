package detect

import (
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"gopkg.in/yaml.v3"
)

// A guard is a top-level field a rule requires to hold one of a few
// strings (`eventName == "X" && ...`, `eventName in [...]`, or a Detection
// item `Key: eventName, Condition: Equals/IsIn`). The engine indexes rules
// by one guarded field per log type, so an event is evaluated only against
// the rules that can match it: skipping a rule whose guard fails gives the
// same result as running it.
type guards map[string]map[string]bool

func (g guards) add(field string, values ...string) {
	if prev, ok := g[field]; ok {
		// Two guards on one field in a conjunction: both must hold.
		both := map[string]bool{}
		for _, v := range values {
			if prev[v] {
				both[v] = true
			}
		}
		g[field] = both
		return
	}
	set := map[string]bool{}
	for _, v := range values {
		set[v] = true
	}
	g[field] = set
}

// conditionGuards analyses an expr condition: the guards of a conjunction
// are its operands' (both must hold), and a disjunction guards a field
// that each side guards, with either side's values.
func conditionGuards(src string) guards {
	tree, err := parser.Parse(src)
	if err != nil {
		return nil
	}
	return guardsOf(tree.Node)
}

func guardsOf(n ast.Node) guards {
	g := guards{}
	b, ok := n.(*ast.BinaryNode)
	if !ok {
		return g
	}
	switch b.Operator {
	case "&&", "and":
		g = guardsOf(b.Left)
		for f, vals := range guardsOf(b.Right) {
			g.add(f, slices.Collect(maps.Keys(vals))...)
		}
	case "||", "or":
		left, right := guardsOf(b.Left), guardsOf(b.Right)
		for f, lv := range left {
			if rv, ok := right[f]; ok {
				g.add(f, append(slices.Collect(maps.Keys(lv)), slices.Collect(maps.Keys(rv))...)...)
			}
		}
	case "==":
		l, r := b.Left, b.Right
		if _, ok := l.(*ast.StringNode); ok {
			l, r = r, l
		}
		path, ok1 := guardPath(l)
		s, ok2 := r.(*ast.StringNode)
		if ok1 && ok2 {
			g.add(path, s.Value)
		}
	case "in":
		path, ok := guardPath(b.Left)
		arr, isArr := b.Right.(*ast.ArrayNode)
		if !ok || !isArr || len(arr.Nodes) == 0 {
			return g
		}
		var vals []string
		for _, e := range arr.Nodes {
			s, ok := e.(*ast.StringNode)
			if !ok {
				return g // a non-string member: no guard
			}
			vals = append(vals, s.Value)
		}
		g.add(path, vals...)
	}
	return g
}

// pathSep joins the keys of a guard on a nested field ("userIdentity?.type").
const pathSep = "\x00"

// guardPath is the field a guard compares: a top-level field, or a field
// inside objects reached by optional member access only (a?.b?.c), which
// is nil rather than an error when a step is missing.
func guardPath(n ast.Node) (string, bool) {
	switch t := n.(type) {
	case *ast.IdentifierNode:
		return t.Value, !strings.HasPrefix(t.Value, "$")
	case *ast.ChainNode:
		return guardPath(t.Node)
	case *ast.MemberNode:
		prop, ok := t.Property.(*ast.StringNode)
		if !ok || !t.Optional || t.Method {
			return "", false
		}
		parent, ok := guardPath(t.Node)
		return parent + pathSep + prop.Value, ok
	}
	return "", false
}

// detectionGuards analyses a Detection list's top-level items.
func detectionGuards(n *yaml.Node) guards {
	g := guards{}
	for _, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			continue
		}
		f := map[string]*yaml.Node{}
		for i := 0; i+1 < len(item.Content); i += 2 {
			f[item.Content[i].Value] = item.Content[i+1]
		}
		key, cond := f["Key"], f["Condition"]
		if key == nil || cond == nil {
			continue
		}
		switch cond.Value {
		case "Equals":
			if v := f["Value"]; v != nil && v.Kind == yaml.ScalarNode && v.Tag == "!!str" {
				g.add(key.Value, v.Value)
			}
		case "IsIn":
			vs := f["Values"]
			if vs == nil || vs.Kind != yaml.SequenceNode || len(vs.Content) == 0 {
				continue
			}
			var vals []string
			for _, v := range vs.Content {
				if v.Kind != yaml.ScalarNode || v.Tag != "!!str" {
					vals = nil
					break
				}
				vals = append(vals, v.Value)
			}
			if vals != nil {
				g.add(key.Value, vals...)
			}
		}
	}
	return g
}

// index is a log type's rules by the value of its most guarded field.
type index struct {
	field   string
	byValue map[string][]*Rule
	rest    []*Rule // rules without a guard on field
}

func newIndex(rules []*Rule) *index {
	count := map[string]int{}
	for _, r := range rules {
		for f := range r.guards {
			if !strings.Contains(f, pathSep) { // events are indexed by a top-level field
				count[f]++
			}
		}
	}
	field, best := "", 1 // indexing pays from two guarded rules on
	for f, n := range count {
		if n > best || (n == best && f < field && field != "") {
			field, best = f, n
		}
	}
	ix := &index{field: field, byValue: map[string][]*Rule{}}
	for _, r := range rules {
		vals, ok := r.guards[field]
		if field == "" || !ok {
			ix.rest = append(ix.rest, r)
			continue
		}
		for v := range vals {
			ix.byValue[v] = append(ix.byValue[v], r)
		}
	}
	// Keep evaluation order stable: guarded and unguarded rules merge by
	// rule order in lookup.
	for v, rs := range ix.byValue {
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].RuleID < rs[j].RuleID })
		ix.byValue[v] = rs
	}
	return ix
}

// lookup returns the rules to run for an event, in RuleID order.
func (ix *index) lookup(event map[string]any) []*Rule {
	v, _ := event[ix.field].(string)
	return ix.lookupValue(v)
}

// lookupValue is lookup for an event whose indexed field holds v.
func (ix *index) lookupValue(v string) []*Rule {
	if ix.field == "" {
		return ix.rest
	}
	guarded := ix.byValue[v]
	if len(guarded) == 0 {
		return ix.rest
	}
	if len(ix.rest) == 0 {
		return guarded
	}
	out := make([]*Rule, 0, len(guarded)+len(ix.rest))
	i, j := 0, 0
	for i < len(guarded) || j < len(ix.rest) {
		if j >= len(ix.rest) || (i < len(guarded) && guarded[i].RuleID < ix.rest[j].RuleID) {
			out = append(out, guarded[i])
			i++
		} else {
			out = append(out, ix.rest[j])
			j++
		}
	}
	return out
}
