// Package exprs checks the expr expressions users write (rule conditions,
// titles, alert context, ingestion filters) for a mistake the expr
// compiler lets through with undefined variables allowed: a call of
// something that is not a function. An event's values are data, so
// `contans(userAgent, "aws")` or `userAgent.contains("aws")` compile, then
// fail on every event ("cannot call nil"); they are refused when the
// expression is loaded instead, with the function meant when it is near.
package exprs

import (
	"fmt"
	"slices"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/vm"

	"github.com/caracal-sec/caracal/plugins/suggest"
)

// CheckCalls returns an error for the first call in prog of anything but
// expr's built-in functions and the given ones.
func CheckCalls(prog *vm.Program, functions []string) error {
	c := &calls{known: functions}
	node := prog.Node()
	ast.Walk(&node, c)
	return c.err
}

// operators are expr's word operators, which users coming from other
// languages call as functions: contains(a, b) for a contains b.
var operators = []string{"contains", "startsWith", "endsWith", "matches"}

type calls struct {
	known []string
	err   error
}

func (c *calls) Visit(node *ast.Node) {
	call, ok := (*node).(*ast.CallNode)
	if !ok || c.err != nil {
		return
	}
	switch callee := call.Callee.(type) {
	case *ast.IdentifierNode:
		if slices.Contains(c.known, callee.Value) || slices.Contains(builtin.Names, callee.Value) {
			return
		}
		c.err = fmt.Errorf("unknown function %s%s", callee.Value, c.meant(callee.Value, "a", "b"))
	case *ast.MemberNode:
		name := "a method"
		if p, ok := callee.Property.(*ast.StringNode); ok {
			name = p.Value
		}
		c.err = fmt.Errorf("%s(...) is called on a value, and event values have no methods%s", name, c.meant(name, "value", "..."))
	default:
		c.err = fmt.Errorf("%s is called, and only functions can be", callee)
	}
}

// meant names the function or operator a misspelt or misused name is
// near, written with the given operands.
func (c *calls) meant(name, x, y string) string {
	near := suggest.Nearest(name, append(append(slices.Clone(builtin.Names), c.known...), operators...))
	switch {
	case near == "":
		return ""
	case slices.Contains(operators, near):
		return fmt.Sprintf(" (did you mean the %s operator: %s %s %s?)", near, x, near, y)
	}
	return fmt.Sprintf(" (did you mean %s(%s, %s)?)", near, x, y)
}
