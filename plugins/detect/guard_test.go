package detect

import (
	"fmt"
	"reflect"
	"sort"
	"testing"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

func TestConditionGuards(t *testing.T) {
	for src, want := range map[string]string{
		`eventName == "A" && x > 1`:                   `map[eventName:map[A:true]]`,
		`"A" == eventName`:                            `map[eventName:map[A:true]]`,
		`eventName in ["A", "B"] && errorCode == nil`: `map[eventName:map[A:true B:true]]`,
		`eventName == "A" && eventName in ["A", "B"]`: `map[eventName:map[A:true]]`,
		// What is evaluated first must not fail for a later guard to
		// count: `in` fails on a number, a field alone on a string.
		`eventName in ["A", "B"] && src == "s"`:                            `map[eventName:map[A:true B:true]]`,
		`x && eventName == "A"`:                                            `map[]`,
		`!(x == 1) && src != nil && eventName == "A"`:                      `map[eventName:map[A:true]]`,
		`userIdentity?.type == "Root" && eventName == "A"`:                 "map[userIdentity\x00type:map[Root:true]]",
		`eventName == "A" || eventName == "B"`:                             `map[eventName:map[A:true B:true]]`,
		`eventName == "A" || src == "B"`:                                   `map[]`,
		`e == nil && (eventName == "A" || (eventName in ["B", "C"] && z))`: `map[eventName:map[A:true B:true C:true]]`,
		`userIdentity.type == "Root"`:                                      `map[]`,
		`userIdentity?.session?.name == "x"`:                               "map[userIdentity\x00session\x00name:map[x:true]]",
		`$env["k"] == "x"`:                                                 `map[]`,
		`(eventName == "A" && y) && (src == "s" || z)`:                     `map[eventName:map[A:true]]`,
		`userIdentity?.type == "Root"`:                                     "map[userIdentity\x00type:map[Root:true]]",
		`eventName in ["A", 1]`:                                            `map[]`,
		`!(eventName == "A")`:                                              `map[]`,
	} {
		if got := fmt.Sprint(conditionGuards(src)); got != want {
			t.Errorf("%s: guards %s, want %s", src, got, want)
		}
	}
}

// The index must never change what matches: every shipped rule test event
// gives the same matches through the index as through every rule of its
// log type.
func TestIndexMatchesLikeFullScan(t *testing.T) {
	rules, err := LoadDir("../../rules")
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(rules)
	indexed := 0
	for lt, ix := range e.index {
		if ix.field != "" {
			indexed++
		}
		for _, r := range e.byType[lt] {
			for _, tc := range r.Tests {
				ev := map[string]any{envelope.FieldLogType: lt}
				for k, v := range tc.Log {
					ev[k] = envelope.PlainNumbers(v)
				}
				var want []string
				for _, rr := range e.byType[lt] {
					if m := rr.Match(ev); m != nil {
						want = append(want, rr.RuleID)
					}
				}
				var got []string
				for _, m := range e.Evaluate(ev) {
					got = append(got, m[envelope.FieldRuleID].(string))
				}
				sort.Strings(want)
				sort.Strings(got)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s / %s: indexed %v, full scan %v", r.RuleID, tc.Name, got, want)
				}
			}
		}
	}
	if indexed == 0 {
		t.Fatal("no log type is indexed: the guard analysis found nothing in the shipped pack")
	}
}
