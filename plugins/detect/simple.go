package detect

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/suggest"
	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// Panther's simple detections: a `Detection:` list of match expressions,
// all of which must hold. Each is compiled into a predicate over the event,
// run by the same Rule.Eval as an expr Condition.

// predicate tests an event (or, inside list conditions, one element).
type predicate func(v any) bool

// matchKeyList are the keys a match expression may have, in the order
// errors list them.
var matchKeyList = []string{"Key", "DeepKey", "KeyPath", "Condition", "Value", "Values", "Expressions", "All", "Any", "OnlyOne", "None"}

var matchKeys = setOf(matchKeyList)

// conditions are the Condition names, for errors to suggest or list.
var conditions = []string{"Equals", "DoesNotEqual", "IsIn", "IsNotIn", "Contains", "DoesNotContain", "StartsWith", "DoesNotStartWith",
	"EndsWith", "DoesNotEndWith", "IsGreaterThan", "IsGreaterThanOrEqual", "IsLessThan", "IsLessThanOrEqual", "Exists", "DoesNotExist",
	"IsNull", "IsNotNull", "IsNullOrEmpty", "IsNotNullOrEmpty", "IsIPAddressInCIDR", "IsIPAddressNotInCIDR", "AlwaysTrue", "AlwaysFalse",
	"AnyElement", "AllElements", "NoElement", "OnlyOneElement"}

// compileMatchList compiles a rule key's list of match expressions
// (Detection, InlineFilters), all of which must hold.
func compileMatchList(file, key string, n *yaml.Node) (predicate, error) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return nil, fmt.Errorf("line %[2]d: %s must be a non-empty list of match expressions", file, n.Line, key)
	}
	return compileAll(file, n.Content)
}

// severityChange is a compiled DynamicSeverities entry: the severity a
// match takes when the conditions hold.
type severityChange struct {
	to   string
	when predicate
}

var severityChangeKeys = []string{"ChangeTo", "Conditions"}

// compileSeverityChanges compiles DynamicSeverities, a list of
// {ChangeTo: <Severity>, Conditions: [match expressions]}.
func compileSeverityChanges(file string, n *yaml.Node) ([]severityChange, error) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return nil, fmt.Errorf("line %[2]d: DynamicSeverities must be a non-empty list of {ChangeTo, Conditions}", file, n.Line)
	}
	var out []severityChange
	for _, entry := range n.Content {
		if entry.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("line %[2]d: a DynamicSeverities entry is a mapping (ChangeTo, Conditions)", file, entry.Line)
		}
		for i := 0; i+1 < len(entry.Content); i += 2 {
			if k := entry.Content[i]; !slices.Contains(severityChangeKeys, k.Value) {
				return nil, fmt.Errorf("line %[2]d: unknown key %q in a DynamicSeverities entry%[4]s", file, k.Line, k.Value, suggest.Hint(k.Value, severityChangeKeys))
			}
		}
		to, conditions := yamlnode.Value(entry, "ChangeTo"), yamlnode.Value(entry, "Conditions")
		if to == nil || conditions == nil {
			return nil, fmt.Errorf("line %[2]d: a DynamicSeverities entry needs ChangeTo (a severity) and Conditions (match expressions)", file, entry.Line)
		}
		severity, ok := canonicalSeverity(to.Value)
		if !ok {
			return nil, fmt.Errorf("line %[2]d: ChangeTo %q: use one of %s", file, to.Line, to.Value, strings.Join(envelope.Severities, ", "))
		}
		when, err := compileMatchList(file, "Conditions", conditions)
		if err != nil {
			return nil, err
		}
		out = append(out, severityChange{severity, when})
	}
	return out, nil
}

func compileAll(file string, items []*yaml.Node) (predicate, error) {
	ps, err := compileList(file, items)
	if err != nil {
		return nil, err
	}
	return func(v any) bool {
		for _, p := range ps {
			if !p(v) {
				return false
			}
		}
		return true
	}, nil
}

func compileList(file string, items []*yaml.Node) ([]predicate, error) {
	var ps []predicate
	for _, it := range items {
		p, err := compileMatch(file, it)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// fields maps a match expression's keys to their value nodes.
func fields(file string, n *yaml.Node) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %[2]d: a match expression is a mapping (Key/KeyPath, Condition, Value)", file, n.Line)
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !matchKeys[k.Value] {
			return nil, fmt.Errorf("line %[2]d: unknown key %q in a match expression%[4]s", file, k.Line, k.Value, suggest.Hint(k.Value, matchKeyList))
		}
		out[k.Value] = n.Content[i+1]
	}
	return out, nil
}

