package exprs

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/expr-lang/expr"
)

func compileBudgeted(t testing.TB, src string) *Program {
	t.Helper()
	p, err := Compile(src, nil, expr.Env(map[string]any{}), expr.AllowUndefinedVariables())
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return p
}

// The rewrite changes no result: each expression gives what expr gives
// without it.
func TestBudgetKeepsResults(t *testing.T) {
	env := func() map[string]any {
		return map[string]any{"name": "root", "n": 3, "f": 1.5, "ips": []any{"10.0.0.1", "192.0.2.7"},
			"tags": []any{map[string]any{"k": "env", "v": "prod"}}}
	}
	for _, src := range []string{
		`name + "-" + name`, `n + 1`, `n + f`, `f + n + 2`, `"a" + "b"`,
		`repeat(name, 3)`, `replace(name, "o", "00")`, `replace(name, "o", "00", 1)`, `replace(name, "", "-")`,
		`join(ips, ",")`, `join(["a", "b"])`, `toJSON(tags)`, `toJSON({"a": [1, "x"]})`,
		`any(ips, {# startsWith "10."})`, `all(ips, {len(#) > 3})`, `filter(ips, {# != "x"})`,
		`map(ips, {# + "/32"})`, `reduce(ips, #acc + len(#), 0)`, `count(1..10, {# % 2 == 0})`,
		`sortBy(tags, {.k})`, `groupBy(ips, {len(#)})`, `find(ips, {# contains "192"})`,
		`sum(map(1..4, {# * 2}))`, `len(filter(ips, {# matches "^10"})) > 0 ? "yes" : "no"`,
		`ips | map(# + "!") | join(";")`, `nope + "x"`,
	} {
		plain, err := expr.Compile(src, expr.Env(map[string]any{}), expr.AllowUndefinedVariables())
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		want, wantErr := expr.Run(plain, env())
		e := env()
		got, err := Run(nil, compileBudgeted(t, src), e)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, %v; expr gives %#v, %v", src, got, err, want, wantErr)
		}
		if _, ok := e[budgetKey]; ok {
			t.Errorf("%s: the budget stayed in the environment", src)
		}
	}
}

// A rule pack written elsewhere cannot loop or allocate without bound:
// each of these ran for minutes or exhausted memory before.
func TestBudgetStopsRunawayExpressions(t *testing.T) {
	for _, src := range []string{
		`let a = 1..999; all(a, {all(a, {all(a, {all(a, {# > 0})})})})`,
		`len(reduce(1..40, #acc + #acc, "a")) > 0`,
		`len(repeat(repeat("a", 1000000), 1000000)) > 0`,
		`len(replace(repeat("a", 100000), "", repeat("b", 1000))) > 0`,
		`len(join(map(1..100000, {repeat("x", 1000)}), ",")) > 0`,
		`let s = repeat("x", 1000000); len(toJSON(map(1..1000, {s}))) > 0`,
		`let s = repeat("x", 1000000); let t = [s, s, s, s, s, s, s, s]; len(toJSON([t, t, t, t, t, t, t, t, t, t])) > 0`,
		// Found in review: string() and toJSON's indentation over shared
		// lists, builders other than the charged ones, dear steps.
		`let s = repeat("x", 100000); let a = [s,s,s,s,s,s,s,s]; let b = [a,a,a,a,a,a,a,a]; let c = [b,b,b,b,b,b,b,b]; let d = [c,c,c,c,c,c,c,c]; let e = [d,d,d,d,d,d,d,d]; len(string(e)) > 0`,
		`let a = [0,0,0,0,0,0,0,0]; let b = [a,a,a,a,a,a,a,a]; let c = [b,b,b,b,b,b,b,b]; let d = [c,c,c,c,c,c,c,c]; let e = [d,d,d,d,d,d,d,d]; let f = [e,e,e,e,e,e,e,e]; len(toJSON(reduce(1..1000, [#acc], f))) > 0`,
		`len(toBase64(toBase64(toBase64(toBase64(toBase64(toBase64(toBase64(toBase64(toBase64(toBase64(repeat("x", 4000000)))))))))))) > 0`,
		`len(split(repeat("a", 32000000), "")) > 0`,
		`let s = repeat("a", 50000000); all(1..1000, {indexOf(s, "b") < 0})`,
		`let s = repeat("a", 50000000); all(1..100, {upper(s) != ""})`,
	} {
		_, err := Run(nil, compileBudgeted(t, src), map[string]any{})
		if !errors.Is(err, ErrBudget) {
			t.Errorf("%s: %v, want the budget error", src, err)
		}
	}
	// The budget is per evaluation: a program under it runs every time.
	// (Its 500,000 steps take over a second under -race: this is about
	// the steps, so the time bound is out of the way.)
	defer func(d time.Duration) { maxTime = d }(maxTime)
	maxTime = time.Hour
	p := compileBudgeted(t, `count(1..1000, {all(1..500, {# > 0})}) == 1000`)
	for i := range 5 {
		if v, err := Run(nil, p, map[string]any{}); err != nil || v != true {
			t.Fatalf("run %d: %v, %v", i, v, err)
		}
	}
}

