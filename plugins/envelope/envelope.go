// Package envelope holds the few names and types every Caracal stage agrees
// on: topic names, record header / message metadata keys, the standard p_*
// field names, and the shapes of classification failures, matches and alerts.
// Every plugin may import it; it imports nothing of Caracal's.
package envelope

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	// A faster decoder than encoding/json for the hot paths (events are
	// decoded once per stage).
	fastjson "github.com/goccy/go-json"
)

// Topics the stages meet through.
const (
	TopicRaw         = "caracal.raw"
	TopicEvents      = "caracal.events"
	TopicFailures    = "caracal.classification_failures"
	TopicMatches     = "caracal.matches"
	TopicAlerts      = "caracal.alerts"
	TopicAlertState  = "caracal.alert_state"
	TopicSystemError = "caracal.system_errors"
	// TopicDeliveries records every attempt to deliver an alert.
	TopicDeliveries = "caracal.alert_deliveries"
	// TopicRuleMatches holds the matches as the lake stores them: each
	// with the alert it opened or joined (p_alert_id), which only the
	// alert stage knows. Keyed by rule id, as caracal.matches.
	TopicRuleMatches = "caracal.rule_matches"
)

// AllTopics lists every topic Caracal creates when missing.
var AllTopics = []string{TopicRaw, TopicEvents, TopicFailures, TopicMatches, TopicAlerts, TopicAlertState, TopicSystemError, TopicDeliveries, TopicRuleMatches}

// Record headers on caracal.raw, carried as Benthos message metadata with the
// same keys.
const (
	MetaSourceID    = "caracal_source_id"
	MetaSourceLabel = "caracal_source_label"
	MetaLogTypes    = "caracal_log_types" // comma separated; empty = classify among all
	MetaReceivedAt  = "caracal_received_at"
	MetaRequestID   = "caracal_request_id"
	// MetaHeader carries the header line of a text stream (a VPC Flow
	// custom format, a CSV header, W3C #Fields) on each of its lines.
	MetaHeader = "caracal_header"
	// MetaFirstLine carries the first line of a text stream, for a source
	// whose log types include a CSV schema with hasHeader and no columns:
	// a CSV header has no mark that tells it from a record, so that
	// schema takes its header from it (the line is also an event).
	MetaFirstLine = "caracal_first_line"
)

// Metadata set by stages to route a message: the caracal_kafka output uses
// them as its default topic and key.
const (
	MetaTopic = "caracal_topic"
	MetaKey   = "caracal_key"
	// MetaLogType is a normalized event's log type, set by the parse
	// stage beside them, so that the stage's later processors need not
	// read the event for it.
	MetaLogType = "caracal_log_type"
)

// Metadata the caracal_kafka input sets on every consumed message.
const (
	MetaKafkaTopic     = "kafka_topic"
	MetaKafkaPartition = "kafka_partition"
	MetaKafkaOffset    = "kafka_offset"
	MetaKafkaKey       = "kafka_key"
	MetaKafkaTimestamp = "kafka_timestamp_unix_nano"
)

