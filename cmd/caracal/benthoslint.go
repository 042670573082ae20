package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/suggest"
	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// benthosLinter lints Benthos configs and streams in process, with the
// checks of `benthos lint`, so that their findings print as Caracal's
// (file:line: message) and a misspelt field or component name comes with
// the nearest one that exists.
type benthosLinter struct {
	schema *service.ConfigSchema
	linter *service.StreamConfigLinter
}

// newBenthosLinter takes Benthos lint's flags: --deprecated, --labels and
// --skip-env-var-check.
func newBenthosLinter(schema *service.ConfigSchema, flags []string) (*benthosLinter, error) {
	l := schema.NewStreamConfigLinter()
	for _, f := range flags {
		switch strings.TrimLeft(f, "-") {
		case "deprecated":
			l.SetRejectDeprecated(true)
		case "labels":
			l.SetRequireLabels(true)
		case "skip-env-var-check":
			l.SetSkipEnvVarCheck(true)
		default:
			return nil, fmt.Errorf("caracal lint: unknown flag %s (flags: --deprecated, --labels, --skip-env-var-check)", f)
		}
	}
	return &benthosLinter{schema: schema, linter: l}, nil
}

var (
	unknownField     = regexp.MustCompile(`^field (\S+) not recognised$`)
	unknownComponent = regexp.MustCompile(`^unable to infer component type: (\S+)$`)
	unknownOption    = regexp.MustCompile(`^value (\S+) is not a valid option for this field$`)
)

func (b *benthosLinter) lint(file string, data []byte) []Finding {
	lints, err := b.linter.LintYAML(data)
	if err != nil {
		return []Finding{{File: file, Line: errLine(err), Message: err.Error()}}
	}
	out := make([]Finding, 0, len(lints))
	for _, l := range lints {
		msg := l.What
		if m := unknownField.FindStringSubmatch(msg); m != nil {
			msg += suggest.DidYouMean(m[1], fieldNames(b.fieldsAt(data, l.Line)))
		} else if m := unknownComponent.FindStringSubmatch(msg); m != nil {
			msg += suggest.DidYouMean(m[1], b.components())
		} else if m := unknownOption.FindStringSubmatch(msg); m != nil {
			if opts := b.optionsAt(data, l.Line); len(opts) > 0 {
				msg += suggest.Hint(m[1], opts)
			}
		}
		out = append(out, Finding{File: file, Line: l.Line, Message: msg})
	}
	return out
}

// fieldsAt lists the fields of the innermost component whose lines hold
// line, or of the config's own sections outside any component.
func (b *benthosLinter) fieldsAt(data []byte, line int) []service.TemplateDataPluginField {
	var typ, name string
	start := 0
	_ = b.schema.NewStreamConfigWalker().WalkComponentsYAML(data, func(c *service.WalkedComponent) error {
		if c.LineStart <= line && line <= c.LineEnd && c.LineStart >= start {
			typ, name, start = c.ComponentType, c.Name, c.LineStart
		}
		return nil
	})
	if typ == "" {
		doc, err := b.schema.TemplateData()
		if err != nil {
			return nil
		}
		return doc.Fields
	}
	if view := b.component(typ, name); view != nil {
		doc, err := view.TemplateData()
		if err != nil {
			return nil
		}
		return doc.Fields
	}
	return nil
}

// fieldNames are the fields' own names (the last part of their paths).
func fieldNames(fields []service.TemplateDataPluginField) []string {
	names := make([]string, 0, len(fields))
	for _, f := range fields {
		names = append(names, lastPart(f.FullName))
	}
	return names
}

func lastPart(path string) string { return path[strings.LastIndexByte(path, '.')+1:] }

// optionsAt lists the options of the enum fields named as the key on
// line is, among the fields there.
func (b *benthosLinter) optionsAt(data []byte, line int) []string {
	key := keyAt(data, line)
	var opts []string
	for _, f := range b.fieldsAt(data, line) {
		if lastPart(f.FullName) != key {
			continue
		}
		opts = append(opts, f.Options...)
		for _, o := range f.AnnotatedOptions {
			opts = append(opts, o[0])
		}
	}
	slices.Sort(opts)
	return slices.Compact(opts)
}

// keyAt is the mapping key on a line of a YAML document ("" if none).
func keyAt(data []byte, line int) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return ""
	}
	key := ""
	yamlnode.Walk(&root, func(k, _ *yaml.Node) {
		if key == "" && k.Line == line {
			key = k.Value
		}
	})
	return key
}

// walk calls fn for each registered component of a type (as Benthos
// names types in its lints).
func (b *benthosLinter) walk(typ string, fn func(name string, view *service.ConfigView)) {
	env := b.schema.Environment()
	switch typ {
	case "input":
		env.WalkInputs(fn)
	case "output":
		env.WalkOutputs(fn)
	case "processor":
		env.WalkProcessors(fn)
	case "buffer":
		env.WalkBuffers(fn)
	case "cache":
		env.WalkCaches(fn)
	case "rate_limit":
		env.WalkRateLimits(fn)
	case "metrics":
		env.WalkMetrics(fn)
	case "tracer":
		env.WalkTracers(fn)
	case "scanner":
		env.WalkScanners(fn)
	}
}

func (b *benthosLinter) component(typ, name string) (view *service.ConfigView) {
	b.walk(typ, func(n string, v *service.ConfigView) {
		if n == name {
			view = v
		}
	})
	return view
}

// components lists the names of every registered component, of all types
// (Benthos's lint does not say which type it wanted).
func (b *benthosLinter) components() (names []string) {
	for _, typ := range componentTypes {
		b.walk(typ, func(n string, _ *service.ConfigView) { names = append(names, n) })
	}
	return names
}

var componentTypes = []string{"input", "output", "processor", "buffer", "cache", "rate_limit", "metrics", "tracer", "scanner"}
