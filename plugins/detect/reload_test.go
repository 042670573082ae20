package detect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeRule(t *testing.T, dir, name, id, cond string) {
	t.Helper()
	y := "AnalysisType: rule\nRuleID: " + id + "\nLogTypes: [AWS.CloudTrail]\nSeverity: Low\nCondition: " + cond + "\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ids(e *Engine) string {
	var out []string
	for _, r := range e.Rules() {
		out = append(out, r.RuleID)
	}
	return strings.Join(out, ",")
}

func TestReloader(t *testing.T) {
	dir := t.TempDir()
	writeRule(t, dir, "a.yml", "A", `eventName == "A"`)
	rl, err := NewReloader(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := rl.Engine()
	ev := map[string]any{"p_log_type": "AWS.CloudTrail", "eventName": "B"}

	if changed, errs := rl.Reload(); changed || len(errs) > 0 {
		t.Fatalf("nothing changed: %v %v", changed, errs)
	}
	// Added rule.
	writeRule(t, dir, "b.yml", "B", `eventName == "B"`)
	if changed, errs := rl.Reload(); !changed || len(errs) > 0 || ids(rl.Engine()) != "A,B" {
		t.Fatalf("add: %v %v %s", changed, errs, ids(rl.Engine()))
	}
	if len(rl.Engine().Evaluate(ev)) != 1 || len(old.Evaluate(ev)) != 0 {
		t.Fatal("the new engine must match B; the one a batch in flight holds must not change")
	}
	// Modified rule.
	writeRule(t, dir, "b.yml", "B", `eventName == "C"`)
	if changed, _ := rl.Reload(); !changed || len(rl.Engine().Evaluate(ev)) != 0 {
		t.Fatal("modification not applied")
	}
	// Broken rule: the previous version stays, the error is reported once.
	writeRule(t, dir, "b.yml", "B", `eventName ==`)
	changed, errs := rl.Reload()
	if changed || len(errs) != 1 || !strings.Contains(errs[0].Error(), "b.yml") || ids(rl.Engine()) != "A,B" {
		t.Fatalf("broken: %v %v %s", changed, errs, ids(rl.Engine()))
	}
	if _, errs := rl.Reload(); len(errs) != 0 {
		t.Fatalf("the same broken content reported again: %v", errs)
	}
	evC := map[string]any{"p_log_type": "AWS.CloudTrail", "eventName": "C"}
	if len(rl.Engine().Evaluate(evC)) != 1 {
		t.Fatal("the last good version of B is not in force")
	}
	// Fixed again, then deleted.
	writeRule(t, dir, "b.yml", "B", `eventName == "B"`)
	if changed, _ := rl.Reload(); !changed || len(rl.Engine().Evaluate(ev)) != 1 {
		t.Fatal("fix not applied")
	}
	if err := os.Remove(filepath.Join(dir, "b.yml")); err != nil {
		t.Fatal(err)
	}
	if changed, _ := rl.Reload(); !changed || ids(rl.Engine()) != "A" {
		t.Fatalf("delete: %s", ids(rl.Engine()))
	}
	// A duplicate RuleID keeps the previous set.
	writeRule(t, dir, "c.yml", "A", `true`)
	if _, errs := rl.Reload(); len(errs) == 0 || ids(rl.Engine()) != "A" {
		t.Fatalf("duplicate id: %v %s", errs, ids(rl.Engine()))
	}
	// A rule broken at start is an error: there is no good version.
	writeRule(t, dir, "d.yml", "D", `(`)
	if _, err := NewReloader(dir); err == nil {
		t.Fatal("a broken rule at start was accepted")
	}
}

// A rules directory that is not there says so, rather than how the walk
// over it failed.
func TestLoadDirNamesAMissingDirectory(t *testing.T) {
	_, err := LoadDir(filepath.Join(t.TempDir(), "rules"))
	if err == nil || !strings.Contains(err.Error(), "rules directory ") || !strings.Contains(err.Error(), "does not exist (relative to ") {
		t.Fatalf("LoadDir of a missing directory: %v", err)
	}
}
