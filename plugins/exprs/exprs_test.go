package exprs

import (
	"strings"
	"testing"

	"github.com/expr-lang/expr"
)

func compile(t *testing.T, src string) error {
	t.Helper()
	prog, err := expr.Compile(src, expr.Env(map[string]any{}), expr.AllowUndefinedVariables(),
		expr.Function("cidr_match", func(...any) (any, error) { return true, nil }))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return CheckCalls(prog, []string{"cidr_match"})
}

func TestCheckCalls(t *testing.T) {
	for _, src := range []string{
		`eventName == "ConsoleLogin"`,
		`lower(userAgent) contains "curl" && len(resources) > 0 && upper(x) == "A"`,
		`any(resources, {.type == "AWS::S3::Bucket"}) && all(tags, # != "")`,
		`cidr_match(sourceIPAddress, "10.0.0.0/8")`,
		`trim(split(a, ",")[0]) startsWith "x" && now() > date("2026-01-01")`,
		`userIdentity.type == "Root" and requestParameters?.bucketName in ["a", "b"]`,
	} {
		if err := compile(t, src); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
	for src, want := range map[string]string{
		`contans(userAgent, "aws")`:             "unknown function contans (did you mean the contains operator: a contains b?)",
		`startswith(eventName, "Get")`:          "unknown function startswith (did you mean the startsWith operator: a startsWith b?)",
		`cidrmatch(ip, "10.0.0.0/8")`:           "unknown function cidrmatch (did you mean cidr_match(a, b)?)",
		`eventName == "X" || frobnicate(1)`:     "unknown function frobnicate",
		`userAgent.contains("aws")`:             "contains(...) is called on a value, and event values have no methods",
		`a == 1 && [lower(b)][0] == "x" && x()`: "unknown function x",
	} {
		err := compile(t, src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", src, err, want)
		}
	}
}
