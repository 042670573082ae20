package enrich

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// rowStore keeps a table's rows in one buffer rather than as a map per
// row (which cost 160 MB for 300k rows of 6 columns, a 22 MB CSV): a row
// is its shape (which columns it has, kept once per distinct set), then
// each column's value preceded by its length (a uvarint whose low bit
// tells a string, kept as its bytes, from anything else a JSON table
// holds, kept as its JSON). A row is decoded to a map, or written as
// JSON, only when a lookup hits it.
type rowStore struct {
	buf    string
	ends   []uint32 // row i is buf[ends[i-1]:ends[i]]
	shapes []shape
}

type shape struct {
	cols    []string
	json    []string // what precedes each value in the row's JSON: `{"a":`, `,"b":`
	jsonLen int      // their length, with the closing brace
}

func (s *rowStore) row(i int) string {
	start := uint32(0)
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.buf[start:s.ends[i]]
}

// uvarint reads a uvarint from the start of r (encoding/binary's, for a
// string).
func uvarint(r string) (v uint64, n int) {
	for shift := 0; n < len(r); shift += 7 {
		c := r[n]
		n++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			break
		}
	}
	return v, n
}

// value reads a value from the start of r: its text, whether that is
// JSON (else a string's bytes), and what follows.
func value(r string) (text string, isJSON bool, rest string) {
	v, n := uvarint(r)
	end := n + int(v>>1)
	return r[n:end], v&1 == 1, r[end:]
}

// decode is row i as a map, as decoding the table's data gave it.
func (s *rowStore) decode(i int) map[string]any {
	r := strings.Clone(s.row(i)) // its strings do not pin the buffer
	sh, n := uvarint(r)
	r = r[n:]
	cols := s.shapes[sh].cols
	m := make(map[string]any, len(cols))
	for _, c := range cols {
		var text string
		var isJSON bool
		text, isJSON, r = value(r)
		if !isJSON {
			m[c] = text
			continue
		}
		var v any
		json.Unmarshal([]byte(text), &v) // written by AppendJSON: valid
		m[c] = v
	}
	return m
}

// appendJSON appends row i as a JSON object.
func (s *rowStore) appendJSON(b []byte, i int) []byte {
	r := s.row(i)
	sh, n := uvarint(r)
	r = r[n:]
	b = slices.Grow(b, len(r)+s.shapes[sh].jsonLen+8) // its size unless strings need escapes
	prefixes := s.shapes[sh].json
	if len(prefixes) == 0 {
		b = append(b, '{')
	}
	for _, p := range prefixes {
		b = append(b, p...)
		var text string
		var isJSON bool
		text, isJSON, r = value(r)
		if isJSON {
			b = append(b, text...)
		} else {
			b = envelope.AppendString(b, text)
		}
	}
	return append(b, '}')
}

// rowBuilder builds a rowStore, a row at a time.
type rowBuilder struct {
	buf    []byte
	ends   []uint32
	shapes []shape
	byCols map[string]int // shape by its columns joined by NUL
	json   []byte         // scratch
}

// shape is the id of the shape of columns cols (in the order the row's
// values will be given).
func (b *rowBuilder) shape(cols []string) int {
	id := strings.Join(cols, "\x00")
	if sh, ok := b.byCols[id]; ok {
		return sh
	}
	if b.byCols == nil {
		b.byCols = map[string]int{}
	}
	sh := shape{cols: slices.Clone(cols)}
	for i, c := range cols {
		sep := byte(',')
		if i == 0 {
			sep = '{'
		}
		sh.json = append(sh.json, string(append(envelope.AppendString([]byte{sep}, c), ':')))
		sh.jsonLen += len(sh.json[i])
	}
	sh.jsonLen += 2
	b.shapes = append(b.shapes, sh)
	b.byCols[id] = len(b.shapes) - 1
	return len(b.shapes) - 1
}

// start begins a row of shape sh.
func (b *rowBuilder) start(sh int) { b.buf = binary.AppendUvarint(b.buf, uint64(sh)) }

// add appends the row's next value and returns where its text is in the
// buffer.
func (b *rowBuilder) add(v any) (from, to int, err error) {
	if s, ok := v.(string); ok {
		from, to = b.addString(s)
		return from, to, nil
	}
	if b.json, err = envelope.AppendJSON(b.json[:0], v); err != nil {
		return 0, 0, err
	}
	b.buf = binary.AppendUvarint(b.buf, uint64(len(b.json))<<1|1)
	from = len(b.buf)
	b.buf = append(b.buf, b.json...)
	return from, len(b.buf), nil
}

// addString is add for a string.
func (b *rowBuilder) addString(s string) (from, to int) {
	b.buf = binary.AppendUvarint(b.buf, uint64(len(s))<<1)
	from = len(b.buf)
	b.buf = append(b.buf, s...)
	return from, len(b.buf)
}

// end ends the row.
func (b *rowBuilder) end() error {
	if len(b.buf) > math.MaxUint32 {
		return errors.New("more than 4 GiB of rows")
	}
	b.ends = append(b.ends, uint32(len(b.buf)))
	return nil
}

// store is the rows added, in a buffer of their size.
func (b *rowBuilder) store() rowStore {
	return rowStore{buf: string(b.buf), ends: slices.Clip(b.ends), shapes: b.shapes}
}

// bytes is the store's memory footprint, roughly.
func (s *rowStore) bytes() int {
	n := len(s.buf) + cap(s.ends)*4
	for _, sh := range s.shapes {
		for i, c := range sh.cols {
			n += 2*len(c) + 40 + len(sh.json[i])
		}
	}
	return n
}