func compileMatch(file string, n *yaml.Node) (predicate, error) {
	f, err := fields(file, n)
	if err != nil {
		return nil, err
	}
	for _, comb := range []string{"All", "Any", "OnlyOne", "None"} {
		list, ok := f[comb]
		if !ok {
			continue
		}
		if len(f) != 1 {
			return nil, fmt.Errorf("line %[2]d: %s stands alone in its match expression", file, n.Line, comb)
		}
		if list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
			return nil, fmt.Errorf("line %[2]d: %s needs a non-empty list of match expressions", file, list.Line, comb)
		}
		ps, err := compileList(file, list.Content)
		if err != nil {
			return nil, err
		}
		return combine(comb, ps), nil
	}
	if cn, ok := f["Condition"]; ok {
		// AlwaysTrue and AlwaysFalse do not look at the event, so they
		// need no key (a key given with them changes nothing).
		if holds, absolute := absoluteConditions[cn.Value]; absolute {
			return func(any) bool { return holds }, nil
		}
	}
	get, err := compileKey(file, n, f)
	if err != nil {
		return nil, err
	}
	cn, ok := f["Condition"]
	if !ok {
		return nil, fmt.Errorf("line %[2]d: missing Condition", file, n.Line)
	}
	cond := cn.Value
	switch cond {
	case "AnyElement", "AllElements", "NoElement", "OnlyOneElement":
		ex, ok := f["Expressions"]
		if !ok || ex.Kind != yaml.SequenceNode || len(ex.Content) == 0 {
			return nil, fmt.Errorf("line %[2]d: %s needs Expressions (match expressions over each element)", file, cn.Line, cond)
		}
		each, err := compileAll(file, ex.Content)
		if err != nil {
			return nil, err
		}
		return listCondition(cond, get, each), nil
	}
	test, err := compileCondition(file, cn, f)
	if err != nil {
		return nil, err
	}
	return func(v any) bool {
		vals, found := get(v)
		if !found {
			return test(nil, false)
		}
		// A [*] path yields several values: the condition holds if it holds
		// for any of them (for negations: for all of them).
		if negated[cond] {
			for _, x := range vals {
				if !test(x, true) {
					return false
				}
			}
			return true
		}
		for _, x := range vals {
			if test(x, true) {
				return true
			}
		}
		return false
	}, nil
}

func combine(kind string, ps []predicate) predicate {
	return func(v any) bool {
		n := 0
		for _, p := range ps {
			if p(v) {
				n++
				if kind == "Any" {
					return true
				}
				if kind == "None" || (kind == "OnlyOne" && n > 1) {
					return false
				}
			} else if kind == "All" {
				return false
			}
		}
		switch kind {
		case "All", "None":
			return true
		case "OnlyOne":
			return n == 1
		}
		return false // Any, none held
	}
}

func listCondition(cond string, get getter, each predicate) predicate {
	return func(v any) bool {
		vals, found := get(v)
		var items []any
		if found {
			for _, x := range vals {
				if l, ok := x.([]any); ok {
					items = append(items, l...)
				}
			}
		}
		n := 0
		for _, it := range items {
			if each(it) {
				n++
			}
		}
		switch cond {
		case "AnyElement":
			return n > 0
		case "AllElements":
			return len(items) > 0 && n == len(items)
		case "NoElement":
			return n == 0
		}
		return n == 1 // OnlyOneElement
	}
}

// getter resolves a match expression's key: the values found (several
// under a [*] wildcard) and whether the path exists at all.
type getter func(v any) ([]any, bool)

