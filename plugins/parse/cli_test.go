package parse

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// Files given to `caracal parse` and `caracal detect` may be kept
// compressed, as CloudTrail's S3 objects are: gzip and zstd are read by
// their magic bytes, and a truncated one is an error, not fewer events.
func TestReadEventsInflatesCompressedFiles(t *testing.T) {
	plain := []byte(`{"Records":[{"eventID":"a"},{"eventID":"b"}]}` + "\n")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	zst := enc.EncodeAll(plain, nil)
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
	for name, data := range map[string][]byte{"gzip": gz.Bytes(), "zstd": zst} {
		got, err := events(data)
		if err != nil || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
		if _, err := events(data[:len(data)-8]); err == nil || !strings.Contains(err.Error(), "corrupt "+name+" stream") {
			t.Errorf("%s cut short: %v, want a corrupt %s stream error", name, err, name)
		}
	}
}
