package detect

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/caracal-sec/caracal/plugins/enrich"
	"github.com/caracal-sec/caracal/plugins/envelope"
)

// TestResult is the outcome of one rule test.
type TestResult struct {
	Rule, Test string
	Passed     bool
	Reason     string
}

// RunTests runs every rule's embedded tests. A test's Log is a normalized
// event; its p_log_type defaults to the rule's first log type.
func RunTests(rules []*Rule) []TestResult {
	var out []TestResult
	for _, r := range rules {
		for _, t := range r.Tests {
			ev := make(map[string]any, len(t.Log)+1)
			for k, v := range t.Log {
				ev[k] = envelope.PlainNumbers(v)
			}
			if _, ok := ev[envelope.FieldLogType]; !ok {
				ev[envelope.FieldLogType] = r.LogTypes[0]
			}
			got, err := r.Eval(ev)
			res := TestResult{Rule: r.RuleID, Test: t.Name}
			switch {
			case err != nil:
				res.Reason = "rule error: " + err.Error()
			case got != t.ExpectedResult:
				res.Reason = fmt.Sprintf("expected %v, got %v", t.ExpectedResult, got)
			case got:
				if err := r.CheckOutputs(ev); err != nil {
					res.Reason = "matched, but " + err.Error()
				} else {
					res.Passed = true
				}
			default:
				res.Passed = true
			}
			out = append(out, res)
		}
	}
	return out
}

// RulesCommand is `caracal rules` (with `test`).
func RulesCommand() *cli.Command {
	return &cli.Command{
		Name:  "rules",
		Usage: "Work with detection rules",
		Subcommands: []*cli.Command{{
			Name:      "test",
			Usage:     "Run every rule's embedded Tests; exit 1 on any failure",
			ArgsUsage: "[dir]",
			Description: "A test's Log is a normalized event; p_enrichment in it is what the rule sees, as in Panther.\n" +
				"With --lookups the rules' lookup(table, key) finds rows in those tables, loaded as the detect stage\n" +
				"loads them; without it lookup() finds nothing.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "lookups", Usage: "lookup tables for the rules' lookup(): a `dir` of definitions such as lookups, or one definition (.yml)"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() > 1 {
					return cli.Exit(fmt.Sprintf("caracal rules test takes one rules directory, got %s: flags go before it (caracal rules test --lookups lookups rules)", strings.Join(c.Args().Slice(), " ")), 2)
				}
				dir := c.Args().First()
				if dir == "" {
					dir = "./rules"
				}
				rules, err := LoadDir(dir)
				if err != nil {
					return err
				}
				var set *enrich.Set
				if path := c.String("lookups"); path != "" {
					if set, err = enrich.LoadSetFrom(c.Context, path); err != nil {
						return err
					}
				}
				SetLookup(set.Lookup) // (a nil set finds nothing)
				passed, failed, untested := 0, 0, 0
				callsLookup := map[string]bool{}
				for _, r := range rules {
					if len(r.Tests) == 0 {
						untested++
					}
					callsLookup[r.RuleID] = len(r.LookupCalls()) > 0
				}
				for _, res := range RunTests(rules) {
					if res.Passed {
						passed++
						fmt.Fprintf(c.App.Writer, "PASS %s / %s\n", res.Rule, res.Test)
						continue
					}
					failed++
					if set == nil && callsLookup[res.Rule] {
						res.Reason += " (the rule calls lookup(), which finds nothing without --lookups: give its tables, e.g. --lookups lookups)"
					}
					fmt.Fprintf(c.App.Writer, "FAIL %s / %s: %s\n", res.Rule, res.Test, res.Reason)
				}
				fmt.Fprintf(c.App.Writer, "rules: %d rules, %d tests: %d passed, %d failed (%d rules without tests)\n", len(rules), passed+failed, passed, failed, untested)
				if failed > 0 {
					return cli.Exit("rule tests failed", 1)
				}
				return nil
			},
		}},
	}
}

// DetectEvents reads normalized events (JSON lines) and writes one match per
// line.
func DetectEvents(e *Engine, logType string, r io.Reader, w io.Writer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	enc := json.NewEncoder(w)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		ev, err := envelope.DecodeObject(sc.Bytes()) // a file from outside: strict JSON
		if err != nil {
			return err
		}
		if logType != "" {
			if _, ok := ev[envelope.FieldLogType]; !ok {
				ev[envelope.FieldLogType] = logType
			}
		}
		for _, m := range e.Evaluate(ev) {
			if err := enc.Encode(m); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}

// WriteMatches evaluates one event and writes its matches as JSON lines.
func WriteMatches(e *Engine, ev map[string]any, w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, m := range e.Evaluate(ev) {
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	return nil
}

// OpenInputs returns a reader over the named files, or stdin.
func OpenInputs(files []string) (io.Reader, func(), error) {
	if len(files) == 0 {
		return os.Stdin, func() {}, nil
	}
	var rs []io.Reader
	var closers []io.Closer
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			for _, c := range closers {
				c.Close()
			}
			return nil, nil, err
		}
		rs = append(rs, fh, newline{})
		closers = append(closers, fh)
	}
	return io.MultiReader(rs...), func() {
		for _, c := range closers {
			c.Close()
		}
	}, nil
}

type newline struct{}

func (newline) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = '\n'
	return 1, io.EOF
}
