package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The broker stream directories of processes that are gone are removed at
// the next start; those of live processes, and other names, stay.
func TestStaleRunDirsAreRemoved(t *testing.T) {
	tmp := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{ // name → should stay
		fmt.Sprintf("%s%d-123", runDirPrefix, gone.Process.Pid): false,
		fmt.Sprintf("%s%d-456", runDirPrefix, os.Getpid()):      true,
		fmt.Sprintf("%s%d-789", runDirPrefix, os.Getppid()):     true,
		runDirPrefix + "notapid-1":                              true,
		"other-dir":                                             true,
	}
	for name := range dirs {
		if err := os.MkdirAll(filepath.Join(tmp, name), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, name, "broker.yaml"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removeStaleRunDirs(tmp)
	for name, stays := range dirs {
		if _, err := os.Stat(filepath.Join(tmp, name)); (err == nil) != stays {
			t.Errorf("%s: present %v, want %v", name, err == nil, stays)
		}
	}
}
