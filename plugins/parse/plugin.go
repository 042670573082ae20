package parse

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/metrics"
	"github.com/caracal-sec/caracal/plugins/settings"
)

func processorSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Categories("Parsing").
		Summary("Parses raw events into normalized events by log schema, or classification failures.").
		Description("Each message is a raw event from caracal.raw. It is tried against the log types in its `caracal_log_types` metadata (all known types when empty); the first schema that accepts it wins and the message becomes the normalized event as JSON (the typed fields plus `p_log_type`, `p_event_time`, `p_parse_time`, `p_row_id`, `p_source_id`, `p_source_label` and the `p_any_*` indicator fields), routed to caracal.events and keyed by p_row_id. An event no schema accepts becomes a classification failure (raw bytes, source, every type tried and why) routed to caracal.classification_failures. Nothing is dropped. The metadata the raw record brought (`caracal_source_id`, `caracal_source_label`, `caracal_log_types`, `caracal_received_at`, `caracal_request_id`, `caracal_header`, `kafka_partition`, `kafka_offset`) is removed: the event carries it in its p_* fields, the failure in its own; the message gets `caracal_topic`, `caracal_key` and, for an event, `caracal_log_type`.").
		Fields(
			service.NewStringField("schemas_dir").
				Description("Directory of log schemas (Panther schema YAML). Empty: the root config's `caracal.schemas_dir`.").
				Default("").Example("./schemas"),
			service.NewObjectListField("filters",
				service.NewStringField("source").Description("Source id the filter applies to; `*` for every source.").Example("okta"),
				service.NewStringListField("log_types").Description("Log types it applies to; empty: all.").Default([]string{}),
				service.NewStringField("include").Description("Keep only events for which this expr boolean is true (fields at top level, as in rule conditions).").Default("").Example(`eventSource != "health.amazonaws.com"`),
				service.NewStringField("exclude").Description("Drop events for which this expr boolean is true.").Default("").Example(`elbStatusCode == 200 && requestUrl endsWith "/healthz"`),
			).Description("Ingestion filters: events they drop are counted (metric caracal_parse_filtered_events, by source) and not stored. A filter expression that errors keeps the event.").
				Default([]any{}),
		)
}

func init() {
	service.MustRegisterBatchProcessor("caracal_parse", processorSpec(),
		func(conf *service.ParsedConfig, res *service.Resources) (service.BatchProcessor, error) {
			dir, err := conf.FieldString("schemas_dir")
			if err != nil {
				return nil, err
			}
			if dir == "" {
				dir = settings.From(res).SchemasDir
			}
			c, err := LoadClassifier(dir)
			if err != nil {
				return nil, err
			}
			res.Logger().Infof("Parsing with %d log schemas from %s", len(c.order), dir)
			fconfs, err := conf.FieldObjectList("filters")
			if err != nil {
				return nil, err
			}
			p := &processor{c: c, skipped: metrics.Zero(res.Metrics().NewCounter("parse_skipped_lines")),
				filtered: res.Metrics().NewCounter("parse_filtered_events", "source")}
			for _, fc := range fconfs {
				f := &Filter{}
				if f.Source, err = fc.FieldString("source"); err != nil {
					return nil, err
				}
				if f.LogTypes, err = fc.FieldStringList("log_types"); err != nil {
					return nil, err
				}
				if f.Include, err = fc.FieldString("include"); err != nil {
					return nil, err
				}
				if f.Exclude, err = fc.FieldString("exclude"); err != nil {
					return nil, err
				}
				if err := f.Compile(); err != nil {
					return nil, err
				}
				p.filters = append(p.filters, f)
				metrics.Zero(p.filtered, f.Source)
			}
			return p, nil
		})
}

type processor struct {
	c        *Classifier
	skipped  *service.MetricCounter
	filters  []*Filter
	filtered *service.MetricCounter
}

