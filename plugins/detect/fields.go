package detect

import (
	"slices"
	"sort"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/exprs"
	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// FieldsUsed lists the top-level event fields a rule reads: the free
// identifiers of its expressions (not functions, not let variables) and
// the first segment of its match expressions' keys and AlertTitle's
// placeholders. `caracal lint` checks them against the fields of the
// rule's log types.
func (r *Rule) FieldsUsed() []string {
	seen := map[string]bool{}
	for _, src := range r.expressions() {
		tree, err := parser.Parse(src)
		if err != nil {
			continue // compile errors are reported on their own
		}
		ast.Walk(&tree.Node, &identVisitor{found: seen})
	}
	for _, list := range r.matchLists() {
		detectionKeys(list, seen)
	}
	for _, p := range r.alertTitle {
		if len(p.path) > 0 && p.path[0] != "[*]" {
			seen[p.path[0]] = true
		}
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// conditionKeys lists every top-level key the rule's Condition, Detection
// or InlineFilters might read, erring on the side of more: all identifiers
// in the condition (function and let names too) and the match expressions'
// keys. all is set when it reads the event as a whole ($env, other than
// $env["key"]) or through a key that is not a plain name. Title, Dedup and
// the rest are evaluated for a match, from the whole event.
func (r *Rule) conditionKeys() (keys map[string]bool, all bool) {
	keys = map[string]bool{}
	if src := r.Condition; src != "" {
		tree, err := parser.Parse(src)
		if err != nil {
			return nil, true
		}
		// $env["key"] with a constant key reads that key; $env used any
		// other way may read anything.
		named := map[ast.Node]bool{}
		ast.Find(tree.Node, func(n ast.Node) bool {
			if m, ok := n.(*ast.MemberNode); ok {
				id, isIdent := m.Node.(*ast.IdentifierNode)
				key, isConst := m.Property.(*ast.StringNode)
				if isIdent && isConst && id.Value == "$env" {
					keys[key.Value] = true
					named[id] = true
				}
			}
			return false
		})
		ast.Find(tree.Node, func(n ast.Node) bool {
			if id, ok := n.(*ast.IdentifierNode); ok && !named[id] {
				keys[id.Value] = true
			}
			return false
		})
	}
	for _, list := range r.logicLists() {
		detectionKeys(list, keys)
	}
	for k := range keys {
		if k == "" || strings.HasPrefix(k, "$") || strings.ContainsAny(k, "*[]") {
			return nil, true
		}
	}
	return keys, false
}

// logicLists are the rule's match-expression lists that decide whether it
// matches: Detection and InlineFilters (empty when not given).
func (r *Rule) logicLists() []*yaml.Node {
	return []*yaml.Node{&r.Detection, &r.InlineFilters}
}

// matchLists are all the rule's match-expression lists: logicLists and
// the Conditions of DynamicSeverities.
func (r *Rule) matchLists() []*yaml.Node {
	lists := r.logicLists()
	for _, entry := range r.DynamicSeverities.Content {
		if conditions := yamlnode.Value(entry, "Conditions"); conditions != nil {
			lists = append(lists, conditions)
		}
	}
	return lists
}

// expressions are the rule's expr sources that are set: Condition, Title,
// Dedup, DynamicSeverity and the AlertContext values.
func (r *Rule) expressions() []string {
	var out []string
	for _, src := range []string{r.Condition, r.Title, r.Dedup, r.DynamicSeverity} {
		if src != "" {
			out = append(out, src)
		}
	}
	for _, src := range r.AlertContext {
		if src != "" {
			out = append(out, src)
		}
	}
	return out
}

// identVisitor collects identifiers; ast.Walk visits a node's children
// before the node, so a function's name or a let variable, seen first as
// an identifier, is dropped when its call or declaration is reached.
type identVisitor struct {
	found map[string]bool
}

func (v *identVisitor) Visit(n *ast.Node) {
	switch t := (*n).(type) {
	case *ast.CallNode:
		if id, ok := t.Callee.(*ast.IdentifierNode); ok {
			delete(v.found, id.Value)
		}
	case *ast.VariableDeclaratorNode:
		delete(v.found, t.Name)
	case *ast.IdentifierNode:
		if !strings.HasPrefix(t.Value, "$") {
			v.found[t.Value] = true
		}
	}
}

// detectionKeys collects the first key segment of every match expression
// at the event level (not inside list-condition Expressions, whose keys
// are relative to the elements).
func detectionKeys(n *yaml.Node, out map[string]bool) {
	for _, item := range n.Content {
		if item.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, val := item.Content[i].Value, item.Content[i+1]
			switch k {
			case "Key":
				out[val.Value] = true
			case "DeepKey":
				if len(val.Content) > 0 {
					out[val.Content[0].Value] = true
				}
			case "KeyPath":
				first, _, _ := strings.Cut(val.Value, ".")
				out[strings.TrimSuffix(first, "[*]")] = true
			case "All", "Any", "OnlyOne", "None":
				detectionKeys(val, out)
			}
		}
	}
}

// LookupCall is a lookup("<table>", key) call in a rule's expression.
type LookupCall struct {
	Key   string // the expression's rule key: Condition, Title, AlertContext.<name>, ...
	Table string
}

// LookupCalls lists the lookup() calls of the rule's compiled expressions
// that name their table with a constant (folded: "bad_" + "ips" names
// bad_ips), in key order; a table named by a value of the event is known
// only when the rule runs. `caracal lint` checks the tables exist.
func (r *Rule) LookupCalls() []LookupCall {
	var out []LookupCall
	for _, np := range r.programs() {
		ast.Find(np.p.Node(), func(n ast.Node) bool {
			call, ok := n.(*ast.CallNode)
			if !ok || len(call.Arguments) == 0 {
				return false
			}
			fn, isIdent := call.Callee.(*ast.IdentifierNode)
			table, isConst := call.Arguments[0].(*ast.StringNode)
			if isIdent && isConst && fn.Value == "lookup" {
				out = append(out, LookupCall{Key: np.key, Table: table.Value})
			}
			return false
		})
	}
	return out
}

// namedProgram is one of a rule's compiled expressions and its rule key.
type namedProgram struct {
	key string // Condition, Title, Dedup, DynamicSeverity, AlertContext.<name>
	p   *exprs.Program
}

// programs are the rule's compiled expressions that are set, in key order.
func (r *Rule) programs() []namedProgram {
	all := []namedProgram{{"Condition", r.condition}, {"Title", r.title}, {"Dedup", r.dedup}, {"DynamicSeverity", r.dynSeverity}}
	for i, name := range r.contextNames {
		all = append(all, namedProgram{"AlertContext." + name, r.contextPrograms[i]})
	}
	return slices.DeleteFunc(all, func(np namedProgram) bool { return np.p == nil })
}
