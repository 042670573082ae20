package kafka_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caracal-sec/caracal/plugins/kafka"
)

// One embedded broker per data dir: a second one is refused with the
// holder's pid and what to do, and the dir is free again once the first
// closes.
func TestEmbeddedBrokerLocksItsDataDir(t *testing.T) {
	dir := t.TempDir()
	first, err := kafka.StartEmbedded(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kafka.StartEmbedded(dir, 1); err == nil ||
		!strings.Contains(err.Error(), "in use by another Caracal process (pid "+strconv.Itoa(os.Getpid())+")") ||
		!strings.Contains(err.Error(), "CARACAL_DATA_DIR") {
		t.Fatalf("second broker on %s: %v", dir, err)
	}
	if other, err := kafka.StartEmbedded(filepath.Join(dir, "other"), 1); err != nil {
		t.Fatalf("a broker on another dir: %v", err)
	} else {
		other.Close()
	}
	first.Close()
	again, err := kafka.StartEmbedded(dir, 1)
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	again.Close()
}
