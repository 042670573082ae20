package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/alert"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/kafka"
	"github.com/caracal-sec/caracal/plugins/settings"
	"github.com/caracal-sec/caracal/plugins/suggest"
)

// embeddedAddressFile, under <data_dir>/broker, holds the address of the
// embedded broker of a running `caracal run`.
const embeddedAddressFile = "address"

// brokerFlags say how a command reaches the running system's broker.
func brokerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "brokers", Value: os.Getenv("CARACAL_BROKERS"), Usage: "Kafka/Redpanda seed brokers (default $CARACAL_BROKERS; else the embedded broker of caracal run in --data-dir)"},
		&cli.StringFlag{Name: "data-dir", Value: envOr("CARACAL_DATA_DIR", "./data"), Usage: "data directory of caracal run (for its embedded broker's address)"},
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
		Subcommands: []*cli.Command{sendTestCommand(), {
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

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}`)

// expandEnv resolves ${VAR} and ${VAR:default} as Benthos does in configs.
// With keepUnset, an unset ${VAR} without a default stays as written: lint
// must not call a value missing that only the deployment sets (Benthos's
// lint reports unset variables itself, unless --skip-env-var-check).
func expandEnv(b []byte, keepUnset bool) []byte {
	return envRef.ReplaceAllFunc(b, func(m []byte) []byte {
		sm := envRef.FindSubmatch(m)
		if v, ok := os.LookupEnv(string(sm[1])); ok && v != "" {
			return []byte(v)
		}
		if sm[2] == nil && keepUnset {
			return m
		}
		return sm[2]
	})
}

// loadSettings reads the `caracal:` section of a root config file.
func loadSettings(path string) (*settings.Settings, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var root map[string]any
	if err := yaml.Unmarshal(expandEnv(raw, false), &root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	section, err := yaml.Marshal(root[settings.Section])
	if err != nil {
		return nil, err
	}
	spec := service.NewConfigSpec().Fields(settings.Fields(destinationFields()...)...)
	conf, err := spec.ParseYAML(string(section), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", path, settings.Section, err)
	}
	return settings.Parse(conf)
}

// sendTestCommand is `caracal alerts send-test <destination>`.
func sendTestCommand() *cli.Command {
	return &cli.Command{
		Name:      "send-test",
		Usage:     "Send a test alert to one destination of config.yaml, to check its wiring (URL, credentials, filters aside)",
		ArgsUsage: "<destination id>",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Value: "config.yaml", Usage: "root config holding caracal.destinations"},
		},
		Action: func(c *cli.Context) error {
			id := c.Args().First()
			if id == "" || c.NArg() != 1 {
				return cli.Exit("usage: caracal alerts send-test <destination id>", 2)
			}
			st, err := loadSettings(c.String("config"))
			if err != nil {
				return err
			}
			dests, err := alert.Destinations(st, nil)
			if err != nil {
				return err
			}
			var ids []string
			var dest alert.Destination
			for _, d := range dests {
				ids = append(ids, d.ID())
				if d.ID() == id {
					dest = d
				}
			}
			if dest != nil {
				// Delivered directly: the destination's filters do not apply
				// to a test.
				a := alert.TestAlert(time.Now())
				if err := dest.Deliver(c.Context, a); err != nil {
					return cli.Exit(fmt.Sprintf("send-test %s: %v", id, err), 1)
				}
				fmt.Fprintf(c.App.Writer, "Test alert %s delivered to %s\n", a.AlertID, id)
				return nil
			}
			hint := suggest.DidYouMean(id, ids)
			switch {
			case len(ids) == 0:
				hint = " (none is configured: add one under caracal.destinations, or set CARACAL_ALERT_WEBHOOK_URL for env-webhook)"
			case hint == "":
				hint = " (configured: " + strings.Join(ids, ", ") + ")"
			}
			return cli.Exit(fmt.Sprintf("no destination %q in %s%s", id, c.String("config"), hint), 2)
		},
	}
}
