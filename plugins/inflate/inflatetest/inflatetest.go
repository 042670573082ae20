// Package inflatetest compresses test bodies and files the ways senders
// do, for the tests of what reads them.
package inflatetest

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Gzip is b gzip'd.
func Gzip(b []byte) []byte {
	return through(func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) }, b)
}

// Zlib is b in a zlib stream.
func Zlib(b []byte) []byte {
	return through(func(w io.Writer) io.WriteCloser { return zlib.NewWriter(w) }, b)
}

// Deflate is b as a raw deflate stream (no header: no magic bytes).
func Deflate(b []byte) []byte {
	return through(func(w io.Writer) io.WriteCloser { fw, _ := flate.NewWriter(w, flate.BestSpeed); return fw }, b)
}

// Zstd is b in a zstd frame.
func Zstd(b []byte) []byte {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func through(compressor func(io.Writer) io.WriteCloser, b []byte) []byte {
	var buf bytes.Buffer
	w := compressor(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}
