package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// isHelp reports whether args ask for the top-level help, which Benthos
// would answer as a generic stream processor's ("caracal create
// kafka//file"), not as Caracal's.
func isHelp(args []string) bool {
	return len(args) == 2 && (args[1] == "-h" || args[1] == "--help" || args[1] == "help")
}

// printHelp is `caracal --help`: what Caracal is, how to run it, and its
// commands, Caracal's own before those it has as a Benthos build.
func printHelp(w io.Writer) {
	fmt.Fprintf(w, `Caracal %s: a self-hosted security data pipeline. Webhooks and log shippers POST
to it; it parses their events into typed log schemas, runs detection rules, sends alerts to
the team's tools and keeps every event in a Parquet lake.

Usage:
  caracal [run] [--stages %s] [--config config.yaml] [--pipelines dir]
  caracal <command> [options]        (caracal <command> --help shows its options)

Caracal's commands:
`, version, strings.Join(allStages, ","))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  run\tRun the stages (all by default) on config.yaml and pipelines/<stage>.yaml\n")
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.Name, c.Usage)
	}
	fmt.Fprintf(tw, "  lint\tCheck configs, pipelines, rules, schemas and lookup tables; mistakes at their lines\n")
	tw.Flush()
	fmt.Fprint(w, `
Benthos's commands (Caracal is a Benthos build; caracal list shows its components):
  list, echo, streams, test, blobl, template, create

Set-up, production and metrics: README.md and docs/operations.md.
`)
}
