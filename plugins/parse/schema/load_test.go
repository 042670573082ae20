package schema

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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

// A schemas directory that is not there says so, rather than how the
// walk over it failed.
func TestLoadDirNamesAMissingDirectory(t *testing.T) {
	_, err := LoadDir("no-such-schemas")
	if err == nil || !strings.Contains(err.Error(), "schemas directory no-such-schemas does not exist (relative to ") {
		t.Fatalf("LoadDir of a missing directory: %v", err)
	}
}

// A parser block names exactly one parser: with two, one won silently.
func TestOneParser(t *testing.T) {
	for yaml, want := range map[string]string{
		"schema: X\nparser:\n  csv: {columns: [a]}\n  regex: {match: ['(?P<a>.*)']}\nfields: [{name: a, type: string}]":                               `x.yml: line 3: parser: csv and regex are given, a schema has exactly one parser`,
		"schema: X\nparser:\n  native: {name: x}\n  fastmatch: {match: ['%{a}']}\n  regex: {match: ['(?P<a>.*)']}\nfields: [{name: a, type: string}]": `parser: native and fastmatch and regex are given`,
		"schema: X\nparser:\n  cvs: {columns: [a]}\nfields: [{name: a, type: string}]":                                                                `line 3: parser: unknown parser "cvs" (did you mean csv?)`,
		"schema: X\nparser:\n  script: {function: f}\nfields: [{name: a, type: string}]":                                                              `parser: script (Starlark) is not supported`,
	} {
		if _, err := Parse("x.yml", []byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", yaml, err, want)
		}
	}
	if _, err := Parse("x.yml", []byte("schema: X\nparser:\n  csv: {columns: [a]}\nfields: [{name: a, type: string}]")); err != nil {
		t.Errorf("one parser: %v", err)
	}
}

// A log type's name makes its lake table's (envelope.TableName), so it is
// what the lake accepts: a name the lake refused was loaded and linted,
// and its every event failed at write time.
func TestLogTypeNames(t *testing.T) {
	for name, want := range map[string]string{
		"Custom.My-App":      `x.yml: line 2: log type name "Custom.My-App": use only ASCII letters, digits, '_' and '.' (it names the lake table "custom_my-app")`,
		"Custom.Foo/../../x": `log type name "Custom.Foo/../../x": use only ASCII letters`,
		"Custom.Café":        `use only ASCII letters`,
		"'Custom.My App'":    `use only ASCII letters`,
		"Alerts":             `log type name "Alerts": its lake table "alerts" is one of Caracal's own tables`,
		"Custom.My_App2":     ``,
	} {
		_, err := Parse("x.yml", []byte("# a log type\nschema: "+name+"\nfields: [{name: a, type: string}]"))
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
	}
}

// Two log types whose names differ only where the table name does not
// (case, '.' or '_') would write one lake table.
func TestLoadDirRefusesASharedTable(t *testing.T) {
	dir := t.TempDir()
	for file, name := range map[string]string{"a.yml": "Custom.My_App", "b.yml": "custom.my.app"} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte("schema: "+name+"\nfields: [{name: a, type: string}]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "would share the lake table custom_my_app") {
		t.Fatalf("LoadDir: %v", err)
	}
}