func compileKey(file string, n *yaml.Node, f map[string]*yaml.Node) (getter, error) {
	var path []string
	switch {
	case f["Key"] != nil:
		path = []string{f["Key"].Value}
	case f["DeepKey"] != nil:
		dk := f["DeepKey"]
		if dk.Kind != yaml.SequenceNode || len(dk.Content) == 0 {
			return nil, fmt.Errorf("line %[2]d: DeepKey is a list of keys", file, dk.Line)
		}
		for _, k := range dk.Content {
			path = append(path, k.Value)
		}
	case f["KeyPath"] != nil:
		kp := f["KeyPath"]
		var err error
		if path, err = keyPathSteps(kp.Value); err != nil {
			return nil, fmt.Errorf("line %[2]d: %w", file, kp.Line, err)
		}
	default:
		return nil, fmt.Errorf("line %[2]d: a match expression needs Key, DeepKey or KeyPath with a Condition, Condition AlwaysTrue or AlwaysFalse alone, or All/Any/OnlyOne/None", file, n.Line)
	}
	return pathGetter(path), nil
}

// keyPathSteps splits a KeyPath ("a.b[*].c") into the steps resolve
// takes ("a", "b", "[*]", "c").
func keyPathSteps(kp string) ([]string, error) {
	var path []string
	for _, part := range strings.Split(kp, ".") {
		name, wild := strings.CutSuffix(part, "[*]")
		if name == "" && !wild {
			return nil, fmt.Errorf("KeyPath %q has an empty segment", kp)
		}
		if name != "" {
			path = append(path, name)
		}
		if wild {
			path = append(path, "[*]")
		}
	}
	return path, nil
}

// pathGetter resolves path in a value.
func pathGetter(path []string) getter {
	if slices.Contains(path, "[*]") {
		return func(v any) ([]any, bool) { return resolve(v, path) }
	}
	// Without a wildcard there is one value at most: walk the path
	// directly instead of building a slice per step.
	return func(v any) ([]any, bool) {
		x, ok := resolveOne(v, path)
		if !ok {
			return nil, false
		}
		return []any{x}, true
	}
}

