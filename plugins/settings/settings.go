// Package settings is the `caracal:` section of the root config (config.yaml):
// where the broker is, where the lake is, topic defaults and the alert
// destinations. The `caracal run` command parses it once and shares it with
// every stream through the Benthos manager, so plugins read one value
// instead of repeating cluster addresses in every pipeline file.
package settings

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// Root config field names.
const (
	Section              = "caracal"
	fieldBrokers         = "brokers"
	fieldDataDir         = "data_dir"
	fieldLakeURL         = "lake_url"
	fieldPartitions      = "topic_partitions"
	fieldReplication     = "topic_replication_factor"
	fieldRetention       = "topic_retention"
	FieldDestinations    = "destinations"
	fieldAlertWebhookURL = "alert_webhook_url"
	fieldAlertStormLimit = "alert_storm_limit"
	fieldRulesDir        = "rules_dir"
	fieldSchemasDir      = "schemas_dir"
	fieldLookupsDir      = "lookups_dir"
	defaultDataDir       = "./data"
	defaultPartitions    = 6
	defaultStormLimit    = 1000
	envBrokers           = "CARACAL_BROKERS"
	envLakeURL           = "CARACAL_LAKE_URL"
	envAlertWebhookURL   = "CARACAL_ALERT_WEBHOOK_URL"
	envDataDir           = "CARACAL_DATA_DIR"
)

// Settings are the resolved values of the `caracal:` section.
type Settings struct {
	// Brokers are the seed brokers of the cluster; when the config and
	// CARACAL_BROKERS leave them empty, `caracal run` starts the embedded
	// broker and fills them in (Embedded is then true).
	Brokers  []string
	Embedded bool
	// DataDir holds the embedded broker's log and the default lake.
	DataDir string
	// LakeURL is a local directory or s3://bucket/prefix.
	LakeURL string
	// Partitions and ReplicationFactor apply to topics Caracal creates.
	Partitions        int32
	ReplicationFactor int16
	// Retention of the topics Caracal creates (not the compacted state).
	Retention time.Duration
	// Destinations are the parsed `destinations` entries; the alert plugin
	// interprets them.
	Destinations []*service.ParsedConfig
	// AlertWebhookURL adds a webhook destination (CARACAL_ALERT_WEBHOOK_URL).
	AlertWebhookURL string
	AlertStormLimit int
	RulesDir        string
	SchemasDir      string
	LookupsDir      string
	// Draining is closed when the process was asked to stop (SIGTERM):
	// outputs that hold data back to batch it (the lake) write it out now
	// instead of waiting for their roll. Nil outside `caracal run`.
	Draining <-chan struct{}
	// AtStop registers a function that, once the process has stopped,
	// says what work its stage left undone ("" for none), such as the
	// lake's roll while object storage is out of reach: the process then
	// exits 1, not 0, so its supervisor and operator see the stop was not
	// clean. Asked after the stop rather than told during it, since a
	// stage still waiting at shutdown_timeout is not waited for. Nil
	// outside `caracal run`.
	AtStop func(left func() string)
}

// Fields returns the config fields of the `caracal:` section; destination
// are the fields of one destination entry (owned by the alert plugin).
func Fields(destination ...*service.ConfigField) []*service.ConfigField {
	fs := []*service.ConfigField{
		service.NewStringField(fieldBrokers).
			Description("Comma-separated seed brokers of a Redpanda or Kafka cluster. Empty: use CARACAL_BROKERS, and when that is empty too, run the embedded broker with its log under `data_dir`/broker.").
			Example("redpanda-0:9092,redpanda-1:9092").Default(""),
		service.NewStringField(fieldDataDir).
			Description("Directory for local state: the embedded broker's log (`broker/`), the default lake (`lake/`) and the group member ids every stage keeps across restarts, with the process, detect and alert stages' transactional ids (`transactional-ids/`, so a restart takes over a killed process's partitions at once and aborts its open transaction). Keep it on persistent storage. Left out: CARACAL_DATA_DIR, else `./data`.").
			Example("/var/lib/caracal").Optional(),
		service.NewStringField(fieldLakeURL).
			Description("Where the Parquet lake lives: a local directory or `s3://bucket/prefix`. Empty: CARACAL_LAKE_URL, else `data_dir`/lake.").
			Example("s3://security-lake/caracal").Default(""),
		service.NewIntField(fieldPartitions).
			Description("Partitions for topics Caracal creates when missing. Stages scale out up to this many consumers.").
			Default(defaultPartitions),
		service.NewIntField(fieldReplication).
			Description("Replication factor for topics Caracal creates; 0: 3 on a cluster of 3 or more brokers, else 1; -1 uses the broker's default (1 unless the cluster sets another).").
			Default(0),
		service.NewDurationField(fieldRetention).
			Description("Retention of the topics Caracal creates (the lake keeps the data for good; topics only need to cover replays and outages). 0 uses the broker's default.").
			Default("168h").Example("72h"),
		service.NewStringField(fieldAlertWebhookURL).
			Description("When set, alerts are also POSTed as JSON to this URL (a webhook destination named `env-webhook`). CARACAL_ALERT_WEBHOOK_URL sets it too. A secret (the URL may grant posting): `caracal echo` withholds it.").
			Example("https://hooks.example.com/caracal").Default("").Secret(),
		service.NewIntField(fieldAlertStormLimit).
			Description("Alerts per hour from one rule above which further alerts of that rule are suppressed (matches are still stored); 0 or less turns the suppression off.").
			Default(defaultStormLimit),
		service.NewStringField(fieldRulesDir).Description("Directory of detection rules (`**/*.yml`).").Default("./rules"),
		service.NewStringField(fieldSchemasDir).Description("Directory of log schemas in Panther's schema YAML.").Default("./schemas"),
		service.NewStringField(fieldLookupsDir).Description("Directory of lookup table definitions (`*.yml`).").Default("./lookups"),
	}
	if len(destination) > 0 {
		fs = append(fs, service.NewObjectListField(FieldDestinations, destination...).
			Description("Where alerts go. Each entry has a unique `id`, a `type` and filters; rules may name ids in `OutputIds`.").
			Default([]any{}))
	}
	return fs
}

