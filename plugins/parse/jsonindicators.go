package parse

import (
	"slices"
	"strings"
	"unsafe"

	"github.com/valyala/fastjson"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// jsonKinds is how a json field's indicators are found: a json field
// (CloudTrail's requestParameters, responseElements, ...) has no
// structure to put them on, so they are looked for in every string within
// it, by their shape. Panther's CloudTrail parser took ARNs, account ids
// and instance ids from anywhere in the event. Twelve digits alone are too
// common to be an account id, so one counts only under a key that names
// an account (accountId, recipientAccountId, ...); an instance id counts
// as a whole value; kinds with no shape (usernames, tags, trace and actor
// ids) would take every string and are not looked for.
type jsonKinds struct {
	shaped            []string // kinds AddPlain checks the shape of
	account, instance bool
	// arnOnly: shaped holds only ARN kinds, so that a value without
	// "arn:" in it is not walked (mayHold).
	arnOnly bool
}

// newJSONKinds is nil when a json field's indicators name nothing to look for.
func newJSONKinds(kinds []string) *jsonKinds {
	k := &jsonKinds{}
	for _, kind := range kinds {
		switch kind {
		case "aws_account_id":
			k.account = true
		case "aws_instance_id":
			k.instance = true
		case "aws_tag", "trace_id", "actor_id", "username":
		default:
			k.shaped = append(k.shaped, kind)
		}
	}
	if len(k.shaped) == 0 && !k.account && !k.instance {
		return nil
	}
	k.arnOnly = !slices.ContainsFunc(k.shaped, func(kind string) bool { return kind != "aws_arn" && kind != "aws_arn_only" })
	return k
}

// mayHold reports whether a value (of the named field) written as raw JSON may hold an
// indicator: most CloudTrail parameters hold none, and are not walked.
// An escaped character (\u...) may hide any text, so such a value is.
func (k *jsonKinds) mayHold(raw []byte, field string) bool {
	switch {
	case k.account && namesAccount(field): // its own strings are under it
		return true
	case !k.arnOnly:
		return true
	}
	// One pass for `\u`, "arn:", `"i-`, "ccount" and "CCOUNT", each found
	// by its last byte: a search for each (the one for `"i-` stopping at
	// every quote) was a twelfth of writing a CloudTrail event.
	for i := 1; i < len(raw); i++ {
		if !holdEnds[raw[i]] {
			continue // most bytes: a look in a table rather than through the cases
		}
		switch raw[i] {
		case 'u':
			if raw[i-1] == '\\' {
				return true
			}
		case ':':
			if len(k.shaped) > 0 && i >= 3 && string(raw[i-3:i]) == "arn" {
				return true
			}
		case '-':
			if k.instance && i >= 2 && raw[i-2] == '"' && raw[i-1] == 'i' {
				return true
			}
		case 't', 'T':
			if k.account && i >= 5 && (string(raw[i-5:i+1]) == "ccount" || string(raw[i-5:i+1]) == "CCOUNT") {
				return true
			}
		}
	}
	return false
}

// holdEnds are the last bytes of the texts mayHold looks for.
var holdEnds = [256]bool{'u': true, ':': true, '-': true, 't': true, 'T': true}

// namesAccount reports whether a JSON key names an AWS account:
// accountId, AccountId, recipientAccountId, ACCOUNT_ID.
func namesAccount(key string) bool {
	return strings.Contains(key, "ccount") || strings.Contains(key, "CCOUNT")
}

func (ix *Indicators) jsonString(k *jsonKinds, key, s string) {
	ix.plain = false
	ix.AddPlain(k.shaped, s, false)
	if k.account && isDigits(s, 12) && namesAccount(key) {
		ix.put(anyAWSAccountIDs, s)
	}
	if k.instance && findInstanceID(s) == s {
		ix.put(anyAWSInstanceIDs, s)
	}
}

// addJSON records the indicators within a decoded JSON value; key is the
// object key the value is under (an array's items are under their
// array's).
func (ix *Indicators) addJSON(k *jsonKinds, key string, v any) {
	switch t := v.(type) {
	case string:
		ix.jsonString(k, key, t)
	case map[string]any:
		for kk, vv := range t {
			ix.addJSON(k, kk, vv)
		}
	case []any:
		for _, vv := range t {
			ix.addJSON(k, key, vv)
		}
	}
}

// addFastJSON is addJSON over a fastjson value (the emit path); the
// strings it records point into the parser's buffer, which is written
// before it is handed back.
func (ix *Indicators) addFastJSON(k *jsonKinds, key string, v *fastjson.Value) {
	switch v.Type() {
	case fastjson.TypeString:
		ix.jsonString(k, key, unsafeString(v))
	case fastjson.TypeObject:
		o, _ := v.Object()
		o.Visit(func(kk []byte, vv *fastjson.Value) {
			ix.addFastJSON(k, unsafe.String(unsafe.SliceData(kk), len(kk)), vv)
		})
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, vv := range a {
			ix.addFastJSON(k, key, vv)
		}
	}
}

// scanJSON is addJSON over the raw JSON value at s (the scanning emit
// path), read without decoding it: decoding CloudTrail's parameters into
// maps made parsing an event with an instance id in them half as dear
// again. Strings without escapes point into the event, which is written
// before the indicators are dropped.
func (ix *Indicators) scanJSON(k *jsonKinds, key string, s *envelope.Scanner, depth int) error {
	if depth > envelope.MaxDepth {
		return envelope.ErrTooDeep
	}
	switch s.Next() {
	case '"':
		text, err := s.Text()
		if err != nil {
			return err
		}
		ix.jsonString(k, key, unsafe.String(unsafe.SliceData(text), len(text)))
	case '{':
		s.Expect('{')
		for more := !s.Expect('}'); more; {
			kk, err := s.Key()
			if err != nil {
				return err
			}
			if err := ix.scanJSON(k, unsafe.String(unsafe.SliceData(kk), len(kk)), s, depth+1); err != nil {
				return err
			}
			if more, err = s.More('}'); err != nil {
				return err
			}
		}
	case '[':
		s.Expect('[')
		for more := !s.Expect(']'); more; {
			if err := ix.scanJSON(k, key, s, depth+1); err != nil {
				return err
			}
			var err error
			if more, err = s.More(']'); err != nil {
				return err
			}
		}
	default:
		_, err := s.Skip(depth)
		return err
	}
	return nil
}
