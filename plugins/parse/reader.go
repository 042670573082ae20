package parse

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/caracal-sec/caracal/plugins/parse/native"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// errSkip marks a line that is not an event (a header or a comment the
// schema says to skip): it is neither normalized nor a failure.
var errSkip = errors.New("not an event (header or skipped line)")

// reader turns one raw line into the values the schema types, in rec
// (which it finds empty). JSON schemas have none (the event is decoded as
// JSON).
type reader func(rec *native.Record, line, header []byte) error

func newReader(p *schema.Parser) (reader, error) {
	switch {
	case p == nil:
		return nil, nil
	case p.Native != nil:
		fn, err := native.Lookup(p.Native.Name)
		if err != nil {
			return nil, err
		}
		return func(rec *native.Record, line, header []byte) error {
			err := fn(rec, line, header)
			if errors.Is(err, native.ErrHeader) {
				return errSkip
			}
			return err
		}, nil
	case p.CSV != nil:
		return newCSVReader(p.CSV)
	case p.FastMatch != nil:
		return newFastMatchReader(p.FastMatch)
	case p.Regex != nil:
		return newRegexReader(p.Regex)
	}
	return nil, nil
}

// records are reused from line to line.
var records = sync.Pool{New: func() any { return new(native.Record) }}

func getRecord() *native.Record { return records.Get().(*native.Record) }

func putRecord(r *native.Record) {
	r.Reset()
	records.Put(r)
}

// textValues applies emptyValues and trimSpace to a matched value; ok is
// false when the value counts as missing.
type textValues struct {
	empty map[string]bool
	trim  bool
}

func newTextValues(empty []string, trim bool) textValues {
	tv := textValues{empty: map[string]bool{"": true}, trim: trim}
	for _, e := range empty {
		tv.empty[e] = true
	}
	return tv
}

func (tv textValues) put(rec *native.Record, k, v string) {
	if tv.trim {
		v = strings.TrimSpace(v)
	}
	if !tv.empty[v] {
		rec.Put(k, v)
	}
}

func newCSVReader(c *schema.CSVParser) (reader, error) {
	delim := ','
	if c.Delimiter != "" {
		d := []rune(c.Delimiter)
		if c.Delimiter == `\t` {
			d = []rune{'\t'}
		}
		if len(d) != 1 {
			return nil, fmt.Errorf("csv delimiter %q: want a single character", c.Delimiter)
		}
		delim = d[0]
	}
	// csv refuses some delimiters (a quote, a line break) on every line:
	// refuse them here, once.
	probe := csv.NewReader(strings.NewReader("x"))
	probe.Comma = delim
	if _, err := probe.Read(); err != nil {
		return nil, fmt.Errorf("csv delimiter %q: %w", c.Delimiter, err)
	}
	if len(c.Columns) == 0 && !c.HasHeader {
		return nil, errors.New("csv parser needs columns, or hasHeader: true")
	}
	tv := newTextValues(c.EmptyValues, c.TrimSpace)
	split := newCSVSplitter(delim, c.TrimSpace).split
	// The columns of the last header seen: the lines of a stream share
	// one, and splitting it again cost a copy of it for every line.
	var last atomic.Pointer[csvHeader]
	return func(m *native.Record, line, header []byte) error {
		if c.SkipPrefix != "" && bytes.HasPrefix(line, []byte(c.SkipPrefix)) {
			return errSkip
		}
		rec, err := split(line)
		if err != nil {
			return fmt.Errorf("csv: %w", err)
		}
		cols := c.Columns
		if c.HasHeader && len(header) > 0 {
			h := last.Load()
			if h == nil || h.text != string(header) {
				if h, err = newCSVHeader(header, split); err != nil {
					return err
				}
				last.Store(h)
			}
			cols = h.cols
			if bytes.Equal(line, header) {
				return errSkip // the header itself ('#' and all)
			}
		}
		if c.HasHeader && sameStrings(rec, cols) {
			return errSkip
		}
		if len(cols) == 0 {
			return errors.New("csv: no header line arrived before this record")
		}
		if len(rec) != len(cols) {
			return fmt.Errorf("csv: %d values, want %d columns", len(rec), len(cols))
		}
		for i, col := range cols {
			tv.put(m, col, rec[i])
		}
		return nil
	}, nil
}

// csvHeader is a CSV header line and the columns it names.
type csvHeader struct {
	text string
	cols []string
}

