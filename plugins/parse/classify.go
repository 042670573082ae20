package parse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"
	"unsafe"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
	"github.com/caracal-sec/caracal/plugins/suggest"
)

// Classifier tries an event against candidate log types and normalizes it
// with the first that fits.
type Classifier struct {
	parsers map[string]*Parser
	order   []string
	// Without candidates, a JSON object is tried against the JSON schemas
	// only, and a text line against the line formats only.
	jsonOrder, textOrder []string
	now                  func() time.Time
	// Enrich, when set, is applied by the CLI helpers (Each) to every
	// normalized event, as the pipeline's caracal_enrich does.
	Enrich func(map[string]any) bool
}

// NewClassifier compiles the schemas.
func NewClassifier(schemas []*schema.Schema) (*Classifier, error) {
	c := &Classifier{parsers: map[string]*Parser{}, now: time.Now}
	for _, s := range schemas {
		p, err := Compile(s)
		if err != nil {
			return nil, err
		}
		c.parsers[s.Schema] = p
		c.order = append(c.order, s.Schema)
	}
	sort.Strings(c.order)
	for _, lt := range c.order {
		if c.parsers[lt].read == nil {
			c.jsonOrder = append(c.jsonOrder, lt)
		} else {
			c.textOrder = append(c.textOrder, lt)
		}
	}
	return c, nil
}

// LoadClassifier reads the schemas in dir and compiles them.
func LoadClassifier(dir string) (*Classifier, error) {
	schemas, err := schema.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	return NewClassifier(schemas)
}

// LogTypes lists the known log types, sorted.
func (c *Classifier) LogTypes() []string { return append([]string(nil), c.order...) }

// CheckLogTypes returns an error for the first name that is not a known
// log type, with the one meant when it is near.
func (c *Classifier) CheckLogTypes(names []string) error {
	for _, n := range names {
		if _, ok := c.parsers[n]; !ok {
			return fmt.Errorf("unknown log type %s%s", n, suggest.Hint(n, c.LogTypes()))
		}
	}
	return nil
}

// Origin is where a raw event came from.
type Origin struct {
	SourceID    string
	SourceLabel string
	RequestID   string
	ReceivedAt  time.Time
	Partition   int32
	Offset      int64
	Index       int // the event's position within the raw record
	// Header is the stream's header line the sender sent before this
	// event (CSV with hasHeader, VPC Flow custom formats), if any.
	Header []byte
	// FirstLine is the first line of the stream the event came in, when
	// known (the CLI reads whole files). A CSV schema with hasHeader and
	// no columns takes its header from it when there is no Header: a CSV
	// header has no mark ('#') that tells it from an event.
	FirstLine []byte
}

// header is the header line p reads the event with (Parser.ParseLine).
func (p *Parser) header(o Origin) []byte {
	if len(o.Header) == 0 && p.firstLineHeader {
		return o.FirstLine
	}
	return o.Header
}

// Classify normalizes raw as the first of candidates that accepts it (all
// known types when candidates is empty). One of the results is set, except
// for a line that is not an event (a header or a line the schema skips):
// then neither is.
func (c *Classifier) Classify(raw []byte, candidates []string, o Origin) (map[string]any, *envelope.ClassificationFailure) {
	var ev map[string]any
	fail := c.first(raw, candidates, o, func(p *Parser, keys *keySearch) error {
		res, err := p.parse(raw, p.header(o), keys)
		if err == nil {
			ev = c.standardize(p, res, o)
		}
		return err
	})
	return ev, fail
}

// Normalized is a normalized event as the next stage reads it.
type Normalized struct {
	JSON    []byte
	LogType string
	RowID   string
}

// normalizedRow is a Normalized with the bytes of its RowID: one
// allocation rather than two.
type normalizedRow struct {
	Normalized
	id [envelope.RowIDLen]byte
}

// ClassifyJSON is Classify writing the event as JSON (as EncodeEvent
// would), straight from the input where the log type allows.
func (c *Classifier) ClassifyJSON(raw []byte, candidates []string, o Origin) (*Normalized, *envelope.ClassificationFailure) {
	var out *Normalized
	// The row id is written on the stack, and kept in the event's own
	// allocation (normalizedRow) only when there is an event.
	var id [envelope.RowIDLen]byte
	envelope.PutRowID(&id, o.Partition, o.Offset, o.Index)
	rowID := unsafe.String(&id[0], len(id))
	fail := c.first(raw, candidates, o, func(p *Parser, keys *keySearch) error {
		var b []byte
		var err error
		if p.emits {
			b, err = c.emitEvent(p, raw, keys, o, rowID)
		}
		// A schema with derived fields leaves what the emit path refuses
		// to the map path, which reports errors in the fields' order.
		if !p.emits || err != nil && p.derived != nil && !errors.Is(err, errSkip) {
			var res *Result
			if res, err = p.parse(raw, p.header(o), keys); err == nil {
				b, err = envelope.EncodeEvent(c.standardize(p, res, o))
			}
		}
		if err == nil {
			nr := &normalizedRow{id: id}
			nr.Normalized = Normalized{JSON: b, LogType: p.Schema.Schema, RowID: unsafe.String(&nr.id[0], len(nr.id))}
			out = &nr.Normalized
		}
		return err
	})
	return out, fail
}