// MetaInt reads an integer from a message's metadata: the caracal_kafka
// input's int64, or digits another input set.
func MetaInt(m interface{ MetaGetMut(string) (any, bool) }, key string) (int64, bool) {
	v, ok := m.MetaGetMut(key)
	if !ok {
		return 0, false
	}
	switch t := v.(type) {
	case int64:
		return t, true
	case string:
		n, err := strconv.ParseInt(t, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// Standard fields of a normalized event (Panther's names).
const (
	FieldLogType       = "p_log_type"
	FieldEventTime     = "p_event_time"
	FieldParseTime     = "p_parse_time"
	FieldRowID         = "p_row_id"
	FieldSourceID      = "p_source_id"
	FieldSourceLabel   = "p_source_label"
	FieldSchemaVersion = "p_schema_version"
	FieldEnrichment    = "p_enrichment"
)

// Fields a rule match adds to the event.
const (
	FieldRuleID       = "p_rule_id"
	FieldRuleSeverity = "p_rule_severity"
	FieldRuleTags     = "p_rule_tags"
	FieldRuleReports  = "p_rule_reports"
	FieldRuleError    = "p_rule_error"
	FieldAlertTitle   = "p_alert_title"
	FieldAlertContext = "p_alert_context"
	FieldDedupString  = "p_dedup_string"
	FieldMatchType    = "p_match_type" // RULE or RULE_ERROR
	// FieldControl marks a control record on caracal.matches (keyed by
	// rule id, so it reaches the worker owning the rule), e.g. unsuppress.
	FieldControl      = "p_control"
	FieldRuleDedupMin = "p_rule_dedup_period_minutes"
	FieldRuleThresh   = "p_rule_threshold"
	// FieldRuleStormLimit is a rule's own alert storm limit (0: global).
	FieldRuleStormLimit = "p_rule_alert_storm_limit"
	FieldRuleOutputs    = "p_rule_output_ids"
	FieldRuleName       = "p_rule_name"
	FieldRuleDesc       = "p_rule_description"
	FieldRuleRunbook    = "p_rule_runbook"
	FieldRuleRef        = "p_rule_reference"
)

// Fields the alert stage adds to a match that opened or joined an alert
// (caracal.rule_matches), as Panther's rule-match rows have them.
const (
	FieldAlertID           = "p_alert_id"
	FieldAlertCreationTime = "p_alert_creation_time"
	FieldAlertUpdateTime   = "p_alert_update_time"
	FieldAlertSeverity     = "p_alert_severity"
)

// Indicator fields, in DESIGN.md order. Present on an event only when non-empty.
var IndicatorFields = []string{
	"p_any_ip_addresses", "p_any_domain_names", "p_any_sha256_hashes", "p_any_sha1_hashes",
	"p_any_md5_hashes", "p_any_emails", "p_any_usernames", "p_any_aws_arns",
	"p_any_aws_account_ids", "p_any_aws_instance_ids", "p_any_aws_tags", "p_any_trace_ids",
	"p_any_actor_ids", "p_any_mac_addresses",
}

// Alert and match types (Panther's).
const (
	TypeRule        = "RULE"
	TypeRuleError   = "RULE_ERROR"
	TypeSystemError = "SYSTEM_ERROR"
)

// TimeFormat is how every Caracal timestamp is written: RFC 3339, UTC, with
// nanoseconds (fixed width, so strings sort as times).
const TimeFormat = "2006-01-02T15:04:05.000000000Z"

// FormatTime writes t as TimeFormat in UTC. Every event carries several
// times, and time.Format's layout interpretation was 7% of parsing a VPC
// Flow record: the fixed layout is written digit by digit instead.
func FormatTime(t time.Time) string {
	var b [len(TimeFormat)]byte
	return string(AppendTime(b[:0], t))
}

// AppendTime appends t as FormatTime writes it, unquoted.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, TimeFormat)
	}
	h, mi, s := t.Clock()
	n := len(b)
	b = append(b, TimeFormat...)
	f := b[n:]
	_ = f[28]
	digits(f[0:4], y)
	pair(f[5:7], int(mo))
	pair(f[8:10], d)
	pair(f[11:13], h)
	pair(f[14:16], mi)
	pair(f[17:19], s)
	digits(f[20:29], t.Nanosecond())
	return b
}

// digits writes n zero-padded into all of b, two digits at a time.
func digits(b []byte, n int) {
	i := len(b)
	for ; i >= 2; i -= 2 {
		q := n / 100
		r := 2 * (n - 100*q)
		b[i-2], b[i-1] = twoDigits[r], twoDigits[r+1]
		n = q
	}
	if i == 1 {
		b[0] = byte('0' + n%10)
	}
}

// pair writes n, below 100, as two digits into b[0:2].
func pair(b []byte, n int) {
	_ = b[1]
	b[0], b[1] = twoDigits[2*n], twoDigits[2*n+1]
}

// twoDigits holds "00" to "99".
const twoDigits = "0001020304050607080910111213141516171819" +
	"2021222324252627282930313233343536373839" +
	"4041424344454647484950515253545556575859" +
	"6061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"

// ParseTime reads a timestamp written by FormatTime (or any RFC 3339 time).
func ParseTime(s string) (time.Time, error) {
	if t, ok := parseFormatted(s); ok {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// parseFormatted reads a UTC time in the layout FormatTime writes, with a
// fraction of any length from none to nine digits (AWS writes six, or
// none), every digit at its place: the lake reads three such times a row,
// the parse stage one or two an event, and time.Parse, general, ran three
// times the instructions. ok is false for anything else, and for a date or
// time out of range, left to time.Parse to report.
func parseFormatted(s string) (_ time.Time, ok bool) {
	n := len(s)
	if n < len("2006-01-02T15:04:05Z") || n > len(TimeFormat) || n == len("2006-01-02T15:04:05.Z") ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[n-1] != 'Z' ||
		n > len("2006-01-02T15:04:05Z") && s[19] != '.' {
		return time.Time{}, false
	}
	num := func(from, to int) int {
		n := 0
		for _, c := range []byte(s[from:to]) {
			if c < '0' || c > '9' {
				ok = false
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	ok = true
	y, mo, d := num(0, 4), num(5, 7), num(8, 10)
	h, mi, sec := num(11, 13), num(14, 16), num(17, 19)
	ns := 0
	if n > len("2006-01-02T15:04:05Z") {
		ns = num(20, n-1) * pow10[len(TimeFormat)-n]
	}
	if !ok || mo < 1 || mo > 12 || d < 1 || d > daysIn(time.Month(mo), y) || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	// time.Date, general, was a fifth of this.
	return time.Unix(daysSinceEpoch(y, mo, d)*86400+int64(h*3600+mi*60+sec), int64(ns)).UTC(), true
}

// pow10 scales a fraction of 9-k digits to nanoseconds.
var pow10 = [...]int{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8}

// daysSinceEpoch is the number of days from 1970-01-01 to a valid date
// of the proleptic Gregorian calendar, year 0 to 9999, counted in 400-year
// eras of 146,097 days from a year starting in March (so that a leap day
// is its year's last).
func daysSinceEpoch(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := (y + 400) / 400 // y ≥ -1: shifted so the division floors
	era--
	yoe := y - era*400 // year of era, 0 to 399
	doy := (153*((m+9)%12)+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097+doe) - 719468
}

// daysIn is the number of days in month m of year y.
func daysIn(m time.Month, y int) int {
	if m == time.February {
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int(m-1)%7%2
}

// RowID derives p_row_id from where the raw record sits in caracal.raw and
// the event's index inside it, so reprocessing the same record yields the
// same ids instead of new rows.
func RowID(partition int32, offset int64, index int) string {
	var b [RowIDLen]byte
	PutRowID(&b, partition, offset, index)
	return string(b[:])
}

// RowIDLen is the length of a row id.
const RowIDLen = 24

// PutRowID writes RowID(partition, offset, index) into id, for a caller
// that keeps it in memory it allocates anyway.
func PutRowID(id *[RowIDLen]byte, partition int32, offset int64, index int) {
	putHex(id[0:4], uint64(uint16(partition)))
	putHex(id[4:20], uint64(offset))
	putHex(id[20:24], uint64(uint16(index)))
}

// putHex writes v as len(dst) lowercase hex digits, zero-padded.
func putHex(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

// TableName maps a log type to its lake table: "AWS.CloudTrail" → "aws_cloudtrail".
func TableName(logType string) string {
	return strings.ToLower(strings.ReplaceAll(logType, ".", "_"))
}

// Lake tables that are not log types.
const (
	TableFailures     = "classification_failures"
	TableRuleMatches  = "rule_matches"
	TableRuleErrors   = "rule_errors"
	TableAlerts       = "alerts"
	TableSystemErrors = "system_errors"
	TableDeliveries   = "alert_deliveries"
)

// systemTables are the lake tables that are not log types.
var systemTables = []string{TableFailures, TableRuleMatches, TableRuleErrors, TableAlerts, TableSystemErrors, TableDeliveries}

// ValidTableName reports whether the lake writes a table of that name:
// lowercase ASCII letters, digits and underscores. A table is a directory
// of the lake's object keys: nothing else (a '/', "..") gets into one.
func ValidTableName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// CheckLogType refuses a log type name the lake has no table for: one
// whose table (TableName) is not a ValidTableName, or is one of the
// lake's own tables. Such a schema's events would all be refused when
// written, so it is refused where it is loaded.
func CheckLogType(logType string) error {
	table := TableName(logType)
	if !ValidTableName(table) {
		return fmt.Errorf("log type name %q: use only ASCII letters, digits, '_' and '.' (it names the lake table %q)", logType, table)
	}
	if slices.Contains(systemTables, table) {
		return fmt.Errorf("log type name %q: its lake table %q is one of Caracal's own tables", logType, table)
	}
	return nil
}

// ClassificationFailure is the JSON value written to caracal.classification_failures:
// what arrived, from where, and why no log type accepted it. Never dropped.
type ClassificationFailure struct {
	Raw         string          `json:"raw"`          // the raw bytes, as text or base64
	RawEncoding string          `json:"raw_encoding"` // "utf8" or "base64"
	SourceID    string          `json:"p_source_id"`
	SourceLabel string          `json:"p_source_label"`
	RequestID   string          `json:"request_id,omitempty"`
	RowID       string          `json:"p_row_id"`
	Tried       []string        `json:"log_types_tried"`
	Reasons     []FailureReason `json:"reasons"`
	ReceivedAt  string          `json:"received_at"` // FormatTime; the lake partitions by it
	FailedAt    string          `json:"failed_at"`
}

// SetRaw keeps raw as text when it is UTF-8, else in base64.
func (f *ClassificationFailure) SetRaw(raw []byte) {
	if utf8.Valid(raw) {
		f.Raw, f.RawEncoding = string(raw), "utf8"
	} else {
		f.Raw, f.RawEncoding = base64.StdEncoding.EncodeToString(raw), "base64"
	}
}

// FailureReason is why one candidate log type rejected the event.
type FailureReason struct {
	LogType string `json:"log_type"`
	Reason  string `json:"reason"`
}

// Alert is the JSON value on caracal.alerts and the body of the custom
// webhook destination. The first block keeps Panther's custom-webhook field
// names so receivers written for Panther keep working.
type Alert struct {
	ID           string         `json:"id"` // rule id (Panther's naming)
	AlertID      string         `json:"alertId"`
	CreatedAt    string         `json:"createdAt"`
	Severity     string         `json:"severity"`
	Type         string         `json:"type"` // RULE, RULE_ERROR, SYSTEM_ERROR
	Link         string         `json:"link"`
	Title        string         `json:"title"`
	Name         string         `json:"name"`
	Description  string         `json:"description"`
	Runbook      string         `json:"runbook"`
	Tags         []string       `json:"tags"`
	Version      string         `json:"version"`
	AlertContext map[string]any `json:"alertContext"`

	DedupString string              `json:"dedupString"`
	EventCount  int                 `json:"eventCount"`
	LogTypes    []string            `json:"logTypes"`
	UpdatedAt   string              `json:"updatedAt"`
	Events      []map[string]any    `json:"events"`
	Reports     map[string][]string `json:"reports,omitempty"`
	OutputIDs   []string            `json:"outputIds,omitempty"`
}

// DecodeObject reads a JSON object as stages pass events along, keeping
// integers as int64 (not float64) so ids and counters survive the hop.
func DecodeObject(b []byte) (map[string]any, error) {
	// Fast path: decode numbers as float64 and turn the integral ones into
	// int64. A float64 holds every integer up to 2^53 exactly; when a
	// number beyond that shows up, decode again keeping its digits.
	var obj map[string]any
	if err := fastjson.Unmarshal(b, &obj); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if obj == nil {
		return nil, errors.New("not a JSON object: null")
	}
	if integersExact(obj) {
		return obj, nil
	}
	dec := fastjson.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	obj = nil
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	return PlainNumbers(obj).(map[string]any), nil
}

const maxExactInt = 1 << 53

// integersExact turns integral float64 values into int64 in place; it
// reports false if one is too large for float64 to have held it exactly.
func integersExact(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if f, ok := x.(float64); ok {
				if f == math.Trunc(f) {
					if f > maxExactInt || f < -maxExactInt {
						return false
					}
					t[k] = int64(f)
				}
				continue
			}
			if !integersExact(x) {
				return false
			}
		}
	case []any:
		for i, x := range t {
			if f, ok := x.(float64); ok {
				if f == math.Trunc(f) {
					if f > maxExactInt || f < -maxExactInt {
						return false
					}
					t[i] = int64(f)
				}
				continue
			}
			if !integersExact(x) {
				return false
			}
		}
	}
	return true
}

// PlainNumbers replaces json.Number values with int64 or float64, in place.
func PlainNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n
		}
		f, _ := t.Float64()
		return f
	case map[string]any:
		for k, x := range t {
			t[k] = PlainNumbers(x)
		}
	case []any:
		for i, x := range t {
			t[i] = PlainNumbers(x)
		}
	}
	return v
}

// Severities are Panther's rule and alert severities, lowest first.
var Severities = []string{"Info", "Low", "Medium", "High", "Critical"}

// SeverityRank is s's place in Severities, in any case ("HIGH", as Python
// rules return it, and "high" in a config are High); -1 when s is none.
func SeverityRank(s string) int {
	return slices.IndexFunc(Severities, func(v string) bool { return strings.EqualFold(v, s) })
}
