package parse

import (
	"bytes"
	"strings"
	"testing"

	"github.com/caracal-sec/caracal/plugins/inflate/inflatetest"
)

// Files given to `caracal parse` and `caracal detect` may be kept
// compressed, as CloudTrail's S3 objects are: gzip, zstd and zlib are read
// by their magic bytes, a truncated one is an error, not fewer events, and
// zip, bzip2 or xz are refused by name rather than read as text lines.
func TestReadEventsInflatesCompressedFiles(t *testing.T) {
	plain := []byte(`{"Records":[{"eventID":"a"},{"eventID":"b"}]}` + "\n")
	events := func(data []byte) ([]string, error) {
		var out []string
		err := ReadEvents(bytes.NewReader(data), func(raw []byte) error {
			out = append(out, string(raw))
			return nil
		})
		return out, err
	}
	want, err := events(plain)
	if err != nil || len(want) != 2 {
		t.Fatalf("plain: %q, %v; want the two records", want, err)
	}
	for name, data := range map[string][]byte{"gzip": inflatetest.Gzip(plain), "zstd": inflatetest.Zstd(plain), "zlib": inflatetest.Zlib(plain)} {
		got, err := events(data)
		if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
		if _, err := events(data[:len(data)-8]); err == nil || !strings.Contains(err.Error(), "corrupt "+name+" stream") {
			t.Errorf("%s cut short: %v, want a corrupt %s stream error", name, err, name)
		}
	}
	bz2 := []byte("BZh91AY&SY\x00\x01")
	if got, err := events(bz2); err == nil || !strings.Contains(err.Error(), "bzip2") {
		t.Errorf("bzip2: %q, %v; want it refused by name", got, err)
	}
}