// newCSVHeader splits a header line into its columns. A header marked
// with '#' (#time,ip,msg) names its first column without the mark.
func newCSVHeader(header []byte, split func([]byte) ([]string, error)) (*csvHeader, error) {
	cols, err := split(header)
	if err != nil {
		return nil, fmt.Errorf("csv header: %w", err)
	}
	if header[0] == '#' && len(cols) > 0 {
		cols[0] = strings.TrimSpace(strings.TrimPrefix(cols[0], "#"))
	}
	return &csvHeader{text: string(header), cols: cols}, nil
}

// csvSplitter splits lines as encoding/csv reads them (LazyQuotes, any
// number of fields).
type csvSplitter struct {
	delim rune
	trim  bool // TrimLeadingSpace
	// Readers are reused for lines with quotes: a line with no line feed
	// is read to its end, which leaves nothing buffered for the next one.
	readers sync.Pool
}

func newCSVSplitter(delim rune, trimLeadingSpace bool) *csvSplitter {
	sp := &csvSplitter{delim: delim, trim: trimLeadingSpace}
	sp.readers.New = func() any {
		lr := &lineReader{}
		lr.csv = sp.reader(&lr.src)
		return lr
	}
	return sp
}

func (sp *csvSplitter) reader(src io.Reader) *csv.Reader {
	r := csv.NewReader(src)
	r.Comma = sp.delim
	r.LazyQuotes = true
	r.FieldsPerRecord = -1
	r.TrimLeadingSpace = sp.trim
	return r
}

func (sp *csvSplitter) split(line []byte) ([]string, error) {
	if rec, ok := splitPlain(line, sp.delim, sp.trim); ok {
		return rec, nil
	}
	if bytes.IndexByte(line, '\n') < 0 {
		lr := sp.readers.Get().(*lineReader)
		lr.src.line = line
		rec, err := lr.csv.Read()
		lr.src.line = nil
		sp.readers.Put(lr)
		if err == nil && len(rec) > 0 {
			return rec, nil
		}
	}
	// A fresh reader, so that an error's line numbers count from this line.
	return sp.reader(bytes.NewReader(line)).Read()
}

// lineReader is a csv.Reader reading the lines given to its source.
type lineReader struct {
	src lineSource
	csv *csv.Reader
}

type lineSource struct{ line []byte }

func (s *lineSource) Read(p []byte) (int, error) {
	if len(s.line) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.line)
	s.line = s.line[n:]
	return n, nil
}

// splitPlain splits a line as encoding/csv reads it (LazyQuotes, any
// number of fields) when that is only a split at each delimiter: no quote,
// carriage return or line feed, and not empty (csv skips an empty line).
// csv's reader costs a 4 KiB buffer a line; most lines are plain.
func splitPlain(line []byte, delim rune, trimLeadingSpace bool) ([]string, bool) {
	if len(line) == 0 || bytes.ContainsAny(line, "\"\r\n") {
		return nil, false
	}
	s := string(line) // the fields share one copy, as csv's do
	rec := make([]string, 0, 1+strings.Count(s, string(delim)))
	for {
		if trimLeadingSpace {
			s = strings.TrimLeftFunc(s, unicode.IsSpace)
		}
		i := strings.IndexRune(s, delim)
		if i < 0 {
			return append(rec, s), true
		}
		rec = append(rec, s[:i])
		s = s[i+utf8.RuneLen(delim):]
	}
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	for i := range a {
		if strings.TrimSpace(a[i]) != strings.TrimSpace(b[i]) {
			return false
		}
	}
	return true
}

// fastPattern is a compiled fastmatch pattern: literals between %{field}
// placeholders. Each field takes the text up to the next literal (the last
// field takes the rest of the line).
type fastPattern struct {
	prefix string
	fields []string // "" for %{} (matched, not kept)
	seps   []string // seps[i] follows fields[i]; the last may be ""
}