// A budgeted program's own $env does not show the budget, and the
// builtins it ticks give what they gave.
func TestBudgetedEnvAndBuiltins(t *testing.T) {
	env := map[string]any{"p_log_type": "AWS.CloudTrail", "user": "root"}
	for src, want := range map[string]any{
		`len(keys($env)) == 2 && any(keys($env), {# == "user"})`:                                       true,
		`any([1], {true}) && toJSON($env) == toJSON({"p_log_type": "AWS.CloudTrail", "user": "root"})`: true,
		`any([1], {true}) && $env.user + $env["user"] == "rootroot"`:                                   true,
		`any([1], {true}) && date("2026-01-02") > date("2026-01-01") && now() > date("2026-01-01")`:    true,
		`any([1], {true}) ? upper(user) + lower("X") + string(1.5) : ""`:                               "ROOTx1.5",
		`any([1], {true}) && "oo" in user`:                                                             nil, // an error, as without the budget
	} {
		plain, err := expr.Compile(src, expr.Env(map[string]any{}), expr.AllowUndefinedVariables())
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		wantV, wantErr := expr.Run(plain, maps.Clone(env))
		got, err := Run(nil, compileBudgeted(t, src), maps.Clone(env))
		if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, wantV) {
			t.Errorf("%s = %#v, %v; expr gives %#v, %v", src, got, err, wantV, wantErr)
		}
		if want != nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", src, got, want)
		}
	}
}

// A program without loops, + or string builders is not rewritten, and
// runs without touching the environment.
func TestBudgetOnlyWhereNeeded(t *testing.T) {
	for src, want := range map[string]bool{
		`eventName == "ConsoleLogin" && userIdentity.type == "Root"`: false,
		`n + 1 > 2`:                  true, // n's type is unknown: it may be a string
		`1 + 2 > 2`:                  false,
		`any(ips, {# == "1.2.3.4"})`: true,
		`upper(name) == "ROOT"`:      false,
		`repeat(name, 2) == "aa"`:    true,
	} {
		if got := compileBudgeted(t, src).budgeted; got != want {
			t.Errorf("%s: budgeted %v, want %v", src, got, want)
		}
	}
}

func BenchmarkBudgetedLoop(b *testing.B) {
	p := compileBudgeted(b, `any(ips, {# startsWith "192."})`)
	env := map[string]any{"ips": []any{"10.0.0.1", "10.0.0.2", "172.16.0.1", "192.0.2.7"}}
	b.ReportAllocs()
	for b.Loop() {
		if v, err := Run(nil, p, env); err != nil || v != true {
			b.Fatal(v, err)
		}
	}
}
