package lake_test

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/lake"
)

func TestLintInFlight(t *testing.T) {
	pipeline := func(input, output string) string {
		return "input:\n  caracal_kafka:\n    topics: [caracal.events]\n" + input + "output:\n  caracal_lake:\n" + output
	}
	cases := []struct{ name, yaml, want string }{
		{"bounded", pipeline("    max_in_flight_bytes: 268435456\n", "    roll_period: 5m\n"), ""},
		{"unbounded", pipeline("", "    roll_period: 5m\n"), "2 true caracal_kafka: no max_in_flight_bytes"},
		{"below a roll", pipeline("    max_in_flight_bytes: 1000000\n", "    roll_bytes: 2000000\n"),
			"4 false caracal_kafka: max_in_flight_bytes 1000000 is below the lake's roll_bytes 2000000: a roll can never fill"},
		{"below two rolls", pipeline("    max_in_flight_bytes: 3000000\n", "    roll_bytes: 2000000\n"),
			"4 true caracal_kafka: max_in_flight_bytes 3000000 is below twice the lake's roll_bytes 2000000"},
		{"from the environment", pipeline("    max_in_flight_bytes: ${MAX}\n", ""), ""},
		{"transactional", pipeline("    transactional: true\n", ""), ""},
		{"not a lake", "input:\n  caracal_kafka:\n    topics: [a]\noutput:\n  drop: {}\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var root yaml.Node
			if err := yaml.Unmarshal([]byte(c.yaml), &root); err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, f := range lake.LintInFlight(&root) {
				got += fmt.Sprintf("%d %v %s\n", f.Line, f.Warning, f.Message)
			}
			if c.want == "" && got != "" || !strings.HasPrefix(got, c.want) || c.want != "" && strings.Count(got, "\n") != 1 {
				t.Errorf("got %q, want one finding starting %q", got, c.want)
			}
		})
	}
}
