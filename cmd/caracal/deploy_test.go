package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caracal-sec/caracal/tools/systest"
)

// The systemd example runs every stage on one host (`systemctl enable
// caracal@ingest caracal@process ...`): each unit's environment, from the
// EnvironmentFile lines of deploy/systemd/caracal@.service read from their
// deploy/*.example files, must give its process a metrics address of its
// own, or all but the first run without /metrics and /ready.
func TestDeployExampleGivesEachStageItsOwnMetricsAddress(t *testing.T) {
	root, err := systest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "deploy/systemd/caracal@.service"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string // in order: later ones override
	for _, line := range strings.Split(string(unit), "\n") {
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "EnvironmentFile="); ok {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		t.Fatal("caracal@.service reads no EnvironmentFile")
	}
	owner := map[string]string{}
	for _, stage := range allStages {
		env := map[string]string{}
		for _, f := range files {
			optional := strings.HasPrefix(f, "-")
			f = strings.ReplaceAll(strings.TrimPrefix(f, "-"), "%i", stage)
			example := filepath.Join(root, "deploy", strings.TrimPrefix(f, "/etc/caracal/")+".example")
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
		addr := env["CARACAL_METRICS_ADDRESS"]
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
