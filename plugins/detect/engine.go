package detect

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/exprs"
)

// LookupFunc resolves lookup("<table>", key) in rules; nil means no tables.
type LookupFunc func(table string, key any) any

var lookupHook struct {
	sync.RWMutex
	fn LookupFunc
}

// SetLookup installs the lookup-table resolver used by rules' lookup().
func SetLookup(fn LookupFunc) {
	lookupHook.Lock()
	lookupHook.fn = fn
	lookupHook.Unlock()
}

// regexCache holds compiled re_match patterns, up to maxCachedRegexps: a
// pattern is normally a literal in a rule, but one taken from event data
// must not grow the cache without bound.
var (
	regexCache  sync.Map // pattern → *regexp.Regexp
	regexCached atomic.Int64
)

const maxCachedRegexps = 4096

// functions are what rule expressions may call besides expr's built-ins.
var functions = map[string]func(params ...any) (any, error){
	"cidr_match": func(params ...any) (any, error) {
		if len(params) != 2 {
			return false, errors.New("cidr_match(ip, cidr)")
		}
		ip, _ := params[0].(string)
		cidr, _ := params[1].(string)
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return false, nil
		}
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return false, fmt.Errorf("cidr_match: %w", err)
		}
		return p.Contains(a.Unmap()), nil
	},
	"deep_get": func(params ...any) (any, error) {
		if len(params) < 2 {
			return nil, errors.New("deep_get(object, \"a.b.c\"[, default])")
		}
		path, _ := params[1].(string)
		v := DeepGet(params[0], path)
		if v == nil && len(params) > 2 {
			return params[2], nil
		}
		return v, nil
	},
	"re_match": func(params ...any) (any, error) {
		if len(params) != 2 {
			return false, errors.New("re_match(value, pattern)")
		}
		s, ok := params[0].(string)
		pat, _ := params[1].(string)
		if !ok {
			return false, nil
		}
		re, err := cachedRegexp(pat)
		if err != nil {
			return false, err
		}
		return re.MatchString(s), nil
	},
	"lookup": func(params ...any) (any, error) {
		if len(params) != 2 {
			return nil, errors.New("lookup(table, key)")
		}
		table, _ := params[0].(string)
		lookupHook.RLock()
		fn := lookupHook.fn
		lookupHook.RUnlock()
		if fn == nil {
			return nil, nil
		}
		return fn(table, params[1]), nil
	},
}

var functionNames = slices.Sorted(maps.Keys(functions))

func compileExpr(src string, opts ...expr.Option) (*exprs.Program, error) {
	base := []expr.Option{
		expr.Env(map[string]any{}),
		expr.AllowUndefinedVariables(),
	}
	for _, name := range functionNames {
		base = append(base, expr.Function(name, functions[name]))
	}
	return exprs.Compile(src, functionNames, append(base, opts...)...)
}

func cachedRegexp(p string) (*regexp.Regexp, error) {
	if re, ok := regexCache.Load(p); ok {
		return re.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("re_match: %w", err)
	}
	if regexCached.Add(1) <= maxCachedRegexps {
		// A copy: a pattern read from an event points into the record,
		// whose bytes are not the cache's to keep.
		regexCache.Store(strings.Clone(p), re)
	}
	return re, nil
}

// DeepGet follows a dotted path through maps and lists ("a.b.0.c"); nil
// when any step is missing.
func DeepGet(v any, path string) any {
	if path == "" {
		return v
	}
	for _, k := range strings.Split(path, ".") {
		switch t := v.(type) {
		case map[string]any:
			v = t[k]
		case []any:
			i := 0
			if _, err := fmt.Sscan(k, &i); err != nil || i < 0 || i >= len(t) {
				return nil
			}
			v = t[i]
		default:
			return nil
		}
	}
	return v
}

// Engine evaluates events against the rules of their log type.
type Engine struct {
	rules  []*Rule
	byType map[string][]*Rule
	index  map[string]*index
	// reads finds the top-level keys the rules' conditions read,
	// readKeys, so that DecodeAndEvaluate decodes only those a candidate
	// rule reads.
	reads    *envelope.Names
	readKeys []string
	// readOrder learns the events' key order, to find reads' keys fast.
	readOrder *envelope.KeyOrder
	plans     map[*Rule]*plan
}

