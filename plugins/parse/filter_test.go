package parse

import "testing"

func TestFilter(t *testing.T) {
	f := &Filter{Source: "alb", LogTypes: []string{"AWS.ALB"}, Exclude: `elbStatusCode == 200 && requestUrl endsWith "/healthz"`}
	if err := f.Compile(); err != nil {
		t.Fatal(err)
	}
	health := map[string]any{"elbStatusCode": int64(200), "requestUrl": "https://x/healthz"}
	page := map[string]any{"elbStatusCode": int64(200), "requestUrl": "https://x/login"}
	if f.Keep("alb", "AWS.ALB", health) {
		t.Error("health check kept")
	}
	if !f.Keep("alb", "AWS.ALB", page) {
		t.Error("page dropped")
	}
	if !f.Keep("other", "AWS.ALB", health) || !f.Keep("alb", "AWS.VPCFlow", health) {
		t.Error("filter applied outside its source or log types")
	}
	inc := &Filter{Source: "*", Include: `severity >= 4`}
	if err := inc.Compile(); err != nil {
		t.Fatal(err)
	}
	if inc.Keep("gd", "AWS.GuardDuty", map[string]any{"severity": 2.0}) || !inc.Keep("gd", "AWS.GuardDuty", map[string]any{"severity": 8.0}) {
		t.Error("include not applied")
	}
	// A runtime error (comparing a string with a number) keeps the event.
	if !inc.Keep("gd", "AWS.GuardDuty", map[string]any{"severity": "high"}) {
		t.Error("an erroring filter dropped an event")
	}
	for _, bad := range []*Filter{{Source: "x"}, {Source: "x", Include: "1 +"}, {Source: "x", Exclude: `"str"`}} {
		if err := bad.Compile(); err == nil {
			t.Errorf("filter %+v compiled", bad)
		}
	}
}
