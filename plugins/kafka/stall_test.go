package kafka

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A wait on a pending transaction is reported once it outlasts
// HangingAfter, once per partition; short waits and other retries are not.
// While it lasts, hanging transactions are looked for when it begins and
// every probeEvery.
func TestStallWatchReportsAHangingTransaction(t *testing.T) {
	var reports []string
	probes := 0
	w := newStallWatch(func(m string) { reports = append(reports, m) }, func() { probes++ })
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	w.now = func() time.Time { return now }
	retry := func(partition int32, err error) {
		w.Log(kgo.LogLevelInfo, unstableRetryMsg, "group", "caracal-process", "topic", "caracal.raw", "partition", partition, "err", err)
	}
	for i := 0; i < 60; i++ { // a minute: a live transaction may last that long
		retry(3, kerr.UnstableOffsetCommit)
		retry(4, kerr.UnknownTopicID)
		now = now.Add(time.Second)
	}
	if len(reports) != 0 {
		t.Fatalf("a minute's wait reported: %q", reports)
	}
	if want := 4; probes != want { // at 0, 15, 30 and 45 s
		t.Fatalf("%d looks for hanging transactions in a minute's wait, want %d", probes, want)
	}
	now = now.Add(time.Minute) // a pause: the next wait is a new one
	after := int(HangingAfter / time.Second)
	for i := 0; i <= after+10; i++ {
		retry(3, kerr.UnstableOffsetCommit)
		now = now.Add(time.Second)
	}
	if len(reports) != 1 || !strings.Contains(reports[0], "caracal-process") || !strings.Contains(reports[0], "caracal.raw/3") || !strings.Contains(reports[0], "find-hanging") {
		t.Fatalf("reports %q, want one about caracal.raw/3", reports)
	}
	// Still waiting: reported again after as long again.
	for i := 0; i < after-10; i++ {
		retry(3, kerr.UnstableOffsetCommit)
		now = now.Add(time.Second)
	}
	if len(reports) != 2 {
		t.Fatalf("%d reports after a second stretch, want 2", len(reports))
	}
}

// The watch recognises franz-go's retry by its log message: the version
// in go.mod must still log it.
func TestFranzGoStillLogsTheUnstableRetry(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-json", "github.com/twmb/franz-go").Output()
	if err != nil {
		t.Fatal(err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("module dir: %v %s", err, out)
	}
	src, err := os.ReadFile(filepath.Join(mod.Dir, "pkg", "kgo", "consumer_group.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), `"`+unstableRetryMsg+`"`) {
		t.Fatalf("franz-go no longer logs %q: update stallWatch", unstableRetryMsg)
	}
}
