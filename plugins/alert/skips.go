package alert

import (
	"fmt"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/lograte"
)

// Skips counts the records a stage skips because it cannot read them.
// Refusing such a record would stop the stage on it for good (a refused
// batch comes again), so it is skipped, and reported as a SYSTEM_ERROR at
// most once an hour, with how many were skipped since the last report.
type Skips struct {
	Key     string                 // the SYSTEM_ERROR's dedup key
	Stage   string                 // who skipped, for the title: "Detection"
	Log     *service.Logger        // skips are logged, when set (lograte: 10 a minute)
	Counter *service.MetricCounter // and counted

	mu         sync.Mutex
	reportedAt time.Time
	unreported int
	logged     lograte.Limiter
}

// Skip logs and counts the message m skipped at now for err, and returns
// the SYSTEM_ERROR to raise when a report is due.
func (s *Skips) Skip(now time.Time, m *service.Message, err error) *envelope.Alert {
	where := RecordAt(m.MetaGet)
	if s.Log != nil {
		if ok, note := s.logged.Allow(now); ok {
			s.Log.Errorf("%s skipped the record at %s, which it cannot read: %v%s", s.Stage, where, err, note)
		}
	}
	if s.Counter != nil {
		s.Counter.Incr(1)
	}
	return s.Add(now, where, err)
}

// Add counts a record skipped at now; where says which (topic/partition@
// offset). It returns the SYSTEM_ERROR to raise when a report is due.
func (s *Skips) Add(now time.Time, where string, err error) *envelope.Alert {
	s.mu.Lock()
	s.unreported++
	n := s.unreported
	due := s.reportedAt.IsZero() || now.Sub(s.reportedAt) >= time.Hour
	if due {
		s.reportedAt, s.unreported = now, 0
	}
	s.mu.Unlock()
	if !due {
		return nil
	}
	a := SystemError(s.Key, fmt.Sprintf("%s skipped %d records it could not read", s.Stage, n), "High", now)
	a.Description = fmt.Sprintf("%s skipped %d records since its last report: the last, at %s: %v", s.Stage, n, where, err)
	a.AlertContext = map[string]any{"skipped": n, "last_record": where, "error": err.Error()}
	return a
}

// RecordAt says where a record consumed from Kafka came from:
// topic/partition@offset.
func RecordAt(meta func(string) (string, bool)) string {
	topic, _ := meta(envelope.MetaKafkaTopic)
	part, _ := meta(envelope.MetaKafkaPartition)
	offset, _ := meta(envelope.MetaKafkaOffset)
	return fmt.Sprintf("%s/%s@%s", topic, part, offset)
}
