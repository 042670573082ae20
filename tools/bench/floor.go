package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caracal-sec/caracal/tools/systest"
)

// floorPipelines are Caracal's stages with their work taken out: the same
// webhook input and Kafka plugins, topics, transactions and consumers
// (process raw → events; detect and lake each read every event) but no
// parse, enrich, detection or Parquet. Their cost per event is the part of
// `make bench`'s figure that the architecture itself sets.
func floorPipelines(dir, prefix string) error {
	files := map[string]string{
		"ingest.yaml": `input:
  caracal_http:
    address: ${CARACAL_HTTP_ADDRESS}
    sources:
      - {id: demo, label: Demo, path: demo, log_types: [], auth: {type: none}}
output:
  caracal_kafka:
    topic: ` + prefix + `.raw
`,
		"process.yaml": `input:
  caracal_kafka:
    topics: [` + prefix + `.raw]
    consumer_group: ` + prefix + `-process
    transactional: true
    kafka_metadata: [kafka_partition, kafka_offset]
output:
  caracal_kafka:
    topic: ` + prefix + `.events
    transaction_group: ` + prefix + `-process
    header_prefix: ""
`,
		"detect.yaml": `input:
  caracal_kafka:
    topics: [` + prefix + `.events]
    consumer_group: ` + prefix + `-detect
    transactional: true
    kafka_metadata: [kafka_topic, kafka_partition, kafka_offset]
output:
  drop: {}
`,
		"lake.yaml": `input:
  caracal_kafka:
    topics: [` + prefix + `.events]
    consumer_group: ` + prefix + `-lake
    max_in_flight: 500000
    commit_period: 100ms
    kafka_metadata: [kafka_topic, kafka_partition, kafka_offset, kafka_timestamp_unix_nano]
output:
  drop: {}
`,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// runFloor drives the floor pipelines with the same load as the full run
// and reports their events per CPU-second, waiting until the process is
// idle (the backlog drained) before reading its CPU time.
func runFloor(bin, work string, env []string, seconds int) (Result, error) {
	dir := filepath.Join(work, "floor")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Result{}, err
	}
	// Fresh topics and groups each run: a kept broker holds earlier runs'.
	if err := floorPipelines(dir, fmt.Sprintf("bench-floor-%d", time.Now().UnixNano())); err != nil {
		return Result{}, err
	}
	p, err := systest.Start(systest.Options{Bin: bin, DataDir: filepath.Join(work, "floor-data"), Env: env, WaitHTTP: true,
		Args: []string{"--pipelines", dir, "--stages", "ingest,process,detect,lake"}})
	if err != nil {
		return Result{}, err
	}
	defer p.Kill()
	return drive("floor", "http://"+p.HTTPAddr+"/http/demo", p.Pid(), seconds, nil, 0), nil
}
