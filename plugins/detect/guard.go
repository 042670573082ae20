package detect

import (
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/caracal-sec/caracal/plugins/envelope"
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

// and is the guards of g and h both holding (of a conjunction).
func (g guards) and(h guards) guards {
	out := guards{}
	for _, side := range []guards{g, h} {
		for f, vals := range side {
			out.add(f, slices.Collect(maps.Keys(vals))...)
		}
	}
	return out
}

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
// that each side guards, with either side's values. A failed guard must
// mean the condition is false without an error (an error is a rule-error
// record): so a conjunction's right operand lends its guards only when
// its left operand, evaluated first, cannot fail (see infallible).
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
		if !infallible(b.Left) {
			return g
		}
		g = g.and(guardsOf(b.Right))
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

// infallible reports whether evaluating the condition n cannot fail
// whatever the event holds: == and != between top-level fields and
// literals, and their negations and combinations. A field alone can (&&
// fails on a string), a nested field can (`a?.b` when a is a string), and
// so can `in`: expr looks a list of strings up as a map, and fails for a
// number, say.
func infallible(n ast.Node) bool {
	switch t := n.(type) {
	case *ast.BoolNode:
		return true
	case *ast.UnaryNode:
		return (t.Operator == "!" || t.Operator == "not") && infallible(t.Node)
	case *ast.BinaryNode:
		switch t.Operator {
		case "==", "!=":
			return plainOperand(t.Left) && plainOperand(t.Right)
		case "&&", "and", "||", "or":
			return infallible(t.Left) && infallible(t.Right)
		}
	}
	return false
}

// plainOperand: a top-level field or a literal, which == compares with
// anything without failing.
func plainOperand(n ast.Node) bool {
	switch t := n.(type) {
	case *ast.IdentifierNode:
		return !strings.HasPrefix(t.Value, "$")
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode:
		return true
	}
	return false
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
	all     []*Rule // every rule, in RuleID order
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
	ix := &index{field: field, byValue: map[string][]*Rule{}, all: slices.Clone(rules)}
	sort.SliceStable(ix.all, func(i, j int) bool { return ix.all[i].RuleID < ix.all[j].RuleID })
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
//
// A guard fails only on a string (or nothing) outside its values: on a
// number, say, `f in ["a"]` fails with an error, so an event whose
// indexed field holds something else gets every rule.
func (ix *index) lookup(event map[string]any) []*Rule {
	switch v := event[ix.field].(type) {
	case nil:
		return ix.lookupValue("")
	case string:
		return ix.lookupValue(v)
	}
	return ix.all
}

// lookupJSON is lookup for an event whose indexed field holds the JSON
// value raw (nil when absent).
func (ix *index) lookupJSON(raw []byte) []*Rule {
	v, ok := guardText(raw)
	if !ok {
		return ix.all
	}
	return ix.lookupValue(v)
}

// guardText is the text a guard checks in the JSON value raw: a string's,
// or "" for null or nothing; ok is false for any other value, which
// guards do not decide on.
func guardText(raw []byte) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	return envelope.ViewString(raw)
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