func resolveOne(v any, path []string) (any, bool) {
	for _, step := range path {
		switch t := v.(type) {
		case map[string]any:
			x, ok := t[step]
			if !ok {
				return nil, false
			}
			v = x
		case []any:
			i, err := strconv.Atoi(step)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			v = t[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func resolve(v any, path []string) ([]any, bool) {
	cur := []any{v}
	for _, step := range path {
		var next []any
		for _, c := range cur {
			if step == "[*]" {
				if l, ok := c.([]any); ok {
					next = append(next, l...)
				}
				continue
			}
			switch t := c.(type) {
			case map[string]any:
				if x, ok := t[step]; ok {
					next = append(next, x)
				}
			case []any: // a numeric step indexes a list
				if i, err := strconv.Atoi(step); err == nil && i >= 0 && i < len(t) {
					next = append(next, t[i])
				}
			}
		}
		if len(next) == 0 {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// absoluteConditions hold, or fail, whatever the event.
var absoluteConditions = map[string]bool{"AlwaysTrue": true, "AlwaysFalse": false}

// negated conditions hold for a missing key and must hold for every value
// a wildcard path yields.
var negated = map[string]bool{"DoesNotEqual": true, "DoesNotContain": true, "DoesNotStartWith": true,
	"DoesNotEndWith": true, "IsNotIn": true, "DoesNotExist": true, "IsNull": true, "IsNullOrEmpty": true,
	"IsIPAddressNotInCIDR": true}

// test checks one value (found=false: the key is missing).
type test func(x any, found bool) bool

func compileCondition(file string, cn *yaml.Node, f map[string]*yaml.Node) (test, error) {
	cond := cn.Value
	value := func() (any, error) {
		vn, ok := f["Value"]
		if !ok {
			return nil, fmt.Errorf("line %[2]d: %s needs Value", file, cn.Line, cond)
		}
		var x any
		if err := vn.Decode(&x); err != nil {
			return nil, fmt.Errorf("line %[2]d: Value: %w", file, vn.Line, err)
		}
		return x, nil
	}
	values := func() ([]any, error) {
		vn, ok := f["Values"]
		if !ok || vn.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("line %[2]d: %s needs Values (a list)", file, cn.Line, cond)
		}
		var xs []any
		if err := vn.Decode(&xs); err != nil {
			return nil, fmt.Errorf("line %[2]d: Values: %w", file, vn.Line, err)
		}
		return xs, nil
	}
	str := func(want func(string, string) bool, neg bool) (test, error) {
		v, err := value()
		if err != nil {
			return nil, err
		}
		w, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("line %[2]d: %s compares strings; Value must be a string", file, cn.Line, cond)
		}
		return func(x any, found bool) bool {
			s, isStr := x.(string)
			if !found || !isStr {
				return neg
			}
			return want(s, w) != neg
		}, nil
	}
	ord := func(holds func(c int) bool) (test, error) {
		v, err := value()
		if err != nil {
			return nil, err
		}
		if _, ok := number(v); !ok {
			return nil, fmt.Errorf("line %[2]d: %s compares numbers; Value must be a number", file, cn.Line, cond)
		}
		return func(x any, found bool) bool {
			c, ok := compareNumbers(x, v)
			return found && ok && holds(c)
		}, nil
	}
	cidr := func(neg bool) (test, error) {
		v, err := value()
		if err != nil {
			return nil, err
		}
		s, _ := v.(string)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("line %[2]d: %s: Value %q is not a CIDR", file, cn.Line, cond, s)
		}
		return func(x any, found bool) bool {
			s, _ := x.(string)
			a, err := netip.ParseAddr(s)
			if !found || err != nil {
				return neg
			}
			return p.Contains(a.Unmap()) != neg
		}, nil
	}
	switch cond {
	case "Equals", "DoesNotEqual":
		v, err := value()
		if err != nil {
			return nil, err
		}
		neg := cond == "DoesNotEqual"
		return func(x any, found bool) bool { return (found && equal(x, v)) != neg }, nil
	case "IsIn", "IsNotIn":
		vs, err := values()
		if err != nil {
			return nil, err
		}
		neg := cond == "IsNotIn"
		return func(x any, found bool) bool {
			if found {
				for _, v := range vs {
					if equal(x, v) {
						return !neg
					}
				}
			}
			return neg
		}, nil
	case "Contains":
		return str(strings.Contains, false)
	case "DoesNotContain":
		return str(strings.Contains, true)
	case "StartsWith":
		return str(strings.HasPrefix, false)
	case "DoesNotStartWith":
		return str(strings.HasPrefix, true)
	case "EndsWith":
		return str(strings.HasSuffix, false)
	case "DoesNotEndWith":
		return str(strings.HasSuffix, true)
	case "IsGreaterThan":
		return ord(func(c int) bool { return c > 0 })
	case "IsGreaterThanOrEqual":
		return ord(func(c int) bool { return c >= 0 })
	case "IsLessThan":
		return ord(func(c int) bool { return c < 0 })
	case "IsLessThanOrEqual":
		return ord(func(c int) bool { return c <= 0 })
	case "Exists":
		return func(_ any, found bool) bool { return found }, nil
	case "DoesNotExist":
		return func(_ any, found bool) bool { return !found }, nil
	case "IsNull":
		return func(x any, found bool) bool { return !found || x == nil }, nil
	case "IsNotNull":
		return func(x any, found bool) bool { return found && x != nil }, nil
	case "IsNullOrEmpty":
		return func(x any, found bool) bool { return !found || empty(x) }, nil
	case "IsNotNullOrEmpty":
		return func(x any, found bool) bool { return found && !empty(x) }, nil
	case "IsIPAddressInCIDR":
		return cidr(false)
	case "IsIPAddressNotInCIDR":
		return cidr(true)
	}
	return nil, fmt.Errorf("line %[2]d: unknown Condition %q%s", file, cn.Line, cond, suggest.Hint(cond, conditions))
}

// equal compares an event value with a YAML value: numbers numerically
// across Go types, everything else by type and value ("5" is not 5).
func equal(x, v any) bool {
	if c, ok := compareNumbers(x, v); ok {
		return c == 0
	}
	switch a := x.(type) {
	case string:
		b, ok := v.(string)
		return ok && a == b
	case bool:
		b, ok := v.(bool)
		return ok && a == b
	case nil:
		return v == nil
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	}
	return 0, false
}

// compareNumbers orders two numeric values; ok is false unless both are.
func compareNumbers(x, v any) (int, bool) {
	a, ok1 := number(x)
	b, ok2 := number(v)
	if !ok1 || !ok2 {
		return 0, false
	}
	switch {
	case a < b:
		return -1, true
	case a > b:
		return 1, true
	}
	return 0, true
}

func empty(x any) bool {
	switch t := x.(type) {
	case nil:
		return true
	case string:
		return t == ""
	case []any:
		return len(t) == 0
	case map[string]any:
		return len(t) == 0
	}
	return false
}
