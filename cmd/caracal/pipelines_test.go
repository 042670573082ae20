package main

import (
	"os"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// Each shipped stage's input keeps the kafka_* metadata its plugins read
// (kafka_metadata narrows it, for speed): the process stage's row ids, the
// report of a record detection or alerting cannot read, the lake's file
// names and store times.
func TestShippedStagesKeepTheKafkaMetadataTheyRead(t *testing.T) {
	where := []string{envelope.MetaKafkaTopic, envelope.MetaKafkaPartition, envelope.MetaKafkaOffset}
	for stage, need := range map[string][]string{
		"process": {envelope.MetaKafkaPartition, envelope.MetaKafkaOffset},
		"detect":  where,
		"alert":   where,
		"lake":    append(where, envelope.MetaKafkaTimestamp),
	} {
		b, err := os.ReadFile("../../pipelines/" + stage + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		var conf struct {
			Input struct {
				Kafka *struct {
					Metadata *[]string `yaml:"kafka_metadata"`
				} `yaml:"caracal_kafka"`
			} `yaml:"input"`
		}
		if err := yaml.Unmarshal(b, &conf); err != nil || conf.Input.Kafka == nil {
			t.Fatalf("%s: no caracal_kafka input (%v)", stage, err)
		}
		if conf.Input.Kafka.Metadata == nil {
			continue // all of them
		}
		for _, k := range need {
			if !slices.Contains(*conf.Input.Kafka.Metadata, k) {
				t.Errorf("%s stage: kafka_metadata %q lacks %s, which it reads", stage, *conf.Input.Kafka.Metadata, k)
			}
		}
	}
}
