package parse

import (
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Indicators collects indicator values by standard field, deduplicated.
type Indicators struct {
	sets map[string]map[string]struct{}
}

// NewIndicators returns an empty collection.
func NewIndicators() *Indicators { return &Indicators{sets: map[string]map[string]struct{}{}} }

func (ix *Indicators) put(field, v string) {
	if v == "" {
		return
	}
	s := ix.sets[field]
	if s == nil {
		s = map[string]struct{}{}
		ix.sets[field] = s
	}
	s[v] = struct{}{}
}

var (
	accountIDRe  = regexp.MustCompile(`^\d{12}$`)
	instanceIDRe = regexp.MustCompile(`\bi-[0-9a-f]{8}(?:[0-9a-f]{9})?\b`)
	md5Re        = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
	sha1Re       = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)
	sha256Re     = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	macRe        = regexp.MustCompile(`^[0-9A-Fa-f]{2}(?:[-:][0-9A-Fa-f]{2}){5}$|^[0-9A-Fa-f]{12}$`)
	emailRe      = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// Add records value under each of the named indicators.
func (ix *Indicators) Add(kinds []string, value string) {
	value = strings.TrimSpace(value)
	if value == "" || value == "-" {
		return
	}
	for _, k := range kinds {
		switch k {
		case "ip":
			if a, err := netip.ParseAddr(value); err == nil {
				ix.put("p_any_ip_addresses", a.Unmap().String())
			}
		case "domain", "hostname":
			ix.hostOrIP(value)
		case "url":
			if u, err := url.Parse(value); err == nil && u.Hostname() != "" {
				ix.hostOrIP(u.Hostname())
			}
		case "net_addr":
			host := value
			if ap, err := netip.ParseAddrPort(value); err == nil {
				host = ap.Addr().String()
			} else if i := strings.LastIndexByte(value, ':'); i > 0 && !strings.Contains(value[:i], ":") {
				host = value[:i]
			}
			ix.hostOrIP(host)
		case "md5":
			if md5Re.MatchString(value) {
				ix.put("p_any_md5_hashes", strings.ToLower(value))
			}
		case "sha1":
			if sha1Re.MatchString(value) {
				ix.put("p_any_sha1_hashes", strings.ToLower(value))
			}
		case "sha256":
			if sha256Re.MatchString(value) {
				ix.put("p_any_sha256_hashes", strings.ToLower(value))
			}
		case "aws_arn":
			ix.arn(value, true)
		case "aws_arn_only":
			ix.arn(value, false)
		case "aws_account_id":
			if accountIDRe.MatchString(value) {
				ix.put("p_any_aws_account_ids", value)
			}
		case "aws_instance_id":
			if instanceIDRe.MatchString(value) {
				ix.put("p_any_aws_instance_ids", value)
			}
		case "aws_tag":
			ix.put("p_any_aws_tags", value)
		case "trace_id":
			ix.put("p_any_trace_ids", value)
		case "actor_id":
			ix.put("p_any_actor_ids", value)
		case "username":
			ix.put("p_any_usernames", value)
		case "email":
			if emailRe.MatchString(value) {
				ix.put("p_any_emails", strings.ToLower(value))
			}
		case "mac":
			if macRe.MatchString(value) {
				ix.put("p_any_mac_addresses", strings.ToLower(value))
			}
		}
	}
}

// hostOrIP files a host under IPs or domain names by what it holds.
func (ix *Indicators) hostOrIP(v string) {
	v = strings.Trim(v, "[]")
	if a, err := netip.ParseAddr(v); err == nil {
		ix.put("p_any_ip_addresses", a.Unmap().String())
		return
	}
	if strings.Contains(v, ".") && !strings.ContainsAny(v, " /\\@") {
		ix.put("p_any_domain_names", strings.ToLower(strings.TrimSuffix(v, ".")))
	}
}

// arn records an ARN and, with inner, the account id, instance id and email
// found inside it (arn:partition:service:region:account:resource).
func (ix *Indicators) arn(v string, inner bool) {
	if !strings.HasPrefix(v, "arn:") {
		return
	}
	parts := strings.SplitN(v, ":", 6)
	if len(parts) < 6 {
		return
	}
	ix.put("p_any_aws_arns", v)
	if !inner {
		return
	}
	if accountIDRe.MatchString(parts[4]) {
		ix.put("p_any_aws_account_ids", parts[4])
	}
	if id := instanceIDRe.FindString(parts[5]); id != "" {
		ix.put("p_any_aws_instance_ids", id)
	}
	for _, seg := range strings.FieldsFunc(parts[5], func(r rune) bool { return r == '/' || r == ':' }) {
		if emailRe.MatchString(seg) {
			ix.put("p_any_emails", strings.ToLower(seg))
		}
	}
}

// Fields returns the non-empty indicator fields with sorted values.
func (ix *Indicators) Fields() map[string][]string {
	out := make(map[string][]string, len(ix.sets))
	for f, s := range ix.sets {
		vals := make([]string, 0, len(s))
		for v := range s {
			vals = append(vals, v)
		}
		sort.Strings(vals)
		out[f] = vals
	}
	return out
}
