package schema

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The keys that errors suggest and list are the ones the model reads.
func TestKeyListsMatchTheModel(t *testing.T) {
	tags := func(v any) []string {
		var out []string
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		model any
		keys  []string
	}{{Schema{}, schemaKeys}, {Field{}, fieldKeys}} {
		if got := slices.Sorted(slices.Values(c.keys)); !slices.Equal(got, tags(c.model)) {
			t.Errorf("%T keys %v, model has %v", c.model, got, tags(c.model))
		}
	}
}

func TestUnknownKeysSuggestTheNearest(t *testing.T) {
	for yaml, want := range map[string]string{
		"schema: X\nfields: [{name: a, type: string}]\ndescripton: x":                                            `unknown key "descripton" (did you mean description?)`,
		"schema: X\nfields: [{name: a, type: string, requried: true}]":                                           `field a: unknown key "requried" (did you mean required?)`,
		"schema: X\nfields: [{name: a, type: string, isEventtime: true}]":                                        `field a: unknown key "isEventtime" (did you mean isEventTime?)`,
		"schema: X\nfields: [{name: a, type: string, frobnicate: 1}]":                                            `field a: unknown key "frobnicate" (one of: name, type, required,`,
		"schema: X\nfields: [{name: a, type: string, indicators: [ipp]}]":                                        `field a: unknown indicator "ipp" (did you mean ip?)`,
		"schema: X\nfields: [{name: a, type: string, isEventTime: true}]":                                        `field a: isEventTime needs type timestamp`,
		"schema: X\nfields: [{name: a, type: strng}]":                                                            `field a: unknown type "strng" (did you mean string?)`,
		"schema: X\nfields: [{name: a, type: text}]":                                                             `field a: unknown type "text" (one of: string, int, smallint, bigint, float, boolean, timestamp, array, object, json, ref)`,
		"schema: X\nfields: [{name: a, type: ref, target: usr}]\ndefinitions: {user: [{name: n, type: string}]}": `field a: ref target "usr" is not in definitions (did you mean user?)`,
	} {
		if _, err := Parse("x.yml", []byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
}
