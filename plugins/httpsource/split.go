// Package httpsource is the caracal_http input: webhook sources on one HTTP
// listener, each authenticating, decompressing and splitting request bodies
// into events, answering 200 only once the broker acknowledged them all.
package httpsource

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/native"
)

// Split breaks a request body into events: one JSON object, JSON lines, a
// JSON array, an object wrapping a record array (CloudTrail's Records), or
// XML documents. Anything else is split into non-empty text lines.
func Split(body []byte) ([][]byte, error) { return SplitAtMost(body, math.MaxInt) }

// ErrTooManyEvents: the body holds more events than SplitAtMost's max.
var ErrTooManyEvents = errors.New("too many events")

// SplitAtMost is Split that stops with ErrTooManyEvents past max events,
// before it has found them all: a small body of millions of tiny events
// must not cost their list.
func SplitAtMost(body []byte, max int) ([][]byte, error) { return SplitLimited(body, max, 0) }

// ErrEventTooLarge: an XML element (or what lies between two) runs past
// SplitLimited's maxEventBytes.
var ErrEventTooLarge = errors.New("XML element larger than an event may be")

// SplitLimited is SplitAtMost that also stops reading XML at the first
// element longer than maxEventBytes (0: no limit), which the request is
// refused for anyway: Go's XML decoder reads a few MB a second, and one
// start tag of millions of attributes in 16 KB of gzip took 4 s of CPU.
func SplitLimited(body []byte, max, maxEventBytes int) ([][]byte, error) {
	// A byte order mark (some Windows senders write one) would hide the
	// first byte that says what the body is.
	trimmed := bytes.TrimSpace(bytes.TrimPrefix(body, utf8BOM))
	if len(trimmed) == 0 {
		return nil, errors.New("empty body")
	}
	sp := splitter{max: max, maxBytes: maxEventBytes}
	// A body that opens like JSON or XML but does not read as it is text
	// lines: syslog's "<34>1 ...", "[INFO] ..." application logs. Each
	// line then is an event, kept as a classification failure with its
	// reason when no log type reads it.
	var events [][]byte
	var err error
	switch trimmed[0] {
	case '[':
		events, err = sp.array(trimmed)
	case '{':
		var ok bool
		if events, ok, err = sp.jsonObjects(trimmed); !ok && err == nil {
			err = errNotStructured
		}
	case '<':
		events, err = sp.xml(trimmed)
	default:
		err = errNotStructured
	}
	if errors.Is(err, ErrEventTooLarge) {
		return nil, err
	}
	// An XML body whose first max elements all read is XML: reading the
	// rest as well would only cost its time (3 s for 16 MiB).
	if errors.Is(err, ErrTooManyEvents) && trimmed[0] == '[' {
		// The count ran past max before the end was read: too many events
		// only if the body reads to its end as what it opened as, which is
		// checked without keeping its events.
		whole := splitter{max: math.MaxInt, discard: true}
		if _, err = whole.array(trimmed); err == nil {
			err = ErrTooManyEvents
		}
	}
	if err == nil || errors.Is(err, ErrTooManyEvents) {
		return events, err
	}
	sp.reset()
	return sp.lines(trimmed)
}

var (
	utf8BOM = []byte{0xef, 0xbb, 0xbf}
	// errNotStructured: the body is not JSON or XML; it is read as lines.
	errNotStructured = errors.New("not JSON or XML")
)

// splitter gathers events, stopping past max.
type splitter struct {
	max int
	out [][]byte
	n   int // events found
	// discard counts the events without keeping them: only whether the
	// body reads as what it opened as is wanted.
	discard bool
	// maxBytes bounds an XML element (0: no bound).
	maxBytes int
}

// boundedReader reads b up to limit, which the XML splitter moves on as
// elements end: the decoder cannot read far into an element that is
// already too large to be an event.
type boundedReader struct {
	b          []byte
	off, limit int
}

func (r *boundedReader) Read(p []byte) (int, error) {
	end := min(len(r.b), r.limit)
	if r.off >= end {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:end])
	r.off += n
	return n, nil
}

// cut reports whether the reader stopped at its limit rather than at
// the end of b.
func (r *boundedReader) cut() bool { return r.limit < len(r.b) && r.off >= r.limit }

// add appends an event (counts it, when discarding); false once there
// are more than max.
func (sp *splitter) add(ev []byte) bool {
	sp.n++
	if !sp.discard {
		sp.out = append(sp.out, ev)
	}
	return sp.n <= sp.max
}

