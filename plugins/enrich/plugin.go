package enrich

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/redact"
	"github.com/caracal-sec/caracal/plugins/settings"
)

func processorSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Categories("Utility").
		Summary("Enriches normalized events from lookup tables into p_enrichment.").
		Description("Tables are defined in `lookups_dir` (`*.yml`: name, primary_key, key_type string|cidr, data (a path, s3:// or https:// URL), format csv|jsonl|json, refresh, associations of log type → event field paths). For each association of the event's log type, the field's values are looked up (CIDR tables by longest prefix) and a hit adds `p_enrichment.<table>.<field path>` = the row. Tables refresh in the background and swap atomically; a failed refresh keeps the last good table and raises one SYSTEM_ERROR alert. A remote table (s3://, https://) out of reach at start does not stop the stage: it starts empty, raises a SYSTEM_ERROR alert and is retried every 30 s (or its refresh, if shorter) until it loads; a local table that cannot be read is an error. Messages not routed to caracal.events (classification failures) pass through, and so do events of log types no association names, unread (their `caracal_log_type` metadata, which caracal_parse sets, says which they are).").
		Fields(service.NewStringField("lookups_dir").
			Description("Directory of lookup table definitions. Empty: the root config's caracal.lookups_dir.").
			Default(""))
}

func init() {
	service.MustRegisterBatchProcessor("caracal_enrich", processorSpec(),
		func(conf *service.ParsedConfig, res *service.Resources) (service.BatchProcessor, error) {
			dir, err := conf.FieldString("lookups_dir")
			if err != nil {
				return nil, err
			}
			if dir == "" {
				dir = settings.From(res).LookupsDir
			}
			ctx, cancel := context.WithCancel(context.Background())
			p := &processor{cancel: cancel}
			set, err := StartSet(ctx, dir, func(t *Table, err error) {
				LogLoadError(res.Logger(), t, err, "events are not enriched from it")
				p.queue(t, err)
			})
			if err != nil {
				cancel()
				return nil, err
			}
			p.set = set
			for _, t := range set.Tables() {
				if ix := t.Index(); t.Loaded() {
					res.Logger().Infof("Lookup table %s: %d rows, ~%d KiB", t.Def.Name, ix.Rows(), ix.Bytes/1024)
				}
			}
			gauge := res.Metrics().NewGauge("lookup_table_bytes", "table")
			go func() {
				tick := time.NewTicker(30 * time.Second)
				defer tick.Stop()
				for {
					for _, t := range set.Tables() {
						gauge.Set(int64(t.Index().Bytes), t.Def.Name)
					}
					select {
					case <-ctx.Done():
						return
					case <-tick.C:
					}
				}
			}()
			return p, nil
		})
}

type processor struct {
	set    *Set
	cancel context.CancelFunc
	mu     sync.Mutex
	errs   []*envelope.Alert
}

// queue turns a failed refresh into a SYSTEM_ERROR alert sent with the next
// batch (one per table and hour: its id is deterministic).
func (p *processor) queue(t *Table, err error) {
	now := time.Now().UTC()
	key := "lookup:" + t.Def.Name + ":" + now.Truncate(time.Hour).Format(time.RFC3339)
	title := fmt.Sprintf("Lookup table %s failed to refresh; the version loaded at %s stays in use", t.Def.Name, envelope.FormatTime(t.Index().Loaded))
	if !t.Loaded() {
		title = fmt.Sprintf("Lookup table %s could not be loaded; events are not enriched from it until it is", t.Def.Name)
	}
	a := &envelope.Alert{
		ID: "caracal.lookup." + t.Def.Name, AlertID: fmt.Sprintf("%x", []byte(key))[:32], CreatedAt: envelope.FormatTime(now),
		UpdatedAt: envelope.FormatTime(now), Severity: "Medium", Type: envelope.TypeSystemError,
		Title: title, Name: "Lookup table refresh", Description: err.Error(), Tags: []string{"lookup-table"}, Version: "1",
		AlertContext: map[string]any{"table": t.Def.Name, "data": shownData(t.Def.Data), "error": err.Error()},
		DedupString:  key, EventCount: 1, LogTypes: []string{}, Events: []map[string]any{},
	}
	p.mu.Lock()
	p.errs = append(p.errs, a)
	p.mu.Unlock()
}

func (p *processor) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	for _, m := range batch {
		if topic, _ := m.MetaGet(envelope.MetaTopic); topic != envelope.TopicEvents {
			continue
		}
		if lt, ok := m.MetaGet(envelope.MetaLogType); ok && !p.set.Associates(lt) {
			continue // nothing to look up: the event is not read
		}
		raw, err := m.AsBytes()
		if err != nil {
			return nil, err
		}
		b, err := p.set.EnrichJSON(raw)
		if err != nil {
			return nil, err
		}
		if b != nil {
			m.SetBytes(b)
		}
	}
	p.mu.Lock()
	errs := p.errs
	p.errs = nil
	p.mu.Unlock()
	for _, a := range errs {
		b, _ := json.Marshal(a)
		m := service.NewMessage(b)
		m.MetaSetMut(envelope.MetaTopic, envelope.TopicSystemError)
		m.MetaSetMut(envelope.MetaKey, a.ID)
		batch = append(batch, m)
	}
	return []service.MessageBatch{batch}, nil
}

func (p *processor) Close(context.Context) error {
	p.cancel()
	return nil
}

// shownData is a table's data location as alerts may show it: a URL's
// path and query can hold its API key.
func shownData(loc string) string {
	if strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://") {
		return redact.URL(loc)
	}
	return loc
}

// LogLoadError logs a table's failed load for a stage: a refresh that
// keeps the last good version, or a table not loaded yet, whose
// consequence for the stage unloaded says.
func LogLoadError(log *service.Logger, t *Table, err error, unloaded string) {
	if t.Loaded() {
		log.Errorf("Lookup table %s: refresh failed, keeping the last good version: %v", t.Def.Name, err)
		return
	}
	log.Errorf("Lookup table %s: could not be loaded, %s until it is (retried every %s): %v", t.Def.Name, unloaded, t.nextWait(), err)
}
