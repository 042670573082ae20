package kafka

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// unstableRetryMsg is what franz-go logs (at info) each second it retries
// fetching a group's offsets that a pending transaction holds.
const unstableRetryMsg = "fetch offsets failed with retryable partition error, waiting 1s and retrying"

// stallWatch makes a hanging transaction visible. A transactional stage
// reads its group's offsets only once no transaction is pending on them
// (UNSTABLE_OFFSET_COMMIT otherwise), and franz-go retries that every second
// without end and without an error: a live transaction ends within the
// transaction timeout, but one its coordinator lost (seen with Kafka 4 after
// a broker restart) never does, and the stage then consumes nothing from
// that partition, silently.
//
// While such a wait lasts, stallWatch looks for hanging transactions when
// it begins and every probeEvery (probe). AbortHanging judges them by what
// the broker says: a producer fenced since (the stage restarted), or no
// write for HangingAfter. So a hang ends at the restart after it, or
// HangingAfter after its last write, even when each process of the stage
// lives shorter than that (make chaos once held detect for 4 minutes: each
// restart began its own wait anew). Past HangingAfter of its own wait,
// stallWatch reports it (again every HangingAfter while it lasts), and the
// consumer then aborts the hanging transactions it finds and says so.
type stallWatch struct {
	report func(string)
	probe  func()
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]*stall
}

type stall struct {
	first, last, probed time.Time
}

// probeEvery is how often a continuing wait looks for hanging transactions.
const probeEvery = 15 * time.Second

func newStallWatch(report func(string), probe func()) *stallWatch {
	return &stallWatch{report: report, probe: probe, now: time.Now, seen: map[string]*stall{}}
}

func (w *stallWatch) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (w *stallWatch) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	if msg != unstableRetryMsg {
		return
	}
	var group, topic string
	var partition int32
	var err error
	for i := 0; i+1 < len(keyvals); i += 2 {
		switch keyvals[i] {
		case "group":
			group, _ = keyvals[i+1].(string)
		case "topic":
			topic, _ = keyvals[i+1].(string)
		case "partition":
			partition, _ = keyvals[i+1].(int32)
		case "err":
			err, _ = keyvals[i+1].(error)
		}
	}
	if !errors.Is(err, kerr.UnstableOffsetCommit) {
		return
	}
	key := fmt.Sprintf("%s/%d", topic, partition)
	now := w.now()
	w.mu.Lock()
	s := w.seen[key]
	if s == nil || now.Sub(s.last) > 10*time.Second { // a new wait
		s = &stall{first: now}
		w.seen[key] = s
	}
	s.last = now
	waited := now.Sub(s.first)
	due := waited >= HangingAfter
	if due {
		s.first = now
	}
	probe := !due && (s.probed.IsZero() || now.Sub(s.probed) >= probeEvery)
	if probe || due {
		s.probed = now
	}
	w.mu.Unlock()
	if probe {
		w.probe()
	}
	if due {
		w.report(fmt.Sprintf("Consumer group %s: the offsets of %s have waited %s for a pending transaction, longer than any live one lasts: "+
			"a hanging transaction holds them and the stage consumes nothing until it is aborted; aborting the hanging transactions found "+
			"(as kafka-transactions.sh find-hanging and abort would; see docs/operations.md)", group, key, waited.Round(time.Second)))
	}
}
