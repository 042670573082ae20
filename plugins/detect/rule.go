// Package detect runs detection rules over normalized events. Rules use
// Panther's rule YAML keys, with the logic as an `expr` expression
// (`Condition`), compiled once and indexed by log type; a rule's runtime
// error becomes a rule-error result and never stops the other rules.
package detect

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode"

	"github.com/expr-lang/expr"
	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/exprs"
	"github.com/caracal-sec/caracal/plugins/suggest"
	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// Test is one of a rule's embedded tests.
type Test struct {
	Name           string         `yaml:"Name"`
	ExpectedResult bool           `yaml:"ExpectedResult"`
	Log            map[string]any `yaml:"Log"`
}

// Spec is a rule file as written (Panther's keys).
type Spec struct {
	AnalysisType       string   `yaml:"AnalysisType"`
	RuleID             string   `yaml:"RuleID"`
	DisplayName        string   `yaml:"DisplayName"`
	Description        string   `yaml:"Description"`
	Enabled            *bool    `yaml:"Enabled"`
	LogTypes           []string `yaml:"LogTypes"`
	Severity           string   `yaml:"Severity"`
	DedupPeriodMinutes *int     `yaml:"DedupPeriodMinutes"`
	Threshold          *int     `yaml:"Threshold"`
	// AlertStormLimit overrides caracal.alert_storm_limit for this rule (a
	// Caracal extension of Panther's keys).
	AlertStormLimit   int                 `yaml:"AlertStormLimit"`
	Runbook           string              `yaml:"Runbook"`
	Reference         string              `yaml:"Reference"`
	Tags              []string            `yaml:"Tags"`
	Reports           map[string][]string `yaml:"Reports"`
	OutputIds         []string            `yaml:"OutputIds"`
	Tests             []Test              `yaml:"Tests"`
	Condition         string              `yaml:"Condition"`
	Detection         yaml.Node           `yaml:"Detection"` // Panther's simple detection list
	Title             string              `yaml:"Title"`
	AlertTitle        string              `yaml:"AlertTitle"` // Panther's title template: text with {KeyPath} placeholders
	Dedup             string              `yaml:"Dedup"`
	AlertContext      map[string]string   `yaml:"AlertContext"`
	DynamicSeverity   string              `yaml:"DynamicSeverity"`
	SummaryAttributes []string            `yaml:"SummaryAttributes"`
	// InlineFilters are match expressions (as Detection's) that must all
	// hold before the logic runs.
	InlineFilters yaml.Node `yaml:"InlineFilters"`
	// DynamicSeverities are {ChangeTo: <Severity>, Conditions: [match
	// expressions]}: the first whose conditions all hold sets a match's
	// severity.
	DynamicSeverities yaml.Node `yaml:"DynamicSeverities"`
}

// Rule is a compiled rule.
type Rule struct {
	Spec
	File            string
	DedupPeriod     int
	ThresholdN      int
	condition       *exprs.Program
	detection       predicate // a compiled Detection list, instead of condition
	inlineFilters   predicate // nil: no InlineFilters
	guards          guards    // top-level fields the logic requires (for the engine's index)
	title           *exprs.Program
	alertTitle      titleTemplate // nil: no AlertTitle
	dedup           *exprs.Program
	dynSeverity     *exprs.Program
	severityChanges []severityChange // DynamicSeverities
	contextNames    []string
	contextPrograms []*exprs.Program
}

// ParseRule reads and compiles one rule file's YAML.
func ParseRule(file string, data []byte) (*Rule, error) {
	var node yaml.Node
	if err := yaml.Unmarshal(data, &node); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if err := checkKeys(file, &node); err != nil {
		return nil, err
	}
	var s Spec
	if err := node.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	r := &Rule{Spec: s, File: file, DedupPeriod: 60, ThresholdN: 1}
	if err := r.compile(); err != nil {
		if line := keyLine(&node, err.Error()); line > 0 {
			return nil, fmt.Errorf("%s:%d: rule %s: %w", file, line, s.RuleID, err)
		}
		return nil, fmt.Errorf("%s: rule %s: %w", file, s.RuleID, err)
	}
	return r, nil
}

