package httpsource

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Lint reports what Validate would refuse at start, at the auth type's
// line, and takes a secret_file for the secret it holds.
func TestLintChecksAuth(t *testing.T) {
	for auth, want := range map[string]string{
		"{type: bearer}":                                         "source s: bearer auth needs a token",
		`{type: bearer, token: "${TOKEN}"}`:                      "",
		"{type: bearer, secret_file: /run/secrets/t}":            "",
		"{type: basic, username: u}":                             "source s: basic auth needs username and password",
		"{type: hmac, secret: k}":                                "source s: hmac auth needs header and secret",
		"{type: hmac, header: X-Sig, secret: k, algorithm: md5}": `source s: hmac algorithm "md5": use sha256 or sha1`,
		"{type: shared_secret, header: X-Key, secret: k}":        "",
		"{type: sharedsecret, header: X-Key, secret: k}":         "", // an enum: Benthos's lint reports it
	} {
		config := "sources:\n  - id: s\n    path: s\n    auth: " + auth + "\n"
		var errs []string
		for _, w := range LintSources(yamlNode(t, config), nil) {
			if w.Error {
				if w.Line != 4 {
					t.Errorf("%s: line %d, want 4", auth, w.Line)
				}
				errs = append(errs, w.Message)
			}
		}
		if got := strings.Join(errs, "; "); got != want {
			t.Errorf("%s: errors %q, want %q", auth, got, want)
		}
	}
	noPath := "sources:\n  - id: s\n    auth: {type: none}\n"
	if ws := LintSources(yamlNode(t, noPath), nil); !strings.Contains(messages(ws), "a source needs an id and a path") {
		t.Errorf("a source without a path: %v", ws)
	}
}

// yamlNode is a YAML document's top node.
func yamlNode(t *testing.T, doc string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	return n.Content[0]
}

func TestSourceIDs(t *testing.T) {
	if got := SourceIDs(yamlNode(t, "sources: [{id: a, path: a}, {path: b}, {id: c}]")); fmt.Sprint(got) != "[a c]" {
		t.Errorf("SourceIDs = %v", got)
	}
}

func messages(ws []Warning) string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Message)
	}
	return strings.Join(out, "; ")
}

// Two sources on one path are reported at the second one's path.
func TestLintFindsADuplicatePath(t *testing.T) {
	config := "sources:\n  - {id: a, path: d, auth: {type: none}}\n  - id: b\n    path: /d/\n    auth: {type: none}\n  - {id: c, path: e, auth: {type: none}}\n"
	var errs []Warning
	for _, w := range LintSources(yamlNode(t, config), nil) {
		if w.Error {
			errs = append(errs, w)
		}
	}
	if len(errs) != 1 || errs[0].Line != 4 || errs[0].Message != `sources a and b both use path "d": give each its own` {
		t.Errorf("errors %+v, want one for source b at line 4", errs)
	}
}
