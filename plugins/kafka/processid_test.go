package kafka

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each live process of a stage holds its own id; a restart gets back the
// id of the process it replaces.
func TestKeptIDSlots(t *testing.T) {
	dir := t.TempDir()
	a, _, releaseA, err := keptID(dir, "caracal-detect")
	if err != nil {
		t.Fatal(err)
	}
	b, _, releaseB, err := keptID(dir, "caracal-detect")
	if err != nil {
		t.Fatal(err)
	}
	defer releaseB()
	if a == b {
		t.Fatalf("two live processes share the id %s: they would fence each other", a)
	}
	other, _, releaseOther, err := keptID(dir, "caracal-alert")
	if err != nil {
		t.Fatal(err)
	}
	defer releaseOther()
	if other == a || other == b {
		t.Fatal("another group got a held id")
	}
	releaseA() // the first process dies
	again, _, releaseAgain, err := keptID(dir, "caracal-detect")
	if err != nil {
		t.Fatal(err)
	}
	defer releaseAgain()
	if again != a {
		t.Fatalf("the restarted process got id %s, want its predecessor's %s", again, a)
	}
}

// A slot file that does not hold an id (truncated by a crash while it was
// written, edited by hand) gets a new one.
func TestKeptIDRewritesAGarbledFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, idDir), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, idDir, "caracal-alert.0")
	if err := os.WriteFile(file, []byte("not-an-id-at-all!!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id, _, release, err := keptID(dir, "caracal-alert")
	if err != nil {
		t.Fatal(err)
	}
	release()
	b, _ := os.ReadFile(file)
	host, _ := os.Hostname()
	if len(b) != 17 || id != host+"-"+strings.TrimSpace(string(b)) {
		t.Fatalf("slot file holds %q for id %q", b, id)
	}
}

// Where the data dir cannot be written, no id is kept (the caller uses a
// random one).
func TestKeptIDFailsOnAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := keptID(file, "caracal-alert"); err == nil {
		t.Fatal("kept an id under a file")
	}
}