func compileFastPattern(p string) (*fastPattern, error) {
	fp := &fastPattern{}
	rest := p
	i := strings.Index(rest, "%{")
	if i < 0 {
		return nil, fmt.Errorf("fastmatch pattern %q has no %%{field}", p)
	}
	fp.prefix, rest = rest[:i], rest[i:]
	for rest != "" {
		if !strings.HasPrefix(rest, "%{") {
			return nil, fmt.Errorf("fastmatch pattern %q: expected %%{ at %q", p, rest)
		}
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return nil, fmt.Errorf("fastmatch pattern %q: unclosed %%{", p)
		}
		name := rest[2:end]
		rest = rest[end+1:]
		next := strings.Index(rest, "%{")
		sep := rest
		if next >= 0 {
			sep = rest[:next]
		}
		if next == 0 {
			return nil, fmt.Errorf("fastmatch pattern %q: fields %%{%s} and the next need a separator between them", p, name)
		}
		if name == "-" {
			name = ""
		}
		fp.fields = append(fp.fields, name)
		fp.seps = append(fp.seps, sep)
		rest = rest[len(sep):]
	}
	return fp, nil
}

// match puts the line's values in m; on no match m is left as it was.
func (fp *fastPattern) match(m *native.Record, line string, tv textValues) bool {
	if !strings.HasPrefix(line, fp.prefix) {
		return false
	}
	s := line[len(fp.prefix):]
	start := len(m.Values())
	for i, name := range fp.fields {
		sep := fp.seps[i]
		var v string
		if sep == "" {
			v, s = s, ""
		} else {
			j := strings.Index(s, sep)
			if j < 0 {
				m.Truncate(start)
				return false
			}
			v, s = s[:j], s[j+len(sep):]
		}
		if name != "" {
			tv.put(m, name, v)
		}
	}
	if s != "" {
		m.Truncate(start)
		return false
	}
	return true
}

func newFastMatchReader(c *schema.FastMatchParser) (reader, error) {
	if len(c.Match) == 0 {
		return nil, errors.New("fastmatch parser needs at least one pattern under match")
	}
	var pats []*fastPattern
	for _, p := range c.Match {
		fp, err := compileFastPattern(p)
		if err != nil {
			return nil, err
		}
		pats = append(pats, fp)
	}
	tv := newTextValues(c.EmptyValues, c.TrimSpace)
	return func(m *native.Record, line, _ []byte) error {
		s := strings.TrimRight(m.Text(line), "\r\n")
		for _, fp := range pats {
			if fp.match(m, s, tv) {
				return nil
			}
		}
		return fmt.Errorf("fastmatch: the line matches none of the %d patterns", len(pats))
	}, nil
}

// grokRef is a %{NAME} or %{NAME:field} reference to a pattern definition.
var grokRef = regexp.MustCompile(`%\{(\w+)(?::([\w.-]+))?\}`)

// expandPatterns replaces references with their definitions (recursively,
// to a fixed depth), naming the capture when a field is given.
func expandPatterns(p string, defs map[string]string, depth int) (string, error) {
	if depth > 16 {
		return "", errors.New("regex patternDefinitions nest deeper than 16 (a cycle?)")
	}
	var err error
	out := grokRef.ReplaceAllStringFunc(p, func(ref string) string {
		sm := grokRef.FindStringSubmatch(ref)
		def, ok := defs[sm[1]]
		if !ok {
			err = fmt.Errorf("regex: %%{%s} is not in patternDefinitions", sm[1])
			return ref
		}
		inner, e := expandPatterns(def, defs, depth+1)
		if e != nil {
			err = e
			return ref
		}
		if sm[2] != "" {
			return "(?P<" + sm[2] + ">" + inner + ")"
		}
		return "(?:" + inner + ")"
	})
	return out, err
}

func newRegexReader(c *schema.RegexParser) (reader, error) {
	if len(c.Match) == 0 {
		return nil, errors.New("regex parser needs a pattern under match")
	}
	// The match list is one pattern split over lines for legibility.
	src, err := expandPatterns(strings.Join(c.Match, ""), c.PatternDefinitions, 0)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile("^(?:" + src + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	names := re.SubexpNames()
	named := 0
	for _, n := range names {
		if n != "" {
			named++
		}
	}
	if named == 0 {
		return nil, errors.New("regex: the pattern has no named captures ((?P<field>...) or %{PATTERN:field})")
	}
	tv := newTextValues(c.EmptyValues, c.TrimSpace)
	return func(m *native.Record, line, _ []byte) error {
		s := strings.TrimRight(m.Text(line), "\r\n")
		idx := re.FindStringSubmatchIndex(s)
		if idx == nil {
			return errors.New("regex: the line does not match the pattern")
		}
		for i, n := range names {
			if n == "" || idx[2*i] < 0 {
				continue
			}
			tv.put(m, n, s[idx[2*i]:idx[2*i+1]])
		}
		return nil
	}, nil
}
