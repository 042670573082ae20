package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/alert"
	"github.com/caracal-sec/caracal/plugins/detect"
	"github.com/caracal-sec/caracal/plugins/enrich"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/httpsource"
	_ "github.com/caracal-sec/caracal/plugins/kafka"
	"github.com/caracal-sec/caracal/plugins/lake"
	_ "github.com/caracal-sec/caracal/plugins/metrics"
	"github.com/caracal-sec/caracal/plugins/parse"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
	"github.com/caracal-sec/caracal/plugins/suggest"
	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// commands are Caracal's own subcommands beside Benthos's.
func commands() []*cli.Command {
	return []*cli.Command{parse.Command(), parse.SchemasCommand(), detectCommand(), detect.RulesCommand(), searchCommand(), replayCommand(), alertsCommand()}
}

// destinationFields are the fields of one `caracal.destinations` entry.
func destinationFields() []*service.ConfigField { return alert.DestinationFields() }

// caracalLinters are the plugins' checks for `caracal lint`.
func caracalLinters() linters {
	// The schemas, read once for all the files checked against them.
	schemas := sync.OnceValue(func() map[string]*schema.Schema { return loadSchemas("./schemas") })
	fields := sync.OnceValue(func() map[string]map[string]bool { return schemaFields(schemas()) })
	logTypes := sync.OnceValue(func() map[string]bool {
		if fields() == nil {
			return nil
		}
		names := map[string]bool{}
		for lt := range fields() {
			names[lt] = true
		}
		return names
	})
	// The rule ids, for destinations that filter on them.
	ruleIDs := sync.OnceValue(func() []string {
		rules, err := detect.LoadDir("./rules")
		if err != nil {
			return nil
		}
		ids := make([]string, 0, len(rules))
		for _, r := range rules {
			ids = append(ids, r.RuleID)
		}
		return ids
	})
	// The HTTP sources of the shipped pipelines, for filters that name one.
	sourceIDs := sync.OnceValue(func() []string {
		files, _ := filepath.Glob("pipelines/*.yaml")
		var ids []string
		for _, f := range files {
			if data, err := os.ReadFile(f); err == nil {
				ids = append(ids, componentSourceIDs(data)...)
			}
		}
		return ids
	})
	return linters{
		pipelines: func(file string, data []byte) []Finding {
			var out []Finding
			eachComponent(data, "caracal_http", func(conf *yaml.Node) {
				for _, w := range httpsource.LintSources(conf, logTypes()) {
					out = append(out, Finding{File: file, Line: w.Line, Message: w.Message, Warning: !w.Error})
				}
			})
			sources := append(sourceIDs(), componentSourceIDs(data)...)
			eachComponent(data, "caracal_parse", func(conf *yaml.Node) {
				for _, w := range parse.LintFilters(conf, logTypes(), sources) {
					out = append(out, Finding{File: file, Line: w.Line, Message: w.Message, Warning: w.Warning})
				}
			})
			var root yaml.Node
			if yaml.Unmarshal(data, &root) == nil {
				for _, w := range lake.LintInFlight(&root) {
					out = append(out, Finding{File: file, Line: w.Line, Message: w.Message, Warning: w.Warning})
				}
			}
			return append(out, destinationFindings(file, data, logTypes(), ruleIDs())...)
		},
		rules: func(files []string, rootConfig string, lookups []string) []Finding {
			var out []Finding
			known := fields()
			dests := destinationIDs(rootConfig)
			tables := lookupTableNames(lookups)
			for _, f := range files {
				data, r, err := readParsed(f, detect.ParseRule)
				if err != nil {
					out = append(out, Finding{File: f, Line: errLine(err), Message: stripFile(f, err.Error())})
					continue
				}
				if known != nil {
					out = append(out, ruleFieldFindings(f, data, r, known)...)
				}
				if tables != nil {
					out = append(out, lookupCallFindings(f, data, r, tables)...)
				}
				if dests != nil {
					for _, id := range r.OutputIds {
						if !slices.Contains(dests, id) {
							out = append(out, Finding{File: f, Line: lineOf(data, id), Warning: true,
								Message: fmt.Sprintf("OutputIds: no destination %q in %s%s: the rule's alerts would reach no destination", id, rootConfig, suggest.DidYouMean(id, dests))})
						}
					}
				}
			}
			return out
		},
		lookups: func(files []string) []Finding {
			var out []Finding
			defined := map[string]string{} // table name → where (the stages refuse a second)
			for _, f := range files {
				data, d, err := readParsed(f, enrich.ParseDef)
				if err != nil {
					msg := stripFile(f, err.Error())
					if m := unknownYAMLField.FindStringSubmatch(msg); m != nil {
						msg = fmt.Sprintf("unknown key %q%s", m[1], suggest.Hint(m[1], yamlnode.Keys(enrich.Def{})))
					}
					line := errLine(err)
					if key, _, _ := strings.Cut(msg, " "); line == 0 {
						line = lineOf(data, strings.TrimSuffix(key, ":")+":") // "key_type ...", "refresh: ..."
					}
					out = append(out, Finding{File: f, Line: line, Message: msg})
					continue
				}
				where := fmt.Sprintf("%s:%d", f, lineOf(data, "name:"))
				if first, ok := defined[d.Name]; ok {
					out = append(out, Finding{File: f, Line: lineOf(data, "name:"),
						Message: fmt.Sprintf("lookup table %s is also defined at %s; give each table its own name (the stages refuse to start)", d.Name, first)})
					continue
				}
				defined[d.Name] = where
				out = append(out, lookupFindings(f, data, d, schemas())...)
			}
			return out
		},
		schemas: func(files []string) []Finding {
			var out []Finding
			for _, f := range files {
				s, err := schema.Load(f)
				if err != nil {
					out = append(out, Finding{File: f, Line: errLine(err), Message: stripFile(f, err.Error())})
					continue
				}
				// What the parse stage compiles at start: regular
				// expressions, the native parser, time formats.
				if _, err := parse.Compile(s); err != nil {
					data, _ := os.ReadFile(f)
					out = append(out, Finding{File: f, Line: compileErrLine(data, err.Error()), Message: err.Error()})
				}
			}
			return out
		},
	}
}

