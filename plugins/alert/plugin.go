package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/kafka"
	"github.com/caracal-sec/caracal/plugins/settings"
)

// DestinationFields are the fields of one caracal.destinations entry.
func DestinationFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringField("id").Description("Unique destination id; rules may name it in OutputIds.").Example("soc-webhook"),
		service.NewStringEnumField("type", "webhook").Description("Destination type.").Default("webhook"),
		service.NewStringField("url").Description("Endpoint URL.").Example("https://hooks.example.com/caracal"),
		service.NewStringField("secret").Description("Webhook: HMAC-SHA256 key; the signature of the body goes in `X-Caracal-Signature: sha256=<hex>`. Use ${ENV_VAR}.").Default("").Secret(),
		service.NewStringMapField("headers").Description("Extra request headers.").Default(map[string]any{}),
		service.NewStringEnumField("min_severity", "", "Info", "Low", "Medium", "High", "Critical").Description("Only alerts at least this severe.").Default(""),
		service.NewStringListField("log_types").Description("Only alerts of these log types (empty: all).").Default([]string{}),
		service.NewStringListField("tags").Description("Only alerts of rules with one of these tags (empty: all).").Default([]string{}),
		service.NewStringListField("rule_ids").Description("Only alerts of these rules (empty: all).").Default([]string{}),
		service.NewIntField("max_attempts").Description("Delivery attempts before giving up (5xx, 429 and timeouts are retried with backoff).").Default(10),
	}
}

// ParseDestination builds a destination from a caracal.destinations entry.
func ParseDestination(c *service.ParsedConfig, log *service.Logger) (Destination, error) {
	w := &Webhook{Client: &http.Client{Timeout: 30 * time.Second}}
	var err error
	if w.Name, err = c.FieldString("id"); err != nil {
		return nil, err
	}
	if w.URL, err = c.FieldString("url"); err != nil {
		return nil, err
	}
	if w.Secret, err = c.FieldString("secret"); err != nil {
		return nil, err
	}
	if w.Headers, err = c.FieldStringMap("headers"); err != nil {
		return nil, err
	}
	if w.Filter.MinSeverity, err = c.FieldString("min_severity"); err != nil {
		return nil, err
	}
	if w.Filter.LogTypes, err = c.FieldStringList("log_types"); err != nil {
		return nil, err
	}
	if w.Filter.Tags, err = c.FieldStringList("tags"); err != nil {
		return nil, err
	}
	if w.Filter.RuleIDs, err = c.FieldStringList("rule_ids"); err != nil {
		return nil, err
	}
	if w.Retry.MaxAttempts, err = c.FieldInt("max_attempts"); err != nil {
		return nil, err
	}
	w.OnAttempt = logAttempt(log)
	return w, nil
}

func logAttempt(log *service.Logger) func(Attempt) {
	return func(a Attempt) {
		if a.Error != "" {
			log.Warnf("Alert delivery: destination=%s alert=%s attempt=%d status=%d error=%q", a.Destination, a.AlertID, a.Attempt, a.Status, a.Error)
			return
		}
		log.Debugf("Alert delivery: destination=%s alert=%s attempt=%d status=%d", a.Destination, a.AlertID, a.Attempt, a.Status)
	}
}

func init() {
	service.MustRegisterBatchProcessor("caracal_alert", service.NewConfigSpec().
		Categories("Utility").
		Summary("Turns rule matches into deduplicated alerts.").
		Description("Input: matches from caracal.matches (and SYSTEM_ERROR alerts from caracal.system_errors, passed through). The first match of a (rule, dedup string) opens an alert once the rule's Threshold is reached within its window; matches within DedupPeriodMinutes of the alert's creation attach to it without a new alert. Each new alert becomes a message (Panther custom-webhook fields), routed to caracal.alerts and keyed by alert id. More than `storm_limit` alerts an hour from one rule suppresses that rule's alerts and raises one SYSTEM_ERROR.").
		Fields(service.NewIntField("storm_limit").
			Description("Alerts per hour per rule before suppression; 0: the root config's caracal.alert_storm_limit.").Default(0)),
		func(conf *service.ParsedConfig, res *service.Resources) (service.BatchProcessor, error) {
			limit, err := conf.FieldInt("storm_limit")
			if err != nil {
				return nil, err
			}
			if limit == 0 {
				limit = settings.From(res).AlertStormLimit
			}
			return &processor{state: NewState(limit), now: time.Now, brokers: settings.From(res).Brokers, log: res.Logger()}, nil
		})

	service.MustRegisterBatchOutput("caracal_notify", service.NewConfigSpec().
		Categories("Services").
		Summary("Delivers alerts to the destinations in the root config (caracal.destinations) and to the log.").
		Description("Every alert is logged. It then goes to each destination whose filters accept it (a rule's OutputIds, when set, restrict it to those destinations), with retries and backoff; CARACAL_ALERT_WEBHOOK_URL adds a webhook destination `env-webhook`. The batch is acknowledged only when every accepting destination took it.").
		Fields(service.NewOutputMaxInFlightField().Default(8)),
		func(conf *service.ParsedConfig, res *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			var pol service.BatchPolicy
			mif, err := conf.FieldMaxInFlight()
			if err != nil {
				return nil, pol, 0, err
			}
			st := settings.From(res)
			n := &notifier{log: res.Logger()}
			for _, dc := range st.Destinations {
				d, err := ParseDestination(dc, res.Logger())
				if err != nil {
					return nil, pol, 0, fmt.Errorf("caracal.destinations: %w", err)
				}
				n.dests = append(n.dests, d)
			}
			if st.AlertWebhookURL != "" {
				n.dests = append(n.dests, &Webhook{Name: "env-webhook", URL: st.AlertWebhookURL,
					Client: &http.Client{Timeout: 30 * time.Second}, OnAttempt: logAttempt(res.Logger())})
			}
			return n, pol, mif, nil
		})
}

