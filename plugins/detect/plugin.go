package detect

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/alert"
	"github.com/caracal-sec/caracal/plugins/enrich"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/metrics"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
	"github.com/caracal-sec/caracal/plugins/settings"
)

func processorSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Categories("Utility").
		Summary("Runs detection rules over normalized events; emits one match per matching rule.").
		Description("Each message is a normalized event (JSON, from caracal.events). It is evaluated against the enabled rules for its `p_log_type` only. Every match becomes a message: the event plus `p_rule_id`, `p_rule_severity`, `p_rule_tags`, `p_rule_reports`, `p_alert_title`, `p_alert_context`, `p_dedup_string` and the rule's alerting attributes, routed to caracal.matches and keyed by rule id. A rule's runtime error becomes a match of `p_match_type: RULE_ERROR`. Events that match nothing leave the batch. An event that is not a JSON object is skipped rather than refused (refusing would stop the stage on it): it is logged with its topic, partition and offset, counted in `caracal_detect_skipped_events`, and reported as a SYSTEM_ERROR alert at most once an hour.").
		Fields(
			service.NewStringField("rules_dir").
				Description("Directory of rules (`**/*.yml`). Empty: the root config's `caracal.rules_dir`.").
				Default("").Example("./rules"),
			service.NewStringField("lookups_dir").
				Description("Lookup tables for the rules' lookup(table, key). Empty: the root config's `caracal.lookups_dir`.").
				Default(""),
			service.NewDurationField("reload_interval").
				Description("How often the rules directory is checked for changed rules, which are swapped in without dropping events; a rule that no longer compiles keeps its last good version and the error is logged. 0s disables reloading.").
				Default("5s"),
		)
}

func init() {
	service.MustRegisterBatchProcessor("caracal_detect", processorSpec(),
		func(conf *service.ParsedConfig, res *service.Resources) (service.BatchProcessor, error) {
			dir, err := conf.FieldString("rules_dir")
			if err != nil {
				return nil, err
			}
			if dir == "" {
				dir = settings.From(res).RulesDir
			}
			rl, err := NewReloader(dir)
			if err != nil {
				return nil, err
			}
			interval, err := conf.FieldDuration("reload_interval")
			if err != nil {
				return nil, err
			}
			ldir, err := conf.FieldString("lookups_dir")
			if err != nil {
				return nil, err
			}
			if ldir == "" {
				ldir = settings.From(res).LookupsDir
			}
			// The tables (in `caracal run`, the process stage's too) are
			// held until the processor closes.
			ctx, stop := context.WithCancel(context.Background())
			// (The process stage's enrich raises the SYSTEM_ERROR alerts.)
			set, err := enrich.StartSet(ctx, ldir, func(t *enrich.Table, err error) {
				enrich.LogLoadError(res.Logger(), t, err, "rules' lookup() finds nothing in it")
			})
			if err != nil {
				stop()
				return nil, err
			}
			SetLookup(set.Lookup)
			log := res.Logger()
			log.Infof("Detecting with %d rules from %s", len(rl.Engine().Rules()), dir)
			known := schemaNames(settings.From(res).SchemasDir)
			warnUnknownLogTypes(log, rl.Engine().Rules(), known)
			if interval > 0 {
				go rl.Watch(ctx, interval, func(changed bool, n int, errs []error) {
					for _, err := range errs {
						log.Errorf("Rules: %v (the previous version of the rule stays in force)", err)
					}
					if changed {
						log.Infof("Rules reloaded from %s: %d rules", dir, n)
						warnUnknownLogTypes(log, rl.Engine().Rules(), known)
					}
				})
			}
			return &processor{rules: rl, stop: stop, now: time.Now,
				skips: alert.Skips{Key: "detect-skipped-events", Stage: "Detection", Log: log,
					Counter: metrics.Zero(res.Metrics().NewCounter("detect_skipped_events"))}}, nil
		})
}

// schemaNames are the log types with a schema in dir (nil when it cannot
// be read: then nothing is checked).
func schemaNames(dir string) map[string]bool {
	schemas, err := schema.LoadDir(dir)
	if err != nil {
		return nil
	}
	names := map[string]bool{}
	for _, s := range schemas {
		names[s.Schema] = true
	}
	return names
}

// warnUnknownLogTypes logs every enabled rule's log type without a
// schema: no event ever has it, so the rule silently never runs on it (a
// typo such as AWS.Cloudtrail; `caracal lint` reports it with its line).
func warnUnknownLogTypes(log *service.Logger, rules []*Rule, known map[string]bool) {
	for _, w := range unknownLogTypes(rules, known) {
		log.Warn(w)
	}
}

func unknownLogTypes(rules []*Rule, known map[string]bool) []string {
	if known == nil {
		return nil
	}
	var out []string
	for _, r := range rules {
		for _, lt := range r.LogTypes {
			if !known[lt] && r.IsEnabled() {
				out = append(out, fmt.Sprintf("Rule %s (%s): log type %s has no schema, so no event has it and the rule never runs on it; fix LogTypes (caracal lint shows the line)", r.RuleID, r.File, lt))
			}
		}
	}
	return out
}

type processor struct {
	rules *Reloader
	stop  context.CancelFunc
	now   func() time.Time
	skips alert.Skips
}

func (p *processor) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	var out service.MessageBatch
	e := p.rules.Engine() // one engine for the whole batch
	for _, m := range batch {
		raw, err := m.AsBytes()
		if err != nil {
			return nil, err
		}
		matches, err := e.DecodeAndEvaluate(raw)
		if err != nil {
			if report := p.skip(m, err); report != nil {
				out = append(out, report)
			}
			continue
		}
		for _, match := range matches {
			b, err := json.Marshal(match)
			if err != nil {
				// Not expected (Match makes its context encodable), but one
				// match must not fail its batch's others: keep it, saying why.
				match[envelope.FieldAlertContext] = map[string]any{"error": "not encodable: " + err.Error()}
				if b, err = json.Marshal(match); err != nil {
					return nil, err
				}
			}
			msg := m.Copy()
			msg.SetBytes(b)
			msg.MetaSetMut(envelope.MetaTopic, envelope.TopicMatches)
			msg.MetaSetMut(envelope.MetaKey, match[envelope.FieldRuleID])
			out = append(out, msg)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return []service.MessageBatch{out}, nil
}

// skip deals with an event no rule can read. caracal.events holds what the
// process stage wrote, so it comes from another writer or a bug: it is
// logged, counted and reported (see alert.Skips) instead of refused.
func (p *processor) skip(m *service.Message, err error) *service.Message {
	a := p.skips.Skip(p.now(), m, err)
	if a == nil {
		return nil
	}
	b, _ := json.Marshal(a)
	report := service.NewMessage(b)
	report.MetaSetMut(envelope.MetaTopic, envelope.TopicSystemError)
	report.MetaSetMut(envelope.MetaKey, a.AlertID)
	return report
}

func (p *processor) Close(context.Context) error {
	p.stop()
	return nil
}
