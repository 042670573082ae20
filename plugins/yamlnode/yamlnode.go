// Package yamlnode reads YAML node trees, where lint keeps the line of
// every key and value it reports on.
package yamlnode

import (
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// Entry returns the key and value nodes of key in mapping n (nil, nil
// when n is not a mapping or lacks key).
func Entry(n *yaml.Node, key string) (k, v *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], n.Content[i+1]
		}
	}
	return nil, nil
}

// Value returns the value node of key in mapping n, or nil.
func Value(n *yaml.Node, key string) *yaml.Node {
	_, v := Entry(n, key)
	return v
}

// Keys lists the YAML keys a struct's fields are read from, in field
// order: inline and skipped ("-") fields have none.
func Keys(v any) []string {
	var out []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}

// Walk calls fn with the key and value of every mapping entry below n,
// in document order.
func Walk(n *yaml.Node, fn func(k, v *yaml.Node)) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			fn(n.Content[i], n.Content[i+1])
		}
	}
	for _, c := range n.Content {
		Walk(c, fn)
	}
}
