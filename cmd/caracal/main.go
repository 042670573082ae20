// Command caracal is the whole Caracal pipeline in one Benthos binary: the
// standard Benthos commands (lint, test, streams, list, echo, ...) with
// Caracal's plugins registered, plus Caracal's own commands. With no
// arguments, or `caracal run`, it runs every stage from config.yaml and
// pipelines/ in one process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // served only when CARACAL_PPROF is set
	"os"
	"runtime/debug"

	"github.com/redpanda-data/benthos/v4/public/service"

	// Standard Benthos components (generate, stdin, file, broker, switch, ...).
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// Set at build time with -ldflags "-X main.version=...".
var (
	version   = "dev"
	dateBuilt = "unknown"
)

// defaultMemoryLimit is the Go soft memory limit when GOMEMLIMIT is unset:
// under a backlog the heap is mostly in-flight messages and garbage, and
// without a limit the collector lets the process grow to twice the live
// heap (1.2 GiB under `make bench`; 770 MiB with the limit, for 3% more
// CPU). It is soft: a larger live heap makes the collector work harder,
// never fails. Set GOMEMLIMIT to the memory the host gives Caracal.
const defaultMemoryLimit = 768 << 20

// defaultGCPercent is GOGC when unset. With a memory limit always in
// place (ours or GOMEMLIMIT), collecting at 5x the live heap rather than 2x
// costs no peak memory under load and does fewer collections:
// `make bench` gained 5–14% events/s per core and 18–27% sustained rate,
// peak RSS unchanged (774–799 MiB).
const defaultGCPercent = 400

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	if addr := os.Getenv("CARACAL_PPROF"); addr != "" {
		// Profiling on demand: go tool pprof http://<addr>/debug/pprof/profile
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
	if isHelp(os.Args) {
		printHelp(os.Stdout)
		return
	}
	rt := &runtime{}
	rt.registerBrokerReady()
	args, err := rt.rewriteArgs(os.Args)
	if errors.Is(err, flag.ErrHelp) {
		return // caracal run --help: the flags were printed
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	opts := []service.CLIOptFunc{
		service.CLIOptSetArgs(args...),
		service.CLIOptSetBinaryName("caracal"),
		service.CLIOptSetProductName("Caracal"),
		service.CLIOptSetVersion(version, dateBuilt),
		service.CLIOptSetDocumentationURL("https://github.com/caracal-sec/caracal"),
		service.CLIOptSetDefaultConfigPaths("config.yaml"),
		service.CLIOptSetMainSchemaFrom(mainSchema),
		service.CLIOptOnConfigParse(rt.onConfigParse),
	}
	for _, c := range commands() {
		opts = append(opts, service.CLIOptAddCommand(c))
	}
	if len(args) > 1 && args[1] == "lint" {
		// Caracal's lint covers rules, schemas and lookups too, and runs
		// Benthos's checks on configs itself (benthoslint.go).
		os.Exit(lintMain(args[2:], caracalLinters(), mainSchema(), os.Stdout))
	}
	code, err := service.RunCLIToCode(context.Background(), opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	rt.close()
	os.Exit(rt.exitCode(code, os.Stderr))
}
