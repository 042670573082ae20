package parse

import (
	"fmt"

	"github.com/expr-lang/expr"

	"github.com/caracal-sec/caracal/plugins/exprs"
)

// Filter is an ingestion filter: for the events of a source (and log
// types), keep only those Include accepts and drop those Exclude accepts.
// Both are expr booleans over the normalized event, as rule conditions.
// Dropped events are counted, not stored: filters are for noise a team
// decided not to pay for (health checks, debug logs).
type Filter struct {
	Source   string   // source id; "" or "*": every source
	LogTypes []string // empty: every log type
	Include  string
	Exclude  string

	include, exclude *exprs.Program
}

// Compile checks and compiles the expressions.
func (f *Filter) Compile() error {
	var err error
	if f.Include != "" {
		if f.include, err = compileFilter(f.Include); err != nil {
			return fmt.Errorf("filter for source %q: include: %w", f.Source, err)
		}
	}
	if f.Exclude != "" {
		if f.exclude, err = compileFilter(f.Exclude); err != nil {
			return fmt.Errorf("filter for source %q: exclude: %w", f.Source, err)
		}
	}
	if f.include == nil && f.exclude == nil {
		return fmt.Errorf("filter for source %q: give include or exclude (an expr boolean over the event)", f.Source)
	}
	return nil
}

func compileFilter(src string) (*exprs.Program, error) {
	return exprs.Compile(src, nil, expr.AsBool(), expr.AllowUndefinedVariables())
}

func (f *Filter) applies(source, logType string) bool {
	if f.Source != "" && f.Source != "*" && f.Source != source {
		return false
	}
	if len(f.LogTypes) == 0 {
		return true
	}
	for _, lt := range f.LogTypes {
		if lt == logType {
			return true
		}
	}
	return false
}

// Keep reports whether the event passes the filter. An expression that
// fails at run time keeps the event: a filter must never lose data by
// accident.
func (f *Filter) Keep(source, logType string, ev map[string]any) bool {
	if !f.applies(source, logType) {
		return true
	}
	if f.include != nil {
		if v, err := exprs.Run(nil, f.include, ev); err == nil && v == false {
			return false
		}
	}
	if f.exclude != nil {
		if v, err := exprs.Run(nil, f.exclude, ev); err == nil && v == true {
			return false
		}
	}
	return true
}
