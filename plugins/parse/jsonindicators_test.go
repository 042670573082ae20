package parse

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// mayHoldBySearch is mayHold as first written, a search for each text it
// looks for.
func (k *jsonKinds) mayHoldBySearch(raw []byte, field string) bool {
	switch {
	case k.account && namesAccount(field):
		return true
	case !k.arnOnly || bytes.Contains(raw, []byte(`\u`)):
		return true
	case len(k.shaped) > 0 && bytes.Contains(raw, []byte("arn:")):
		return true
	case k.instance && bytes.Contains(raw, []byte(`"i-`)):
		return true
	}
	return k.account && (bytes.Contains(raw, []byte("ccount")) || bytes.Contains(raw, []byte("CCOUNT")))
}

// mayHold looks for its texts in one pass: it answers as the searches do,
// on every schema test's input and on texts made of pieces of them.
func TestMayHoldIsASearchForEach(t *testing.T) {
	var kinds []*jsonKinds
	for _, ks := range [][]string{
		{"aws_arn", "aws_account_id", "aws_instance_id"}, {"aws_arn"}, {"aws_arn_only", "aws_instance_id"},
		{"aws_account_id"}, {"aws_instance_id"}, {"aws_account_id", "aws_instance_id"}, {"aws_arn", "ip"},
	} {
		kinds = append(kinds, newJSONKinds(ks))
	}
	schemas, _ := shipped(t)
	inputs := []string{"", "u", `\`, `\u`, "arn:", "rn:", `"i-`, "i-", "ccount", "CCOUNT", "ccounT", "Account"}
	for _, s := range schemas {
		for _, tc := range s.Tests {
			inputs = append(inputs, tc.Input)
		}
	}
	pieces := []string{`\`, "u", "a", "r", "n", ":", `"`, "i", "-", "c", "C", "o", "O", "U", "N", "t", "T", "x", "ccoun", "CCOUN", "ar", "arn"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		inputs = append(inputs, b.String())
	}
	for _, k := range kinds {
		for _, field := range []string{"requestParameters", "accountIds"} {
			for _, in := range inputs {
				if got, want := k.mayHold([]byte(in), field), k.mayHoldBySearch([]byte(in), field); got != want {
					t.Fatalf("%+v, field %s, %q: mayHold %v, searches %v", *k, field, in, got, want)
				}
			}
		}
	}
}
