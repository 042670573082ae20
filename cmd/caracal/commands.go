package main

import (
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/urfave/cli/v2"

	"github.com/caracal-sec/caracal/plugins/alert"
	"github.com/caracal-sec/caracal/plugins/detect"
	_ "github.com/caracal-sec/caracal/plugins/httpsource"
	_ "github.com/caracal-sec/caracal/plugins/kafka"
	_ "github.com/caracal-sec/caracal/plugins/lake"
	_ "github.com/caracal-sec/caracal/plugins/metrics"
	"github.com/caracal-sec/caracal/plugins/parse"
)

// commands are Caracal's own subcommands beside Benthos's.
func commands() []*cli.Command {
	return []*cli.Command{parse.Command(), parse.SchemasCommand(), detectCommand(), detect.RulesCommand()}
}

// destinationFields are the fields of one `caracal.destinations` entry.
func destinationFields() []*service.ConfigField { return alert.DestinationFields() }

// caracalLinters are the plugins' checks for `caracal lint`.
func caracalLinters() linters {
	return linters{}
}