var fieldErr = regexp.MustCompile(`field (\S+?):`)

// compileErrLine places a schema's compile error: at its field, else at
// its parser.
func compileErrLine(data []byte, msg string) int {
	if m := fieldErr.FindStringSubmatch(msg); m != nil {
		if line := lineOf(data, "name: "+lastPart(m[1])); line > 0 {
			return line
		}
	}
	for _, key := range []string{"regex:", "fastmatch:", "csv:", "native:", "parser:"} {
		if strings.Contains(msg, strings.TrimSuffix(key, ":")) || key == "parser:" {
			if line := lineOf(data, key); line > 0 {
				return line
			}
		}
	}
	return 0
}

// readParsed reads a file and parses it.
func readParsed[T any](file string, parse func(file string, data []byte) (T, error)) (data []byte, v T, err error) {
	if data, err = os.ReadFile(file); err == nil {
		v, err = parse(file, data)
	}
	return data, v, err
}

// componentSourceIDs lists the caracal_http source ids of a config.
func componentSourceIDs(data []byte) []string {
	var ids []string
	eachComponent(data, "caracal_http", func(conf *yaml.Node) { ids = append(ids, httpsource.SourceIDs(conf)...) })
	return ids
}

// destinationFindings checks each caracal.destinations entry of a root
// config. It is built as the alert stage builds it when it starts, so a
// missing credential or setting, or an id used twice, is reported at the
// entry's line instead of `caracal run` stopping on it (values are read
// with ${ENV} expanded, as at run time; an unset ${ENV} without a default
// counts as set). And its filters must let some alert through: a log type
// without a schema is an error (no event has it), a rule id no rule in
// rules/ has a warning (the rules may live elsewhere).
func destinationFindings(file string, data []byte, logTypes map[string]bool, ruleIDs []string) []Finding {
	entries, _ := destinationEntries(data)
	spec := service.NewConfigSpec().Fields(alert.DestinationFields()...)
	lines := map[string]int{} // id → line of its latest entry
	var out []Finding
	for _, entry := range entries {
		var d destinationConf
		_ = entry.Decode(&d) // (a value of the wrong type: Benthos's lint reports it)
		for _, lt := range d.LogTypes {
			if logTypes != nil && !logTypes[lt] {
				out = append(out, Finding{File: file, Line: lineOf(data, lt),
					Message: fmt.Sprintf("destination %s: log_types: %s has no schema%s", d.ID, lt, suggest.Hint(lt, slices.Sorted(maps.Keys(logTypes))))})
			}
		}
		for _, id := range d.RuleIDs {
			if ruleIDs != nil && !slices.Contains(ruleIDs, id) {
				out = append(out, Finding{File: file, Line: lineOf(data, id), Warning: true,
					Message: fmt.Sprintf("destination %s: rule_ids: no rule %s in rules/%s", d.ID, id, suggest.DidYouMean(id, ruleIDs))})
			}
		}
		text, err := yaml.Marshal(entry)
		if err != nil {
			continue
		}
		conf, err := spec.ParseYAML(string(expandEnv(text, true)), nil)
		if err != nil {
			continue // a wrong key or value: Benthos's lint reports it
		}
		if _, err := alert.ParseDestination(conf, nil); err != nil {
			out = append(out, Finding{File: file, Line: entry.Line, Message: err.Error()})
		}
		// An entry with an error still takes its id: fixing the error
		// would not make the ids differ.
		id, _ := conf.FieldString("id")
		if first, ok := lines[id]; ok && id != "" {
			out = append(out, Finding{File: file, Line: entry.Line,
				Message: fmt.Sprintf("destination %s: the id is also used at line %d; give each destination its own id (rules' OutputIds name them)", id, first)})
		}
		lines[id] = entry.Line
	}
	return out
}

