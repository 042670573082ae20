package kafka

import (
	"os"
	"path/filepath"
	"testing"
)

// Only a member id this host kept is taken for a dead predecessor's: a
// data dir copied from another host names that host's live members.
func TestDeadMemberIsThisHostsOnly(t *testing.T) {
	slot := filepath.Join(t.TempDir(), "caracal-lake.0")
	if got := deadMember(slot); got != "" {
		t.Fatalf("no file: dead member %q", got)
	}
	host, _ := os.Hostname()
	for content, want := range map[string]string{
		host + " kgo-1234\n":       "kgo-1234",
		"another-host kgo-1234\n":  "",
		"kgo-1234\n":               "",
		host + " kgo-1 trailing\n": "",
	} {
		if err := os.WriteFile(memberFile(slot), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := deadMember(slot); got != want {
			t.Errorf("file %q: dead member %q, want %q", content, got, want)
		}
	}
}
