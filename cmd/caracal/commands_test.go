package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caracal-sec/caracal/plugins/enrich"
)

// Each segment of an association's field path is checked against the log
// type's schema, at the path's line, with the path meant; a path into a
// json field, a standard field and a correct nested path pass.
func TestLookupAssociationPaths(t *testing.T) {
	schemas := loadSchemas("../../schemas")
	if schemas == nil {
		t.Fatal("the shipped schemas do not load")
	}
	data := []byte(`name: accounts
primary_key: id
data: https://feeds.example.com/accounts.csv
associations:
  AWS.CloudTrail:
    - userIdentity.accountId
    - userIdentity.acountId
    - userIdentity.sessionContext.sessionIssuer.userNam
    - resources[*].ARN
    - resources.accountid
    - requestParameters.anything.below
    - sourceIPAddress.v4
    - p_any_aws_account_ids
  AWS.VPCFlow: [srcAdr, dstAddr]
`)
	d, err := enrich.ParseDef("accounts.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range lookupFindings("accounts.yml", data, d, schemas) {
		got = append(got, f.String())
	}
	want := []string{
		`accounts.yml:7: warning: associations: AWS.CloudTrail has no field "userIdentity.acountId" (did you mean userIdentity.accountId?): the table is never consulted for it`,
		`accounts.yml:8: warning: associations: AWS.CloudTrail has no field "userIdentity.sessionContext.sessionIssuer.userNam" (did you mean userIdentity.sessionContext.sessionIssuer.userName?): the table is never consulted for it`,
		`accounts.yml:10: warning: associations: AWS.CloudTrail has no field "resources.accountid" (did you mean resources.accountId?): the table is never consulted for it`,
		`accounts.yml:12: warning: associations: AWS.CloudTrail has no field "sourceIPAddress.v4": sourceIPAddress is of type string, which has no fields: the table is never consulted for it`,
		`accounts.yml:14: warning: associations: AWS.VPCFlow has no field "srcAdr" (did you mean srcAddr?): the table is never consulted for it`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A rule's lookup() call naming a table no definition linted with it
// defines is reported at its expression's line, with the table meant;
// a table named by an event value is not checked, and without lookup
// definitions nothing is (the tables are unknown).
func TestLintLookupCallsNameDefinedTables(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	rule := write("rule.yml", `AnalysisType: rule
RuleID: T.Lookups
LogTypes: [AWS.CloudTrail]
Severity: High
Condition: lookup("known_bad_ip", sourceIPAddress) != nil
AlertContext:
  known: lookup("known_bad_ips", sourceIPAddress)
  computed: lookup(table, sourceIPAddress)
  account: lookup("acounts", recipientAccountId)?.owner
`)
	tables := []string{
		write("bad.yml", "name: known_bad_ips\nprimary_key: cidr\nkey_type: cidr\ndata: bad.csv\n"),
		// A definition with a mistake still names its table (the mistake
		// is reported on its own).
		write("accounts.yml", "name: accounts\nprimary_key: id\ndata: accounts.csv\nrefreh: 5m\n"),
	}
	lint := caracalLinters().rules
	var got []string
	for _, f := range lint([]string{rule}, "config.yaml", tables) {
		got = append(got, f.String())
	}
	want := []string{
		rule + `:5: Condition: lookup("known_bad_ip", ...): there is no lookup table known_bad_ip (did you mean known_bad_ips?), so the call always returns nil`,
		rule + `:9: AlertContext.account: lookup("acounts", ...): there is no lookup table acounts (did you mean accounts?), so the call always returns nil`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if found := lint([]string{rule}, "config.yaml", nil); len(found) != 0 {
		t.Errorf("lookup() calls checked without lookup definitions: %v", found)
	}
}
