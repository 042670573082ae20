package exprs

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"
)

// Expressions come from rule packs and configs written elsewhere: one must
// not hang the pipeline or exhaust its memory. expr itself has no file,
// network or process access; it bounds a program's size (MaxNodes) and
// charges ranges and literals to its memory budget, but
// not loops over an array that exists already (nested all(...) over one
// 1,000-element list is 10^12 steps) nor strings that grow (reduce doubling
// a string reaches gigabytes in 30 steps). Compile rewrites the program so
// that every loop step, every string or list built (+, repeat, replace,
// join, split, string, toJSON, other builtins' large results) and the time
// taken are charged to a budget per evaluation, which Run enforces: an
// evaluation past it fails with an error, like any other runtime error.
const (
	MaxNodes = 5000      // a program's size
	MaxSteps = 1_000_000 // loop iterations per evaluation
	MaxBytes = 64 << 20  // bytes of strings built per evaluation
	// MaxTime bounds an evaluation that builds or loops: a step may be
	// dear (indexOf over a large string), so steps alone do not bound it.
	MaxTime = time.Second
)

// ErrBudget is the error of an evaluation that went past MaxSteps,
// MaxBytes or MaxTime.
var ErrBudget = errors.New("expression budget exceeded")

// Program is a compiled expression and whether Run must give it a budget.
type Program struct {
	*vm.Program
	budgeted bool
}

// budgetKey holds the evaluation's budget in the environment while it
// runs: the charging functions reach it through $env, which is the one
// value of the evaluation they can see.
const budgetKey = "\x00caracal_budget"

type budget struct {
	steps, bytes int
	start        time.Time
}

// largeResult is the size from which a result is charged: smaller ones
// (a title's few +) are not worth looking the budget up for.
const largeResult = 4096

// maxTime is MaxTime, which a test of the other bounds lengthens: how
// long an evaluation takes depends on the machine (and on -race).
var maxTime = MaxTime

// overtime is the budget error of an evaluation past MaxTime. A nil budget
// (a program run without Run) has no bounds.
func (b *budget) overtime() error {
	if b != nil && time.Since(b.start) > maxTime {
		return fmt.Errorf("%w: ran for more than %s", ErrBudget, MaxTime)
	}
	return nil
}

// charge counts n bytes about to be built.
func (b *budget) charge(n int) error {
	if b == nil {
		return nil
	}
	if b.bytes += n; n < 0 || b.bytes > MaxBytes {
		return fmt.Errorf("%w: strings of more than %d MiB built in one evaluation", ErrBudget, MaxBytes>>20)
	}
	return b.overtime()
}

// charged names the functions Compile calls in place of the builtins that
// build strings; step wraps each loop body and add each +.
var charged = map[string]string{"repeat": "_repeat", "replace": "_replace", "join": "_join", "toJSON": "_toJSON",
	"string": "_string", "split": "_split"}

// internal are the functions Compile adds, which users do not call; each
// takes the evaluation's $env first.
var internal = map[string]func(params ...any) (any, error){
	"_step": step, "_add": add, "_tick": tick, "_env": envOf,
	"_repeat": repeat, "_replace": replace, "_join": join, "_toJSON": toJSON, "_string": toString, "_split": split,
}

// heavyOperators take time in proportion to their strings; in a budgeted
// program they are ticked (_tick), as the other builtins are.
var heavyOperators = map[string]bool{"contains": true, "startsWith": true, "endsWith": true, "matches": true, "in": true}

// Compile compiles src with the budget's patch and functions, and checks
// that it calls only builtins and functions (see CheckCalls).
func Compile(src string, functions []string, opts ...expr.Option) (*Program, error) {
	p := &patch{ours: map[*ast.IdentifierNode]bool{}, member: map[*ast.IdentifierNode]bool{}}
	opts = append(opts, expr.MaxNodes(MaxNodes), expr.Patch(&members{p}), expr.Patch(p), expr.Patch(&ticks{p}))
	for name, fn := range internal {
		opts = append(opts, expr.Function(name, fn))
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, err
	}
	if err := CheckCalls(prog, slices.AppendSeq(slices.Clip(functions), maps.Keys(internal))); err != nil {
		return nil, err
	}
	return &Program{Program: prog, budgeted: p.patched}, nil
}