// reset starts over (a scan that turned out not to apply).
func (sp *splitter) reset() { sp.out, sp.n = nil, 0 }

// xml returns each top-level element of an XML body as one event (a
// declaration or comments before them are dropped): one document, or a
// stream of records such as Windows events.
func (sp *splitter) xml(b []byte) ([][]byte, error) {
	in := &boundedReader{b: b, limit: len(b)}
	// bound lets the decoder read an event size and extra bytes past
	// from: an element, or the space, comments (extra) and start tag
	// before the next one. The limit never goes back behind what the
	// decoder buffered.
	bound := func(from int64, extra int) {
		if sp.maxBytes > 0 {
			in.limit = max(in.off, int(min(from+int64(sp.maxBytes+extra)+1, int64(len(b)))))
		}
	}
	const between = 64 << 10
	bound(0, max(sp.maxBytes, between)) // a declaration, a doctype
	dec := xml.NewDecoder(in)
	dec.Strict = true
	depth := 0
	start := int64(-1)
	for {
		before := dec.InputOffset()
		tok, err := dec.RawToken()
		if err != nil && in.cut() {
			at := before
			if depth > 0 {
				at = start
			}
			if !mayClose(b, int(at)) {
				// Text lines opening like a tag ("<INFO> ..."): the
				// element never closes, so the body is not XML.
				return nil, errors.New("malformed XML: an element that is never closed")
			}
			return nil, ErrEventTooLarge
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed XML: %w", err)
		}
		switch tok := tok.(type) {
		case xml.CharData:
			// Text outside the elements would be lost: the body is lines.
			if depth == 0 && len(bytes.TrimSpace(tok)) > 0 {
				return nil, errors.New("text outside XML elements")
			}
		case xml.StartElement:
			if depth == 0 {
				start = before
				bound(before, 0)
			}
			depth++
		case xml.EndElement:
			depth--
			if depth < 0 {
				return nil, errors.New("malformed XML: unbalanced end element")
			}
			if depth == 0 {
				if !sp.add(b[start:dec.InputOffset()]) {
					return nil, ErrTooManyEvents
				}
				bound(dec.InputOffset(), between)
			}
		}
	}
	if depth != 0 {
		return nil, errors.New("malformed XML: unclosed element")
	}
	if sp.n == 0 {
		return nil, errors.New("XML body without elements")
	}
	return sp.out, nil
}

// mayClose reports whether the element whose start tag is at b[at:] has
// its end tag somewhere after it: one that has none is no element, and
// a body of it is text lines (reading on to find that out is what the
// byte bound saves). A self-closing tag too long to be an event makes a
// line too long to be one as well. Anything other than a start tag at
// at is taken to close.
func mayClose(b []byte, at int) bool {
	if at < 0 || at+1 >= len(b) || b[at] != '<' {
		return true
	}
	name := b[at+1:]
	if i := bytes.IndexAny(name, " \t\r\n/>"); i >= 0 {
		name = name[:i]
	}
	if len(name) == 0 || name[0] == '!' || name[0] == '?' {
		return true
	}
	return bytes.Contains(b[at:], append([]byte("</"), name...))
}

func (sp *splitter) array(b []byte) ([][]byte, error) {
	if out, ok, err := sp.objectArray(b); ok || err != nil {
		return out, err
	}
	// Any other JSON values, read one by one so that a count past max
	// stops the reading.
	sp.reset()
	if sp.discard {
		// Only whether it is an array of at least one value, which
		// json.Valid says without decoding each (8M of them took 5 s).
		if !json.Valid(b) {
			return nil, errors.New("malformed JSON array")
		}
		if rest := bytes.TrimLeft(b[1:], " \t\r\n"); len(rest) > 0 && rest[0] == ']' {
			return nil, errors.New("empty JSON array")
		}
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("malformed JSON array: %w", err)
	}
	for dec.More() {
		var it json.RawMessage
		if err := dec.Decode(&it); err != nil {
			return nil, fmt.Errorf("malformed JSON array: %w", err)
		}
		if !sp.add(it) {
			return nil, ErrTooManyEvents
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("malformed JSON array: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("malformed JSON array: data after the array")
	}
	if sp.n == 0 {
		return nil, errors.New("empty JSON array")
	}
	return sp.out, nil
}

// objectArray splits an array of objects by a byte scan (as jsonObjects);
// ok is false for anything else, which the full decoder then handles or
// rejects with a reason.
func (sp *splitter) objectArray(b []byte) (_ [][]byte, ok bool, _ error) {
	i := 1 // past '['
	for {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) || b[i] != '{' {
			return nil, false, nil
		}
		end := objectEnd(b, i)
		if end < 0 {
			return nil, false, nil
		}
		if !sp.add(b[i:end]) {
			return nil, false, ErrTooManyEvents
		}
		i = end
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			return nil, false, nil
		}
		if b[i] == ']' {
			i++
			break
		}
		if b[i] != ',' {
			return nil, false, nil
		}
		i++
	}
	for ; i < len(b); i++ {
		if !isSpace(b[i]) {
			return nil, false, nil
		}
	}
	return sp.out, true, nil
}

