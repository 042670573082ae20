package kafka

import (
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// A message without bytes is produced as a null value: a tombstone, which
// compaction uses to delete the key (the alert stage deletes idle dedup
// groups from caracal.alert_state so).
func TestEmptyMessageIsATombstone(t *testing.T) {
	o := &output{}
	for _, tc := range []struct {
		body []byte
		null bool
	}{{nil, true}, {[]byte{}, true}, {[]byte(`{}`), false}} {
		m := service.NewMessage(tc.body)
		m.MetaSetMut(envelope.MetaTopic, envelope.TopicAlertState)
		r, err := o.record(service.MessageBatch{m}, 0, m)
		if err != nil {
			t.Fatal(err)
		}
		if (r.Value == nil) != tc.null {
			t.Errorf("body %q → value %q, want null %v", tc.body, r.Value, tc.null)
		}
	}
}