// NewEngine indexes the enabled rules by log type, and within a log type by
// the field most of its rules guard (see guards).
func NewEngine(rules []*Rule) *Engine {
	e := &Engine{rules: rules, byType: map[string][]*Rule{}, index: map[string]*index{}}
	for _, r := range rules {
		if !r.IsEnabled() {
			continue
		}
		for _, lt := range r.LogTypes {
			e.byType[lt] = append(e.byType[lt], r)
		}
	}
	for lt, rs := range e.byType {
		sort.SliceStable(rs, func(i, j int) bool { return rs[i].RuleID < rs[j].RuleID })
		e.index[lt] = newIndex(rs)
	}
	e.planReads()
	return e
}

// plan is what DecodeAndEvaluate needs of a rule: the keys its condition
// reads and its guards, as positions in Engine.readKeys.
type plan struct {
	reads  []int
	guards []guardAt
	// whole: the condition may read any key ($env as a whole, a KeyPath
	// with wildcards), so an event it is a candidate for is decoded whole.
	whole bool
}

type guardAt struct {
	key    int      // the top-level field
	path   []string // the keys inside it, for a nested field
	values map[string]bool
}

// planReads lists the keys the rules' conditions read (with the log type
// and the indexed fields) and makes each rule's plan. A rule that may read
// any key sends only the events it is a candidate for to a whole decode:
// one such rule once made the detect stage decode every event of every
// log type whole, several times slower.
func (e *Engine) planReads() {
	conds := map[*Rule]map[string]bool{}
	reads := map[string]bool{envelope.FieldLogType: true}
	for _, rs := range e.byType {
		for _, r := range rs {
			if _, done := conds[r]; done { // a rule of several log types
				continue
			}
			keys, all := r.conditionKeys()
			if all {
				keys = nil // plan.whole
			}
			conds[r] = keys
			for k := range keys {
				reads[k] = true
			}
			for f := range r.guards {
				top, _, _ := strings.Cut(f, pathSep)
				reads[top] = true
			}
		}
	}
	for _, ix := range e.index {
		reads[ix.field] = true
	}
	e.readKeys = slices.Sorted(maps.Keys(reads))
	names := envelope.NewNames(e.readKeys)
	e.reads = &names
	e.readOrder = envelope.NewKeyOrder(names)
	e.plans = map[*Rule]*plan{}
	for r, keys := range conds {
		p := &plan{whole: keys == nil}
		for k := range keys {
			i, _ := names.Find(k)
			p.reads = append(p.reads, i)
		}
		for f, values := range r.guards {
			path := strings.Split(f, pathSep)
			i, _ := names.Find(path[0])
			p.guards = append(p.guards, guardAt{i, path[1:], values})
		}
		e.plans[r] = p
	}
}

// LoadEngine reads the rules in dir.
func LoadEngine(dir string) (*Engine, error) {
	rules, err := LoadDir(dir)
	if err != nil {
		return nil, err
	}
	return NewEngine(rules), nil
}

// Rules returns every loaded rule.
func (e *Engine) Rules() []*Rule { return e.rules }

// Evaluate runs the event's log type's rules and returns one match per rule
// that matched, or errored (type RULE_ERROR).
func (e *Engine) Evaluate(event map[string]any) []map[string]any {
	lt, _ := event[envelope.FieldLogType].(string)
	ix := e.index[lt]
	if ix == nil {
		return nil
	}
	var out []map[string]any
	for _, r := range ix.lookup(event) {
		if m := r.Match(event); m != nil {
			out = append(out, m)
		}
	}
	return out
}