// Parse reads the `caracal:` section (conf is the section itself).
func Parse(conf *service.ParsedConfig) (*Settings, error) {
	s := Default()
	var err error
	str := func(name string, into *string) {
		if err != nil || !conf.Contains(name) {
			return
		}
		var v string
		if v, err = conf.FieldString(name); err == nil && v != "" {
			*into = v
		}
	}
	var brokers, lake, hook string
	str(fieldBrokers, &brokers)
	str(fieldDataDir, &s.DataDir)
	str(fieldLakeURL, &lake)
	str(fieldAlertWebhookURL, &hook)
	str(fieldRulesDir, &s.RulesDir)
	str(fieldSchemasDir, &s.SchemasDir)
	str(fieldLookupsDir, &s.LookupsDir)
	if err != nil {
		return nil, err
	}
	if brokers != "" {
		s.Brokers = SplitList(brokers)
	}
	if lake != "" {
		s.LakeURL = lake
	} else if os.Getenv(envLakeURL) == "" {
		s.LakeURL = filepath.Join(s.DataDir, "lake")
	}
	if hook != "" {
		s.AlertWebhookURL = hook
	}
	if conf.Contains(fieldPartitions) {
		n, err := conf.FieldInt(fieldPartitions)
		if err != nil {
			return nil, err
		}
		s.Partitions = int32(n)
	}
	if conf.Contains(fieldReplication) {
		n, err := conf.FieldInt(fieldReplication)
		if err != nil {
			return nil, err
		}
		s.ReplicationFactor = int16(n)
	}
	if conf.Contains(fieldRetention) {
		if s.Retention, err = conf.FieldDuration(fieldRetention); err != nil {
			return nil, err
		}
	}
	if conf.Contains(fieldAlertStormLimit) {
		if s.AlertStormLimit, err = conf.FieldInt(fieldAlertStormLimit); err != nil {
			return nil, err
		}
	}
	if conf.Contains(FieldDestinations) {
		if s.Destinations, err = conf.FieldObjectList(FieldDestinations); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Default returns the settings implied by the environment alone.
func Default() *Settings {
	s := &Settings{
		DataDir:           defaultDataDir,
		Partitions:        defaultPartitions,
		ReplicationFactor: 0,
		Retention:         7 * 24 * time.Hour,
		AlertStormLimit:   defaultStormLimit,
		RulesDir:          "./rules",
		SchemasDir:        "./schemas",
		LookupsDir:        "./lookups",
		AlertWebhookURL:   os.Getenv(envAlertWebhookURL),
	}
	if d := os.Getenv(envDataDir); d != "" {
		s.DataDir = d
	}
	if b := os.Getenv(envBrokers); b != "" {
		s.Brokers = SplitList(b)
	}
	if l := os.Getenv(envLakeURL); l != "" {
		s.LakeURL = l
	} else {
		s.LakeURL = filepath.Join(s.DataDir, "lake")
	}
	return s
}

// SplitList splits a comma-separated list, dropping blanks.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

type key struct{}

// Put shares s with every stream of the process.
func Put(res *service.Resources, s *Settings) { res.SetGeneric(key{}, s) }

// From returns the shared settings, or those implied by the environment when
// none were put (a stream built outside `caracal run`, e.g. in a test).
func From(res *service.Resources) *Settings {
	if res != nil {
		if v, ok := res.GetGeneric(key{}); ok {
			return v.(*Settings)
		}
	}
	return Default()
}
