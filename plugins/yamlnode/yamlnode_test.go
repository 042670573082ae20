package yamlnode

import (
	"fmt"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestEntry(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a: 1\nb:\n  c: x\nlist: [1]\n"), &doc); err != nil {
		t.Fatal(err)
	}
	root := doc.Content[0]
	if k, v := Entry(root, "b"); k == nil || k.Line != 2 || Value(v, "c").Value != "x" || Value(v, "c").Line != 3 {
		t.Errorf("b: %v %v", k, v)
	}
	if k, v := Entry(root, "nope"); k != nil || v != nil {
		t.Error("a missing key was found")
	}
	if Value(Value(root, "list"), "x") != nil || Value(nil, "a") != nil {
		t.Error("a value was found in what is not a mapping")
	}
}

// Keys are the keys a struct is read from: a tag's options are not part
// of its key, and inline and skipped fields have none.
func TestKeys(t *testing.T) {
	type model struct {
		Name     string         `yaml:"name"`
		Type     string         `yaml:"type,omitempty" json:"kind"`
		File     string         `yaml:"-"`
		Extra    map[string]any `yaml:",inline"`
		Untagged string
		Last     []string `yaml:"last"`
	}
	if got := Keys(model{}); fmt.Sprint(got) != "[name type last]" {
		t.Errorf("Keys = %v", got)
	}
}

// Walk reaches every mapping entry, inside sequences too, in document
// order.
func TestWalk(t *testing.T) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("a: 1\nb:\n  - c: 2\n    d: {e: 3}\nf: x\n"), &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	Walk(&doc, func(k, _ *yaml.Node) { keys = append(keys, fmt.Sprintf("%s@%d", k.Value, k.Line)) })
	if fmt.Sprint(keys) != "[a@1 b@2 f@5 c@3 d@4 e@4]" {
		t.Errorf("Walk visited %v", keys)
	}
}
