package httpsource

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Warning is a lint finding in a config file; Error marks a mistake rather
// than a risk.
type Warning struct {
	Line    int
	Message string
	Error   bool
}

// LintConfig finds caracal_http sources in a Benthos config that accept
// unauthenticated requests (auth type none: allowed, but worth a warning)
// and, when logTypes (those with a schema) is given, sources naming a log
// type without a schema: every event of theirs would fail classification;
// and a max_event_bytes over MaxEventBytes.
func LintConfig(data []byte, logTypes map[string]bool) []Warning {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil
	}
	var out []Warning
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == "caracal_http" {
					out = append(out, lintSources(n.Content[i+1], logTypes)...)
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)
	return out
}

func lintSources(http *yaml.Node, logTypes map[string]bool) []Warning {
	var out []Warning
	sources := child(http, "sources")
	if sources == nil || sources.Kind != yaml.SequenceNode {
		return nil
	}
	for _, s := range sources.Content {
		id := "?"
		if n := child(s, "id"); n != nil {
			id = n.Value
		}
		auth := child(s, "auth")
		typ := child(auth, "type")
		if typ != nil && typ.Value == AuthNone {
			out = append(out, Warning{Line: typ.Line, Message: "source " + id + " accepts unauthenticated requests (auth: none); use shared_secret, hmac, bearer or basic outside loopback"})
		}
		if n := child(s, "max_event_bytes"); n != nil {
			if v, err := strconv.Atoi(n.Value); err == nil {
				if err := checkMaxEventBytes(id, v); err != nil {
					out = append(out, Warning{Line: n.Line, Error: true, Message: err.Error()})
				}
			}
		}
		if lts := child(s, "log_types"); lts != nil && lts.Kind == yaml.SequenceNode && logTypes != nil {
			for _, lt := range lts.Content {
				if !logTypes[lt.Value] {
					known := slices.Sorted(maps.Keys(logTypes))
					out = append(out, Warning{Line: lt.Line, Error: true, Message: "source " + id + ": log type " + lt.Value +
						" has no schema, so every event would fail classification (known: " + strings.Join(known, ", ") + ")"})
				}
			}
		}
	}
	return out
}

func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