// DecodeAndEvaluate is Evaluate for an event as the process stage wrote
// it. An event is a candidate for few rules, and rules read few of its
// fields: one pass over the event notes where the values of the keys
// conditions read are; its log type and indexed field give its rules (as
// Evaluate finds them); a rule whose guards the event fails is skipped
// (running it gives the same result); and only the values the rest read
// are decoded, their strings pointing into raw. A match, which carries
// the whole event, is made again from the fully decoded event. Rules see
// the same values either way: a key a condition does not name cannot
// change its result.
func (e *Engine) DecodeAndEvaluate(raw []byte) ([]map[string]any, error) {
	var fewVals [128][]byte // the shipped rules' conditions read 40-odd keys
	var fewNeed [128]bool
	var fewRun [16]*Rule
	vals, need, run := fewVals[:0], fewNeed[:0], fewRun[:0]
	if n := len(e.readKeys); n > len(fewVals) {
		vals, need = make([][]byte, n), make([]bool, n)
	}
	vals, need = vals[:len(e.readKeys)], need[:len(e.readKeys)]
	if err := e.locate(raw, vals); err != nil {
		return nil, err
	}
	ix := e.index[e.text(vals, envelope.FieldLogType)]
	if ix == nil {
		return nil, nil
	}
	for _, r := range ix.lookupJSON(e.value(vals, ix.field)) {
		p := e.plans[r]
		if !p.admits(vals) {
			continue
		}
		if p.whole {
			return e.evaluateWhole(raw)
		}
		run = append(run, r)
		for _, i := range p.reads {
			need[i] = true
		}
	}
	if len(run) == 0 {
		return nil, nil
	}
	ev := make(map[string]any, 8)
	for i, needed := range need {
		if !needed || vals[i] == nil {
			continue
		}
		v, err := envelope.ViewValue(vals[i])
		if err != nil {
			return nil, err
		}
		ev[e.readKeys[i]] = v
	}
	matched := false
	for _, r := range run {
		if matched = r.Match(ev) != nil; matched {
			break
		}
	}
	if !matched {
		return nil, nil
	}
	return e.evaluateWhole(raw)
}

// evaluateWhole is Evaluate for the event raw decoded whole.
func (e *Engine) evaluateWhole(raw []byte) ([]map[string]any, error) {
	full, err := envelope.DecodeEvent(raw)
	if err != nil {
		return nil, err
	}
	return e.Evaluate(full), nil
}

// admits reports whether an event whose located values are vals passes
// every guard of the rule.
func (p *plan) admits(vals [][]byte) bool {
	for _, g := range p.guards {
		raw := vals[g.key]
		for _, k := range g.path {
			if !objectOrNothing(raw) {
				// a?.b fails on a string, say: running the rule gives
				// that rule error.
				return true
			}
			raw = envelope.ObjectField(raw, k)
		}
		if v, ok := guardText(raw); ok && !g.values[v] {
			return false
		}
	}
	return true
}

// objectOrNothing: raw, a located value, is an object, null or absent,
// where optional member access gives a value or nil without failing.
func objectOrNothing(raw []byte) bool {
	return len(raw) == 0 || raw[0] == '{' || string(raw) == "null"
}

// locate sets vals[i] to the JSON of the value of top-level key
// readKeys[i] in raw (the last, if given twice; nil if absent).
func (e *Engine) locate(raw []byte, vals [][]byte) error {
	return envelope.EachKeptField(raw, e.readOrder, func(i int, value []byte) { vals[i] = value })
}

// value is the JSON of key's value among the located values (nil when
// absent).
func (e *Engine) value(vals [][]byte, key string) []byte {
	if i, ok := e.reads.Find(key); ok {
		return vals[i]
	}
	return nil
}

// text is the string value of key among the located values ("" when it
// is absent or not a string).
func (e *Engine) text(vals [][]byte, key string) string {
	v, _ := envelope.ViewString(e.value(vals, key))
	return v
}

// vms are reused: vm.Run allocates a VM (and its stack) per call, which
// costs as much as a short condition itself.
var vms = sync.Pool{New: func() any { return &vm.VM{} }}

func run(p *exprs.Program, env map[string]any) (any, error) {
	m := vms.Get().(*vm.VM)
	v, err := exprs.Run(m, p, env)
	vms.Put(m)
	return v, err
}

// Eval runs the rule's condition: true, false, or an error.
func (r *Rule) Eval(event map[string]any) (bool, error) {
	// As in Panther, an event the InlineFilters drop never reaches the
	// logic (nor any error it would have).
	if r.inlineFilters != nil && !r.inlineFilters(event) {
		return false, nil
	}
	if r.detection != nil {
		return r.detection(event), nil
	}
	v, err := run(r.condition, event)
	if err != nil {
		return false, err
	}
	b, _ := v.(bool)
	return b, nil
}

