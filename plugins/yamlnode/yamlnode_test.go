package yamlnode

import (
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