// Run evaluates p over env within the budget, on m (reused by the
// caller) or a new VM when m is nil.
func Run(m *vm.VM, p *Program, env map[string]any) (any, error) {
	if m == nil {
		m = &vm.VM{}
	}
	if !p.budgeted {
		return m.Run(p.Program, env)
	}
	if env == nil {
		env = map[string]any{}
	}
	env[budgetKey] = &budget{start: time.Now()}
	defer delete(env, budgetKey)
	return m.Run(p.Program, env)
}

// patch routes loop bodies, + and the string-building builtins through
// the charging functions, and hides the budget from the rule's own $env.
type patch struct {
	patched bool
	ours    map[*ast.IdentifierNode]bool // the $env the patch passes
	member  map[*ast.IdentifierNode]bool // $env.x, $env["x"]: no copy needed
}

func (p *patch) env() ast.Node {
	id := &ast.IdentifierNode{Value: "$env"}
	p.ours[id] = true
	return id
}

func (p *patch) call(name string, args ...ast.Node) *ast.CallNode {
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: append([]ast.Node{p.env()}, args...)}
}

func (p *patch) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.PredicateNode:
		if c, ok := n.Node.(*ast.CallNode); ok && isCallOf(c, "_step") {
			return // patched already (visitors may run twice)
		}
		n.Node = p.call("_step", n.Node)
		p.patched = true
	case *ast.BinaryNode:
		if n.Operator != "+" || isNumber(n.Left.Type()) && isNumber(n.Right.Type()) || isLiteral(n.Left) && isLiteral(n.Right) {
			return
		}
		ast.Patch(node, p.call("_add", n.Left, n.Right))
		p.patched = true
	case *ast.BuiltinNode:
		if name, ok := charged[n.Name]; ok {
			ast.Patch(node, p.call(name, n.Arguments...))
			p.patched = true
		}
	case *ast.IdentifierNode:
		// The rule's own $env (keys($env), toJSON($env)) must not show the
		// budget: it gets the environment without it.
		if n.Value == "$env" && !p.ours[n] && !p.member[n] {
			ast.Patch(node, p.call("_env"))
		}
	}
}

// members notes the $env of member accesses ($env.x, $env["x"]), which
// read one key and need no copy without the budget (patch runs after).
type members struct{ p *patch }

func (m *members) Visit(node *ast.Node) {
	if n, ok := (*node).(*ast.MemberNode); ok {
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "$env" {
			m.p.member[id] = true
		}
	}
}

// ticks wraps, in a budgeted program, every other builtin call and the
// operators whose time grows with their strings in _tick, which checks
// the evaluation's time and charges large results (toBase64, upper, ...).
type ticks struct{ p *patch }

func (t *ticks) Visit(node *ast.Node) {
	if !t.p.patched {
		return
	}
	switch n := (*node).(type) {
	case *ast.BuiltinNode:
		if _, ok := charged[n.Name]; ok || hasPredicate(n) {
			return
		}
	case *ast.BinaryNode:
		if !heavyOperators[n.Operator] {
			return
		}
	default:
		return
	}
	ast.Patch(node, t.p.call("_tick", *node))
}

func hasPredicate(n *ast.BuiltinNode) bool {
	for _, a := range n.Arguments {
		if _, ok := a.(*ast.PredicateNode); ok {
			return true
		}
	}
	return false
}

func isCallOf(c *ast.CallNode, name string) bool {
	id, ok := c.Callee.(*ast.IdentifierNode)
	return ok && id.Value == name
}

