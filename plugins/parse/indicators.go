package parse

import (
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/parse/native"
)

// Indicators collects indicator values by standard field. An event has a
// handful, so they are kept as a flat list and sorted and deduplicated
// once at the end rather than in a set per field.
type Indicators struct {
	found []indicator
	plain bool // the value being added is plain (AddPlain)
}

type indicator struct {
	field anyField
	plain bool // written as it is (envelope.AppendStringPlain)
	value string
}

// anyField is a standard indicator field. The constants are in the order
// of the fields' names, the order they are written in, so that sorting
// compares small integers rather than the names.
type anyField uint8

const (
	anyActorIDs anyField = iota
	anyAWSAccountIDs
	anyAWSARNs
	anyAWSInstanceIDs
	anyAWSTags
	anyDomainNames
	anyEmails
	anyIPAddresses
	anyMACAddresses
	anyMD5Hashes
	anySHA1Hashes
	anySHA256Hashes
	anyTraceIDs
	anyUsernames
)

var anyFieldNames = [...]string{
	anyActorIDs: "p_any_actor_ids", anyAWSAccountIDs: "p_any_aws_account_ids", anyAWSARNs: "p_any_aws_arns",
	anyAWSInstanceIDs: "p_any_aws_instance_ids", anyAWSTags: "p_any_aws_tags", anyDomainNames: "p_any_domain_names",
	anyEmails: "p_any_emails", anyIPAddresses: "p_any_ip_addresses", anyMACAddresses: "p_any_mac_addresses",
	anyMD5Hashes: "p_any_md5_hashes", anySHA1Hashes: "p_any_sha1_hashes", anySHA256Hashes: "p_any_sha256_hashes",
	anyTraceIDs: "p_any_trace_ids", anyUsernames: "p_any_usernames",
}

func (f anyField) String() string { return anyFieldNames[f] }

// anyFieldKeys are the fields' `,"name":[` as appendFields opens them.
var anyFieldKeys = func() (keys [len(anyFieldNames)]string) {
	for f, name := range anyFieldNames {
		keys[f] = `,"` + name + `":[`
	}
	return keys
}()

// NewIndicators returns an empty collection.
func NewIndicators() *Indicators { return &Indicators{found: make([]indicator, 0, 16)} }

func (ix *Indicators) put(field anyField, v string) {
	if v != "" {
		ix.found = append(ix.found, indicator{field, ix.plain, v})
	}
}

// The indicator shapes are checked by hand rather than by regular
// expressions: they run on every indicator-bearing field, and the ARN
// ones alone were a fifth of parsing an ALB record. indicators_test.go
// checks each against the expression it stands for.

// isDigits: exactly n ASCII digits.
func isDigits(s string, n int) bool { return len(s) == n && envelope.IsDigits(s) }

func isHexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isHex: exactly n hex digits, either case (md5, sha1, sha256).
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

// isMAC: six hex pairs separated by '-' or ':', or twelve hex digits.
func isMAC(s string) bool {
	if len(s) == 12 {
		return isHex(s, 12)
	}
	if len(s) != 17 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i%3 == 2 {
			if s[i] != '-' && s[i] != ':' {
				return false
			}
		} else if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

// isEmail: local@domain.tld, one '@', no spaces.
func isEmail(s string) bool {
	at := -1
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\f', '\r':
			return false
		case '@':
			if at >= 0 {
				return false
			}
			at = i
		}
	}
	if at <= 0 {
		return false
	}
	domain := s[at+1:]
	for k := 1; k < len(domain)-1; k++ {
		if domain[k] == '.' {
			return true
		}
	}
	return false
}

func isWordByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// findInstanceID returns the first EC2 instance id (i- and 8 or 17
// lowercase hex digits, as a whole word) in s, or "".
func findInstanceID(s string) string {
	for i := 0; i+2 <= len(s); i++ {
		j := strings.Index(s[i:], "i-")
		if j < 0 {
			return ""
		}
		i += j
		if i > 0 && isWordByte(s[i-1]) {
			continue
		}
		n := 0
		for i+2+n < len(s) && (s[i+2+n] >= '0' && s[i+2+n] <= '9' || s[i+2+n] >= 'a' && s[i+2+n] <= 'f') {
			n++
		}
		for _, want := range []int{17, 8} {
			if end := i + 2 + want; n >= want && (end == len(s) || !isWordByte(s[end])) {
				return s[i:end]
			}
		}
	}
	return ""
}