// Match returns the match record for the event, nil when the rule does not
// match; a runtime error yields a RULE_ERROR record.
func (r *Rule) Match(event map[string]any) map[string]any {
	ok, err := r.Eval(event)
	if err != nil {
		// An error can quote the value it failed on, which may be large.
		msg := truncate(err.Error(), maxRuleError)
		m := r.record(event)
		m[envelope.FieldMatchType] = envelope.TypeRuleError
		m[envelope.FieldRuleError] = msg
		m[envelope.FieldAlertTitle] = truncate(fmt.Sprintf("Rule %s failed: %v", r.RuleID, firstLine(msg)), maxTitle)
		m[envelope.FieldDedupString] = truncate("error:"+firstLine(msg), maxDedup)
		return m
	}
	if !ok {
		return nil
	}
	m := r.record(event)
	m[envelope.FieldMatchType] = envelope.TypeRule
	var outErrs []string // of Title, Dedup, DynamicSeverity, which fall back to defaults
	title := r.DisplayName
	if title == "" {
		title = r.RuleID
	}
	switch {
	case r.title != nil:
		if v, err := run(r.title, event); err == nil && v != nil {
			title = fmt.Sprint(v)
		} else if err != nil {
			outErrs = append(outErrs, "Title: "+err.Error())
		}
	case r.alertTitle != nil:
		// A template whose placeholders all came out empty says
		// nothing: keep the default title (and so the dedup string).
		if s := r.alertTitle.render(event); strings.TrimSpace(s) != "" {
			title = s
		}
	}
	title = truncate(title, maxTitle)
	m[envelope.FieldAlertTitle] = title
	dedup := title
	if r.dedup != nil {
		if v, err := run(r.dedup, event); err == nil && v != nil {
			dedup = fmt.Sprint(v)
		} else if err != nil {
			outErrs = append(outErrs, "Dedup: "+err.Error())
		}
	}
	m[envelope.FieldDedupString] = truncate(dedup, maxDedup)
	// A DynamicSeverity that fails keeps the YAML severity, as a failing
	// Title keeps the default title; rule tests report it (CheckOutputs),
	// and the alert says it, so that a rule failing in production is seen.
	sev, err := r.severityOf(event)
	if err != nil {
		outErrs = append(outErrs, err.Error())
	}
	m[envelope.FieldRuleSeverity] = sev
	ctx := map[string]any{}
	// The errors' entry takes its room in the alert context's bound first.
	reserved := 0
	var errList []any
	if len(outErrs) > 0 {
		errList = make([]any, len(outErrs))
		for i, e := range outErrs {
			errList[i] = truncate(e, maxOutputError)
		}
		b, _ := json.Marshal(errList) // strings: it cannot fail
		reserved = len(b) + len(OutputErrorsKey) + 4
	}
	bound := reserved
	for i, name := range r.contextNames {
		v, err := run(r.contextPrograms[i], event)
		if err != nil {
			v = "error: " + err.Error()
		}
		v, _ = jsonable(v)
		ctx[name] = v
		bound += envelope.JSONSizeAtMost(v)
	}
	if bound > maxAlertContext { // it may not fit: measure each value
		used := reserved
		for _, name := range r.contextNames {
			if b, err := json.Marshal(ctx[name]); err == nil {
				if used+len(b) > maxAlertContext {
					ctx[name] = fmt.Sprintf("omitted: %d bytes, past the %d KiB an alert context keeps", len(b), maxAlertContext>>10)
				} else {
					used += len(b)
				}
			}
		}
	}
	if errList != nil {
		ctx[OutputErrorsKey] = errList
	}
	m[envelope.FieldAlertContext] = ctx
	return m
}

// severityOf is the severity of the rule's match on the event: that of
// the first DynamicSeverities entry whose conditions hold, or what
// DynamicSeverity gives, else Severity. Python rules' severity() returns
// upper case ("HIGH"), so its result is read case-insensitively; DEFAULT
// means Severity. err says why DynamicSeverity's result was not used.
func (r *Rule) severityOf(event map[string]any) (string, error) {
	for _, c := range r.severityChanges {
		if c.when(event) {
			return c.to, nil
		}
	}
	if r.dynSeverity == nil {
		return r.Severity, nil
	}
	v, err := run(r.dynSeverity, event)
	if err != nil {
		return r.Severity, fmt.Errorf("DynamicSeverity: %w", err)
	}
	s, _ := v.(string)
	if strings.EqualFold(s, "DEFAULT") {
		return r.Severity, nil
	}
	if sev, ok := canonicalSeverity(s); ok {
		return sev, nil
	}
	return r.Severity, fmt.Errorf("DynamicSeverity gave %v; want one of %s or DEFAULT (any case)", v, strings.Join(envelope.Severities, ", "))
}

