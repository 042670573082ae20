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

	"github.com/caracal-sec/caracal/plugins/parse/native"
)

// Split breaks a request body into events: one JSON object, JSON lines, a
// JSON array, an object wrapping a record array (CloudTrail's Records), or
// XML documents. Anything else is split into non-empty text lines.
func Split(body []byte) ([][]byte, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, errors.New("empty body")
	}
	switch trimmed[0] {
	case '[':
		return splitArray(trimmed)
	case '{':
		if events, ok := splitJSONObjects(trimmed); ok {
			return events, nil
		}
	case '<':
		return splitXML(trimmed)
	}
	return splitLines(trimmed), nil
}

// splitXML returns each top-level element of an XML body as one event (a
// declaration or comments before them are dropped): one document, or a
// stream of records such as Windows events.
func splitXML(b []byte) ([][]byte, error) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	var out [][]byte
	depth := 0
	start := int64(-1)
	for {
		before := dec.InputOffset()
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("malformed XML: %w", err)
		}
		switch tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				start = before
			}
			depth++
		case xml.EndElement:
			depth--
			if depth < 0 {
				return nil, errors.New("malformed XML: unbalanced end element")
			}
			if depth == 0 {
				out = append(out, b[start:dec.InputOffset()])
			}
		}
	}
	if depth != 0 {
		return nil, errors.New("malformed XML: unclosed element")
	}
	if len(out) == 0 {
		return nil, errors.New("XML body without elements")
	}
	return out, nil
}

func splitArray(b []byte) ([][]byte, error) {
	if out, ok := splitObjectArray(b); ok {
		return out, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return nil, fmt.Errorf("malformed JSON array: %w", err)
	}
	out := make([][]byte, 0, len(items))
	for _, it := range items {
		if len(bytes.TrimSpace(it)) > 0 {
			out = append(out, []byte(it))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("empty JSON array")
	}
	return out, nil
}

// splitObjectArray splits an array of objects by a byte scan (as
// splitJSONObjects); ok is false for anything else, which the full decoder
// then handles or rejects with a reason.
func splitObjectArray(b []byte) ([][]byte, bool) {
	var out [][]byte
	i := 1 // past '['
	for {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) || b[i] != '{' {
			return nil, false
		}
		end := objectEnd(b, i)
		if end < 0 {
			return nil, false
		}
		out = append(out, b[i:end])
		i = end
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			return nil, false
		}
		if b[i] == ']' {
			i++
			break
		}
		if b[i] != ',' {
			return nil, false
		}
		i++
	}
	for ; i < len(b); i++ {
		if !isSpace(b[i]) {
			return nil, false
		}
	}
	return out, true
}

// splitJSONObjects reads one or more concatenated JSON objects (one object
// or JSON lines); a lone object with only a Records array is unwrapped.
// Objects are found by a byte scan (depth outside strings) and returned as
// slices of the body: validating and copying every event here cost a fifth
// of the whole pipeline's CPU, and the parse stage decodes each event anyway
// (a malformed one becomes a classification failure with its raw bytes).
func splitJSONObjects(b []byte) ([][]byte, bool) {
	var out [][]byte
	i := 0
	for {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) {
			break
		}
		if b[i] != '{' {
			return nil, false
		}
		end := objectEnd(b, i)
		if end < 0 {
			return nil, false
		}
		out = append(out, b[i:end])
		i = end
	}
	if len(out) == 1 && bytes.Contains(out[0], []byte(`"Records"`)) {
		// An object whose only key is a record array (CloudTrail's S3 files).
		var wrapper map[string]json.RawMessage
		var recs []json.RawMessage
		if json.Unmarshal(out[0], &wrapper) == nil && len(wrapper) == 1 &&
			json.Unmarshal(wrapper["Records"], &recs) == nil && len(recs) > 0 {
			events := make([][]byte, len(recs))
			for i, r := range recs {
				events[i] = r
			}
			return events, true
		}
	}
	if len(out) == 1 && !json.Valid(out[0]) {
		return nil, false // one malformed "object": treat the body as text
	}
	return out, len(out) > 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// objectEnd returns the index just past the JSON object starting at
// b[start] ('{'), or -1 when it does not close.
func objectEnd(b []byte, start int) int {
	depth := 0
	inString := false
	for i := start; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++ // skip the escaped byte
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
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

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) > 0 {
			out = append(out, line)
		}
	}
	return out
}

// SplitHeader takes a text stream's header line (a VPC Flow custom format,
// a W3C #Fields line) off its events: it defines the lines after it, and
// travels with each of them (envelope.MetaHeader) instead of being one. A
// header alone stays an event, so the request is not empty.
func SplitHeader(events [][]byte) (header []byte, rest [][]byte) {
	if len(events) > 1 && events[0][0] != '{' && events[0][0] != '<' && native.IsHeader(events[0]) {
		return events[0], events[1:]
	}
	return nil, events
}
