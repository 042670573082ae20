package parse

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// volatile fields differ on every run and are not compared by schema tests.
var volatile = map[string]bool{envelope.FieldParseTime: true, envelope.FieldRowID: true, envelope.FieldSourceID: true, envelope.FieldSourceLabel: true}

// TestSchema runs a schema's own tests: each input must parse (or fail, when
// the test says so) into the expected events, compared field by field.
func TestSchema(s *schema.Schema) []string {
	c, err := NewClassifier([]*schema.Schema{s})
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, t := range s.Tests {
		var got []map[string]any
		failed := ""
		_ = ReadStream(strings.NewReader(t.Input), func(raw []byte, o Origin) error {
			ev, f := c.Classify(raw, []string{s.Schema}, o)
			if ev == nil && f == nil {
				return nil // a header or skipped line
			}
			if f != nil {
				failed = Describe(f)
				return nil
			}
			got = append(got, ev)
			return nil
		})
		switch {
		case t.Fails && failed == "":
			problems = append(problems, fmt.Sprintf("%s / %s: expected the input to fail, it parsed", s.Schema, t.Name))
		case !t.Fails && failed != "":
			problems = append(problems, fmt.Sprintf("%s / %s: %s", s.Schema, t.Name, failed))
		case !t.Fails:
			if p := compareEvents(got, t.Result); p != "" {
				problems = append(problems, fmt.Sprintf("%s / %s: %s", s.Schema, t.Name, p))
			}
		}
	}
	return problems
}

func compareEvents(got, want []map[string]any) string {
	if len(got) != len(want) {
		return fmt.Sprintf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		g := canonical(got[i])
		w := canonical(want[i])
		for k := range volatile {
			delete(g, k)
			delete(w, k)
		}
		if !reflect.DeepEqual(g, w) {
			gb, _ := json.Marshal(g)
			wb, _ := json.Marshal(w)
			return fmt.Sprintf("event %d differs:\n  got  %s\n  want %s", i, gb, wb)
		}
	}
	return ""
}

// canonical round-trips through JSON so types compare equal (YAML ints vs
// int64, etc.).
func canonical(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return out
}

// SchemasCommand is `caracal schemas` (test, infer).
func SchemasCommand() *cli.Command {
	return &cli.Command{
		Name:  "schemas",
		Usage: "Work with log schemas (Panther schema YAML)",
		Subcommands: []*cli.Command{{
			Name:      "test",
			Usage:     "Load every schema and run its own tests; exit 1 on any failure",
			ArgsUsage: "[dir]",
			Action: func(c *cli.Context) error {
				dir := c.Args().First()
				if dir == "" {
					dir = "./schemas"
				}
				schemas, err := schema.LoadDir(dir)
				if err != nil {
					return err
				}
				failed, tests := 0, 0
				for _, s := range schemas {
					tests += len(s.Tests)
					problems := TestSchema(s)
					for _, p := range problems {
						fmt.Fprintln(c.App.Writer, "FAIL", p)
					}
					failed += len(problems)
					if len(problems) == 0 {
						fmt.Fprintf(c.App.Writer, "PASS %s (%d tests)\n", s.Schema, len(s.Tests))
					}
				}
				fmt.Fprintf(c.App.Writer, "schemas: %d schemas, %d tests, %d failed\n", len(schemas), tests, failed)
				if failed > 0 {
					return cli.Exit("schema tests failed", 1)
				}
				return nil
			},
		}, inferCommand()},
	}
}
