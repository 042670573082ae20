package main

import (
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