type processor struct {
	state *State
	now   func() time.Time
	// brokers hold caracal.alert_state; nil keeps the state in memory only.
	brokers    []string
	generation uint64 // kafka.Generation() when the state was last restored
	log        *service.Logger
}

// restore reloads the state from caracal.alert_state at start, after a
// rebalance (rules may have moved from another worker) and after an
// aborted transaction (the in-memory state counted records that will come
// again).
func (p *processor) restore(ctx context.Context) error {
	n := kafka.Generation()
	if p.brokers == nil || n == p.generation {
		return nil
	}
	fresh := NewState(p.state.StormLimit)
	records := 0
	var bad error
	err := kafka.ReadCompacted(ctx, p.brokers, envelope.TopicAlertState, 30*time.Second, func(key, value []byte) {
		records++
		if err := fresh.Restore(string(key), value); err != nil && bad == nil {
			bad = err
		}
	})
	if err != nil {
		return fmt.Errorf("restoring alert state from %s: %w", envelope.TopicAlertState, err)
	}
	if bad != nil {
		p.log.Errorf("Alert state: skipped an unreadable record: %v", bad)
	}
	p.state.Replace(fresh)
	p.generation = n
	p.log.Infof("Alert state restored from %s: %d record(s)", envelope.TopicAlertState, records)
	return nil
}

func (p *processor) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	if err := p.restore(ctx); err != nil {
		return nil, err
	}
	var out service.MessageBatch
	emit := func(m *service.Message, a *envelope.Alert) error {
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		msg := m.Copy()
		msg.SetBytes(b)
		msg.MetaSetMut(envelope.MetaTopic, envelope.TopicAlerts)
		msg.MetaSetMut(envelope.MetaKey, a.AlertID)
		out = append(out, msg)
		return nil
	}
	for _, m := range batch {
		raw, err := m.AsBytes()
		if err != nil {
			return nil, err
		}
		if topic, _ := m.MetaGet(envelope.MetaKafkaTopic); topic == envelope.TopicSystemError {
			var a envelope.Alert
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, fmt.Errorf("system error record: %w", err)
			}
			if err := emit(m, &a); err != nil {
				return nil, err
			}
			continue
		}
		match, err := envelope.DecodeObject(raw)
		if err != nil {
			return nil, err
		}
		if match[envelope.FieldControl] == ControlUnsuppress {
			rule, _ := match[envelope.FieldRuleID].(string)
			p.state.Unsuppress(rule)
			p.log.Infof("Alert storm suppression lifted for rule %s", rule)
			continue
		}
		o := p.state.Observe(match, p.now())
		for _, a := range []*envelope.Alert{o.Alert, o.Storm} {
			if a != nil {
				if err := emit(m, a); err != nil {
					return nil, err
				}
			}
		}
	}
	// The state changes go out with the alerts, in the same transaction.
	changes, err := p.state.Changes()
	if err != nil {
		return nil, err
	}
	if p.brokers != nil && len(batch) > 0 {
		for _, c := range changes {
			msg := batch[len(batch)-1].Copy()
			msg.SetBytes(c.Value)
			msg.MetaSetMut(envelope.MetaTopic, envelope.TopicAlertState)
			msg.MetaSetMut(envelope.MetaKey, c.Key)
			out = append(out, msg)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return []service.MessageBatch{out}, nil
}

func (p *processor) Close(context.Context) error { return nil }

type notifier struct {
	log   *service.Logger
	dests []Destination
}

func (n *notifier) Connect(context.Context) error { return nil }

func (n *notifier) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	for _, m := range batch {
		if topic, _ := m.MetaGet(envelope.MetaTopic); topic == envelope.TopicAlertState {
			continue // the stage's own state, not an alert
		}
		raw, err := m.AsBytes()
		if err != nil {
			return err
		}
		var a envelope.Alert
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("alert record: %w", err)
		}
		n.log.Infof("ALERT %s [%s] %s: %s (alert %s, %d event(s))", a.Type, a.Severity, a.ID, a.Title, a.AlertID, a.EventCount)
		for _, d := range n.dests {
			if !d.Accepts(&a) || !outputAllowed(&a, d.ID()) {
				continue
			}
			if err := d.Deliver(ctx, &a); err != nil {
				return err
			}
		}
	}
	return nil
}

// outputAllowed applies a rule's OutputIds: when set, only those
// destinations get the rule's alerts.
func outputAllowed(a *envelope.Alert, dest string) bool {
	if len(a.OutputIDs) == 0 || a.Type == envelope.TypeSystemError {
		return true
	}
	for _, id := range a.OutputIDs {
		if id == dest {
			return true
		}
	}
	return false
}

func (n *notifier) Close(context.Context) error { return nil }
