package inflate

import (
	"bytes"
	stdflate "compress/flate"
	stdgzip "compress/gzip"
	stdzlib "compress/zlib"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/caracal-sec/caracal/plugins/inflate/inflatetest"
)

var gz, zl, zs = inflatetest.Gzip, inflatetest.Zlib, inflatetest.Zstd

func TestDecompress(t *testing.T) {
	plain := []byte(strings.Repeat(`{"eventName":"ConsoleLogin"}`+"\n", 100))
	for name, body := range map[string][]byte{"plain": plain, "gzip": gz(plain), "zlib": zl(plain), "zstd": zs(plain)} {
		got, _, err := Decompress(body, 1<<20)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s: err %v, equal %v", name, err, bytes.Equal(got, plain))
		}
	}
	bomb := gz(make([]byte, 10<<20))
	if _, _, err := Decompress(bomb, 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("bomb: %v, want ErrTooLarge", err)
	}
	corrupt := gz(plain)
	corrupt = append(corrupt[:20], bytes.Repeat([]byte{0xff}, 40)...)
	if _, enc, err := Decompress(corrupt, 1<<20); err == nil || enc != "gzip" {
		t.Errorf("corrupt gzip: enc %q err %v", enc, err)
	}
	for name, body := range map[string][]byte{"zip": []byte("PK\x03\x04rest"), "bzip2": []byte("BZh91AY&SY\x00\x01"),
		"xz": {0xfd, '7', 'z', 'X', 'Z', 0, 0, 4}} {
		if _, _, err := Decompress(body, 1<<20); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want ErrUnsupported naming it", name, err)
		}
	}
	// Text whose first bytes pass for a compression's magic is text.
	for _, text := range []string{"x marks the spot\n", "x^2 value\n", "x} y\n", "BZh is a line\n"} {
		if out, enc, err := Decompress([]byte(text), 1<<20); err != nil || enc != "" || string(out) != text {
			t.Errorf("%q: %q, %q, %v; want it as it is", text, out, enc, err)
		}
	}
	// A corrupt zlib stream (binary, not text) is still an error.
	if _, enc, err := Decompress(append([]byte{0x78, 0x9c}, bytes.Repeat([]byte{0xff}, 20)...), 1<<20); err == nil || enc != "zlib" {
		t.Errorf("corrupt zlib: enc %q err %v", enc, err)
	}
}

func FuzzDecompress(f *testing.F) {
	for _, s := range [][]byte{[]byte("plain"), gz([]byte("hello")), zl([]byte("hello")), zs([]byte("hello")), {0x1f, 0x8b}, {0x28, 0xb5, 0x2f, 0xfd}} {
		f.Add(s)
	}
	big := bytes.Repeat([]byte(`{"eventName":"ConsoleLogin"}`+"\n"), 3000) // over the limit below
	for _, s := range [][]byte{gz(big), zl(big), zs(big), append(gz([]byte("a")), gz([]byte("b"))...), append(zs([]byte("a")), 'x')} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		// Twice: the decoders are reused, and the second must not see
		// anything of the first.
		for range 2 {
			out, enc, err := Decompress(b, 1<<16)
			if err == nil && int64(len(out)) > 1<<16 {
				t.Fatalf("output %d bytes beyond the cap", len(out))
			}
			// What a new decoder (klauspost's streaming one for zstd)
			// reads to the end gives.
			want, wantErr := decompressFresh(enc, b, 1<<16)
			// (A zstd frame that says it holds too much is refused before
			// reading it; a streaming decoder may find it truncated first.)
			if (err == nil) != (wantErr == nil) || errors.Is(wantErr, ErrTooLarge) && !errors.Is(err, ErrTooLarge) || err == nil && !bytes.Equal(out, want) {
				t.Fatalf("%s body %q: %d bytes, %v; a new decoder: %d bytes, %v", enc, b, len(out), err, len(want), wantErr)
			}
		}
	})
}

func decompressFresh(enc string, body []byte, limit int64) ([]byte, error) {
	var r io.Reader
	var err error
	switch enc {
	case "gzip":
		r, err = stdgzip.NewReader(bytes.NewReader(body))
	case "zlib":
		r, err = stdzlib.NewReader(bytes.NewReader(body))
	case "zstd":
		var zr *zstd.Decoder
		if zr, err = zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(limit)+1)); err == nil {
			defer zr.Close()
			r = zr
		}
	default:
		return body, nil
	}
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	// A zstd frame that says it holds more is as much too large as one
	// that does.
	if err == nil && int64(len(out)) > limit || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return nil, ErrTooLarge
	}
	return out, err
}

// BenchmarkDecompress inflates 100 CloudTrail-like lines (55 KB) sent
// gzip'd, zstd'd and zlib'd.
func BenchmarkDecompress(b *testing.B) {
	plain := bytes.Repeat([]byte(`{"eventVersion":"1.08","eventTime":"2026-11-23T21:04:05Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"eu-west-1","sourceIPAddress":"10.0.0.1","userAgent":"aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.ubuntu.22 prompt/off command/ec2.describe-instances","recipientAccountId":"111122223333"}`+"\n"), 160)
	for _, enc := range []struct {
		name string
		body []byte
	}{{"gzip", gz(plain)}, {"zstd", zs(plain)}, {"zlib", zl(plain)}} {
		b.Run(enc.name, func(b *testing.B) {
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				if out, _, err := Decompress(enc.body, 1<<20); err != nil || len(out) != len(plain) {
					b.Fatal(err, len(out))
				}
			}
		})
	}
}

// A declared Content-Encoding counts only where the magic bytes say
// nothing and the body is not text: raw deflate is inflated, brotli is
// refused by name, a mislabelled body is read as it is.
func TestDeclared(t *testing.T) {
	plain := []byte(`{"eventName":"ConsoleLogin"}` + "\n")
	raw := bytes.NewBuffer(inflatetest.Deflate(plain))
	binary := []byte{0x8b, 0x05, 0x80, 0xff, 0xfe, 0x00, 0x01}
	for _, tc := range []struct {
		name, declared string
		body           []byte
		want           string
	}{
		{"raw deflate", "deflate", raw.Bytes(), "deflate"},
		{"raw deflate, any case", " Deflate ", raw.Bytes(), "deflate"},
		{"gzip magic wins over the header", "deflate", gz(plain), "gzip"},
		{"text said to be brotli", "br", plain, ""},
		{"text said to be gzip", "gzip", plain, ""},
		{"binary said to be brotli", "br", binary, "br"},
		{"binary said to be gzip", "gzip", binary, ""},
		{"binary without a header", "", binary, ""},
	} {
		if got := Declared(tc.body, tc.declared); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if out, _, err := DecompressAs("deflate", raw.Bytes(), 1<<20); err != nil || !bytes.Equal(out, plain) {
		t.Errorf("raw deflate: %q, %v", out, err)
	}
	if _, _, err := DecompressAs("deflate", []byte{0xff, 0xff, 0xfe, 0x00}, 1<<20); err == nil || !strings.Contains(err.Error(), "corrupt deflate stream") {
		t.Errorf("corrupt raw deflate: %v", err)
	}
	if _, _, err := DecompressAs("br", binary, 1<<20); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "br is not accepted") {
		t.Errorf("brotli: %v", err)
	}
	bomb := bytes.Buffer{}
	bw, _ := stdflate.NewWriter(&bomb, stdflate.BestCompression)
	bw.Write(make([]byte, 4<<20))
	bw.Close()
	if _, _, err := DecompressAs("deflate", bomb.Bytes(), 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("deflate bomb: %v, want ErrTooLarge", err)
	}
}
