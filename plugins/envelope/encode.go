package envelope

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	fastjson "github.com/goccy/go-json"
)

// EncodeEvent serializes an event for the next stage. Key order does not
// matter to the readers, so maps are not sorted, and nothing is
// HTML-escaped. The values a normalized event holds (strings, int64,
// float64, booleans, nested maps and lists, []string indicators) are
// written by a type switch, about three times faster than a general
// encoder; anything else (a lookup table's or a GeoIP database's numbers)
// goes through go-json.
func EncodeEvent(ev map[string]any) ([]byte, error) {
	return appendJSON(make([]byte, 0, 1024), ev)
}

// AppendJSON appends v as EncodeEvent writes it.
func AppendJSON(b []byte, v any) ([]byte, error) { return appendJSON(b, v) }

// AppendFloat appends f as AppendJSON writes a float64; NaN and the
// infinities are an error, as there.
func AppendFloat(b []byte, f float64) ([]byte, error) { return appendJSONFloat(b, f) }

// AppendString appends s quoted as EncodeEvent writes strings.
func AppendString(b []byte, s string) []byte { return appendJSONString(b, s) }

// AppendStringPlain is AppendString for a string whose plainness is known
// (Scanner.PlainText, native.Record.Plain): a plain one, printable ASCII
// without a quote or a backslash, is quoted as it is, without the second
// look at its bytes that escaping takes.
func AppendStringPlain(b []byte, s string, plain bool) []byte {
	if !plain {
		return appendJSONString(b, s)
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendJSON(b []byte, v any) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendJSONString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case float64:
		return appendJSONFloat(b, x)
	case map[string]any:
		b = append(b, '{')
		first := true
		for k, e := range x {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, k)
			b = append(b, ':')
			if b, err = appendJSON(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case json.RawMessage: // JSON already written (lookup table rows)
		return append(b, x...), nil
	case []string:
		b = append(b, '[')
		for i, s := range x {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		return append(b, ']'), nil
	}
	out, err := fastjson.MarshalWithOption(v, fastjson.UnorderedMap(), fastjson.DisableHTMLEscape())
	if err != nil {
		return nil, err
	}
	return append(b, out...), nil
}

// appendJSONFloat writes f as encoding/json does: shortest round-trip
// digits, exponent form only for very small or very large magnitudes.
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("json: unsupported value: %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 → 1e-7, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// AppendDecimal appends the number a plain decimal text holds as
// AppendFloat would write it, without parsing and formatting a float, and
// reports false (appending nothing) for any other text. A decimal of at
// most 15 significant digits is the shortest text of its float (float64
// keeps 15), so writing it is dropping its leading zeros and its
// fraction's trailing ones: "0.000" → 0, "1.500" → 1.5, "-007" → -7.
// Log lines' durations and sizes are such decimals, and parsing and
// formatting them was 4% of typing an ALB line.
func AppendDecimal(b []byte, text string) ([]byte, bool) {
	s := text
	neg := len(s) > 0 && s[0] == '-'
	if neg {
		s = s[1:]
	}
	intPart, frac, dot := strings.Cut(s, ".")
	if intPart == "" || dot && frac == "" || !IsDigits(intPart) || !IsDigits(frac) {
		return b, false
	}
	intPart = strings.TrimLeft(intPart, "0")
	frac = strings.TrimRight(frac, "0")
	lead := len(frac) - len(strings.TrimLeft(frac, "0")) // zeros after the point
	switch {
	case intPart == "" && frac == "":
		// zero, with its sign as the float keeps it
	case intPart == "" && lead >= 6:
		return b, false // below 1e-6: AppendFloat writes an exponent
	case significant(intPart, frac, lead) > 15:
		return b, false
	}
	if neg {
		b = append(b, '-')
	}
	if intPart == "" {
		b = append(b, '0')
	}
	b = append(b, intPart...)
	if frac != "" {
		b = append(b, '.')
		b = append(b, frac...)
	}
	return b, true
}

// significant counts a decimal's significant digits, its integer part
// without leading zeros and its fraction without trailing ones.
func significant(intPart, frac string, lead int) int {
	if intPart == "" {
		return len(frac) - lead
	}
	return len(intPart) + len(frac)
}

// IsDigits reports whether s holds only the ASCII digits 0 to 9 (as ""
// does).
func IsDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s quoted: control characters, quotes and
// backslashes escaped, invalid UTF-8 as U+FFFD, U+2028/U+2029 escaped (as
// encoding/json does, for JavaScript readers); no HTML escaping.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := plainPrefix(s); i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// plainPrefix is the length of s's leading run of printable ASCII other
// than '"' and '\\' (nothing to escape): most strings in events are such
// runs, which then cost one copy.
func plainPrefix(s string) int {
	return plainRun(unsafe.Slice(unsafe.StringData(s), len(s)), true)
}

// JSONSizeAtMost bounds the length of v's JSON encoding from above, for
// the values events hold (objects, arrays, strings, numbers, booleans,
// null), without encoding it: a size budget that is rarely approached is
// checked by this walk, and only a value that might exceed it is encoded
// to measure it exactly. Other types count as too large to bound.
func JSONSizeAtMost(v any) int {
	const unbounded = 1 << 40
	switch t := v.(type) {
	case nil, bool:
		return 5
	case string:
		return 6*len(t) + 2 // every byte escaped as \u00XX, at worst
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return 32
	case json.Number:
		return len(t)
	case map[string]any:
		n := 2
		for k, x := range t {
			n += 6*len(k) + 4 + JSONSizeAtMost(x)
		}
		return n
	case []any:
		n := 2
		for _, x := range t {
			n += 1 + JSONSizeAtMost(x)
		}
		return n
	case []string:
		n := 2
		for _, x := range t {
			n += 3 + 6*len(x)
		}
		return n
	}
	return unbounded
}
