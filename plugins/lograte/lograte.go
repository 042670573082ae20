// Package lograte bounds how often a per-record log line is written: a
// stream of records a stage cannot read (another writer on its topic)
// would otherwise log one line each, thousands a second, and drown the
// logs it is meant to be found in. Counters and alerts still count every
// record; the log keeps the first lines of each minute and says how many
// it left out.
package lograte

import (
	"fmt"
	"sync"
	"time"
)

// PerMinute is how many lines a Limiter lets through each minute.
const PerMinute = 10

// Limiter lets through at most PerMinute lines a minute.
type Limiter struct {
	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

// Allow reports whether a line may be written at now and, when it may,
// returns what to append to it: how many lines were held back since the
// last one written ("" when none).
func (l *Limiter) Allow(now time.Time) (ok bool, note string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.start.IsZero() || now.Sub(l.start) >= time.Minute {
		l.start, l.n = now, 0
	}
	if l.n >= PerMinute {
		l.suppressed++
		return false, ""
	}
	l.n++
	if l.suppressed > 0 {
		note = fmt.Sprintf(" (and %d more like it not logged: at most %d a minute)", l.suppressed, PerMinute)
		l.suppressed = 0
	}
	return true, note
}