// keep runs the ingestion filters that apply to the event's source and
// log type; only then is the event decoded for them.
func (p *processor) keep(source string, n *Normalized) (bool, error) {
	var ev map[string]any
	for _, f := range p.filters {
		if !f.applies(source, n.LogType) {
			continue
		}
		if ev == nil {
			var err error
			if ev, err = envelope.DecodeEvent(n.JSON); err != nil {
				return false, err
			}
		}
		if !f.Keep(source, n.LogType, ev) {
			// A copy: source may point into a fetched batch (kafka's
			// metadata), which a metrics exporter keeping label values
			// would hold on to.
			p.filtered.Incr(1, strings.Clone(source))
			return false, nil
		}
	}
	return true, nil
}

func originOf(m *service.Message) Origin {
	o := Origin{}
	o.SourceID, _ = m.MetaGet(envelope.MetaSourceID)
	o.SourceLabel, _ = m.MetaGet(envelope.MetaSourceLabel)
	o.RequestID, _ = m.MetaGet(envelope.MetaRequestID)
	if s, ok := m.MetaGet(envelope.MetaReceivedAt); ok {
		o.ReceivedAt, _ = envelope.ParseTime(s)
	}
	if p, ok := envelope.MetaInt(m, envelope.MetaKafkaPartition); ok {
		o.Partition = int32(p)
	}
	o.Offset, _ = envelope.MetaInt(m, envelope.MetaKafkaOffset)
	if s, ok := m.MetaGet(envelope.MetaHeader); ok && s != "" {
		o.Header = []byte(s)
	}
	if s, ok := m.MetaGet(envelope.MetaFirstLine); ok && s != "" {
		o.FirstLine = []byte(s)
	}
	return o
}

// rawMetadata is the metadata of a caracal.raw record that the event or
// its failure carries on.
var rawMetadata = []string{envelope.MetaSourceID, envelope.MetaSourceLabel, envelope.MetaLogTypes, envelope.MetaReceivedAt, envelope.MetaRequestID,
	envelope.MetaHeader, envelope.MetaFirstLine, envelope.MetaKafkaPartition, envelope.MetaKafkaOffset}

func (p *processor) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	out := make(service.MessageBatch, 0, len(batch))
	for _, m := range batch {
		raw, err := m.AsBytes()
		if err != nil {
			return nil, err
		}
		var candidates []string
		if s, _ := m.MetaGet(envelope.MetaLogTypes); s != "" {
			candidates = settings.SplitList(s)
		}
		o := originOf(m)
		// What the raw record's metadata said is now in the event (its
		// p_* fields) or its failure. Dropped, it leaves room for the
		// three set below within Benthos's small metadata map: past eight
		// entries the map costs twice as much.
		for _, k := range rawMetadata {
			m.MetaDelete(k)
		}
		for i, rec := range SplitRecords(raw) {
			o.Index = i
			msg := m
			if i > 0 {
				msg = m.Copy()
			}
			ev, fail := p.c.ClassifyJSON(rec, candidates, o)
			if ev == nil && fail == nil {
				// A header or skipped line: not an event.
				p.skipped.Incr(1)
				continue
			}
			if ev != nil {
				if keep, err := p.keep(o.SourceID, ev); err != nil {
					return nil, err
				} else if !keep {
					continue
				}
			}
			if fail != nil {
				body, err := json.Marshal(fail)
				if err != nil {
					return nil, err
				}
				msg.SetBytes(body)
				msg.MetaSetMut(envelope.MetaTopic, envelope.TopicFailures)
				msg.MetaSetMut(envelope.MetaKey, fail.RowID)
			} else {
				msg.SetBytes(ev.JSON)
				msg.MetaSetMut(envelope.MetaTopic, envelope.TopicEvents)
				msg.MetaSetMut(envelope.MetaKey, ev.RowID)
				msg.MetaSetMut(envelope.MetaLogType, ev.LogType)
			}
			out = append(out, msg)
		}
	}
	return []service.MessageBatch{out}, nil
}

func (p *processor) Close(context.Context) error { return nil }