func isNumber(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func isLiteral(n ast.Node) bool {
	switch n.(type) {
	case *ast.StringNode, *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.NilNode:
		return true
	}
	return false
}

// budgetOf is the evaluation's budget (nil when run without Run).
func budgetOf(env any) *budget {
	m, _ := env.(map[string]any)
	b, _ := m[budgetKey].(*budget)
	return b
}

// chargeBytes charges n bytes about to be built.
func chargeBytes(env any, n int) error { return budgetOf(env).charge(n) }

// step counts one loop iteration and charges the string it produced
// (map and reduce keep what their body returns).
func step(params ...any) (any, error) {
	b := budgetOf(params[0])
	if b == nil {
		return params[1], nil
	}
	if b.steps++; b.steps > MaxSteps {
		return nil, fmt.Errorf("%w: more than %d loop steps in one evaluation", ErrBudget, MaxSteps)
	}
	s, _ := params[1].(string)
	if err := b.charge(len(s)); err != nil { // also checks the time
		return nil, err
	}
	return params[1], nil
}

// add is expr's +, charging the strings it joins. Short results are not
// charged (no lookup of the budget): a title's few +, not a runaway.
func add(params ...any) (any, error) {
	if s, ok := params[1].(string); ok {
		if t, ok := params[2].(string); ok {
			if n := len(s) + len(t); n >= largeResult {
				if err := chargeBytes(params[0], n); err != nil {
					return nil, err
				}
			}
			return s + t, nil
		}
	}
	return runtime.Add(params[1], params[2]), nil
}

func repeat(params ...any) (any, error) {
	if len(params) != 3 {
		return nil, errors.New("repeat(string, count)")
	}
	s, ok := params[1].(string)
	n, ok2 := toInt(params[2])
	if !ok || !ok2 || n < 0 {
		return nil, fmt.Errorf("repeat(%T, %T): want a string and a count of 0 or more", params[1], params[2])
	}
	if len(s) > 0 && n > MaxBytes/len(s) {
		return nil, fmt.Errorf("%w: repeat would build %d × %d bytes", ErrBudget, n, len(s))
	}
	if err := chargeBytes(params[0], len(s)*n); err != nil {
		return nil, err
	}
	return strings.Repeat(s, n), nil
}

func replace(params ...any) (any, error) {
	if len(params) != 4 && len(params) != 5 {
		return nil, errors.New("replace(string, old, new[, count])")
	}
	s, ok1 := params[1].(string)
	old, ok2 := params[2].(string)
	repl, ok3 := params[3].(string)
	if !ok1 || !ok2 || !ok3 {
		return nil, fmt.Errorf("replace(%T, %T, %T): want three strings", params[1], params[2], params[3])
	}
	n, err := countArg("replace", params, 4)
	if err != nil {
		return nil, err
	}
	if grow := len(repl) - len(old); grow > 0 {
		count := strings.Count(s, old)
		if n >= 0 {
			count = min(count, n)
		}
		if err := chargeBytes(params[0], len(s)+count*grow); err != nil {
			return nil, err
		}
	}
	return strings.Replace(s, old, repl, n), nil
}

func join(params ...any) (any, error) {
	if len(params) != 2 && len(params) != 3 {
		return nil, errors.New("join(array[, separator])")
	}
	sep := ""
	if len(params) == 3 {
		s, ok := params[2].(string)
		if !ok {
			return nil, fmt.Errorf("join: separator is %T, want a string", params[2])
		}
		sep = s
	}
	rv := reflect.ValueOf(params[1])
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, fmt.Errorf("join: %T is not an array", params[1])
	}
	parts := make([]string, rv.Len())
	size := len(sep) * max(rv.Len()-1, 0)
	for i := range parts {
		s, ok := rv.Index(i).Interface().(string)
		if !ok {
			return nil, fmt.Errorf("join: element %d is %T, want a string", i, rv.Index(i).Interface())
		}
		parts[i] = s
		size += len(s)
	}
	if err := chargeBytes(params[0], size); err != nil {
		return nil, err
	}
	return strings.Join(parts, sep), nil
}

