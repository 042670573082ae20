package systest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// CloudTrailJSON writes what marshalling CloudTrailEvent's map writes,
// drawing the same values from the same random source.
func TestCloudTrailJSONIsMarshalledCloudTrailEvent(t *testing.T) {
	viaMap, viaTemplate := rand.New(rand.NewPCG(7, 42)), rand.New(rand.NewPCG(7, 42))
	var enc CloudTrailJSON
	at := time.Date(2026, 11, 30, 23, 59, 58, 123456789, time.UTC)
	seen := map[string]bool{}
	for i := range 2000 {
		id, ip := fmt.Sprintf("bench-%d", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
		want, err := json.Marshal(CloudTrailEvent(viaMap, id, ip, at))
		if err != nil {
			t.Fatal(err)
		}
		got := enc.Append(nil, viaTemplate, id, ip, at)
		if string(got) != string(want) {
			t.Fatalf("event %d:\n got %s\nwant %s", i, got, want)
		}
		var ev map[string]any
		if err := json.Unmarshal(got, &ev); err != nil {
			t.Fatal(err)
		}
		seen[ev["eventName"].(string)+"/"+ev["userIdentity"].(map[string]any)["userName"].(string)] = true
		at = at.Add(time.Second)
	}
	if len(seen) != len(cloudTrailUsers)*len(cloudTrailNames) {
		t.Fatalf("%d of %d user and call pairs drawn", len(seen), len(cloudTrailUsers)*len(cloudTrailNames))
	}
}

func BenchmarkCloudTrailJSON(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	at := time.Now().UTC()
	b.Run("template", func(b *testing.B) {
		var enc CloudTrailJSON
		var buf []byte
		for b.Loop() {
			buf = enc.Append(buf[:0], rng, "bench-123456", "10.1.2.3", at)
		}
	})
	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(CloudTrailEvent(rng, "bench-123456", "10.1.2.3", at)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