// destinationIDs lists the alert destinations a config file names (and
// the one CARACAL_ALERT_WEBHOOK_URL adds); nil when it cannot be read, as
// rules may be linted where the config is not.
func destinationIDs(file string) []string {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	entries, ok := destinationEntries(data)
	if !ok {
		return nil
	}
	ids := []string{alert.EnvWebhookID}
	for _, entry := range entries {
		var d destinationConf
		if entry.Decode(&d) == nil {
			ids = append(ids, d.ID)
		}
	}
	return ids
}

// destinationConf is what lint reads of a configured alert destination.
type destinationConf struct {
	ID       string   `yaml:"id"`
	LogTypes []string `yaml:"log_types"`
	RuleIDs  []string `yaml:"rule_ids"`
}

// destinationEntries are the entries of a root config's
// caracal.destinations, as YAML nodes (each knows its line); ok is false
// when the data is not YAML.
func destinationEntries(data []byte) (_ []*yaml.Node, ok bool) {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return nil, false
	}
	if len(root.Content) == 0 {
		return nil, true
	}
	list := yamlnode.Value(yamlnode.Value(root.Content[0], "caracal"), "destinations")
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil, true
	}
	return list.Content, true
}

// unknownYAMLField is a strict YAML decoder's error for an unknown key.
var unknownYAMLField = regexp.MustCompile(`field (\S+) not found in type`)

// lookupFindings checks a lookup table against what it will meet: local
// data that does not load (the process stage would not start), and
// associations naming a log type without a schema or a field path its
// schema lacks, at any depth (the table would never be consulted for it).
func lookupFindings(file string, data []byte, d *enrich.Def, schemas map[string]*schema.Schema) []Finding {
	var out []Finding
	if !d.Remote() { // a local file is loaded as the process stage loads it
		if t, err := enrich.NewTable(context.Background(), d); err != nil {
			out = append(out, Finding{File: file, Line: lineOf(data, "data:"), Message: fmt.Sprintf("data: %v", err)})
		} else if t.Index().Rows() == 0 {
			out = append(out, Finding{File: file, Line: lineOf(data, "data:"), Warning: true, Message: "data: the table has no rows"})
		}
	}
	if schemas == nil {
		return out
	}
	// The associations as written, for the line of each log type and path.
	var doc yaml.Node
	_ = yaml.Unmarshal(data, &doc) // (ParseDef has read it)
	var assocs *yaml.Node
	if len(doc.Content) > 0 {
		assocs = yamlnode.Value(doc.Content[0], "associations")
	}
	for i := 0; assocs != nil && i+1 < len(assocs.Content); i += 2 {
		lt, paths := assocs.Content[i], assocs.Content[i+1]
		if lt.Value == "*" { // every log type
			continue
		}
		s, ok := schemas[lt.Value]
		if !ok {
			out = append(out, Finding{File: file, Line: lt.Line, Message: fmt.Sprintf("associations: log type %s has no schema in schemas/%s", lt.Value, suggest.Hint(lt.Value, sortedKeys(schemas)))})
			continue
		}
		for _, p := range paths.Content {
			path := p.Value
			top, _, _ := strings.Cut(path, ".")
			if strings.HasPrefix(top, "p_") {
				if !slices.Contains(standardAssociable, top) {
					out = append(out, Finding{File: file, Line: p.Line, Warning: true,
						Message: fmt.Sprintf("associations: %q is no standard field%s: the table is never consulted for it", top, suggest.DidYouMean(top, standardAssociable))})
				}
				continue
			}
			if _, err := s.FieldPath(enrich.SplitPath(path)); err != nil {
				out = append(out, Finding{File: file, Line: p.Line, Warning: true,
					Message: fmt.Sprintf("associations: %s %v: the table is never consulted for it", lt.Value, err)})
			}
		}
	}
	return out
}

var lineRe = regexp.MustCompile(`:(\d+):`)

