package parse

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/suggest"
)

// ParseTime reads a timestamp by the schema's formats (tried in order):
// rfc3339, unix, unix_ms, unix_us, unix_ns, a strftime pattern, or
// layout=<Go layout>. Times without a zone are UTC.
func ParseTime(v any, formats []string) (time.Time, error) {
	s, isNum := "", false
	switch t := v.(type) {
	case string:
		s = strings.TrimSpace(t)
	case json.Number:
		s, isNum = t.String(), true
	case float64:
		s, isNum = strconv.FormatFloat(t, 'f', -1, 64), true
	case int64:
		s, isNum = strconv.FormatInt(t, 10), true
	default:
		return time.Time{}, fmt.Errorf("want a timestamp, got %T", v)
	}
	return parseTimeText(s, isNum, formats)
}

// parseTimeText is ParseTime on a value's text (a JSON string's
// contents, trimmed, or a number as written).
func parseTimeText(s string, isNum bool, formats []string) (time.Time, error) {
	if len(formats) == 0 {
		formats = []string{"rfc3339"}
	}
	var lastErr error
	for _, f := range formats {
		t, err := parseOne(s, isNum, f)
		if err == nil {
			return t.UTC(), nil
		}
		lastErr = err
	}
	return time.Time{}, lastErr
}

func parseOne(s string, isNum bool, format string) (time.Time, error) {
	switch format {
	case "rfc3339":
		if t, err := envelope.ParseTime(s); err == nil { // time.Parse(time.RFC3339Nano), faster for UTC
			return t, nil
		}
		// Common near-RFC 3339 forms: space instead of T, no zone.
		for _, l := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
			if t, err := time.Parse(l, s); err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", s)
	case "unix", "unix_ms", "unix_us", "unix_ns":
		digits := unixDigits(format)
		if t, ok := unixTime(s, digits); ok {
			return t, nil
		}
		// What else ParseFloat reads (1.7e9) is read as a float.
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a %s time", s, format)
		}
		ns := f * math.Pow10(digits)
		if math.IsNaN(ns) || math.Abs(ns) >= math.MaxInt64 { // 2^63 as a float: not an int64
			return time.Time{}, fmt.Errorf("%q is out of range for %s", s, format)
		}
		return time.Unix(0, int64(ns)), nil
	}
	if layout, ok := strings.CutPrefix(format, "layout="); ok {
		t, err := time.Parse(layout, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q does not match layout %q", s, layout)
		}
		return t, nil
	}
	if strings.Contains(format, "%") {
		layout, err := strftimeLayout(format)
		if err != nil {
			return time.Time{}, err
		}
		t, err := time.Parse(layout, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q does not match %q", s, format)
		}
		return t, nil
	}
	_ = isNum
	return time.Time{}, fmt.Errorf("unknown time format %q", format)
}

// timeKeywords are the time formats named by a word.
var timeKeywords = []string{"rfc3339", "unix", "unix_ms", "unix_us", "unix_ns"}

// checkTimeFormat refuses a format parseOne would refuse for every value
// (a typo such as rfc3399 would send every event to classification
// failures).
func checkTimeFormat(format string) error {
	switch {
	case slices.Contains(timeKeywords, format), strings.HasPrefix(format, "layout="):
		return nil
	case strings.Contains(format, "%"):
		_, err := strftimeLayout(format)
		return err
	}
	if hint := suggest.DidYouMean(format, timeKeywords); hint != "" {
		return fmt.Errorf("unknown timeFormat %q%s", format, hint)
	}
	return fmt.Errorf("unknown timeFormat %q: use %s, a strftime pattern (%%Y-%%m-%%d %%H:%%M:%%S) or layout=<Go layout>", format, strings.Join(timeKeywords, ", "))
}

// strftimeLayout converts a strftime pattern to a Go layout.
func strftimeLayout(f string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' || i+1 == len(f) {
			b.WriteByte(f[i])
			continue
		}
		i++
		switch f[i] {
		case 'Y':
			b.WriteString("2006")
		case 'y':
			b.WriteString("06")
		case 'm':
			b.WriteString("01")
		case 'd':
			b.WriteString("02")
		case 'e':
			b.WriteString("_2")
		case 'H':
			b.WriteString("15")
		case 'I':
			b.WriteString("03")
		case 'M':
			b.WriteString("04")
		case 'S':
			b.WriteString("05")
		case 'f':
			b.WriteString("999999999")
		case 'p':
			b.WriteString("PM")
		case 'b', 'h':
			b.WriteString("Jan")
		case 'B':
			b.WriteString("January")
		case 'a':
			b.WriteString("Mon")
		case 'A':
			b.WriteString("Monday")
		case 'z':
			b.WriteString("-0700")
		case 'Z':
			b.WriteString("MST")
		case 'j':
			b.WriteString("002")
		case 'T':
			b.WriteString("15:04:05")
		case 'D':
			b.WriteString("01/02/06")
		case 'F':
			b.WriteString("2006-01-02")
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("strftime directive %%%c is not supported", f[i])
		}
	}
	return b.String(), nil
}

// unixDigits is how many decimal digits of a second a unix format's unit
// is.
func unixDigits(format string) int {
	switch format {
	case "unix":
		return 9
	case "unix_ms":
		return 6
	case "unix_us":
		return 3
	}
	return 0
}

// unixTime reads a unix time written in decimal (a sign, digits, a point,
// digits) exactly, in units of 10^-digits seconds: as a float64 times 1e9,
// 1700000000.25 s was 1700000000.249999872. Digits below a nanosecond are
// dropped (toward zero, as the float path's conversion does). ok is false
// for other texts (an exponent) and past what int64 nanoseconds hold
// (1677 to 2262), which the float path decides.
func unixTime(s string, digits int) (_ time.Time, ok bool) {
	neg := len(s) > 0 && s[0] == '-'
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return time.Time{}, false
	}
	var ns int64 // in the format's units, then in nanoseconds
	for i := 0; i < len(whole); i++ {
		if ns, ok = shiftDigit(ns, whole[i]); !ok {
			return time.Time{}, false
		}
	}
	for i := 0; i < len(frac); i++ {
		if frac[i] < '0' || frac[i] > '9' {
			return time.Time{}, false
		}
		if i < digits {
			if ns, ok = shiftDigit(ns, frac[i]); !ok {
				return time.Time{}, false
			}
		}
	}
	for i := len(frac); i < digits; i++ {
		if ns, ok = shiftDigit(ns, '0'); !ok {
			return time.Time{}, false
		}
	}
	if neg {
		ns = -ns
	}
	return time.Unix(0, ns), true
}

// shiftDigit is n*10 plus the digit c; ok is false when c is not a digit
// or the result would pass an int64.
func shiftDigit(n int64, c byte) (_ int64, ok bool) {
	d := int64(c - '0')
	if c < '0' || c > '9' || n > (math.MaxInt64-d)/10 {
		return 0, false
	}
	return n*10 + d, true
}