// keyLine is the line of the rule key a compile error begins with
// ("Severity ...", "Condition: ...", "AlertContext.ip: ..."), or 0.
// Errors in match expressions give their own line ("Detection: line 9: ...").
func keyLine(doc *yaml.Node, msg string) int {
	key := msg[:len(msg)-len(strings.TrimLeftFunc(msg, unicode.IsLetter))]
	if strings.HasPrefix(msg[len(key):], ": line ") || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return 0
	}
	k, v := yamlnode.Entry(doc.Content[0], key)
	if k == nil {
		return 0
	}
	if sub, ok := strings.CutPrefix(msg[len(key):], "."); ok {
		sub, _, _ = strings.Cut(sub, ":")
		if sk, _ := yamlnode.Entry(v, sub); sk != nil {
			return sk.Line
		}
	}
	return k.Line
}

// KeyLine is the line of a key in a rule file's YAML ("Condition",
// "AlertContext.ip"), or 0.
func KeyLine(data []byte, key string) int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return 0
	}
	return keyLine(&doc, key+":")
}

// knownKeyList are a rule file's keys, in the order errors list them.
var knownKeyList = []string{"AnalysisType", "RuleID", "DisplayName", "Description", "Enabled", "LogTypes", "Severity",
	"DedupPeriodMinutes", "Threshold", "AlertStormLimit", "Runbook", "Reference", "Tags", "Reports", "OutputIds", "Tests", "Condition",
	"Title", "AlertTitle", "Dedup", "AlertContext", "DynamicSeverity", "DynamicSeverities", "SummaryAttributes", "Detection", "InlineFilters", "Filename"}

var knownKeys = setOf(knownKeyList)

func setOf(keys []string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

func checkKeys(file string, n *yaml.Node) error {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: a rule is a YAML mapping", file)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !knownKeys[k.Value] {
			return fmt.Errorf("%s:%d: unknown key %q%s", file, k.Line, k.Value, suggest.Hint(k.Value, knownKeyList))
		}
	}
	return nil
}

