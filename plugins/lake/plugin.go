package lake

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
	"github.com/caracal-sec/caracal/plugins/settings"
)

func outputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Categories("Services").
		Summary("Writes events, classification failures, matches and alerts to the Parquet lake.").
		Description("Messages come from the caracal.* topics (their `kafka_topic`, `kafka_partition` and `kafka_offset` metadata say where). Each batch is written as one Parquet file (zstd) per table, hour and source partition under `<lake>/<table>/year=YYYY/month=MM/day=DD/hour=HH/`, named by the topic, partition and first offset of its rows, and only then acknowledged, so the consumer commits offsets after the data is durable and a replay overwrites the same files. Log tables' columns follow their schema plus the p_* fields. Files roll by the `batching` policy: by size or age, and on shutdown.").
		Fields(
			service.NewStringField("url").
				Description("Lake location: a directory or s3://bucket/prefix. Empty: the root config's caracal.lake_url.").
				Default("").Example("s3://security-lake/caracal"),
			service.NewStringField("schemas_dir").
				Description("Log schemas (columns of the log tables). Empty: the root config's caracal.schemas_dir.").
				Default(""),
			service.NewIntField("row_group_rows").
				Description("Rows per Parquet row group.").Default(131072).Advanced(),
			service.NewBatchPolicyField("batching").
				Description("When a file is rolled: by `byte_size` (default 128 MiB), `period` (default 5m) or `count`; pending rows are written on shutdown."),
			service.NewOutputMaxInFlightField().
				Description("Keep 1: batches must be written in order for replays to overwrite rather than duplicate.").
				Default(1).Advanced(),
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
	if pol, err = conf.FieldBatchPolicy("batching"); err != nil {
		return nil, pol, 0, err
	}
	if pol.IsNoop() {
		pol = service.BatchPolicy{ByteSize: 128 << 20, Period: "5m"}
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
	w := &Writer{Tables: tables, Storage: store, RowGroupRows: int64(rg), OnError: func(r *Record, err error) {
		log.Errorf("Lake: row from %s/%d@%d not written: %v", r.Topic, r.Partition, r.Offset, err)
	}}
	log.Infof("Lake at %s", store.URL())
	return &output{w: w}, pol, mif, nil
}

type output struct {
	w *Writer
}

func (o *output) Connect(context.Context) error { return nil }

func (o *output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	recs := make([]*Record, 0, len(batch))
	for _, m := range batch {
		raw, err := m.AsBytes()
		if err != nil {
			return err
		}
		v, err := envelope.DecodeObject(raw)
		if err != nil {
			return fmt.Errorf("lake: %w", err)
		}
		r := &Record{Value: v}
		r.Topic, _ = m.MetaGet(envelope.MetaKafkaTopic)
		if s, ok := m.MetaGet(envelope.MetaKafkaPartition); ok {
			p, _ := strconv.ParseInt(s, 10, 32)
			r.Partition = int32(p)
		}
		if s, ok := m.MetaGet(envelope.MetaKafkaOffset); ok {
			r.Offset, _ = strconv.ParseInt(s, 10, 64)
		}
		recs = append(recs, r)
	}
	return o.w.Write(ctx, recs)
}

func (o *output) Close(context.Context) error { return nil }
