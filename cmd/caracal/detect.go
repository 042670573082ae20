package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/caracal-sec/caracal/plugins/detect"
	"github.com/caracal-sec/caracal/plugins/enrich"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse"
)

// detectCommand is `caracal detect`: parse raw logs as `caracal parse` does
// (or read normalized events with --events), run the rules, print matches.
func detectCommand() *cli.Command {
	return &cli.Command{
		Name:      "detect",
		Usage:     "Run the rules over log files (or stdin) and print each match as a JSON line",
		ArgsUsage: "[file...]",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "rules", Value: "./rules", Usage: "directory of rules"},
			&cli.StringFlag{Name: "schemas", Value: "./schemas", Usage: "directory of log schemas"},
			&cli.StringSliceFlag{Name: "log-type", Usage: "log type(s) of the input; default: classify among all"},
			&cli.BoolFlag{Name: "events", Usage: "input is already-normalized events (JSON lines, as in rule tests' Log)"},
			&cli.StringFlag{Name: "lookups", Usage: "lookup tables (a directory of definitions, or one .yml): enrich events and serve the rules' lookup()"},
		},
		Action: func(c *cli.Context) error {
			engine, err := detect.LoadEngine(c.String("rules"))
			if err != nil {
				return err
			}
			var set *enrich.Set
			if dir := c.String("lookups"); dir != "" {
				if set, err = enrich.LoadSetFrom(c.Context, dir); err != nil {
					return err
				}
				detect.SetLookup(set.Lookup)
			}
			logTypes := c.StringSlice("log-type")
			if c.Bool("events") {
				r, closeAll, err := detect.OpenInputs(c.Args().Slice())
				if err != nil {
					return err
				}
				defer closeAll()
				lt := ""
				if len(logTypes) > 0 {
					lt = logTypes[0]
				}
				return detect.DetectEvents(engine, lt, r, c.App.Writer)
			}
			cl, err := parse.LoadClassifier(c.String("schemas"))
			if err != nil {
				return err
			}
			if err := cl.CheckLogTypes(logTypes); err != nil {
				return cli.Exit(err.Error(), 2)
			}
			if set != nil {
				cl.Enrich = set.Enrich
			}
			failed := 0
			err = parse.Each(cl, c.Args().Slice(), logTypes, "cli", func(ev map[string]any, f *envelope.ClassificationFailure, name string) error {
				if f != nil {
					failed++
					fmt.Fprintf(os.Stderr, "%s: %s\n", name, parse.Describe(f))
					return nil
				}
				return detect.WriteMatches(engine, ev, c.App.Writer)
			})
			if err != nil {
				return err
			}
			if failed > 0 {
				return cli.Exit(fmt.Sprintf("%d event(s) failed to parse", failed), 1)
			}
			return nil
		},
	}
}
