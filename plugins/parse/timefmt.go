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
		if format == "unix" {
			if sec, ok := unixSeconds(s); ok {
				return time.Unix(sec, 0), nil
			}
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a %s time", s, format)
		}
		scale := 1.0 // unix_ns
		switch format {
		case "unix":
			scale = 1e9
		case "unix_ms":
			scale = 1e6
		case "unix_us":
			scale = 1e3
		}
		ns := f * scale
		if math.IsNaN(ns) || math.Abs(ns) > math.MaxInt64 {
			return time.Time{}, fmt.Errorf("%q is out of range for %s", s, format)
		}
		if format == "unix_ns" || (format != "unix" && !strings.Contains(s, ".")) {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil {
				return time.Unix(0, n*int64(scale)), nil
			}
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

// unixSeconds reads whole seconds below 2^32 (until 2106), as VPC Flow
// and most unix times are written, without a float: their nanoseconds are
// exact in a float64 too, so the result is the float path's
// (TestUnixSecondsIsTheFloatPath). Parsing the float was 4% of typing a
// VPC Flow line.
func unixSeconds(s string) (int64, bool) {
	if s == "" || len(s) > 10 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n < 1<<32
}