// What a match carries besides its event is bounded: it travels through
// the broker as the match and the alert (records of 1 MiB by default), and
// a rule that copies a large field into its title or context must not make
// them too large to produce.
const (
	maxTitle        = 1000 // bytes, as Panther's
	maxDedup        = 1000
	maxRuleError    = 4 << 10
	maxAlertContext = 64 << 10
	maxOutputError  = 1 << 10
)

// OutputErrorsKey is the alert context entry listing why a matching rule's
// Title, Dedup or DynamicSeverity could not be used (the alert has the
// default title, dedup string or severity instead).
const OutputErrorsKey = "caracal_output_errors"

// truncate cuts s to at most n bytes, at a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// record copies the event and adds the rule's attributes.
// CheckOutputs runs the rule's Title, Dedup, AlertContext and
// DynamicSeverity over an event and returns the first error: Match falls
// back to defaults when they fail, so rule tests check them here.
func (r *Rule) CheckOutputs(event map[string]any) error {
	for _, np := range r.programs() {
		if np.key == "Condition" || np.key == "DynamicSeverity" {
			continue // the match itself; severityOf below
		}
		if _, err := run(np.p, event); err != nil {
			return fmt.Errorf("%s: %w", np.key, err)
		}
	}
	_, err := r.severityOf(event)
	return err
}

func (r *Rule) record(event map[string]any) map[string]any {
	m := make(map[string]any, len(event)+16)
	for k, v := range event {
		m[k] = v
	}
	tags := r.Tags
	if tags == nil {
		tags = []string{}
	}
	reports := r.Reports
	if reports == nil {
		reports = map[string][]string{}
	}
	outputs := r.OutputIds
	if outputs == nil {
		outputs = []string{}
	}
	m[envelope.FieldRuleID] = r.RuleID
	m[envelope.FieldRuleSeverity] = r.Severity
	m[envelope.FieldRuleTags] = tags
	m[envelope.FieldRuleReports] = reports
	m[envelope.FieldRuleName] = r.DisplayName
	m[envelope.FieldRuleDesc] = r.Description
	m[envelope.FieldRuleRunbook] = r.Runbook
	m[envelope.FieldRuleRef] = r.Reference
	m[envelope.FieldRuleDedupMin] = r.DedupPeriod
	m[envelope.FieldRuleThresh] = r.ThresholdN
	if r.AlertStormLimit > 0 {
		m[envelope.FieldRuleStormLimit] = r.AlertStormLimit
	}
	m[envelope.FieldRuleOutputs] = outputs
	return m
}

// jsonable is v with what JSON cannot hold written as text: NaN and ±Inf
// (expr's 0.0 / 0 and 1.0 / 0) and values of kinds json.Marshal refuses.
// A match must always encode: one that does not failed its whole batch in
// the detect stage. changed says a new value was made; maps and lists are
// copied only then (they may be the event's own).
func jsonable(v any) (_ any, changed bool) {
	switch t := v.(type) {
	case nil, bool, string, json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, []string:
		return v, false
	case float64:
		if math.IsNaN(t) || math.IsInf(t, 0) {
			return strconv.FormatFloat(t, 'g', -1, 64), true
		}
		return v, false
	case float32:
		return jsonable(float64(t))
	case map[string]any:
		var out map[string]any
		for k, x := range t {
			if y, ch := jsonable(x); ch {
				if out == nil {
					out = maps.Clone(t)
				}
				out[k] = y
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	case []any:
		var out []any
		for i, x := range t {
			if y, ch := jsonable(x); ch {
				if out == nil {
					out = slices.Clone(t)
				}
				out[i] = y
			}
		}
		if out == nil {
			return v, false
		}
		return out, true
	}
	if _, err := json.Marshal(v); err != nil {
		return fmt.Sprint(v), true
	}
	return v, false
}
