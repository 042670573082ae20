package envelope

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/valyala/fastjson"
)

// stringRun finds the first quote, backslash or control byte (plainRun
// with ascii, also the first byte ≥ 0x80) at every offset of its
// eight-byte steps, past bytes of every other value.
func TestStringRun(t *testing.T) {
	naive := func(b []byte) int {
		for i, c := range b {
			if c < 0x20 || c == '"' || c == '\\' {
				return i
			}
		}
		return len(b)
	}
	r := rand.New(rand.NewPCG(1, 2))
	specials := []byte{'"', '\\', 0, 0x1f, '\n'}
	for range 20000 {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(0x20 + r.IntN(0xe0)) // anything but a control byte
			if b[i] == '"' || b[i] == '\\' {
				b[i] = 0xff
			}
		}
		for range r.IntN(3) {
			if len(b) > 0 {
				b[r.IntN(len(b))] = specials[r.IntN(len(specials))]
			}
		}
		if got, want := stringRun(b), naive(b); got != want {
			t.Fatalf("stringRun(%q) = %d, want %d", b, got, want)
		}
		want := naive(b) // and, for ASCII only, the first byte ≥ 0x80
		for i, c := range b[:want] {
			if c >= 0x80 {
				want = i
				break
			}
		}
		if got := plainRun(b, true); got != want {
			t.Fatalf("plainRun(%q, ascii) = %d, want %d", b, got, want)
		}
	}
}

// A strict Scanner reads to the end without error exactly what
// fastjson.Validate accepts, which the parse stage relies on when it
// types outside input from the Scanner alone.
func FuzzStrictScanner(f *testing.F) {
	for _, s := range []string{
		string(benchEvent), ` {"a" : [ 1 , -2.5e+3 ] , "b":{}} `, `"\/\b\f\n\r\t\u00e9\uD800"`,
		`"\u00zz"`, "\"a\x01\"", "{\"k\x7f\":1}", `01`, `-`, `1.`, `1e`, `1e+`, `-0.0E-0`, `.5`,
		`[1,]`, `{"a":1,}`, `{,}`, `truex`, `nul`, `1 2`, `"\x"`, `"\`, `{"a"1}`, `[`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := NewStrictScanner(b)
		_, err := s.Skip(0)
		if errors.Is(err, ErrTooDeep) {
			return // fastjson.Validate does not bound nesting
		}
		read := err == nil && s.AtEnd()
		verr := fastjson.ValidateBytes(b)
		if read && verr != nil {
			t.Fatalf("%q: strict Scanner read it; fastjson.Validate: %v", b, verr)
		}
		if !read && verr == nil && !readsWithoutControls(b) {
			t.Fatalf("%q: strict Scanner refused it (%v); fastjson.Validate accepts it", b, err)
		}
	})
}

// readsWithoutControls: b reads once its control bytes are spaces.
// fastjson.Validate misses a control character in a string before the
// string's last escape; the Scanner refuses it, and the parse stage then
// asks fastjson.
func readsWithoutControls(b []byte) bool {
	spaced := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 {
			c = ' '
		}
		spaced[i] = c
	}
	s := NewStrictScanner(spaced)
	_, err := s.Skip(0)
	return err == nil && s.AtEnd()
}

func TestViewStringAndValue(t *testing.T) {
	for in, want := range map[string]string{`"abc"`: "abc", `"a\"b\u00e9"`: "a\"bé", `""`: ""} {
		got, ok := ViewString([]byte(in))
		if !ok || got != want {
			t.Errorf("ViewString(%s) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{`123`, `null`, `{"a":"b"}`, `"abc`, `"a" "b"`, ``} {
		if got, ok := ViewString([]byte(in)); ok {
			t.Errorf("ViewString(%s) = %q, want not a string", in, got)
		}
	}
	b := []byte(`{"k":["x",1,2.5,null,true]}`)
	v, err := ViewValue(b)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := DecodeObject(b)
	if !reflect.DeepEqual(v, want) {
		t.Errorf("ViewValue = %#v, want %#v", v, want)
	}
	if _, err := ViewValue([]byte(`1 2`)); err == nil {
		t.Error("ViewValue accepted two values")
	}
}

func TestObjectField(t *testing.T) {
	obj := []byte(`{"type":"Root","s":{"a":[1,{"type":"x"}]},"type":"IAMUser","n":null}`)
	for key, want := range map[string]string{"type": `"IAMUser"`, "s": `{"a":[1,{"type":"x"}]}`, "n": "null", "missing": ""} {
		if got := ObjectField(obj, key); string(got) != want {
			t.Errorf("ObjectField(%s) = %s, want %s", key, got, want)
		}
	}
	for _, notObject := range []string{`"type"`, `[{"type":"Root"}]`, `null`, ``, `{"type":`} {
		if got := ObjectField([]byte(notObject), "type"); got != nil {
			t.Errorf("ObjectField(%s) = %s, want nil", notObject, got)
		}
	}
}

// TestSkipStrEndsWhereStrEnds: skipping a string (the closing quote is
// the first after an even run of backslashes) ends where reading it
// (escape by escape) ends, and fails where it fails.
func TestSkipStrEndsWhereStrEnds(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	docs := []string{`""`, `"\\"`, `"\""`, `"\\\""`, `"a\\\\"`, `"\`, `"\"`, `"abc`, `"x\\" "y"`}
	for range 20000 {
		b := []byte{'"'}
		for range rng.IntN(12) {
			b = append(b, `ab\\\"`[rng.IntN(6)])
		}
		docs = append(docs, string(b))
	}
	for _, doc := range docs {
		read := NewScanner([]byte(doc))
		_, _, readErr := read.Str()
		skip := NewScanner([]byte(doc))
		skipped, skipErr := skip.Skip(0)
		if (readErr == nil) != (skipErr == nil) || readErr == nil && (skip.i != read.i || string(skipped) != doc[:read.i]) {
			t.Fatalf("%s: Skip ended at %d (%v), Str at %d (%v)", doc, skip.i, skipErr, read.i, readErr)
		}
	}
}