func (r *Rule) compile() error {
	if r.AnalysisType != "rule" {
		return fmt.Errorf("AnalysisType must be rule, got %q", r.AnalysisType)
	}
	if r.RuleID == "" {
		return errors.New("missing RuleID")
	}
	if len(r.LogTypes) == 0 {
		return errors.New("missing LogTypes")
	}
	if !validSeverity(r.Severity) {
		return fmt.Errorf("Severity %q: use one of %s", r.Severity, strings.Join(envelope.Severities, ", "))
	}
	if r.DedupPeriodMinutes != nil {
		if r.DedupPeriod = *r.DedupPeriodMinutes; r.DedupPeriod < 0 {
			return fmt.Errorf("DedupPeriodMinutes %d: use 0 (every match alerts) or more minutes", r.DedupPeriod)
		}
	}
	if r.Threshold != nil {
		if r.ThresholdN = *r.Threshold; r.ThresholdN < 1 {
			return fmt.Errorf("Threshold %d: use 1 (alert on the first match) or more", r.ThresholdN)
		}
	}
	if r.AlertStormLimit < 0 {
		return fmt.Errorf("AlertStormLimit %d: use 0 (the configured storm limit) or more alerts an hour", r.AlertStormLimit)
	}
	var err error
	hasDetection := r.Detection.Kind != 0
	switch {
	case r.Condition != "" && hasDetection:
		return errors.New("give Condition or Detection, not both")
	case hasDetection:
		if r.detection, err = compileMatchList(r.File, "Detection", &r.Detection); err != nil {
			return fmt.Errorf("Detection: %w", err)
		}
		r.guards = detectionGuards(&r.Detection)
	case r.Condition == "":
		return errors.New("missing Condition (an expr boolean) or Detection (Panther's simple detection list)")
	default:
		if r.condition, err = compileExpr(r.Condition, expr.AsBool()); err != nil {
			return fmt.Errorf("Condition: %w", err)
		}
		r.guards = conditionGuards(r.Condition)
	}
	if r.InlineFilters.Kind != 0 {
		if r.inlineFilters, err = compileMatchList(r.File, "InlineFilters", &r.InlineFilters); err != nil {
			return fmt.Errorf("InlineFilters: %w", err)
		}
		// The filters run first: what they require, the rule requires.
		r.guards = r.guards.and(detectionGuards(&r.InlineFilters))
	}
	switch {
	case r.Title != "" && r.AlertTitle != "":
		return errors.New("AlertTitle: give Title (an expr) or AlertTitle (a template with {field} placeholders), not both")
	case r.Title != "":
		if r.title, err = compileExpr(r.Title); err != nil {
			return fmt.Errorf("Title: %w", err)
		}
	case r.AlertTitle != "":
		if r.alertTitle, err = compileTitleTemplate(r.AlertTitle); err != nil {
			return fmt.Errorf("AlertTitle: %w", err)
		}
	}
	if r.Dedup != "" {
		if r.dedup, err = compileExpr(r.Dedup); err != nil {
			return fmt.Errorf("Dedup: %w", err)
		}
	}
	switch {
	case r.DynamicSeverity != "" && r.DynamicSeverities.Kind != 0:
		return errors.New("DynamicSeverities: give DynamicSeverity (an expr) or DynamicSeverities (Panther's list), not both")
	case r.DynamicSeverity != "":
		if r.dynSeverity, err = compileExpr(r.DynamicSeverity); err != nil {
			return fmt.Errorf("DynamicSeverity: %w", err)
		}
	case r.DynamicSeverities.Kind != 0:
		if r.severityChanges, err = compileSeverityChanges(r.File, &r.DynamicSeverities); err != nil {
			return fmt.Errorf("DynamicSeverities: %w", err)
		}
	}
	names := make([]string, 0, len(r.AlertContext))
	for k := range r.AlertContext {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p, err := compileExpr(r.AlertContext[k])
		if err != nil {
			return fmt.Errorf("AlertContext.%s: %w", k, err)
		}
		r.contextNames = append(r.contextNames, k)
		r.contextPrograms = append(r.contextPrograms, p)
	}
	return nil
}

func validSeverity(s string) bool {
	return slices.Contains(envelope.Severities, s)
}

// canonicalSeverity is s, in any case, as envelope.Severities spells it.
func canonicalSeverity(s string) (string, bool) {
	if i := envelope.SeverityRank(s); i >= 0 {
		return envelope.Severities[i], true
	}
	return "", false
}

// Enabled reports whether the rule runs (default true).
func (r *Rule) IsEnabled() bool { return r.Enabled == nil || *r.Enabled }

// eachYAML calls fn with every *.yml / *.yaml file below dir.
func eachYAML(dir string, fn func(path string, data []byte) error) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if ext := filepath.Ext(path); ext != ".yml" && ext != ".yaml" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return fn(path, data)
	})
}

// LoadDir reads every rule (*.yml, *.yaml) below dir.
func LoadDir(dir string) ([]*Rule, error) {
	var rules []*Rule
	var errs []error
	err := eachYAML(dir, func(path string, data []byte) error {
		r, err := ParseRule(path, data)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		rules = append(rules, r)
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		wd, _ := os.Getwd()
		return nil, fmt.Errorf("rules directory %s does not exist (relative to %s): run from Caracal's directory or name another", dir, wd)
	}
	if err != nil {
		return nil, fmt.Errorf("rules in %s: %w", dir, err)
	}
	seen := map[string]string{}
	for _, r := range rules {
		if prev, dup := seen[r.RuleID]; dup {
			errs = append(errs, fmt.Errorf("%s: RuleID %s already defined in %s", r.File, r.RuleID, prev))
		}
		seen[r.RuleID] = r.File
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].RuleID < rules[j].RuleID })
	return rules, nil
}
