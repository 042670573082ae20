// Package inflate decompresses bodies and files by their magic bytes, not
// by headers or file names, which senders get wrong: the HTTP input and
// the commands that read log files share it.
package inflate

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// Errors from Decompress: the HTTP input answers 413 and 415 for them.
var (
	ErrTooLarge    = errors.New("decompressed body exceeds the limit")
	ErrUnsupported = errors.New("unsupported content encoding")
)

// Encoding is the compression body's magic bytes show ("gzip", "zstd",
// "zlib", or "zip", "bzip2" and "xz", which are refused), "" for none.
func Encoding(body []byte) string {
	switch {
	case len(body) >= 2 && body[0] == 0x1f && body[1] == 0x8b:
		return "gzip"
	case len(body) >= 4 && body[0] == 0x28 && body[1] == 0xb5 && body[2] == 0x2f && body[3] == 0xfd:
		return "zstd"
	// zlib's two bytes are also text ("x^..."): a preset dictionary (FDICT,
	// which "x ", "x?" and "x}" set) is never sent, and Decompress reads a
	// text body that does not inflate as text.
	case len(body) >= 2 && body[0] == 0x78 && body[1]&0x20 == 0 && (uint16(body[0])<<8|uint16(body[1]))%31 == 0:
		return "zlib"
	case len(body) >= 4 && bytes.Equal(body[:4], []byte("PK\x03\x04")):
		return "zip"
	case len(body) >= 10 && bytes.Equal(body[:3], []byte("BZh")) && body[3] >= '1' && body[3] <= '9' &&
		(bytes.Equal(body[4:10], []byte("1AY&SY")) || bytes.Equal(body[4:10], []byte{0x17, 0x72, 0x45, 0x38, 0x50, 0x90})):
		return "bzip2"
	case len(body) >= 6 && bytes.Equal(body[:6], []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return "xz"
	}
	return ""
}

// Declared is the encoding of a body whose sender declared one (an HTTP
// Content-Encoding): the magic bytes decide, as senders get headers wrong,
// and the declaration counts only for a body without magic that is not
// text: raw deflate (what many send as "deflate"), or an encoding refused
// by name (br, compress) rather than stored as binary.
func Declared(body []byte, declared string) string {
	if enc := Encoding(body); enc != "" {
		return enc
	}
	switch declared = strings.ToLower(strings.TrimSpace(declared)); declared {
	case "", "identity", "gzip", "x-gzip", "zstd":
		return "" // said compressed but is not: the body as it is
	}
	if utf8.Valid(body) {
		return ""
	}
	return declared
}

// Decompress detects gzip, zstd and zlib from the body's magic bytes (not
// the headers, which senders get wrong) and inflates up to limit bytes.
// Uncompressed bodies are returned as they are.
func Decompress(body []byte, limit int64) ([]byte, string, error) {
	return DecompressAs(Encoding(body), body, limit)
}

// DecompressAs inflates body as enc (Encoding's or Declared's answer).
func DecompressAs(enc string, body []byte, limit int64) ([]byte, string, error) {
	var out []byte
	var err error
	switch enc {
	case "":
		return body, "", nil
	case "gzip":
		out, err = gunzip(body, limit)
	case "zstd":
		out, err = unzstd(body, limit)
	case "zlib":
		out, err = unzlib(body, limit)
	case "deflate":
		out, err = readUpTo(flate.NewReader(bytes.NewReader(body)), 4*int64(len(body)), limit)
	default:
		return nil, enc, fmt.Errorf("%w: %s is not accepted; use gzip, zstd, zlib or deflate", ErrUnsupported, enc)
	}
	switch {
	case err != nil && enc == "zlib" && !errors.Is(err, ErrTooLarge) && utf8.Valid(body):
		return body, "", nil // text that opens like zlib; compressed data is not UTF-8
	case errors.Is(err, ErrTooLarge) || err == nil && int64(len(out)) > limit:
		return nil, enc, ErrTooLarge
	case err != nil:
		return nil, enc, fmt.Errorf("corrupt %s stream: %w", enc, err)
	}
	return out, enc, nil
}

// The decoders are reused: each holds a window of up to 32 KiB (gzip,
// zlib) or more (zstd), and making them was most of the cost of
// inflating a request. gzip and zlib are the standard library's: the
// Reset of klauspost/compress's (v1.20.3) keeps the last stream's window,
// so a crafted body's back-references would read another request's data
// (FuzzDecompress found it; it checks each decode against a new decoder).
var (
	gzipReaders sync.Pool // *gzip.Reader
	zlibReaders sync.Pool // zlib's io.ReadCloser, a zlib.Resetter
	// zstdDecoders holds one decoder per limit (sources may set their
	// own), which DecodeAll lets requests share: it refuses an output
	// over the limit and windows that would need more memory.
	zstdDecoders sync.Map // int64 → *zstd.Decoder
)

func gunzip(body []byte, limit int64) ([]byte, error) {
	zr, _ := gzipReaders.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(body))
	} else {
		err = zr.Reset(bytes.NewReader(body))
	}
	if err != nil {
		return nil, err
	}
	defer gzipReaders.Put(zr)
	// The last member's trailer gives its size (mod 2^32): for one
	// member, the whole output's.
	size := int64(binary.LittleEndian.Uint32(body[len(body)-4:]))
	return readUpTo(zr, size, limit)
}

func unzlib(body []byte, limit int64) ([]byte, error) {
	zr, _ := zlibReaders.Get().(io.ReadCloser)
	var err error
	if zr == nil {
		zr, err = zlib.NewReader(bytes.NewReader(body))
	} else {
		err = zr.(zlib.Resetter).Reset(bytes.NewReader(body), nil)
	}
	if err != nil {
		return nil, err
	}
	defer zlibReaders.Put(zr)
	return readUpTo(zr, 4*int64(len(body)), limit)
}

func unzstd(body []byte, limit int64) ([]byte, error) {
	d, ok := zstdDecoders.Load(limit)
	if !ok {
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(uint64(limit)+1))
		if err != nil {
			return nil, err
		}
		d, _ = zstdDecoders.LoadOrStore(limit, dec)
	}
	out, err := d.(*zstd.Decoder).DecodeAll(body, nil)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) { // says it holds more than limit
		return nil, ErrTooLarge
	}
	return out, err
}

// readUpTo reads r to its end into a buffer sized for size bytes, or
// limit+1 bytes at most: reading more than limit means too large.
func readUpTo(r io.Reader, size, limit int64) ([]byte, error) {
	// +1: room to see the end without growing. size comes from the
	// stream and may lie: past 64 MiB the buffer grows as data comes.
	b := make([]byte, 0, min(size, limit, 64<<20)+1)
	lr := io.LimitReader(r, limit+1)
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, int(min(int64(cap(b)), limit+1-int64(len(b))))) // doubling
		}
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF || int64(len(b)) > limit { // too large, whatever follows
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
