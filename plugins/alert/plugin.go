package alert

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/kafka"
	"github.com/caracal-sec/caracal/plugins/metrics"
	"github.com/caracal-sec/caracal/plugins/settings"
)

// DestinationTypes are the kinds of destination.
var DestinationTypes = []string{"webhook", "slack", "msteams", "discord", "pagerduty", "opsgenie", "jira", "github", "splunk", "email"}

// DestinationFields are the fields of one caracal.destinations entry.
func DestinationFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringField("id").Description("Unique destination id; rules may name it in OutputIds (their alerts then come here whatever its filters).").Example("soc-slack"),
		service.NewStringEnumField("type", DestinationTypes...).Description("Destination type: `webhook` (Panther's custom webhook payload, HMAC-signed), `slack` (incoming webhook, Block Kit), `msteams` (incoming webhook, Adaptive Card), `discord` (webhook), `pagerduty` (Events API v2), `opsgenie` (Alert API), `jira` (create issue), `github` (create issue), `splunk` (HTTP Event Collector), `email` (SMTP).").Default("webhook"),
		service.NewStringField("url").Description("Endpoint: the webhook URL (webhook, slack, msteams, discord); the API URL (pagerduty, opsgenie and github have defaults); the Jira site (https://example.atlassian.net); the Splunk HEC base (https://splunk:8088); smtp://host:port or smtps://host:port for email. A chat webhook URL is a secret (its path grants posting): `caracal echo` withholds it; use ${ENV_VAR}.").Default("").Example("https://hooks.slack.com/services/T000/B000/XXXX").Secret(),
		service.NewStringField("secret").Description("Webhook: HMAC-SHA256 key; the signature of the body goes in `X-Caracal-Signature: sha256=<hex>`. Use ${ENV_VAR}.").Default("").Secret(),
		service.NewStringField("token").Description("Credential: PagerDuty routing (integration) key, Opsgenie API key, Jira API token, GitHub token, Splunk HEC token. Use ${ENV_VAR}.").Default("").Secret().Example("${PAGERDUTY_ROUTING_KEY}"),
		service.NewStringField("username").Description("Jira account email; SMTP user name (PLAIN auth, only over TLS).").Default(""),
		service.NewStringField("password").Description("SMTP password. Use ${ENV_VAR}.").Default("").Secret(),
		service.NewStringField("project").Description("Jira project key.").Default("").Example("SEC"),
		service.NewStringField("issue_type").Description("Jira issue type.").Default("Task"),
		service.NewStringField("repository").Description("GitHub repository (owner/name) to open issues in.").Default("").Example("acme/security-alerts"),
		service.NewStringField("index").Description("Splunk index (empty: the token's default).").Default(""),
		service.NewStringField("from").Description("Email sender address.").Default("").Example("caracal@example.com"),
		service.NewStringListField("to").Description("Email recipients.").Default([]string{}).Example([]string{"soc@example.com"}),
		service.NewStringMapField("headers").Description("Extra request headers (HTTP destinations); values may be credentials, so `caracal echo` withholds them.").Default(map[string]any{}).Secret(),
		service.NewStringEnumField("min_severity", append([]string{""}, envelope.Severities...)...).Description("Only alerts at least this severe (in any case: `high` is High).").Default(""),
		service.NewStringListField("log_types").Description("Only alerts of these log types (empty: all).").Default([]string{}),
		service.NewStringListField("tags").Description("Only alerts of rules with one of these tags (empty: all).").Default([]string{}),
		service.NewStringListField("rule_ids").Description("Only alerts of these rules (empty: all).").Default([]string{}),
		service.NewIntField("max_attempts").Description("Delivery attempts before giving up on an alert (5xx, 429 and timeouts are retried with exponential backoff and jitter, honouring Retry-After; other 4xx are not). Giving up raises a SYSTEM_ERROR on the other destinations.").Default(10),
	}
}