// errLine finds a line number in an error such as "file.yml:12: ..." or a
// YAML decoder's "line 12".
func errLine(err error) int {
	s := err.Error()
	if m := lineRe.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	if i := strings.Index(s, "line "); i >= 0 {
		n, _ := strconv.Atoi(strings.TrimRightFunc(s[i+5:], func(r rune) bool { return r < '0' || r > '9' }))
		if j := strings.IndexFunc(s[i+5:], func(r rune) bool { return r < '0' || r > '9' }); j > 0 {
			n, _ = strconv.Atoi(s[i+5 : i+5+j])
		}
		return n
	}
	return 0
}

func stripFile(file, msg string) string {
	msg = strings.TrimPrefix(msg, file+":")
	if m := lineRe.FindStringIndex(":" + msg); m != nil && m[0] == 0 {
		msg = msg[m[1]-1:]
	}
	msg = strings.TrimSpace(msg)
	// The finding carries the line: "line 6: x" reads as x.
	if m := lineWordRe.FindStringIndex(msg); m != nil {
		msg = msg[m[1]:]
	}
	return msg
}

var lineWordRe = regexp.MustCompile(`^line \d+: `)

// loadSchemas maps each log type in dir to its schema, nil when the
// schemas cannot be read (then fields are not checked).
func loadSchemas(dir string) map[string]*schema.Schema {
	schemas, err := schema.LoadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]*schema.Schema{}
	for _, s := range schemas {
		out[s.Schema] = s
	}
	return out
}

// schemaFields maps each log type to its top-level fields (nil for nil).
func schemaFields(schemas map[string]*schema.Schema) map[string]map[string]bool {
	if schemas == nil {
		return nil
	}
	out := map[string]map[string]bool{}
	for lt, s := range schemas {
		fs := map[string]bool{}
		for _, f := range s.Fields {
			fs[f.Name] = true
		}
		out[lt] = fs
	}
	return out
}

// lookupTableNames are the names of the tables the lookup definition
// files define, as far as they can be read (their errors are reported on
// their own); nil when there are no files: the tables are unknown.
func lookupTableNames(files []string) []string {
	if len(files) == 0 {
		return nil
	}
	names := []string{}
	for _, f := range files {
		var d struct {
			Name string `yaml:"name"`
		}
		if data, err := os.ReadFile(f); err == nil && yaml.Unmarshal(data, &d) == nil && d.Name != "" {
			names = append(names, d.Name)
		}
	}
	sort.Strings(names)
	return names
}

// lookupCallFindings reports lookup() calls naming a table none of tables
// is: such a call finds nothing, on every event.
func lookupCallFindings(file string, data []byte, r *detect.Rule, tables []string) []Finding {
	var out []Finding
	for _, c := range r.LookupCalls() {
		if slices.Contains(tables, c.Table) {
			continue
		}
		hint := " (no lookup table is defined)"
		if len(tables) > 0 {
			hint = suggest.Hint(c.Table, tables)
		}
		out = append(out, Finding{File: file, Line: detect.KeyLine(data, c.Key),
			Message: fmt.Sprintf("%s: lookup(%q, ...): there is no lookup table %s%s, so the call always returns nil", c.Key, c.Table, c.Table, hint)})
	}
	return out
}

// ruleFieldFindings reports log types without a schema and fields a rule
// reads that none of its log types has (a typo a rule's own tests, written
// with the same typo, would not catch).
func ruleFieldFindings(file string, data []byte, r *detect.Rule, known map[string]map[string]bool) []Finding {
	var out []Finding
	var have []map[string]bool
	for _, lt := range r.LogTypes {
		fs, ok := known[lt]
		if !ok {
			out = append(out, Finding{File: file, Line: lineOf(data, lt), Message: fmt.Sprintf("LogTypes: %s has no schema in schemas/%s", lt, suggest.Hint(lt, sortedKeys(known)))})
			continue
		}
		have = append(have, fs)
	}
	if len(have) == 0 {
		return out
	}
	for _, name := range r.FieldsUsed() {
		if strings.HasPrefix(name, "p_") {
			continue // standard fields, on every log type
		}
		found := false
		for _, fs := range have {
			found = found || fs[name]
		}
		if found {
			continue
		}
		var names []string
		for _, fs := range have {
			names = append(names, sortedKeys(fs)...)
		}
		msg := fmt.Sprintf("field %q is not in the schema of %s%s", name, strings.Join(r.LogTypes, " or "), suggest.DidYouMean(name, names))
		out = append(out, Finding{File: file, Line: lineOf(data, name), Message: msg})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// standardAssociable are the p_* fields a lookup table may be keyed on.
var standardAssociable = append([]string{envelope.FieldLogType, envelope.FieldRowID, envelope.FieldSourceID, envelope.FieldSourceLabel}, envelope.IndicatorFields...)