// Add records value under each of the named indicators.
func (ix *Indicators) Add(kinds []string, value string) { ix.AddPlain(kinds, value, false) }

// AddPlain is Add for a value that may be known plain (printable ASCII
// without a quote or a backslash, envelope.AppendStringPlain): what it
// yields, pieces of it, lower-cased or an address's text, is then written
// without a second look at every byte (that look was a twentieth of
// typing an ALB line).
func (ix *Indicators) AddPlain(kinds []string, value string, plain bool) {
	if len(kinds) == 0 {
		return // most fields: nothing to trim the value for
	}
	ix.plain = plain
	value = trimSpace(value)
	if value == "" || value == "-" {
		return
	}
	for _, k := range kinds {
		switch k {
		case "ip":
			if isIPv4(value) {
				ix.put(anyIPAddresses, value)
			} else if a, err := netip.ParseAddr(value); err == nil {
				ix.put(anyIPAddresses, ipString(a, value))
			}
		case "domain", "hostname":
			ix.hostOrIP(value)
		case "url":
			if host, ok := simpleURLHost(value); ok {
				ix.hostOrIP(host)
			} else if u, err := url.Parse(value); err == nil && u.Hostname() != "" {
				ix.plain = false // unescaped by url.Parse
				ix.hostOrIP(u.Hostname())
			}
		case "net_addr":
			ix.hostOrIP(netAddrHost(value))
		case "md5":
			if isHex(value, 32) {
				ix.put(anyMD5Hashes, strings.ToLower(value))
			}
		case "sha1":
			if isHex(value, 40) {
				ix.put(anySHA1Hashes, strings.ToLower(value))
			}
		case "sha256":
			if isHex(value, 64) {
				ix.put(anySHA256Hashes, strings.ToLower(value))
			}
		case "aws_arn":
			ix.arn(value, true)
		case "aws_arn_only":
			ix.arn(value, false)
		case "aws_account_id":
			if isDigits(value, 12) {
				ix.put(anyAWSAccountIDs, value)
			}
		case "aws_instance_id":
			if findInstanceID(value) != "" {
				ix.put(anyAWSInstanceIDs, value)
			}
		case "aws_tag":
			ix.put(anyAWSTags, value)
		case "trace_id":
			ix.put(anyTraceIDs, value)
		case "actor_id":
			ix.put(anyActorIDs, value)
		case "username":
			ix.put(anyUsernames, value)
		case "email":
			if isEmail(value) {
				ix.put(anyEmails, strings.ToLower(value))
			}
		case "mac":
			if isMAC(value) {
				ix.put(anyMACAddresses, strings.ToLower(value))
			}
		}
	}
}

// netAddrHost is the host of host:port, [v6]:port, or a lone host. With
// one colon the host is the text before it: netip.ParseAddrPort would
// read the same IPv4 text back or refuse it, so only an address with
// colons of its own is left to netip.
func netAddrHost(v string) string {
	i := strings.LastIndexByte(v, ':')
	if i > 0 && strings.IndexByte(v[:i], ':') < 0 {
		return v[:i]
	}
	if ap, err := netip.ParseAddrPort(v); err == nil {
		return ap.Addr().String()
	}
	return v
}

// simpleURLHost is the host of an http(s) URL that url.Parse takes as it
// is written (no escapes, spaces, control or non-ASCII bytes) and whose
// host is a plain name or IPv4 address, with or without a port; ok is
// false for anything else, which url.Parse decides. Most URLs in logs are
// such, and url.Parse allocated a URL for each.
func simpleURLHost(v string) (host string, ok bool) {
	rest, found := strings.CutPrefix(v, "https://")
	if !found {
		if rest, found = strings.CutPrefix(v, "http://"); !found {
			return "", false
		}
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c <= ' ' || c == '%' || c >= 0x7f {
			return "", false
		}
	}
	end := len(rest)
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c == '/' || c == '?' || c == '#' {
			end = i
			break
		}
	}
	host, port, _ := strings.Cut(rest[:end], ":")
	if !envelope.IsDigits(port) {
		return "", false
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; !isWordByte(c) && c != '.' && c != '-' && c != '~' {
			return "", false
		}
	}
	return host, host != ""
}

