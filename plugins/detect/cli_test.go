package detect

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// caracal rules test --lookups serves the rules' lookup() from the tables
// named (a directory or one definition); without it lookup() finds
// nothing and the failure says what to give. A test that gives the row in
// its Log's p_enrichment, as Panther's tests do (Mocks and all), passes
// either way.
func TestRulesTestLookups(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"rules/bad_ip.yml": `AnalysisType: rule
RuleID: T.BadIP
LogTypes: [AWS.CloudTrail]
Severity: High
Condition: (p_enrichment?.bad_ips?.sourceIPAddress ?? lookup("bad_ips", sourceIPAddress)) != nil
Tests:
  - Name: enriched
    ExpectedResult: true
    Log: {sourceIPAddress: 192.0.2.7, p_enrichment: {bad_ips: {sourceIPAddress: {cidr: 192.0.2.0/24}}}}
    Mocks: [{objectName: lookup_table, returnValue: "{}"}]
  - Name: listed
    ExpectedResult: true
    Log: {sourceIPAddress: 192.0.2.7}
  - Name: unlisted
    ExpectedResult: false
    Log: {sourceIPAddress: 198.51.100.7}
`,
		"lookups/bad_ips.yml": "name: bad_ips\nprimary_key: cidr\nkey_type: cidr\ndata: bad_ips.csv\n",
		"lookups/bad_ips.csv": "cidr,reason\n192.0.2.0/24,scanner\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defer SetLookup(nil)
	run := func(args ...string) (string, int) {
		var out bytes.Buffer
		app := &cli.App{Name: "caracal", Writer: &out, ErrWriter: &out, Commands: []*cli.Command{RulesCommand()},
			ExitErrHandler: func(*cli.Context, error) {}}
		err := app.Run(append([]string{"caracal", "rules", "test"}, args...))
		var exit cli.ExitCoder
		switch {
		case errors.As(err, &exit):
			return out.String() + exit.Error(), exit.ExitCode()
		case err != nil:
			return out.String() + err.Error(), -1
		}
		return out.String(), 0
	}
	rules, lookups := filepath.Join(dir, "rules"), filepath.Join(dir, "lookups")
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{rules}, 1, []string{"PASS T.BadIP / enriched\n", "PASS T.BadIP / unlisted\n",
			"FAIL T.BadIP / listed: expected true, got false (the rule calls lookup(), which finds nothing without --lookups: give its tables, e.g. --lookups lookups)"}},
		{[]string{"--lookups", lookups, rules}, 0, []string{"PASS T.BadIP / enriched\n", "PASS T.BadIP / listed\n", "PASS T.BadIP / unlisted\n", "3 tests: 3 passed, 0 failed"}},
		{[]string{"--lookups", filepath.Join(lookups, "bad_ips.yml"), rules}, 0, []string{"3 tests: 3 passed, 0 failed"}},
		{[]string{"--lookups", filepath.Join(dir, "lookupz"), rules}, -1, []string{"lookup tables: stat " + filepath.Join(dir, "lookupz") + ": no such file or directory"}},
		{[]string{rules, "--lookups", lookups}, 2, []string{"flags go before it (caracal rules test --lookups lookups rules)"}},
	} {
		out, code := run(c.args...)
		for _, want := range c.want {
			if code != c.code || !strings.Contains(out, want) {
				t.Errorf("rules test %s: exit %d, want %d, with %q:\n%s", strings.Join(c.args, " "), code, c.code, want, out)
			}
		}
	}
}
