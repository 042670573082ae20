package parse

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// A filter is checked as the processor compiles it, and what it names is
// checked against the schemas and sources: each finding at its line.
func TestLintFilters(t *testing.T) {
	conf := `filters:
  - source: alb
    log_types: [AWS.ALB]
    exclude: 'elbStatusCode == 200 && requestUrl endsWith "/healthz"'
  - source: dmeo
    log_types: [AWS.Alb]
    exclude: 'contans(requestUrl, "/healthz")'
  - source: "*"
    include: 'severity >= 4'
  - source: alb
`
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(conf), &n); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range LintFilters(n.Content[0], map[string]bool{"AWS.ALB": true}, []string{"alb", "demo"}) {
		got = append(got, fmt.Sprintf("%d %v %s", f.Line, f.Warning, f.Message))
	}
	want := []string{
		`7 false filter for source "dmeo": exclude: unknown function contans (did you mean the contains operator: a contains b?)`,
		`6 false filter for source "dmeo": log type AWS.Alb has no schema (did you mean AWS.ALB?)`,
		`5 true filter for source "dmeo": no caracal_http source has that id (did you mean demo?), so the filter never applies`,
		`10 false filter for source "alb": give include or exclude (an expr boolean over the event)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fs := LintFilters(n.Content[0], nil, nil); len(fs) != 2 {
		t.Errorf("without schemas and sources only the compile errors: %v", fs)
	}
}
