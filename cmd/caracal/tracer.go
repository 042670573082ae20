package main

import (
	"context"

	"github.com/redpanda-data/benthos/v4/public/service"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Benthos starts a tracing span for every message at every processor and
// output, even with the default `tracer: none`: OpenTelemetry's no-op
// tracer still wraps each message's context in a new one to hold its span,
// an allocation per message per step that a lake with half a million
// messages in flight also keeps alive for the collector to mark. Caracal's
// "none" (this package's init runs after Benthos's, so it replaces it)
// starts no span at all: the message keeps its context, whose span is
// already a non-recording one.
func init() {
	service.MustRegisterOtelTracerProvider("none", service.NewConfigSpec().
		Stable().
		Summary("Do not send tracing events anywhere.").
		Field(service.NewObjectField("").Default(map[string]any{})),
		func(*service.ParsedConfig) (trace.TracerProvider, error) { return quietProvider{}, nil })
}

type quietProvider struct{ noop.TracerProvider }

func (quietProvider) Tracer(string, ...trace.TracerOption) trace.Tracer { return quietTracer{} }

type quietTracer struct{ noop.Tracer }

// Start returns ctx as it is, and the span it already holds (none: a
// non-recording one).
func (quietTracer) Start(ctx context.Context, _ string, _ ...trace.SpanStartOption) (context.Context, trace.Span) {
	return ctx, trace.SpanFromContext(ctx)
}
