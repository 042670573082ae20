package parse

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"strings"

	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// transform is a field's transformations (where its value comes from) and
// checks (validate, then mask), compiled from the schema.
type transform struct {
	// derive, when set, computes the field's input value from the whole
	// event instead of reading the field's key (node.in).
	derive func(root map[string]any) (any, bool)
	from   [][]string // the paths derive reads
	allow  map[string]bool
	deny   map[string]bool
	ip     string // ipv4, ipv6, any
	cidr   string
	mask   func(string) string
}

func compileTransform(f schema.Field) (*transform, error) {
	xf := &transform{}
	used := 0
	if f.Rename != nil {
		// Read from the key From by the field's node (node.in).
		used++
		if f.Rename.From == "" {
			return nil, errors.New("rename needs from")
		}
	}
	if f.Copy != nil {
		used++
		path := splitPath(f.Copy.From)
		if len(path) == 0 {
			return nil, errors.New("copy needs from (a dotted path from the event's root)")
		}
		xf.from = [][]string{path}
		xf.derive = func(root map[string]any) (any, bool) { return getPath(root, path) }
	}
	if f.Concat != nil {
		used++
		if len(f.Concat.Paths) == 0 {
			return nil, errors.New("concat needs paths")
		}
		var paths [][]string
		for _, p := range f.Concat.Paths {
			paths = append(paths, splitPath(p))
		}
		xf.from = paths
		sep := f.Concat.Separator
		xf.derive = func(root map[string]any) (any, bool) {
			var parts []string
			for _, p := range paths {
				if v, ok := getPath(root, p); ok && v != nil {
					if s, err := asString(v); err == nil {
						parts = append(parts, s)
					}
				}
			}
			if len(parts) == 0 {
				return nil, false
			}
			return strings.Join(parts, sep), true
		}
	}
	if f.Split != nil {
		used++
		path, sep, idx := splitPath(f.Split.From), f.Split.Separator, f.Split.Index
		if len(path) == 0 || sep == "" {
			return nil, errors.New("split needs from and separator")
		}
		xf.from = [][]string{path}
		xf.derive = func(root map[string]any) (any, bool) {
			v, ok := getPath(root, path)
			if !ok || v == nil {
				return nil, false
			}
			s, err := asString(v)
			if err != nil {
				return nil, false
			}
			parts := strings.Split(s, sep)
			i := idx
			if i < 0 { // from the end, as in Python
				i += len(parts)
			}
			if i < 0 || i >= len(parts) {
				return nil, false
			}
			return parts[i], true
		}
	}
	if used > 1 {
		return nil, errors.New("use one of rename, copy, concat, split per field")
	}
	if v := f.Validate; v != nil {
		xf.allow, xf.deny = set(v.Allow), set(v.Deny)
		xf.ip, xf.cidr = v.IP, v.CIDR
		for _, k := range []string{xf.ip, xf.cidr} {
			if k != "" && k != "ipv4" && k != "ipv6" && k != "any" {
				return nil, fmt.Errorf("validate ip/cidr %q: want ipv4, ipv6 or any", k)
			}
		}
	}
	if m := f.Mask; m != nil {
		switch m.Type {
		case "redact":
			to := m.To
			if to == "" {
				to = "REDACTED"
			}
			xf.mask = func(string) string { return to }
		case "hash":
			var newHash func() hash.Hash
			switch m.Algorithm {
			case "", "sha256":
				newHash = sha256.New
			case "md5":
				newHash = md5.New
			default:
				return nil, fmt.Errorf("mask algorithm %q: want sha256 or md5", m.Algorithm)
			}
			salt := m.Salt
			xf.mask = func(s string) string {
				h := newHash()
				h.Write([]byte(salt))
				h.Write([]byte(s))
				return hex.EncodeToString(h.Sum(nil))
			}
		default:
			return nil, fmt.Errorf("mask type %q: want redact or hash", m.Type)
		}
	}
	if xf.derive == nil && xf.allow == nil && xf.deny == nil && xf.ip == "" && xf.cidr == "" && xf.mask == nil {
		return nil, nil
	}
	return xf, nil
}

// finish checks a string value (validate) and then masks it: masked values
// never reach the indicators or the lake.
func (xf *transform) finish(s string) (string, error) {
	if xf.allow != nil && !xf.allow[s] {
		return "", fmt.Errorf("value %q is not in validate.allow", s)
	}
	if xf.deny[s] {
		return "", fmt.Errorf("value %q is in validate.deny", s)
	}
	if xf.ip != "" {
		a, err := netip.ParseAddr(s)
		if err != nil || !ipKind(a, xf.ip) {
			return "", fmt.Errorf("value %q is not an %s address (validate.ip)", s, xf.ip)
		}
	}
	if xf.cidr != "" {
		p, err := netip.ParsePrefix(s)
		if err != nil || !ipKind(p.Addr(), xf.cidr) {
			return "", fmt.Errorf("value %q is not an %s CIDR (validate.cidr)", s, xf.cidr)
		}
	}
	if xf.mask != nil {
		s = xf.mask(s)
	}
	return s, nil
}

func ipKind(a netip.Addr, kind string) bool {
	switch kind {
	case "ipv4":
		return a.Is4()
	case "ipv6":
		return a.Is6() && !a.Is4In6()
	}
	return true
}

func set(vals []string) map[string]bool {
	if len(vals) == 0 {
		return nil
	}
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[v] = true
	}
	return m
}

func splitPath(p string) []string {
	p = strings.TrimPrefix(p, ".")
	if p == "" {
		return nil
	}
	return strings.Split(p, ".")
}

func getPath(root map[string]any, path []string) (any, bool) {
	var cur any = root
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}
