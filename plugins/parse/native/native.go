// Package native holds the parsers written in Go for log formats a schema
// alone cannot describe (AWS's space-separated access logs with quoted and
// bracketed fields, VPC Flow's header-defined field order, ...). A native
// parser only tokenizes: it turns one line into a map of raw string values
// (or lists of strings), and the schema engine types them, validates them
// and extracts indicators, as for JSON.
package native

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/caracal-sec/caracal/plugins/suggest"
)

// Func parses one line into rec (which it finds empty). header is the
// stream's header line when the sender had one (e.g. a VPC Flow custom
// format), else nil.
type Func func(rec *Record, line, header []byte) error

var registry = map[string]Func{}

func register(name string, fn Func) { registry[name] = fn }

// Lookup returns the parser registered under name.
func Lookup(name string) (Func, error) {
	if fn, ok := registry[name]; ok {
		return fn, nil
	}
	return nil, fmt.Errorf("unknown native parser %q%s", name, suggest.Hint(name, Names()))
}

// Names lists the native parsers, sorted.
func Names() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ErrHeader marks a header line: not an event, nothing to keep.
var ErrHeader = errors.New("header line")

// Fields splits a space-separated line into tokens; a token may be
// "double-quoted" (with \" and \\ escapes inside) or [bracketed], and the
// quotes or brackets are removed. AWS's access logs (ALB, S3, CLB) use
// this form.
func Fields(line []byte) ([]string, error) {
	f, _, err := appendFields(make([]string, 0, 32), string(line), bytes.IndexByte(line, '\\') >= 0)
	return f, err
}

// appendFields is Fields appending to out, so that a record's token list
// is reused from line to line; quoted counts the quoted fields. backslash
// says whether s holds one: without, no quoted field has an escape.
func appendFields(out []string, s string, backslash bool) (_ []string, quoted int, _ error) {
	// The tokens are slices of the line's text (Record.Text), not copies.
	i, n := 0, len(s)
	for i < n {
		for i < n && s[i] == ' ' {
			i++
		}
		if i >= n {
			break
		}
		switch s[i] {
		case '"':
			j := i + 1
			escaped := false
			// Most quoted fields hold no backslash: find their end with
			// IndexByte, not byte by byte.
			if q := strings.IndexByte(s[j:], '"'); q >= 0 && (!backslash || strings.IndexByte(s[j:j+q], '\\') < 0) {
				j += q
			}
			for j < n && s[j] != '"' {
				if s[j] == '\\' && j+1 < n && (s[j+1] == '"' || s[j+1] == '\\') {
					escaped = true
					j++
				}
				j++
			}
			if j >= n {
				return nil, 0, fmt.Errorf("unterminated quoted field at byte %d", i)
			}
			if j+1 < n && s[j+1] != ' ' {
				return nil, 0, fmt.Errorf("quoted field at byte %d is followed by %q, not a space", i, s[j+1])
			}
			tok := s[i+1 : j]
			if escaped {
				tok = unescape(tok)
			}
			out = append(out, tok)
			quoted++
			i = j + 1
		case '[':
			j := strings.IndexByte(s[i+1:], ']')
			if j < 0 {
				return nil, 0, fmt.Errorf("unterminated [bracketed] field at byte %d", i)
			}
			out = append(out, s[i+1:i+1+j])
			i += j + 2
		default:
			j := strings.IndexByte(s[i:], ' ')
			if j < 0 {
				j = n - i
			}
			out = append(out, s[i:i+j])
			i += j
		}
	}
	return out, quoted, nil
}

// unescape removes the backslash of \" and \\ in a quoted token.
func unescape(tok string) string {
	var sb strings.Builder
	sb.Grow(len(tok))
	for k := 0; k < len(tok); k++ {
		if tok[k] == '\\' && k+1 < len(tok) && (tok[k+1] == '"' || tok[k+1] == '\\') {
			k++
		}
		sb.WriteByte(tok[k])
	}
	return sb.String()
}

// set stores a token unless it is AWS's "-" (or empty) placeholder for a
// missing value.
func set(rec *Record, key, v string) {
	if v == "" || v == "-" {
		return
	}
	rec.Put(key, v)
}

// splitHostPort splits "ip:port" at the last colon (IPv6 addresses carry
// colons of their own); "-" yields nothing.
func splitHostPort(s string) (host, port string) {
	if s == "" || s == "-" {
		return "", ""
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, ""
	}
	return TrimBrackets(s[:i]), s[i+1:]
}

// TrimBrackets is strings.Trim(s, "[]") (an IPv6 address in brackets),
// which builds its set of bytes on every call, for a text that mostly has
// no bracket at either end.
func TrimBrackets(s string) string {
	if n := len(s); n > 0 && (s[0] == '[' || s[0] == ']' || s[n-1] == '[' || s[n-1] == ']') {
		return strings.Trim(s, "[]")
	}
	return s
}

// setList stores a separated value as a list, dropping placeholders, and
// nothing when none is left.
func setList(rec *Record, key, s, sep string) {
	if s == "" || s == "-" {
		return
	}
	rec.putSplit(key, s, sep)
}

// IsHeader reports whether the first line of a text stream is a header
// that defines the format of the lines after it rather than an event: a
// VPC Flow custom-format header, or a '#' directive (W3C #Fields, ...).
// Senders' headers travel with every line (envelope.MetaHeader).
func IsHeader(line []byte) bool {
	if len(line) > 0 && line[0] == '#' {
		return true
	}
	_, ok := VPCFlowHeader(line)
	return ok
}