// tryOrder is the log types an event is tried as when its source names
// none: the JSON types for a JSON object, else the line formats.
func (c *Classifier) tryOrder(raw []byte) []string {
	candidates := c.textOrder
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		candidates = c.jsonOrder
	}
	if len(candidates) == 0 {
		candidates = c.order
	}
	return candidates
}

// first calls parse with each candidate parser until one returns no error
// (or errSkip: not an event), and returns the failure when none accepted
// raw. keys is set for the required-key pre-check when there are several
// candidates.
func (c *Classifier) first(raw []byte, candidates []string, o Origin, parse func(p *Parser, keys *keySearch) error) *envelope.ClassificationFailure {
	if len(candidates) == 0 {
		candidates = c.tryOrder(raw)
	}
	// The reasons are only kept when no type accepts raw (failure copies
	// them): until then they are on the stack.
	var kept [8]envelope.FailureReason
	reasons := kept[:0]
	keys := searchBytes
	if len(candidates) == 1 {
		keys = nil
	}
	// A defer in the loop below would make every call pay for the
	// runtime's defer handling (deferreturn), not only those that index.
	defer func() {
		if keys != nil && keys != searchBytes {
			keys.put()
		}
	}()
	for _, lt := range candidates {
		p := c.parsers[lt]
		if p == nil {
			reasons = append(reasons, envelope.FailureReason{LogType: lt, Reason: "unknown log type (no schema)"})
			continue
		}
		err := parse(p, keys)
		if err == nil || errors.Is(err, errSkip) {
			return nil
		}
		if keys == searchBytes {
			keys = getKeySearch()
			keys.later = true
		}
		reasons = append(reasons, envelope.FailureReason{LogType: lt, Reason: err.Error()})
	}
	return c.failure(raw, candidates, reasons, o)
}

// standardize adds the p_* fields.
func (c *Classifier) standardize(p *Parser, res *Result, o Origin) map[string]any {
	now := c.now().UTC()
	ev := res.Fields
	eventTime := res.EventTime
	if eventTime.IsZero() {
		eventTime = now
	}
	ev[envelope.FieldLogType] = p.Schema.Schema
	ev[envelope.FieldEventTime] = envelope.FormatTime(eventTime)
	ev[envelope.FieldParseTime] = envelope.FormatTime(now)
	ev[envelope.FieldRowID] = envelope.RowID(o.Partition, o.Offset, o.Index)
	ev[envelope.FieldSourceID] = o.SourceID
	ev[envelope.FieldSourceLabel] = o.SourceLabel
	ev[envelope.FieldSchemaVersion] = p.Schema.Version
	res.Indicators.Each(func(f string, vals []string) { ev[f] = vals })
	return ev
}

func (c *Classifier) failure(raw []byte, tried []string, reasons []envelope.FailureReason, o Origin) *envelope.ClassificationFailure {
	f := &envelope.ClassificationFailure{
		SourceID: o.SourceID, SourceLabel: o.SourceLabel, RequestID: o.RequestID,
		RowID: envelope.RowID(o.Partition, o.Offset, o.Index),
		Tried: append([]string{}, tried...), Reasons: append([]envelope.FailureReason{}, reasons...),
		ReceivedAt: envelope.FormatTime(o.ReceivedAt), FailedAt: envelope.FormatTime(c.now()),
	}
	if o.ReceivedAt.IsZero() {
		f.ReceivedAt = f.FailedAt
	}
	f.SetRaw(raw)
	return f
}

// SplitRecords returns the events of a raw record: CloudTrail's
// {"Records": [...]} wrapper yields its records, anything else itself.
func SplitRecords(raw []byte) [][]byte {
	t := bytes.TrimSpace(raw)
	// The wrapper's one key is its first: looking there, not through the
	// whole event, took a sixtieth of all the CPU of `make bench`.
	if len(t) == 0 || t[0] != '{' || !bytes.HasPrefix(bytes.TrimLeft(t[1:], " \t\r\n"), []byte(`"Records"`)) {
		return [][]byte{raw}
	}
	var w map[string]json.RawMessage
	if json.Unmarshal(t, &w) != nil || len(w) != 1 {
		return [][]byte{raw}
	}
	var recs []json.RawMessage
	if json.Unmarshal(w["Records"], &recs) != nil || len(recs) == 0 {
		return [][]byte{raw}
	}
	out := make([][]byte, len(recs))
	for i, r := range recs {
		out[i] = r
	}
	return out
}

// Describe summarizes a failure for humans.
func Describe(f *envelope.ClassificationFailure) string {
	s := "no log type accepted the event"
	for _, r := range f.Reasons {
		s += fmt.Sprintf("; %s: %s", r.LogType, r.Reason)
	}
	return s
}
