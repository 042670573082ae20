package main

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/settings"
	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// Finding is one lint result, printed as file:line: message.
type Finding struct {
	File    string
	Line    int
	Message string
	Warning bool // reported, but does not fail the lint
}

func (f Finding) String() string {
	kind := ""
	if f.Warning {
		kind = "warning: "
	}
	if f.Line > 0 {
		return fmt.Sprintf("%s:%d: %s%s", f.File, f.Line, kind, f.Message)
	}
	return fmt.Sprintf("%s: %s%s", f.File, kind, f.Message)
}

// yamlKind tells what a YAML file is from its top-level keys.
type yamlKind int

const (
	kindBenthos yamlKind = iota // root config or stream: Benthos lints it
	kindRule                    // Panther-style rule (AnalysisType)
	kindSchema                  // Panther log schema (schema + fields)
	kindLookup                  // lookup table definition (data + primary_key, associations or format)
)

// classify also says whether the file is a root config (a caracal
// section), which the checks of other files may refer to (rootConfig).
func classify(data []byte) (_ yamlKind, root bool) {
	var top map[string]any
	if yaml.Unmarshal(data, &top) != nil {
		return kindBenthos, false
	}
	switch {
	case top["AnalysisType"] != nil || top["RuleID"] != nil:
		return kindRule, false
	case top["schema"] != nil && top["fields"] != nil:
		return kindSchema, false
	case top["data"] != nil && (top["primary_key"] != nil || top["associations"] != nil || top["format"] != nil):
		return kindLookup, false // (a MaxMind table has no primary_key)
	}
	return kindBenthos, top[settings.Section] != nil
}

// linters are the Caracal-specific checks, by kind; each returns findings
// for the given files. Plugins provide them (see commands.go).
type linters struct {
	// rules checks rules; their OutputIds name destinations of rootConfig,
	// and their lookup() calls tables of the lookup definitions linted
	// with them (when none are, the tables are unknown).
	rules   func(files []string, rootConfig string, lookups []string) []Finding
	schemas func(files []string) []Finding
	lookups func(files []string) []Finding
	// pipelines checks Benthos configs for Caracal concerns (e.g. a source
	// without authentication).
	pipelines func(file string, data []byte) []Finding
}

// lintMain implements `caracal lint [flags] [paths...]`: Benthos's lint for
// configs and pipelines, plus Caracal's checks for them and for rules,
// schemas and lookup tables; directories are walked for *.yml / *.yaml.
// Findings print as file:line: message. Exit code 1 on any error (warnings
// alone pass), 2 on an unknown flag.
func lintMain(args []string, l linters, schema *service.ConfigSchema, stdout io.Writer) int {
	var flags, paths []string
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "help" {
			fmt.Fprint(stdout, lintUsage)
			return 0
		}
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
		} else {
			paths = append(paths, a)
		}
	}
	benthos, err := newBenthosLinter(schema, flags)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return 2
	}
	if len(paths) == 0 {
		paths = []string{"config.yaml", "pipelines", "rules", "schemas", "lookups"}
	}
	files, missing := expand(paths)
	var findings []Finding
	for _, m := range missing {
		if len(args) > 0 { // default paths may be absent
			findings = append(findings, Finding{File: m, Message: "no such file or directory"})
		}
	}
	byKind := map[yamlKind][]string{}
	roots := map[string]bool{} // files with a caracal section
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			findings = append(findings, Finding{File: f, Message: err.Error()})
			continue
		}
		k, root := classify(data)
		roots[f] = root
		byKind[k] = append(byKind[k], f)
		if k == kindBenthos {
			found := benthos.lint(f, data)
			if l.pipelines != nil {
				found = append(found, l.pipelines(f, data)...)
			}
			sort.SliceStable(found, func(i, j int) bool { return found[i].Line < found[j].Line })
			findings = append(findings, found...)
		}
	}
	if fn := l.rules; fn != nil && len(byKind[kindRule]) > 0 {
		findings = append(findings, fn(byKind[kindRule], rootConfig(paths, roots), byKind[kindLookup])...)
	}
	if fn := l.schemas; fn != nil && len(byKind[kindSchema]) > 0 {
		findings = append(findings, fn(byKind[kindSchema])...)
	}
	if fn := l.lookups; fn != nil && len(byKind[kindLookup]) > 0 {
		findings = append(findings, fn(byKind[kindLookup])...)
	}
	failed := false
	for _, f := range findings {
		fmt.Fprintln(stdout, f)
		if !f.Warning {
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

const lintUsage = `Usage: caracal lint [--deprecated] [--labels] [--skip-env-var-check] [path...]

Checks Benthos configs and pipelines (Benthos's own checks and Caracal's: source auth, limits,
log types), rules, log schemas and lookup tables; directories are walked for *.yml and *.yaml.
With no path: config.yaml pipelines rules schemas lookups. Rules' OutputIds are checked against
the first file named that has a caracal: section, else config.yaml; the tables their lookup()
calls name, against the lookup table definitions linted with them, if any. Each finding is
file:line: message, with the name meant when a key or name is misspelt. Exit 1 on an error
(warnings pass).

  --deprecated          deprecated Benthos fields are errors
  --labels              Benthos components must have labels
  --skip-env-var-check  ${VAR} references need not be set
`

// eachComponent calls fn with the config of every component of that name
// in a YAML document (e.g. each caracal_http input's), wherever it sits.
func eachComponent(data []byte, name string, fn func(conf *yaml.Node)) {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return
	}
	yamlnode.Walk(&root, func(k, v *yaml.Node) {
		if k.Value == name {
			fn(v)
		}
	})
}

// rootConfig is the root config the checks of other files refer to: the
// first file argument with a caracal section (`caracal lint prod.yaml
// rules/` checks the rules against prod.yaml's destinations), else
// ./config.yaml. Walked directories hold pipelines, rules and the like.
func rootConfig(paths []string, roots map[string]bool) string {
	for _, p := range paths {
		if roots[p] {
			return p
		}
	}
	return "config.yaml"
}

// expand walks directories for YAML files; it returns the files (sorted) and
// the paths that do not exist.
func expand(paths []string) (files, missing []string) {
	seen := map[string]bool{}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			missing = append(missing, p)
			continue
		}
		if !info.IsDir() {
			if !seen[p] {
				seen[p] = true
				files = append(files, p)
			}
			continue
		}
		_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if ext := filepath.Ext(path); (ext == ".yml" || ext == ".yaml") && !seen[path] {
				seen[path] = true
				files = append(files, path)
			}
			return nil
		})
	}
	sort.Strings(files)
	return files, missing
}

// lineOf returns the 1-based line of the first occurrence of needle in data,
// or 0.
func lineOf(data []byte, needle string) int {
	i := bytes.Index(data, []byte(needle))
	if i < 0 {
		return 0
	}
	return bytes.Count(data[:i], []byte("\n")) + 1
}
