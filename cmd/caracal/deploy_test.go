package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caracal-sec/caracal/tools/systest"
)

// unitExample is deploy/systemd/caracal@.service's settings (key → values
// in order) and the deploy/ directory whose *.example files stand for its
// EnvironmentFiles.
func unitExample(t *testing.T) (map[string][]string, string) {
	t.Helper()
	root, err := systest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "deploy/systemd/caracal@.service"))
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string][]string{}
	for _, line := range strings.Split(string(unit), "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] = append(settings[k], v)
		}
	}
	return settings, filepath.Join(root, "deploy")
}

// stageEnv is the environment the unit gives caracal@stage, from the
// examples of its EnvironmentFile lines (later ones override).
func stageEnv(t *testing.T, unit map[string][]string, deploy, stage string) map[string]string {
	t.Helper()
	files := unit["EnvironmentFile"]
	if len(files) == 0 {
		t.Fatal("caracal@.service reads no EnvironmentFile")
	}
	env := map[string]string{}
	for _, f := range files {
		optional := strings.HasPrefix(f, "-")
		f = strings.ReplaceAll(strings.TrimPrefix(f, "-"), "%i", stage)
		example := filepath.Join(deploy, strings.TrimPrefix(f, "/etc/caracal/")+".example")
		fh, err := os.Open(example)
		if err != nil {
			if optional {
				continue
			}
			t.Fatalf("%s (example of %s): %v", example, f, err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
				env[k] = v
			}
		}
		fh.Close()
	}
	return env
}

// The systemd example runs every stage on one host (`systemctl enable
// caracal@ingest caracal@process ...`): each unit's environment, from the
// EnvironmentFile lines of deploy/systemd/caracal@.service read from their
// deploy/*.example files, must give its process a metrics address of its
// own, or all but the first run without /metrics and /ready.
func TestDeployExampleGivesEachStageItsOwnMetricsAddress(t *testing.T) {
	unit, deploy := unitExample(t)
	owner := map[string]string{}
	for _, stage := range allStages {
		addr := stageEnv(t, unit, deploy, stage)["CARACAL_METRICS_ADDRESS"]
		if addr == "" {
			t.Errorf("caracal@%s: no CARACAL_METRICS_ADDRESS (the default 127.0.0.1:4195 is every stage's)", stage)
			continue
		}
		if other, ok := owner[addr]; ok {
			t.Errorf("caracal@%s and caracal@%s both serve metrics on %s", other, stage, addr)
			continue
		}
		owner[addr] = stage
	}
}

// On a fresh host the unit starts: its data dir is one systemd creates for
// User= and makes writable under ProtectSystem=strict (StateDirectory=),
// and no ReadWritePaths= names a directory that may not exist yet, which
// fails the unit with status 226/NAMESPACE before caracal runs.
func TestDeployExampleCreatesItsDataDir(t *testing.T) {
	unit, deploy := unitExample(t)
	if len(unit["User"]) == 0 {
		t.Error("caracal@.service sets no User= (the state directory's owner)")
	}
	var created []string
	for _, v := range unit["StateDirectory"] {
		for _, d := range strings.Fields(v) {
			created = append(created, filepath.Join("/var/lib", d))
		}
	}
	within := func(p string) bool {
		for _, d := range created {
			if p == d || strings.HasPrefix(p, d+"/") {
				return true
			}
		}
		return false
	}
	for _, v := range unit["ReadWritePaths"] {
		for _, p := range strings.Fields(v) {
			if !strings.HasPrefix(p, "-") && !within(p) {
				t.Errorf("ReadWritePaths=%s: fails the unit (226/NAMESPACE) where it does not exist yet; use StateDirectory= (or a '-' prefix)", p)
			}
		}
	}
	for _, stage := range allStages {
		dir := stageEnv(t, unit, deploy, stage)["CARACAL_DATA_DIR"]
		if dir == "" || !within(filepath.Clean(dir)) {
			t.Errorf("caracal@%s: CARACAL_DATA_DIR %q is not under a StateDirectory= (%v): systemd does not create it, and ProtectSystem=strict leaves it read-only", stage, dir, created)
		}
	}
}
