package main

import (
	"context"
	"testing"
)

// The default tracer starts spans without allocating, and they record
// nothing.
func TestQuietTracerAllocatesNothing(t *testing.T) {
	tr := quietProvider{}.Tracer("benthos")
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		got, span := tr.Start(ctx, "processor")
		span.End()
		if got != ctx {
			t.Fatal("the context changed")
		}
	})
	if allocs != 0 {
		t.Fatalf("Start allocated %v times", allocs)
	}
	if _, span := tr.Start(ctx, "output"); span.IsRecording() || span.SpanContext().IsValid() {
		t.Fatal("the span records")
	}
}