// hostOrIP files a host under IPs or domain names by what it holds.
func (ix *Indicators) hostOrIP(v string) {
	v = native.TrimBrackets(v)
	if isIPv4(v) {
		ix.put(anyIPAddresses, v)
		return
	}
	if maybeIP(v) {
		if a, err := netip.ParseAddr(v); err == nil {
			ix.put(anyIPAddresses, ipString(a, v))
			return
		}
	}
	if strings.IndexByte(v, '.') >= 0 && !hasNonHostByte(v) {
		ix.put(anyDomainNames, strings.ToLower(strings.TrimSuffix(v, ".")))
	}
}

// hasNonHostByte reports a space, slash, backslash or '@', which no host
// name holds (strings.ContainsAny builds its set of bytes on every call).
func hasNonHostByte(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == ' ' || c == '/' || c == '\\' || c == '@' {
			return true
		}
	}
	return false
}

// maybeIP: without a colon only IPv4 text (digits and dots) can parse as
// an address. Checked first because a refused parse builds an error, and
// most hosts are names.
func maybeIP(v string) bool {
	if strings.IndexByte(v, ':') >= 0 {
		return true
	}
	for i := 0; i < len(v); i++ {
		if (v[i] < '0' || v[i] > '9') && v[i] != '.' {
			return false
		}
	}
	return true
}

// isIPv4 reports whether netip.ParseAddr reads s as an IPv4 address:
// four decimal parts of 0 to 255 without leading zeros, joined by dots.
// Such text is its own canonical form, and reading it by hand costs a
// fifth of what ParseAddr does.
func isIPv4(s string) bool {
	parts, val, digits := 0, 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if digits == 0 || parts == 3 {
				return false
			}
			parts, val, digits = parts+1, 0, 0
		case c >= '0' && c <= '9':
			if digits > 0 && val == 0 { // a leading zero
				return false
			}
			val, digits = val*10+int(c-'0'), digits+1
			if val > 255 {
				return false
			}
		default:
			return false
		}
	}
	return parts == 3 && digits > 0
}

// ipString is a parsed address's canonical text: IPv4 text that parses
// is already canonical (netip refuses leading zeros), so it is kept
// rather than written again.
func ipString(a netip.Addr, text string) string {
	if a.Is4() {
		return text
	}
	return a.Unmap().String()
}

// arn records an ARN and, with inner, the account id, instance id and email
// found inside it (arn:partition:service:region:account:resource).
func (ix *Indicators) arn(v string, inner bool) {
	if !strings.HasPrefix(v, "arn:") {
		return
	}
	// The account is the fifth part, the resource all after the fifth
	// colon ("arn:" is the first part).
	rest := v[len("arn:"):]
	var account string
	for i := 1; i < 5; i++ {
		c := strings.IndexByte(rest, ':')
		if c < 0 {
			return
		}
		account, rest = rest[:c], rest[c+1:]
	}
	resource := rest
	ix.put(anyAWSARNs, v)
	if !inner {
		return
	}
	if isDigits(account, 12) {
		ix.put(anyAWSAccountIDs, account)
	}
	if id := findInstanceID(resource); id != "" {
		ix.put(anyAWSInstanceIDs, id)
	}
	if strings.IndexByte(resource, '@') < 0 {
		return // no email in it
	}
	for resource != "" {
		i := strings.IndexAny(resource, "/:")
		seg := resource
		if i >= 0 {
			seg, resource = resource[:i], resource[i+1:]
		} else {
			resource = ""
		}
		if isEmail(seg) {
			ix.put(anyEmails, strings.ToLower(seg))
		}
	}
}

func (ix *Indicators) sort() { slices.SortFunc(ix.found, compareIndicators) }

// compareIndicators orders by field, then value.
func compareIndicators(a, b indicator) int {
	if a.field != b.field {
		return int(a.field) - int(b.field)
	}
	return strings.Compare(a.value, b.value)
}

