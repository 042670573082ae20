package schema

import (
	"strings"
	"testing"
)

// FieldPath follows a path through objects, refs and arrays of objects,
// stops at a json field, and names what is wrong with a path it cannot
// follow, with the path meant.
func TestFieldPath(t *testing.T) {
	s, err := Parse("x.yml", []byte(`schema: Custom.Paths
fields:
  - {name: ip, type: string}
  - name: user
    type: object
    fields:
      - {name: accountId, type: string}
      - {name: tags, type: array, element: {type: string}}
  - name: resources
    type: array
    element:
      type: object
      fields: [{name: ARN, type: string}]
  - {name: actor, type: ref, target: actor}
  - {name: extra, type: json}
definitions:
  actor: [{name: email, type: string}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"ip":                   "ip",
		"user.accountId":       "accountId",
		"user.tags":            "tags",
		"resources.ARN":        "ARN", // into the elements of an array
		"actor.email":          "email",
		"extra":                "extra",
		"extra.anything.below": "extra", // a json field is not described
	} {
		f, err := s.FieldPath(strings.Split(path, "."))
		if err != nil || f.Name != want {
			t.Errorf("FieldPath(%s) = %v, %v; want the field %s", path, f, err, want)
		}
	}
	for path, want := range map[string]string{
		"ipp":              `has no field "ipp" (did you mean ip?)`,
		"user.acountId":    `has no field "user.acountId" (did you mean user.accountId?)`,
		"resources.arn":    `has no field "resources.arn" (did you mean resources.ARN?)`,
		"actor.mail":       `has no field "actor.mail" (did you mean actor.email?)`,
		"user.zzzzzzzz":    `has no field "user.zzzzzzzz"`,
		"ip.v4":            `has no field "ip.v4": ip is of type string, which has no fields`,
		"user.tags.key":    `has no field "user.tags.key": user.tags is of type array of string, which has no fields`,
		"user.accountId.x": `has no field "user.accountId.x": user.accountId is of type string, which has no fields`,
	} {
		f, err := s.FieldPath(strings.Split(path, "."))
		if err == nil || err.Error() != want {
			t.Errorf("FieldPath(%s) = %v, %v; want the error %s", path, f, err, want)
		}
	}
}
