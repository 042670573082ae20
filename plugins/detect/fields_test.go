package detect

import (
	"reflect"
	"testing"
)

// LookupCalls finds the tables each expression's lookup() calls name with
// a constant, after folding, and leaves out those named by event values.
func TestLookupCalls(t *testing.T) {
	r := rule(t, base+`Condition: lookup("bad_ips", sourceIPAddress) != nil || lookup(tableName, sourceIPAddress) != nil
Title: '"From " + string(lookup("bad_" + "hosts", host)?.name)'
Dedup: sourceIPAddress
DynamicSeverity: 'lookup("severities", eventName) == nil ? "DEFAULT" : "High"'
AlertContext:
  b: deep_get(p_enrichment, "lookup")
  a: lookup("accounts", recipientAccountId)
`)
	want := []LookupCall{{"Condition", "bad_ips"}, {"Title", "bad_hosts"}, {"DynamicSeverity", "severities"}, {"AlertContext.a", "accounts"}}
	if got := r.LookupCalls(); !reflect.DeepEqual(got, want) {
		t.Errorf("LookupCalls() = %v, want %v", got, want)
	}
}
