package parse

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/suggest"
	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// FilterFinding is a lint finding about an ingestion filter.
type FilterFinding struct {
	Line    int
	Message string
	Warning bool // a risk, not a mistake
}

// LintFilters checks the ingestion filters of a caracal_parse config (the
// component's YAML) as the processor compiles them at start, and what they
// name: a log type without a schema (logTypes, when given) and a source no
// caracal_http defines (sources, when given; a warning, as sources may be
// defined in a config not linted with this one). Such a filter never
// applies, and the events it was written to drop are stored.
func LintFilters(conf *yaml.Node, logTypes map[string]bool, sources []string) []FilterFinding {
	filters := yamlnode.Value(conf, "filters")
	if filters == nil || filters.Kind != yaml.SequenceNode {
		return nil
	}
	var out []FilterFinding
	for _, f := range filters.Content {
		out = append(out, lintFilter(f, logTypes, sources)...)
	}
	return out
}

func lintFilter(n *yaml.Node, logTypes map[string]bool, sources []string) []FilterFinding {
	var conf struct {
		Source   string   `yaml:"source"`
		LogTypes []string `yaml:"log_types"`
		Include  string   `yaml:"include"`
		Exclude  string   `yaml:"exclude"`
	}
	if err := n.Decode(&conf); err != nil {
		return nil // its shape is Benthos's lint's to report
	}
	f := Filter{Source: conf.Source, LogTypes: conf.LogTypes, Include: conf.Include, Exclude: conf.Exclude}
	var out []FilterFinding
	if err := f.Compile(); err != nil {
		line := n.Line
		for _, key := range []string{"include", "exclude"} {
			if v := yamlnode.Value(n, key); v != nil && strings.Contains(err.Error(), ": "+key+": ") {
				line = v.Line
			}
		}
		out = append(out, FilterFinding{Line: line, Message: err.Error()})
	}
	for i, lt := range f.LogTypes {
		if logTypes != nil && !logTypes[lt] {
			line := n.Line
			if lts := yamlnode.Value(n, "log_types"); lts != nil && i < len(lts.Content) {
				line = lts.Content[i].Line
			}
			out = append(out, FilterFinding{Line: line, Message: fmt.Sprintf("filter for source %q: log type %s has no schema%s",
				f.Source, lt, suggest.Hint(lt, slices.Sorted(maps.Keys(logTypes))))})
		}
	}
	if sources != nil && f.Source != "" && f.Source != "*" && !slices.Contains(sources, f.Source) {
		line := n.Line
		if s := yamlnode.Value(n, "source"); s != nil {
			line = s.Line
		}
		out = append(out, FilterFinding{Line: line, Warning: true, Message: fmt.Sprintf("filter for source %q: no caracal_http source has that id%s, so the filter never applies",
			f.Source, suggest.DidYouMean(f.Source, sources))})
	}
	return out
}
