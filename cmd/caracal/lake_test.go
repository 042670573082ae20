package main

import (
	"testing"
	"time"
)

// Time flags of search and replay: durations ago (days too, as the
// README's `--since 7d`), dates and RFC 3339 times.
func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"24h":                  now.Add(-24 * time.Hour),
		"7d":                   now.Add(-7 * 24 * time.Hour),
		"1d12h":                now.Add(-36 * time.Hour),
		"2026-11-20":           time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC),
		"2026-11-20T10:30":     time.Date(2026, 11, 20, 10, 30, 0, 0, time.UTC),
		"2026-11-20T10:30:00Z": time.Date(2026, 11, 20, 10, 30, 0, 0, time.UTC),
		"":                     {},
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"7days", "d", "1.5d", "yesterday", "3x"} {
		if got, err := parseWhen(bad, now); err == nil {
			t.Errorf("parseWhen(%q) = %v, want an error", bad, got)
		}
	}
}
