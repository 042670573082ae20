package lograte

import (
	"strings"
	"testing"
	"time"
)

// Ten lines a minute pass; the rest are counted and the next line written
// says how many were left out.
func TestLimiter(t *testing.T) {
	var l Limiter
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	passed := 0
	for i := range 25 {
		if ok, note := l.Allow(now.Add(time.Duration(i) * time.Second)); ok {
			passed++
			if note != "" {
				t.Fatalf("line %d: note %q with nothing held back", i, note)
			}
		}
	}
	if passed != PerMinute {
		t.Fatalf("%d lines passed in 25 s, want %d", passed, PerMinute)
	}
	ok, note := l.Allow(now.Add(time.Minute))
	if !ok || !strings.Contains(note, "and 15 more like it not logged") {
		t.Fatalf("a minute later: %v %q, want the line with the 15 held back", ok, note)
	}
	if ok, note = l.Allow(now.Add(time.Minute + time.Second)); !ok || note != "" {
		t.Fatalf("the next line: %v %q", ok, note)
	}
}