// ParseDestination builds a destination from a caracal.destinations entry.
func ParseDestination(c *service.ParsedConfig, onAttempt func(Attempt)) (Destination, error) {
	str := func(k string) string { v, _ := c.FieldString(k); return v }
	list := func(k string) []string { v, _ := c.FieldStringList(k); return v }
	id, kind := str("id"), str("type")
	if id == "" {
		return nil, fmt.Errorf("a destination of type %s needs an id", kind)
	}
	headers, err := c.FieldStringMap("headers")
	if err != nil {
		return nil, err
	}
	attempts, err := c.FieldInt("max_attempts")
	if err != nil {
		return nil, err
	}
	filter := Filter{MinSeverity: str("min_severity"), LogTypes: list("log_types"), Tags: list("tags"), RuleIDs: list("rule_ids")}
	retry := Retry{MaxAttempts: attempts}
	e := Endpoint{URL: str("url"), Headers: headers, Token: str("token"), Username: str("username"), Project: str("project"),
		IssueType: str("issue_type"), Repository: str("repository"), Index: str("index")}
	return NewDestination(id, kind, e, str("secret"), str("password"), str("from"), list("to"), filter, retry, onAttempt)
}

// Destinations builds the destinations of st: caracal.destinations, and
// the webhook CARACAL_ALERT_WEBHOOK_URL adds. Ids must differ: rules'
// OutputIds and delivery records tell destinations apart by id.
func Destinations(st *settings.Settings, onAttempt func(Attempt)) ([]Destination, error) {
	var out []Destination
	add := func(d Destination) error {
		for _, o := range out {
			if o.ID() == d.ID() {
				hint := "give each destination its own id"
				if d.ID() == EnvWebhookID {
					hint = "CARACAL_ALERT_WEBHOOK_URL adds a destination with this id; rename the configured one"
				}
				return fmt.Errorf("caracal.destinations: two destinations have the id %s: %s", d.ID(), hint)
			}
		}
		out = append(out, d)
		return nil
	}
	for _, dc := range st.Destinations {
		d, err := ParseDestination(dc, onAttempt)
		if err != nil {
			return nil, fmt.Errorf("caracal.destinations: %w", err)
		}
		if err := add(d); err != nil {
			return nil, err
		}
	}
	if st.AlertWebhookURL != "" {
		// Built as a configured webhook is, so that its URL is checked too.
		webhook, err := NewDestination(EnvWebhookID, "webhook", Endpoint{URL: st.AlertWebhookURL}, "", "", "", nil, Filter{}, Retry{}, onAttempt)
		if err != nil {
			return nil, fmt.Errorf("CARACAL_ALERT_WEBHOOK_URL: %w", err)
		}
		if err := add(webhook); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// NewDestination checks a destination's settings and builds it; errors
// say which setting is missing.
func NewDestination(id, kind string, e Endpoint, secret, password, from string, to []string, f Filter, r Retry, onAttempt func(Attempt)) (Destination, error) {
	need := func(what, val string) error {
		if val == "" {
			return fmt.Errorf("destination %s: type %s needs %s", id, kind, what)
		}
		return nil
	}
	sev, err := NormalizeSeverity(f.MinSeverity)
	if err != nil {
		return nil, fmt.Errorf("destination %s: min_severity: %w", id, err)
	}
	f.MinSeverity = sev
	if e.URL == "" {
		e.URL = defaultURLs[kind]
	}
	if err := checkURL(kind, e.URL); err != nil {
		return nil, fmt.Errorf("destination %s: url: %w", id, err)
	}
	client := newClient()
	switch kind {
	case "webhook", "":
		if err := need("url", e.URL); err != nil {
			return nil, err
		}
		return &Webhook{Name: id, URL: e.URL, Secret: secret, Headers: e.Headers, Filter: f, Retry: r, Client: client, OnAttempt: onAttempt}, nil
	case "email":
		if err := need("url (smtp://host:port or smtps://host:port)", e.URL); err != nil {
			return nil, err
		}
		if err := need("from", from); err != nil {
			return nil, err
		}
		if len(to) == 0 {
			return nil, fmt.Errorf("destination %s: type email needs to (a list of recipients)", id)
		}
		return &Email{Name: id, URL: e.URL, From: from, To: to, Username: e.Username, Password: password, Filter: f, Retry: r, OnAttempt: onAttempt}, nil
	}
	build, ok := builders[kind]
	if !ok {
		return nil, fmt.Errorf("destination %s: unknown type %q (%s)", id, kind, strings.Join(DestinationTypes, ", "))
	}
	if err := need("url", e.URL); err != nil {
		return nil, err
	}
	switch kind {
	case "pagerduty":
		if err := need("token (the routing key)", e.Token); err != nil {
			return nil, err
		}
	case "opsgenie", "splunk":
		if err := need("token", e.Token); err != nil {
			return nil, err
		}
	case "jira":
		for _, req := range [][2]string{{"username (the account email)", e.Username}, {"token (an API token)", e.Token}, {"project", e.Project}} {
			if err := need(req[0], req[1]); err != nil {
				return nil, err
			}
		}
	case "github":
		if err := need("token", e.Token); err != nil {
			return nil, err
		}
		if !strings.Contains(e.Repository, "/") {
			return nil, fmt.Errorf("destination %s: type github needs repository as owner/name", id)
		}
	}
	return &HTTPDestination{Name: id, Kind: kind, Filter: f, Retry: r, Client: client, OnAttempt: onAttempt, Build: build(e)}, nil
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
		Description("Input: matches from caracal.matches (and SYSTEM_ERROR alerts from caracal.system_errors, passed through). The first match of a (rule, dedup string) opens an alert once the rule's Threshold is reached within its window; matches within DedupPeriodMinutes of the alert's creation attach to it without a new alert. Each new alert becomes a message (Panther custom-webhook fields), routed to caracal.alerts and keyed by alert id. Every match also goes on to caracal.rule_matches (keyed by rule id, for the lake's rule_matches table) with the alert it opened or joined: `p_alert_id`, `p_alert_creation_time`, `p_alert_update_time`, `p_alert_severity` (none below the rule's Threshold or while its alerts are suppressed). More than `storm_limit` alerts an hour from one rule suppresses that rule's alerts and raises one SYSTEM_ERROR. A record that cannot be read is skipped rather than refused (refusing would stop the stage on it): it is logged with its topic, partition and offset, counted in `caracal_alert_skipped_records`, and raised as a SYSTEM_ERROR at most once an hour.").
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
			return &processor{state: NewState(limit), now: time.Now, brokers: settings.From(res).Brokers, log: res.Logger(),
				skips: Skips{Key: "alert-skipped-records", Stage: "Alerting", Log: res.Logger(),
					Counter: metrics.Zero(res.Metrics().NewCounter("alert_skipped_records"))}}, nil
		})

	service.MustRegisterBatchOutput("caracal_notify", service.NewConfigSpec().
		Categories("Services").
		Summary("Delivers alerts to the destinations in the root config (caracal.destinations) and to the log.").
		Description("Every alert is logged. It then goes to each destination whose filters accept it; a rule's OutputIds, when set, send it to those destinations instead, whatever their filters, with retries and backoff; CARACAL_ALERT_WEBHOOK_URL adds a webhook destination `env-webhook`. The batch is acknowledged only when every accepting destination took it.").
		Fields(service.NewOutputMaxInFlightField().Default(8)),
		func(conf *service.ParsedConfig, res *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			var pol service.BatchPolicy
			mif, err := conf.FieldMaxInFlight()
			if err != nil {
				return nil, pol, 0, err
			}
			st := settings.From(res)
			n := &notifier{log: res.Logger()}
			if st.AtStop != nil {
				st.AtStop(n.undelivered)
			}
			if len(st.Brokers) > 0 {
				if n.records, err = kafka.NewProducer(kafka.ProducerConfig{Brokers: st.Brokers, ClientID: "caracal-notify"}); err != nil {
					return nil, pol, 0, err
				}
			}
			logged := logAttempt(res.Logger())
			onAttempt := func(a Attempt) {
				logged(a)
				n.recordAttempt(a)
			}
			if n.dests, err = Destinations(st, onAttempt); err != nil {
				return nil, pol, 0, err
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
	skips      Skips
	swept      time.Time // when the state was last swept (State.Sweep)
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
	// A worker killed mid-transaction leaves it open until the broker
	// aborts it; waiting that long sees what other workers committed after.
	const settle = kafka.TransactionTimeout + 10*time.Second
	settled, err := kafka.ReadCompacted(ctx, p.brokers, envelope.TopicAlertState, settle, func(key, value []byte) {
		records++
		if err := fresh.Restore(string(key), value); err != nil && bad == nil {
			bad = err
		}
	})
	if err != nil {
		return fmt.Errorf("restoring alert state from %s: %w", envelope.TopicAlertState, err)
	}
	if !settled {
		p.log.Warnf("Alert state: %s still had an open transaction after %v; restored the records committed before it (see docs/operations.md on hanging transactions)", envelope.TopicAlertState, settle)
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
			err := json.Unmarshal(raw, &a)
			if err == nil && (a.AlertID == "" || a.Type == "") {
				err = errors.New("no alertId or type: not a system error record")
			}
			if err != nil {
				if err := p.skip(m, fmt.Errorf("system error record: %w", err), emit); err != nil {
					return nil, err
				}
				continue
			}
			if err := emit(m, &a); err != nil {
				return nil, err
			}
			continue
		}
		match, err := envelope.DecodeObject(raw)
		if rule, _ := match[envelope.FieldRuleID].(string); err == nil && rule == "" {
			// Not from the detect stage (a record produced to the wrong
			// topic): an alert of no rule would reach the destinations.
			err = errors.New("no " + envelope.FieldRuleID)
		}
		if err != nil {
			if err := p.skip(m, fmt.Errorf("match: %w", err), emit); err != nil {
				return nil, err
			}
			continue
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
		stored := m.Copy()
		stored.SetBytes(withAlert(raw, cmp.Or(o.Alert, o.Attached)))
		stored.MetaSetMut(envelope.MetaTopic, envelope.TopicRuleMatches)
		stored.MetaSetMut(envelope.MetaKey, str(match, envelope.FieldRuleID))
		out = append(out, stored)
	}
	if now := p.now(); now.Sub(p.swept) >= time.Minute {
		p.state.Sweep(now)
		p.swept = now
	}
	// The state changes go out with the alerts, in the same transaction
	// (a deleted group as a tombstone: a message without bytes).
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

// withAlert is a match as the lake stores it: with the alert it opened or
// joined, if any (none below a rule's Threshold or while its alerts are
// suppressed), so that an alert's matches are found by its id.
func withAlert(match []byte, a *envelope.Alert) []byte {
	if a == nil {
		return match
	}
	// An object DecodeObject read: its closing brace goes after the fields.
	body := bytes.TrimRight(match, " \t\r\n")
	body = bytes.TrimRight(body[:len(body)-1], " \t\r\n")
	out := make([]byte, 0, len(body)+200)
	out = append(out, body...)
	for _, f := range [...][2]string{
		{envelope.FieldAlertID, a.AlertID},
		{envelope.FieldAlertCreationTime, a.CreatedAt},
		{envelope.FieldAlertUpdateTime, a.UpdatedAt},
		{envelope.FieldAlertSeverity, a.Severity},
	} {
		if out[len(out)-1] != '{' {
			out = append(out, ',')
		}
		out = envelope.AppendString(out, f[0])
		out = append(out, ':')
		out = envelope.AppendString(out, f[1])
	}
	return append(out, '}')
}

// skip deals with a record the stage cannot read (see Skips): logged,
// counted, and now and then raised as a SYSTEM_ERROR through emit.
func (p *processor) skip(m *service.Message, err error, emit func(*service.Message, *envelope.Alert) error) error {
	if a := p.skips.Skip(p.now(), m, err); a != nil {
		return emit(m, a)
	}
	return nil
}

func (p *processor) Close(context.Context) error { return nil }

type notifier struct {
	log   *service.Logger
	dests []Destination
	now   func() time.Time
	// records, when set, receives one record per delivery attempt on
	// caracal.alert_deliveries (the lake's alert_deliveries table).
	records  *kafka.Producer
	attempts []Attempt

	mu     sync.Mutex
	raised map[string]time.Time // destination → last SYSTEM_ERROR about it

	sent sentSet
	// delivering holds the deliveries under way, and those a stop cut
	// short, as "alert <id> to <destination>" (see undelivered).
	delivering map[string]bool
}

// sentSet remembers which destination took which alert in this process. An
// alert reaches the notifier again when its transaction aborts after the
// delivery (a broker restart, a rebalance, the Kafka output refusing the
// batch): the replay must commit it to caracal.alerts, and must not post it
// to Slack a second time. A crash forgets the set; then the replay re-sends,
// with the same alertId. Bounded: two generations of at most sentGeneration
// keys.
type sentSet struct {
	mu        sync.Mutex
	cur, prev map[string]struct{}
}

const sentGeneration = 50_000

func sentKey(a *envelope.Alert, d Destination) string { return a.AlertID + "\x00" + d.ID() }

func (s *sentSet) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, in := s.cur[key]
	if !in {
		_, in = s.prev[key]
	}
	return in
}

func (s *sentSet) add(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || len(s.cur) >= sentGeneration {
		s.prev, s.cur = s.cur, make(map[string]struct{})
	}
	s.cur[key] = struct{}{}
}

// destinationFailed raises a SYSTEM_ERROR about a destination that gave up
// on an alert, on the other destinations.
func (n *notifier) destinationFailed(ctx context.Context, failed Destination, a *envelope.Alert, cause error) {
	title := fmt.Sprintf("Alert destination %s is failing: alert %s (%s) was not delivered: %v", failed.ID(), a.AlertID, a.ID, cause)
	n.raise(ctx, "destination:"+failed.ID(), title, failed.ID())
}

// unrouted raises a SYSTEM_ERROR about a rule whose OutputIds name no
// destination there is (a typo, or one removed from the config): its
// alerts reach the log and the lake, and nobody's tools.
func (n *notifier) unrouted(ctx context.Context, a *envelope.Alert) {
	ids := make([]string, 0, len(n.dests))
	for _, d := range n.dests {
		ids = append(ids, d.ID())
	}
	title := fmt.Sprintf("Rule %s sends its alerts to OutputIds %s, and no destination has those ids (destinations: %s): alert %s was delivered nowhere",
		a.ID, strings.Join(a.OutputIDs, ", "), strings.Join(ids, ", "), a.AlertID)
	n.log.Errorf("%s", title)
	n.raise(ctx, "unrouted:"+a.ID, title, "")
}

// raise sends a SYSTEM_ERROR to every destination that accepts it but
// skip, at most once an hour per key (best effort: their errors are only
// logged).
func (n *notifier) raise(ctx context.Context, key, title, skip string) {
	now := time.Now()
	if n.now != nil {
		now = n.now()
	}
	n.mu.Lock()
	if n.raised == nil {
		n.raised = map[string]time.Time{}
	}
	last, seen := n.raised[key]
	if seen && now.Sub(last) < time.Hour {
		n.mu.Unlock()
		return
	}
	n.raised[key] = now
	n.mu.Unlock()
	se := SystemError(key+":"+envelope.FormatTime(now.Truncate(time.Hour)), title, "High", now)
	for _, d := range n.dests {
		if d.ID() == skip || !d.Accepts(se) {
			continue
		}
		if err := d.Deliver(ctx, se); err != nil {
			n.log.Errorf("System error %s not delivered to %s: %v", key, d.ID(), err)
		}
	}
}

func (n *notifier) Connect(context.Context) error { return nil }

func (n *notifier) recordAttempt(a Attempt) {
	n.mu.Lock()
	n.attempts = append(n.attempts, a)
	n.mu.Unlock()
}

// flushAttempts writes the attempt records gathered so far. They are a
// record of what happened, not part of the alert's delivery: a failure to
// write them is logged, and does not fail the batch.
func (n *notifier) flushAttempts(ctx context.Context) {
	n.mu.Lock()
	attempts := n.attempts
	n.attempts = nil
	n.mu.Unlock()
	if n.records == nil || len(attempts) == 0 {
		return
	}
	recs := make([]*kgo.Record, 0, len(attempts))
	for _, a := range attempts {
		b, err := json.Marshal(a)
		if err != nil {
			continue
		}
		recs = append(recs, &kgo.Record{Topic: envelope.TopicDeliveries, Key: []byte(a.AlertID), Value: b})
	}
	if err := n.records.Produce(ctx, recs); err != nil {
		n.log.Warnf("Alert delivery records not written to %s: %v", envelope.TopicDeliveries, err)
	}
}

func (n *notifier) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	defer n.flushAttempts(ctx)
	for _, m := range batch {
		if topic, _ := m.MetaGet(envelope.MetaTopic); topic == envelope.TopicAlertState || topic == envelope.TopicRuleMatches {
			continue // the stage's own state, or a match for the lake
		}
		raw, err := m.AsBytes()
		if err != nil {
			return err
		}
		var a envelope.Alert
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("alert record: %w", err)
		}
		if err := n.deliver(ctx, &a); err != nil {
			return err
		}
	}
	return nil
}

// deliver logs the alert and hands it to every destination that takes it
// and has not taken it already (see sentSet).
func (n *notifier) deliver(ctx context.Context, a *envelope.Alert) error {
	var to []Destination
	for _, d := range n.dests {
		if takes(a, d) && !n.sent.has(sentKey(a, d)) {
			to = append(to, d)
		}
	}
	if len(to) == 0 && n.sent.has(a.AlertID) {
		n.log.Debugf("Alert %s came again (its transaction was replayed); every destination has it already", a.AlertID)
		return nil
	}
	n.sent.add(a.AlertID)
	n.log.Infof("ALERT %s [%s] %s: %s (alert %s, %d event(s))", a.Type, a.Severity, a.ID, a.Title, a.AlertID, a.EventCount)
	if !n.routable(a) {
		n.unrouted(ctx, a)
	}
	for _, d := range to {
		what := "alert " + a.AlertID + " to " + d.ID()
		n.track(what, true)
		if err := d.Deliver(ctx, a); err != nil {
			if ctx.Err() != nil {
				return err // stopping: the batch is redelivered after restart (still tracked: undelivered)
			}
			n.track(what, false)
			// One broken destination must not hold up the others: the
			// alert stays in caracal.alerts and the lake, and the
			// failure is raised on the other destinations.
			n.log.Errorf("Alert %s not delivered to %s: %v", a.AlertID, d.ID(), err)
			n.destinationFailed(ctx, d, a, err)
			continue
		}
		n.track(what, false)
		n.sent.add(sentKey(a, d))
	}
	return nil
}

// track marks a delivery under way, or ended.
func (n *notifier) track(what string, underWay bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.delivering == nil {
		n.delivering = map[string]bool{}
	}
	if underWay {
		n.delivering[what] = true
	} else {
		delete(n.delivering, what)
	}
}

// undelivered says, once the process stopped, which deliveries it left:
// under way, or cut short by the stop (settings.AtStop).
func (n *notifier) undelivered() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.delivering) == 0 {
		return ""
	}
	left := slices.Sorted(maps.Keys(n.delivering))
	return "delivery of " + strings.Join(left, ", ") + " not finished; its transaction was not committed, so the next start delivers it"
}

