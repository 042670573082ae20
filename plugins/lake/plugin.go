package lake

import (
	"context"
	"fmt"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/claim"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/lograte"
	"github.com/caracal-sec/caracal/plugins/metrics"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
	"github.com/caracal-sec/caracal/plugins/settings"
)

func outputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Categories("Services").
		Summary("Writes events, classification failures, matches and alerts to the Parquet lake.").
		Description("Messages come from the caracal.* topics (their `kafka_topic`, `kafka_partition` and `kafka_offset` metadata say where). Rows are gathered into rolls (by size or age, and written at once when the process stops); a roll is written as one Parquet file (zstd) per table, hour and source partition under `<lake>/<table>/year=YYYY/month=MM/day=DD/hour=HH/`, named by the topic, partition and first offset of its rows, and only then acknowledged, so the consumer commits offsets after the data is durable and a replay overwrites the same files. When the storage refuses a write (a full disk, object storage out of reach), the same files are written again with backoff (1 s doubling to 10 s) until it accepts them; the stage consumes nothing new meanwhile. At most one full roll waits behind the one being written; further batches wait to be taken, so slow storage slows the consumer instead of filling the memory. Log tables' columns follow their schema plus the p_* fields. A record that fits no table (not JSON, a log type without a schema, an unreadable time) is logged and kept in classification_failures with its bytes and the reason, partitioned by the time the broker received it.").
		Fields(
			service.NewStringField("url").
				Description("Lake location: a directory or s3://bucket/prefix. Empty: the root config's caracal.lake_url.").
				Default("").Example("s3://security-lake/caracal"),
			service.NewStringField("schemas_dir").
				Description("Log schemas (columns of the log tables). Empty: the root config's caracal.schemas_dir.").
				Default(""),
			service.NewIntField("row_group_rows").
				Description("Rows per Parquet row group (also what a file buffers uncompressed).").Default(32768).Advanced(),
			service.NewIntField("roll_bytes").
				Description("Roll (write) the pending files once this much input is gathered.").
				Default(DefaultRollBytes),
			service.NewDurationField("roll_period").
				Description("Roll the pending files at the latest this long after their first row. Pending rows are also written when the process stops.").
				Default("5m").Example("1m"),
			service.NewIntField("max_open_files").
				Description("Files a roll holds open at most; a roll that would open more is written and the rest of its rows go to the next. Each open file takes about 5 KiB per column before its first row (370 KiB for CloudTrail's 75 columns), and a backfill of old events spans a file per table, hour and partition: the bound keeps its memory in check, at the cost of smaller files.").
				Default(DefaultMaxOpenFiles).Advanced().
				LintRule(`root = if this < 1 { ["max_open_files must be at least 1 (default 128)"] }`),
			service.NewOutputMaxInFlightField().
				Description("Input batches gathered into one roll at once; each waits until its roll is written.").
				Default(4096).Advanced(),
		)
}

func init() {
	service.MustRegisterBatchOutput("caracal_lake", outputSpec(), newOutput)
}

func newOutput(conf *service.ParsedConfig, res *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
	var pol service.BatchPolicy
	st := settings.From(res)
	url, err := conf.FieldString("url")
	if err != nil {
		return nil, pol, 0, err
	}
	if url == "" {
		url = st.LakeURL
	}
	dir, err := conf.FieldString("schemas_dir")
	if err != nil {
		return nil, pol, 0, err
	}
	if dir == "" {
		dir = st.SchemasDir
	}
	rg, err := conf.FieldInt("row_group_rows")
	if err != nil {
		return nil, pol, 0, err
	}
	rollBytes, err := conf.FieldInt("roll_bytes")
	if err != nil {
		return nil, pol, 0, err
	}
	rollPeriod, err := conf.FieldDuration("roll_period")
	if err != nil {
		return nil, pol, 0, err
	}
	maxFiles, err := conf.FieldInt("max_open_files")
	if err != nil {
		return nil, pol, 0, err
	}
	if maxFiles < 1 {
		return nil, pol, 0, fmt.Errorf("max_open_files is %d: it must be at least 1 (default %d)", maxFiles, DefaultMaxOpenFiles)
	}
	mif, err := conf.FieldMaxInFlight()
	if err != nil {
		return nil, pol, 0, err
	}
	schemas, err := schema.LoadDir(dir)
	if err != nil {
		return nil, pol, 0, err
	}
	tables, err := NewTables(schemas)
	if err != nil {
		return nil, pol, 0, err
	}
	store, err := OpenStorage(url)
	if err != nil {
		return nil, pol, 0, err
	}
	log := res.Logger()
	var logged lograte.Limiter
	w := &Writer{Tables: tables, Storage: store, RowGroupRows: int64(rg), MaxOpenFiles: maxFiles, OnError: func(r *Record, err error) {
		if ok, note := logged.Allow(time.Now()); ok {
			log.Errorf("Lake: row from %s/%d@%d not written: %v%s", r.Topic, r.Partition, r.Offset, err, note)
		}
	}}
	log.Infof("Lake at %s (files roll at %d bytes, %d open files or %s)", store.URL(), rollBytes, maxFiles, rollPeriod)
	r := NewRoller(w, rollBytes, rollPeriod, st.Draining)
	refused := metrics.Zero(res.Metrics().NewCounter("lake_store_retries"))
	r.OnRetry = func(err error, attempt int, wait time.Duration) {
		refused.Incr(1)
		log.Errorf("Lake: could not store files (attempt %d), trying again in %s; the lake stage waits, nothing is dropped: %v", attempt, wait, err)
	}
	uncommitted := metrics.Zero(res.Metrics().NewCounter("lake_uncommitted_stores"))
	r.OnCommitWait = func(partitions int) {
		uncommitted.Incr(1)
		log.Warnf("Lake: storing a roll though the one before it is not yet committed on %d partition(s) after %s (is the broker reachable?); a crash now could keep some rows twice, never lose them", partitions, r.CommitPatience)
	}
	if st.AtStop != nil {
		st.AtStop(func() string {
			if what := r.Unstored(); what != "" {
				return "the lake holds " + what + "; its events were not acknowledged and are read again from the broker at the next start"
			}
			return ""
		})
	}
	return &output{r: r}, pol, mif, nil
}

type output struct {
	r *Roller
}

// Connect writes a small object (ProbeKey) to find out at start, rather
// than at the first roll minutes later, that the lake cannot be written
// (wrong credentials, no such bucket, a full disk). Benthos tries again
// with backoff and /ready says not ready meanwhile.
func (o *output) Connect(ctx context.Context) error { return Probe(ctx, o.r.w.Storage) }

func (o *output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	recs := make([]*Record, 0, len(batch))
	size := 0
	for _, m := range batch {
		raw, err := m.AsBytes()
		if err != nil {
			return err
		}
		size += len(raw)
		r := &Record{Raw: raw, Turn: claim.From(m.Context())} // decoded as it is encoded (Batch.Add)
		r.Topic, _ = m.MetaGet(envelope.MetaKafkaTopic)
		if p, ok := envelope.MetaInt(m, envelope.MetaKafkaPartition); ok {
			r.Partition = int32(p)
		}
		r.Offset, _ = envelope.MetaInt(m, envelope.MetaKafkaOffset)
		if ns, ok := envelope.MetaInt(m, envelope.MetaKafkaTimestamp); ok {
			r.Time = time.Unix(0, ns)
		}
		recs = append(recs, r)
	}
	return o.r.Add(ctx, recs, size)
}

func (o *output) Close(ctx context.Context) error { return o.r.Close(ctx) }