// toJSON charges the strings the value holds (an array may hold one
// large string many times) before encoding it, indented as expr's is.
func toJSON(params ...any) (any, error) {
	if len(params) != 2 {
		return nil, errors.New("toJSON(value)")
	}
	if err := chargePrinted(params[0], params[1]); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(params[1], "", "  ")
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// tick follows a builtin call or a string operator of a budgeted
// program: it checks the evaluation's time and charges a large result.
func tick(params ...any) (any, error) {
	b := budgetOf(params[0])
	n := resultSize(params[1])
	if n < largeResult {
		n = 0
	}
	if err := b.charge(n); err != nil { // also checks the time
		return nil, err
	}
	return params[1], nil
}

// resultSize is the bytes a string or list result took.
func resultSize(v any) int {
	switch t := v.(type) {
	case string:
		return len(t)
	case []string:
		return 16 * len(t)
	case []any:
		return 16 * len(t)
	}
	return 0
}

// toString is expr's string(), charging what it will print first: nested
// lists that share one large string print it many times.
func toString(params ...any) (any, error) {
	if len(params) != 2 {
		return nil, errors.New("string(value)")
	}
	if err := chargePrinted(params[0], params[1]); err != nil {
		return nil, err
	}
	return fmt.Sprintf("%v", params[1]), nil
}

// split is expr's split(), charging its list first (split(s, "") makes a
// string header per character).
func split(params ...any) (any, error) {
	if len(params) != 3 && len(params) != 4 {
		return nil, errors.New("split(string, separator[, count])")
	}
	s, ok1 := params[1].(string)
	sep, ok2 := params[2].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("split(%T, %T): want two strings", params[1], params[2])
	}
	n, err := countArg("split", params, 3)
	if err != nil {
		return nil, err
	}
	parts := len(s) + 1 // at most: split(s, "") gives one per character
	if sep != "" {
		parts = strings.Count(s, sep) + 1
	}
	if n >= 0 {
		parts = min(parts, n)
	}
	if err := chargeBytes(params[0], 16*parts); err != nil {
		return nil, err
	}
	return strings.SplitN(s, sep, n), nil
}

// envOf is the rule's own $env: the environment without the budget.
func envOf(params ...any) (any, error) {
	m, ok := params[0].(map[string]any)
	if !ok {
		return params[0], nil
	}
	if _, ok := m[budgetKey]; !ok {
		return m, nil
	}
	out := make(map[string]any, len(m)-1)
	for k, v := range m {
		if k != budgetKey {
			out[k] = v
		}
	}
	return out, nil
}

// chargePrinted charges what printing v (toJSON, string) will build,
// before it is built.
func chargePrinted(env, v any) error {
	return chargeBytes(env, jsonSize(reflect.ValueOf(v), MaxBytes+1, 0))
}

// jsonSize estimates the bytes v encodes to, indented as toJSON indents
// at depth, stopping past limit.
func jsonSize(v reflect.Value, limit, depth int) int {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return 4
		}
		v = v.Elem()
	}
	// Each item of a list or map takes its line: a newline and two
	// spaces a level of indentation (MarshalIndent's "  ").
	line := 2 + 2*(depth+1)
	switch v.Kind() {
	case reflect.String:
		return len(v.String()) + 2
	case reflect.Slice, reflect.Array:
		n := 2
		for i := 0; i < v.Len() && n <= limit; i++ {
			n += line + jsonSize(v.Index(i), limit-n, depth+1)
		}
		return n
	case reflect.Map:
		n := 2
		for it := v.MapRange(); it.Next() && n <= limit; {
			n += line + 2 + jsonSize(it.Key(), limit-n, depth+1) + jsonSize(it.Value(), limit-n, depth+1)
		}
		return n
	}
	return 8
}

// countArg is the optional count at params[i] (replace's and split's
// last argument), -1 (all) when it is not given.
func countArg(fn string, params []any, i int) (int, error) {
	if len(params) <= i {
		return -1, nil
	}
	n, ok := toInt(params[i])
	if !ok {
		return 0, fmt.Errorf("%s: count is %T, want an integer", fn, params[i])
	}
	return n, nil
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		return int(n), n == float64(int(n))
	}
	return 0, false
}
