package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"github.com/caracal-sec/caracal/plugins/alert"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/kafka"
	"github.com/caracal-sec/caracal/plugins/settings"
)

// embeddedAddressFile, under <data_dir>/broker, holds the address of the
// embedded broker of a running `caracal run`.
const embeddedAddressFile = "address"

// brokerFlags say how a command reaches the running system's broker.
func brokerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "brokers", Value: os.Getenv("CARACAL_BROKERS"), Usage: "Kafka/Redpanda seed brokers (default $CARACAL_BROKERS; else the embedded broker of `caracal run` in --data-dir)"},
		&cli.StringFlag{Name: "data-dir", Value: envOr("CARACAL_DATA_DIR", "./data"), Usage: "data directory of `caracal run` (for its embedded broker's address)"},
	}
}

func brokersOf(c *cli.Context) ([]string, error) {
	if b := settings.SplitList(c.String("brokers")); len(b) > 0 {
		return b, nil
	}
	path := filepath.Join(c.String("data-dir"), "broker", embeddedAddressFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("no broker: set --brokers or CARACAL_BROKERS, or start `caracal run` (its embedded broker's address goes to %s): %w", path, err)
	}
	return settings.SplitList(strings.TrimSpace(string(b))), nil
}

func alertsCommand() *cli.Command {
	return &cli.Command{
		Name:  "alerts",
		Usage: "Operate on the alert stage",
		Subcommands: []*cli.Command{{
			Name:      "unsuppress",
			Usage:     "Lift a rule's alert storm suppression now instead of at the end of its hour",
			ArgsUsage: "<rule id>",
			Description: "Sends a control record on caracal.matches, keyed by the rule id like the rule's matches, so the alert " +
				"worker that owns the rule applies it in order and records it in caracal.alert_state.",
			Flags: brokerFlags(),
			Action: func(c *cli.Context) error {
				rule := c.Args().First()
				if rule == "" || c.NArg() != 1 {
					return cli.Exit("usage: caracal alerts unsuppress <rule id>", 2)
				}
				brokers, err := brokersOf(c)
				if err != nil {
					return err
				}
				p, err := kafka.NewProducer(kafka.ProducerConfig{Brokers: brokers})
				if err != nil {
					return err
				}
				defer p.Close(c.Context)
				body, _ := json.Marshal(map[string]any{
					envelope.FieldControl: alert.ControlUnsuppress, envelope.FieldRuleID: rule,
					"p_requested_at": envelope.FormatTime(time.Now()),
				})
				rec := &kgo.Record{Topic: envelope.TopicMatches, Key: []byte(rule), Value: body}
				if err := p.Produce(c.Context, []*kgo.Record{rec}); err != nil {
					return fmt.Errorf("sending the unsuppress command: %w", err)
				}
				fmt.Fprintf(c.App.Writer, "Storm suppression of %s will be lifted by the alert stage (caracal.matches partition %d, offset %d)\n", rule, rec.Partition, rec.Offset)
				return nil
			},
		}},
	}
}