// EnvWebhookID is the id of the webhook destination that
// CARACAL_ALERT_WEBHOOK_URL adds.
const EnvWebhookID = "env-webhook"

// routable reports whether some destination may take the alert by its
// rule's OutputIds (its own filters aside).
func (n *notifier) routable(a *envelope.Alert) bool {
	for _, d := range n.dests {
		if outputAllowed(a, d.ID()) {
			return true
		}
	}
	return len(n.dests) == 0 // no destinations at all: the log is the output
}

// outputAllowed applies a rule's OutputIds: when set, only those
// destinations get the rule's alerts.
func outputAllowed(a *envelope.Alert, dest string) bool {
	return !routedByOutputIDs(a) || slices.Contains(a.OutputIDs, dest)
}

// routedByOutputIDs: the alert's rule names its destinations (a
// SYSTEM_ERROR goes wherever the filters let it).
func routedByOutputIDs(a *envelope.Alert) bool {
	return len(a.OutputIDs) > 0 && a.Type != envelope.TypeSystemError
}

// takes reports whether destination d gets alert a. A rule's OutputIds
// name its destinations outright, whatever their severity, log type, tag
// and rule filters: as in Panther, a detection's destination overrides
// come before the destinations' own routing, and a destination named on
// purpose must not drop the alert silently. Other alerts go where the
// filters let them.
func takes(a *envelope.Alert, d Destination) bool {
	if routedByOutputIDs(a) {
		return outputAllowed(a, d.ID())
	}
	return d.Accepts(a)
}

func (n *notifier) Close(ctx context.Context) error {
	if n.records != nil {
		return n.records.Close(ctx)
	}
	return nil
}

// checkURL refuses a destination URL no delivery could use ("notaurl",
// "htp://..."), which otherwise passed lint and the start and failed every
// alert. The URL itself is not quoted: a Slack or Teams webhook URL is a
// secret.
func checkURL(kind, raw string) error {
	if raw == "" {
		return nil // "needs url" says it
	}
	schemes := []string{"http", "https"}
	if kind == "email" {
		schemes = []string{"smtp", "smtps"}
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case !slices.Contains(schemes, u.Scheme):
		return fmt.Errorf("scheme %q: give an absolute %s URL", u.Scheme, strings.Join(schemes, " or "))
	case u.Host == "":
		return fmt.Errorf("no host: give an absolute %s URL", strings.Join(schemes, " or "))
	}
	return nil
}