// jsonObjects reads one or more concatenated JSON objects (one object or
// JSON lines); a lone object with only a Records array is unwrapped.
// Objects are found by a byte scan (depth outside strings) and returned as
// slices of the body: validating and copying every event here cost a fifth
// of the whole pipeline's CPU, and the parse stage decodes each event anyway
// (a malformed one becomes a classification failure with its raw bytes).
func (sp *splitter) jsonObjects(b []byte) (_ [][]byte, ok bool, _ error) {
	i := 0
	// Past max the objects are no longer kept, but the rest of the body is
	// still read: it is too many events only if it is objects to its end,
	// and is text lines otherwise, as Split reads it.
	over := false
	for {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) {
			break
		}
		if b[i] != '{' {
			return nil, false, nil
		}
		end := objectEnd(b, i)
		if end < 0 {
			return nil, false, nil
		}
		if !over && !sp.add(b[i:end]) {
			over = true
		}
		i = end
	}
	if over {
		return nil, false, ErrTooManyEvents
	}
	out := sp.out
	if len(out) == 1 && bytes.Contains(out[0], []byte(`"Records"`)) {
		// An object whose only key is a record array (CloudTrail's S3 files).
		var wrapper map[string]json.RawMessage
		if json.Unmarshal(out[0], &wrapper) == nil && len(wrapper) == 1 {
			if recs := bytes.TrimSpace(wrapper["Records"]); len(recs) > 0 && recs[0] == '[' {
				inner := splitter{max: sp.max}
				events, err := inner.array(recs)
				if err == nil || errors.Is(err, ErrTooManyEvents) {
					return events, err == nil, err
				}
			}
		}
	}
	if len(out) == 1 && !json.Valid(out[0]) {
		return nil, false, nil // one malformed "object": treat the body as text
	}
	return out, len(out) > 0, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// objectEnd returns the index just past the JSON object starting at
// b[start] ('{'), or -1 when it does not close. Most of an event's bytes
// are inside strings, which are skipped with IndexByte rather than byte
// by byte (that was 3% of the pipeline's CPU).
func objectEnd(b []byte, start int) int {
	depth := 0
	for i := start; i < len(b); i++ {
		switch b[i] {
		case '"':
			if i = envelope.StringEnd(b, i+1); i < 0 {
				return -1
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
			if depth < 0 {
				return -1
			}
		}
	}
	return -1
}

func (sp *splitter) lines(b []byte) ([][]byte, error) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) > 0 && !sp.add(line) {
			return nil, ErrTooManyEvents
		}
	}
	return sp.out, nil
}

// SplitHeader takes a text stream's header line (a VPC Flow custom format,
// a W3C #Fields line) off its events: it defines the lines after it, and
// travels with each of them (envelope.MetaHeader) instead of being one. A
// header alone stays an event, so the request is not empty.
func SplitHeader(events [][]byte) (header []byte, rest [][]byte) {
	if opensWithText(events) && native.IsHeader(events[0]) {
		if events[0][0] == '#' {
			// It may be a comment, not a header: it stays an event too, so
			// that it is not lost (a schema skips it, or it is kept as a
			// classification failure).
			return events[0], events
		}
		return events[0], events[1:]
	}
	return nil, events
}

// opensWithText reports whether a body of more than one event opens with
// a text line (not JSON or XML), which may define the lines after it.
func opensWithText(events [][]byte) bool {
	return len(events) > 1 && events[0][0] != '{' && events[0][0] != '<'
}