// Each calls fn for every non-empty indicator field with its values
// sorted and deduplicated, fields in name order.
func (ix *Indicators) Each(fn func(field string, values []string)) {
	ix.sort()
	found := ix.found
	for i := 0; i < len(found); {
		j := i + 1
		for j < len(found) && found[j].field == found[i].field {
			j++
		}
		vals := make([]string, 0, j-i)
		for _, it := range found[i:j] {
			if len(vals) == 0 || vals[len(vals)-1] != it.value {
				vals = append(vals, it.value)
			}
		}
		fn(found[i].field.String(), vals)
		i = j
	}
}

// appendFields writes each non-empty indicator field as `,"field":[...]`,
// as Each would give them, without building the lists. The indicators
// are put in order through their positions: moving them would cost a
// write barrier per string while the garbage collector runs.
func (ix *Indicators) appendFields(b []byte) []byte {
	found := ix.found
	var few [64]uint32
	order := few[:]
	if len(found) > len(few) {
		order = make([]uint32, len(found))
	}
	order = order[:len(found)]
	// By field first, counting them (fields are a few small integers),
	// then each field's values, mostly one or two: a sort of them all
	// compared fields and values for every pair it looked at.
	var start [len(anyFieldNames) + 1]int
	for i := range found {
		start[found[i].field+1]++
	}
	for f := 1; f < len(start); f++ {
		start[f] += start[f-1]
	}
	next := start
	for i := range found {
		f := found[i].field
		order[next[f]] = uint32(i)
		next[f]++
	}
	for f := range len(anyFieldNames) {
		if start[f+1]-start[f] < 2 {
			continue // most fields: none or one, nothing to sort
		}
		group := order[start[f]:start[f+1]]
		if len(group) > 32 {
			slices.SortFunc(group, func(i, j uint32) int { return strings.Compare(found[i].value, found[j].value) })
			continue
		}
		// Insertion sort, without the generic sort's calls per comparison.
		for i := 1; i < len(group); i++ {
			for j := i; j > 0 && found[group[j]].value < found[group[j-1]].value; j-- {
				group[j], group[j-1] = group[j-1], group[j]
			}
		}
	}
	var prev *indicator
	for _, i := range order {
		it := &found[i]
		switch {
		case prev == nil || it.field != prev.field:
			if prev != nil {
				b = append(b, ']')
			}
			b = append(b, anyFieldKeys[it.field]...)
		case it.value == prev.value:
			continue
		default:
			b = append(b, ',')
		}
		b = envelope.AppendStringPlain(b, it.value, it.plain)
		prev = it
	}
	if prev != nil {
		b = append(b, ']')
	}
	return b
}

// Fields returns the non-empty indicator fields with sorted values.
func (ix *Indicators) Fields() map[string][]string {
	out := map[string][]string{}
	ix.Each(func(f string, vals []string) { out[f] = vals })
	return out
}

// searchKinds is the indicator kind whose values each p_any_* column holds.
var searchKinds = map[string]string{
	"p_any_ip_addresses": "ip", "p_any_domain_names": "domain", "p_any_md5_hashes": "md5",
	"p_any_sha1_hashes": "sha1", "p_any_sha256_hashes": "sha256", "p_any_emails": "email",
	"p_any_aws_arns": "aws_arn_only", "p_any_aws_account_ids": "aws_account_id",
	"p_any_aws_instance_ids": "aws_instance_id", "p_any_aws_tags": "aws_tag",
	"p_any_trace_ids": "trace_id", "p_any_actor_ids": "actor_id", "p_any_usernames": "username",
	"p_any_mac_addresses": "mac",
}

// StoredForm is value as the parser stores it in the p_any_* column, found
// by the parser's own code: a value typed by hand (an upper-case hash, a
// domain with its final dot, an IPv4-mapped address) then finds the rows
// that hold it. ok is false when the parser would not store the value in
// that column at all.
func StoredForm(column, value string) (_ string, ok bool) {
	kind, known := searchKinds[column]
	if !known {
		return value, true
	}
	ix := NewIndicators()
	ix.Add([]string{kind}, value)
	for _, f := range ix.found {
		if f.field.String() == column {
			return f.value, true
		}
	}
	return "", false
}
