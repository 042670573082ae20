package httpsource

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	crand "crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caracal-sec/caracal/plugins/inflate"
	"github.com/caracal-sec/caracal/plugins/inflate/inflatetest"
)

var gz, zl, zs = inflatetest.Gzip, inflatetest.Zlib, inflatetest.Zstd

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []string
		err        bool
	}{
		{"one object", `{"a":1}`, []string{`{"a":1}`}, false},
		{"json lines", "{\"a\":1}\n{\"a\":2}\n\n{\"a\":3}\r\n", []string{`{"a":1}`, `{"a":2}`, `{"a":3}`}, false},
		{"array", `[{"a":1}, {"a":2}]`, []string{`{"a":1}`, `{"a":2}`}, false},
		{"records wrapper", `{"Records":[{"a":1},{"a":2}]}`, []string{`{"a":1}`, `{"a":2}`}, false},
		{"object with other keys is one event", `{"Records":[{"a":1}],"b":2}`, []string{`{"Records":[{"a":1}],"b":2}`}, false},
		{"plain lines", "line one\nline two\n", []string{"line one", "line two"}, false},
		{"object then junk is lines", "{\"a\":1}\nnot json", []string{`{"a":1}`, "not json"}, false},
		{"xml document", `<?xml version="1.0"?><Event><A x="1">v</A></Event>`, []string{`<Event><A x="1">v</A></Event>`}, false},
		{"xml stream", "<E><a/></E>\n<E><b>t</b></E>", []string{"<E><a/></E>", "<E><b>t</b></E>"}, false},
		// Bodies that open like JSON or XML but are not: lines, each one
		// an event (a classification failure when no type reads it).
		{"malformed xml is lines", "<E><a></E>\n<E/>", []string{"<E><a></E>", "<E/>"}, false},
		{"unclosed array is lines", `[{"a":1}`, []string{`[{"a":1}`}, false},
		{"syslog", "<34>1 2003-10-11T22:14:15.003Z host su - ID47 - msg\n<13>Oct 11 22:14:15 host app: hi", []string{"<34>1 2003-10-11T22:14:15.003Z host su - ID47 - msg", "<13>Oct 11 22:14:15 host app: hi"}, false},
		{"bracketed lines", "[Wed Oct 11 14:32:52 2000] [error] x\n[INFO] y", []string{"[Wed Oct 11 14:32:52 2000] [error] x", "[INFO] y"}, false},
		{"xml with text between elements is lines", "<a>x1</a> stray\n<b>x2</b>", []string{"<a>x1</a> stray", "<b>x2</b>"}, false},
		{"byte order mark", "\ufeff{\n \"a\": 1\n}", []string{"{\n \"a\": 1\n}"}, false},
		{"byte order mark before an array", "\ufeff[{\"a\":1},{\"a\":2}]", []string{`{"a":1}`, `{"a":2}`}, false},
		{"empty", "  \n", nil, true},
		{"byte order mark alone", "\ufeff\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Split([]byte(tc.body))
			if tc.err {
				if err == nil {
					t.Fatalf("want error, got %q", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var gs []string
			for _, g := range got {
				gs = append(gs, string(g))
			}
			if fmt.Sprint(gs) != fmt.Sprint(tc.want) {
				t.Fatalf("got %q, want %q", gs, tc.want)
			}
		})
	}
}

func hmacHex(h func() hash.Hash, secret, body string) string {
	m := hmac.New(h, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func hmacB64(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func TestAuthenticate(t *testing.T) {
	body := `{"a":1}`
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	cases := []struct {
		name   string
		auth   Auth
		header map[string]string
		ok     bool
	}{
		{"none", Auth{Type: AuthNone}, nil, true},
		{"shared secret ok", Auth{Type: AuthSharedSecret, Header: "X-Key", Secret: "s3cret"}, map[string]string{"X-Key": "s3cret"}, true},
		{"shared secret wrong", Auth{Type: AuthSharedSecret, Header: "X-Key", Secret: "s3cret"}, map[string]string{"X-Key": "s3cre"}, false},
		{"shared secret missing", Auth{Type: AuthSharedSecret, Header: "X-Key", Secret: "s3cret"}, nil, false},
		{"bearer ok", Auth{Type: AuthBearer, Token: "tok"}, map[string]string{"Authorization": "Bearer tok"}, true},
		{"bearer wrong", Auth{Type: AuthBearer, Token: "tok"}, map[string]string{"Authorization": "Bearer tik"}, false},
		{"bearer wrong scheme", Auth{Type: AuthBearer, Token: "tok"}, map[string]string{"Authorization": "Basic tok"}, false},
		{"bearer scheme in any case", Auth{Type: AuthBearer, Token: "tok"}, map[string]string{"Authorization": "bearer tok"}, true},
		{"bearer without token", Auth{Type: AuthBearer, Token: "tok"}, map[string]string{"Authorization": "Bearer"}, false},
		{"basic ok", Auth{Type: AuthBasic, Username: "u", Password: "p"}, map[string]string{"Authorization": basic("u", "p")}, true},
		{"basic wrong password", Auth{Type: AuthBasic, Username: "u", Password: "p"}, map[string]string{"Authorization": basic("u", "x")}, false},
		{"basic wrong user", Auth{Type: AuthBasic, Username: "u", Password: "p"}, map[string]string{"Authorization": basic("x", "p")}, false},
		{"hmac hex", Auth{Type: AuthHMAC, Header: "X-Sig", Secret: "k"}, map[string]string{"X-Sig": hmacHex(sha256.New, "k", body)}, true},
		{"hmac prefixed", Auth{Type: AuthHMAC, Header: "X-Sig", Secret: "k"}, map[string]string{"X-Sig": "sha256=" + hmacHex(sha256.New, "k", body)}, true},
		{"hmac base64", Auth{Type: AuthHMAC, Header: "X-Sig", Secret: "k"}, map[string]string{"X-Sig": hmacB64("k", body)}, true},
		{"hmac sha1", Auth{Type: AuthHMAC, Header: "X-Sig", Secret: "k", Algorithm: "sha1"}, map[string]string{"X-Sig": "sha1=" + hmacHex(sha1.New, "k", body)}, true},
		{"hmac wrong algorithm", Auth{Type: AuthHMAC, Header: "X-Sig", Secret: "k"}, map[string]string{"X-Sig": hmacHex(sha1.New, "k", body)}, false},
		{"hmac wrong key", Auth{Type: AuthHMAC, Header: "X-Sig", Secret: "k"}, map[string]string{"X-Sig": hmacHex(sha256.New, "other", body)}, false},
		{"hmac truncated", Auth{Type: AuthHMAC, Header: "X-Sig", Secret: "k"}, map[string]string{"X-Sig": hmacHex(sha256.New, "k", body)[:40]}, false},
		{"hmac missing", Auth{Type: AuthHMAC, Header: "X-Sig", Secret: "k"}, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Source{ID: "s", Path: "s", Auth: tc.auth}
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("POST", "/http/s", strings.NewReader(body))
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			if got := s.Authenticate(r, []byte(body)); got != tc.ok {
				t.Fatalf("Authenticate = %v, want %v", got, tc.ok)
			}
		})
	}
}

// server starts a Server whose requests are acknowledged with ackErr.
func server(t *testing.T, ackErr error, sources ...*Source) (*Server, chan *Request) {
	t.Helper()
	for _, s := range sources {
		if s.MaxBodyBytes == 0 {
			s.MaxBodyBytes = 1 << 20
		}
		if s.MaxInflated == 0 {
			s.MaxInflated = 16 * s.MaxBodyBytes
		}
	}
	srv, err := NewServer(sources, 2*time.Second, func() Status { return Status{Version: "test"} })
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	got := make(chan *Request, 100)
	go func() {
		for r := range srv.Requests() {
			got <- r
			r.Ack(ackErr)
		}
	}()
	t.Cleanup(func() { srv.Close(t.Context()) })
	return srv, got
}

func do(t *testing.T, method, url string, body []byte, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// An event larger than max_event_bytes is refused with the request (413),
// however well it compressed: downstream records could not carry it.
func TestEventLargerThanTheLimitIs413(t *testing.T) {
	src := &Source{ID: "big", Path: "big", Auth: Auth{Type: AuthNone}, MaxBodyBytes: 4096, MaxInflated: 1 << 20, MaxEventBytes: 100}
	srv, got := server(t, nil, src)
	url := "http://" + srv.Addr() + "/http/big"
	small, large := `{"a":1}`, `{"a":"`+strings.Repeat("x", 100)+`"}`
	code, body, _ := do(t, "POST", url, gz([]byte(small+"\n"+large)), nil)
	if code != 413 || !strings.Contains(body, "event 2 is 108 bytes") {
		t.Fatalf("a request with a 108-byte event = %d %s, want 413 naming it", code, body)
	}
	if code, body, _ = do(t, "POST", url, []byte(small+"\n"+small), nil); code != 200 {
		t.Fatalf("small events = %d %s", code, body)
	}
	if r := <-got; len(r.Events) != 2 {
		t.Fatalf("events passed on: %d, want only the accepted request's 2", len(r.Events))
	}
	if err := (&Source{ID: "x", Path: "x", Auth: Auth{Type: AuthNone}, MaxEventBytes: MaxEventBytes + 1}).Validate(); err == nil {
		t.Fatal("max_event_bytes above 1 MiB must be refused")
	}
}

func TestHandlerAnswers(t *testing.T) {
	src := &Source{ID: "okta", Label: "Okta", Path: "okta", Auth: Auth{Type: AuthBearer, Token: "t0k3n"}, MaxBodyBytes: 4096}
	srv, got := server(t, nil, src)
	base := "http://" + srv.Addr()
	auth := map[string]string{"Authorization": "Bearer t0k3n"}

	code, body, hdr := do(t, "POST", base+"/http/okta", []byte("{\"a\":1}\n{\"a\":2}"), auth)
	if code != 200 || !strings.Contains(body, `"events":2`) || hdr.Get("X-Request-Id") == "" {
		t.Fatalf("good POST = %d %s", code, body)
	}
	if r := <-got; len(r.Events) != 2 || r.Source.ID != "okta" {
		t.Fatalf("request = %+v", r)
	}
	code, _, _ = do(t, "POST", base+"/http/okta", gz([]byte(`[{"a":1},{"a":2},{"a":3}]`)), auth)
	if code != 200 {
		t.Fatalf("gzip POST = %d", code)
	}
	if r := <-got; len(r.Events) != 3 {
		t.Fatalf("gzip events = %d", len(r.Events))
	}

	// Raw deflate has no magic bytes: its Content-Encoding says what it is.
	raw := inflatetest.Deflate([]byte(`{"a":1}` + "\n" + `{"a":2}`))
	code, body, _ = do(t, "POST", base+"/http/okta", raw, map[string]string{"Authorization": "Bearer t0k3n", "Content-Encoding": "deflate"})
	if code != 200 {
		t.Fatalf("raw deflate POST = %d %s", code, body)
	}
	if r := <-got; len(r.Events) != 2 || string(r.Events[1]) != `{"a":2}` {
		t.Fatalf("raw deflate events = %q", r.Events)
	}

	for _, tc := range []struct {
		name, method, path string
		body               []byte
		hdr                map[string]string
		want               int
	}{
		{"brotli", "POST", "/http/okta", []byte{0x8b, 0x05, 0x80, 0xff, 0xfe}, map[string]string{"Authorization": "Bearer t0k3n", "Content-Encoding": "br"}, 415},
		{"wrong token", "POST", "/http/okta", []byte(`{}`), map[string]string{"Authorization": "Bearer nope"}, 401},
		{"no auth", "POST", "/http/okta", []byte(`{}`), nil, 401},
		{"unknown source", "POST", "/http/nope", []byte(`{}`), auth, 404},
		{"GET a source", "GET", "/http/okta", nil, auth, 405},
		{"too large", "POST", "/http/okta", bytes.Repeat([]byte("x"), 5000), auth, 413},
		{"bomb", "POST", "/http/okta", gz(make([]byte, 1<<20)), auth, 413},
		{"corrupt gzip", "POST", "/http/okta", append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte{1}, 30)...), auth, 400},
		{"zip", "POST", "/http/okta", []byte("PK\x03\x04data"), auth, 415},
		{"empty", "POST", "/http/okta", nil, auth, 400},
		{"status page", "GET", "/", nil, nil, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := do(t, tc.method, base+tc.path, tc.body, tc.hdr)
			if code != tc.want {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, code, body, tc.want)
			}
			if code >= 400 && (!strings.Contains(body, `"error"`) || !strings.Contains(body, `"source"`)) {
				t.Fatalf("error body is not JSON with an error and a source: %s", body)
			}
			if strings.Contains(body, "t0k3n") {
				t.Fatalf("secret echoed in %s", body)
			}
		})
	}

	// A 401 names the scheme to use (RFC 7235); a 404 names the source asked for.
	if code, _, hdr := do(t, "POST", base+"/http/okta", []byte(`{}`), nil); code != 401 || hdr.Get("WWW-Authenticate") != `Bearer realm="caracal"` {
		t.Errorf("401: %d, WWW-Authenticate %q", code, hdr.Get("WWW-Authenticate"))
	}
	if code, body, _ := do(t, "POST", base+"/http/nope", []byte(`{}`), auth); code != 404 || !strings.Contains(body, `"source":"nope"`) {
		t.Errorf("404: %d %s", code, body)
	}

	// A body of unknown length (sent chunked: no Content-Length for a
	// reader of unknown size) is read up to the limit too.
	chunked := func(body []byte) int {
		req, err := http.NewRequest("POST", base+"/http/okta", io.MultiReader(bytes.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer t0k3n")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := chunked([]byte("{\"a\":1}\n{\"a\":2}")); code != 200 {
		t.Fatalf("chunked POST = %d", code)
	}
	if r := <-got; len(r.Events) != 2 {
		t.Fatalf("chunked events = %d", len(r.Events))
	}
	if code := chunked(bytes.Repeat([]byte("x"), 5000)); code != 413 {
		t.Fatalf("chunked POST over the limit = %d, want 413", code)
	}
}

func TestBrokerRefusalIs503(t *testing.T) {
	srv, _ := server(t, errors.New("broker down"), &Source{ID: "d", Path: "d", Auth: Auth{Type: AuthNone}})
	code, body, hdr := do(t, "POST", "http://"+srv.Addr()+"/http/d", []byte(`{"a":1}`), nil)
	if code != 503 || hdr.Get("Retry-After") == "" {
		t.Fatalf("nacked request = %d %s (Retry-After %q), want 503 with Retry-After", code, body, hdr.Get("Retry-After"))
	}
}

func FuzzSplit(f *testing.F) {
	for _, s := range []string{`{"a":1}`, "{\"a\":1}\n{\"b\":2}", `[{"a":1}]`, `{"Records":[{"a":1}]}`, "x\ny", "", "[", `{"Records":`, "<a>x</a>\r\n<b/>", "<?xml version=\"1.0\"?><a b=\"1\"><c/></a>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		events, err := Split(b)
		if err == nil && len(events) == 0 {
			t.Fatalf("no error and no events for %q", b)
		}
		if err != nil {
			return
		}
		// A bound at the count splits the same; one below refuses.
		if same, err := SplitAtMost(b, len(events)); err != nil || !reflect.DeepEqual(same, events) {
			t.Fatalf("SplitAtMost(%d) = %q, %v; Split = %q", len(events), same, err, events)
		}
		if _, err := SplitAtMost(b, len(events)-1); !errors.Is(err, ErrTooManyEvents) {
			t.Fatalf("SplitAtMost(%d) of %d events: %v, want ErrTooManyEvents", len(events)-1, len(events), err)
		}
		// A byte bound that every event fits splits the same.
		longest := 0
		for _, ev := range events {
			longest = max(longest, len(ev))
		}
		// (But for text lines opening like XML, whose first "element"
		// may run past the bound before the decoder finds it is not one.)
		same, err := SplitLimited(b, len(events), longest)
		if errors.Is(err, ErrEventTooLarge) {
			sp := splitter{max: math.MaxInt}
			if _, xmlErr := sp.xml(bytes.TrimSpace(bytes.TrimPrefix(b, utf8BOM))); xmlErr != nil {
				return
			}
		}
		if err != nil || !reflect.DeepEqual(same, events) {
			t.Fatalf("SplitLimited(%d, %d) = %q, %v; Split = %q", len(events), longest, same, err, events)
		}
	})
}

// objectEnd skips strings with IndexByte; it ends every object where a
// byte-by-byte scan (the escape skipping the byte after a backslash) does.
func FuzzObjectEnd(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":"}"}`, `{"a":"\"}"}`, `{"a":"\\"}x`, `{"a":"\\\"}"}`,
		`{"a":"x\\\\"}`, `{"a":["{",{"b":"]"}]}`, `{"a":"\`, `{"a":"`, `{}}`, `{"a\"":"b"}`, `{"a":"\n\t\u0022"}`} {
		f.Add([]byte(s))
	}
	bytewise := func(b []byte) int {
		depth, inString := 0, false
		for i := 0; i < len(b); i++ {
			c := b[i]
			if inString {
				switch c {
				case '\\':
					i++
				case '"':
					inString = false
				}
				continue
			}
			switch c {
			case '"':
				inString = true
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
				if depth < 0 {
					return -1
				}
			}
		}
		return -1
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] != '{' {
			return
		}
		if got, want := objectEnd(b, 0), bytewise(b); got != want {
			t.Fatalf("objectEnd(%q) = %d, byte by byte %d", b, got, want)
		}
	})
}

func BenchmarkAuthDecompressSplit(b *testing.B) {
	var lines bytes.Buffer
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&lines, `{"eventVersion":"1.08","eventTime":"2026-11-23T21:04:05Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"eu-west-1","sourceIPAddress":"10.0.0.%d","userAgent":"aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.ubuntu.22 prompt/off command/ec2.describe-instances","eventID":"%08d-aaaa-bbbb-cccc-dddddddddddd","readOnly":true,"recipientAccountId":"111122223333","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333","userName":"alice"}}`+"\n", i, i)
	}
	plain := lines.Bytes()
	body := gz(plain)
	src := &Source{ID: "b", Path: "b", Auth: Auth{Type: AuthHMAC, Header: "X-Sig", Secret: "k"}}
	sig := hmacHex(sha256.New, "k", string(body))
	r := httptest.NewRequest("POST", "/http/b", nil)
	r.Header.Set("X-Sig", sig)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !src.Authenticate(r, body) {
			b.Fatal("auth")
		}
		out, _, err := inflate.Decompress(body, 16<<20)
		if err != nil {
			b.Fatal(err)
		}
		if ev, err := Split(out); err != nil || len(ev) != 100 {
			b.Fatal(err, len(ev))
		}
	}
}

func TestRateLimit(t *testing.T) {
	srv, _ := server(t, nil, &Source{ID: "r", Path: "r", Auth: Auth{Type: AuthNone}, EventsPerSecond: 3})
	url := "http://" + srv.Addr() + "/http/r"
	if code, body, _ := do(t, "POST", url, []byte("a\nb\nc"), nil); code != 200 {
		t.Fatalf("within the limit = %d %s", code, body)
	}
	// Three more need the whole bucket back: a second after the first.
	code, _, hdr := do(t, "POST", url, []byte("d\ne\nf"), nil)
	if code != 429 || hdr.Get("Retry-After") == "" {
		t.Fatalf("over the limit = %d (Retry-After %q), want 429", code, hdr.Get("Retry-After"))
	}
}

func TestSilenceAlertAndRecovery(t *testing.T) {
	src := &Source{ID: "quiet", Path: "q", Auth: Auth{Type: AuthNone}, SilentFor: 100 * time.Millisecond}
	srv, got := server(t, nil, src)
	var alert *Request
	select {
	case alert = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no silence alert")
	}
	if alert.System == nil || alert.System.Type != "SYSTEM_ERROR" || !strings.Contains(alert.System.Title, "quiet") {
		t.Fatalf("silence alert %+v", alert.System)
	}
	if code, _, _ := do(t, "POST", "http://"+srv.Addr()+"/http/q", []byte(`{"a":1}`), nil); code != 200 {
		t.Fatal(code)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case r := <-got:
			if r.System != nil && strings.Contains(r.System.Title, "again") {
				return
			}
		case <-deadline:
			t.Fatal("no recovery notice")
		}
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	writeSelfSigned(t, certFile, keyFile)
	cfg, err := NewTLSConfig(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	src := &Source{ID: "s", Path: "s", Auth: Auth{Type: AuthNone}, MaxBodyBytes: 1 << 20, MaxInflated: 1 << 24}
	srv, err := NewServer([]*Source{src}, time.Second, func() Status { return Status{} })
	if err != nil {
		t.Fatal(err)
	}
	srv.SetTLS(cfg)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close(t.Context())
	go func() {
		for r := range srv.Requests() {
			r.Ack(nil)
		}
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Post("https://"+srv.Addr()+"/http/s", "application/json", strings.NewReader(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("HTTPS POST = %d (tls %v)", resp.StatusCode, resp.TLS != nil)
	}
	// Plain HTTP to the TLS listener never gets through.
	if plain, err := http.Post("http://"+srv.Addr()+"/http/s", "application/json", strings.NewReader(`{}`)); err == nil {
		plain.Body.Close()
		if plain.StatusCode == 200 {
			t.Fatal("plain HTTP accepted by the TLS listener")
		}
	}
}

func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

// FuzzHandler drives the whole request path (auth, size, decompression,
// splitting, answers) with arbitrary bodies and headers: every answer must
// be one of the documented statuses, errors must be JSON, and secrets never
// appear in a response.
func FuzzHandler(f *testing.F) {
	f.Add("POST", "/http/h", []byte(`{"a":1}`), "sha256=00")
	f.Add("POST", "/http/n", gz([]byte("a\nb")), "")
	f.Add("POST", "/http/n", []byte("<E/>"), "")
	f.Add("GET", "/", []byte(nil), "")
	f.Add("PUT", "/http/n", []byte("x"), "")
	f.Add("POST", "/http/n", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, 1, 2, 3), "")
	sources := []*Source{
		{ID: "h", Path: "h", Auth: Auth{Type: AuthHMAC, Header: "X-Sig", Secret: "fuzz-secret-value"}, MaxBodyBytes: 64 << 10, MaxInflated: 1 << 20},
		{ID: "n", Path: "n", Auth: Auth{Type: AuthNone}, MaxBodyBytes: 64 << 10, MaxInflated: 1 << 20},
	}
	srv, err := NewServer(sources, time.Second, func() Status { return Status{Version: "fuzz"} })
	if err != nil {
		f.Fatal(err)
	}
	go func() {
		for r := range srv.Requests() {
			r.Ack(nil)
		}
	}()
	allowed := map[int]bool{200: true, 400: true, 401: true, 404: true, 405: true, 413: true, 415: true, 429: true, 503: true}
	f.Fuzz(func(t *testing.T, method, path string, body []byte, sig string) {
		if len(method) == 0 || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			return
		}
		req, err := http.NewRequest(method, "http://caracal"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("X-Sig", sig)
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Fatalf("status %d for %s %q", rec.Code, method, path)
		}
		out := rec.Body.String()
		if rec.Code >= 400 && !strings.Contains(out, `"error"`) {
			t.Fatalf("error answer is not JSON: %q", out)
		}
		if strings.Contains(out, "fuzz-secret-value") {
			t.Fatal("secret in the response")
		}
	})
}

func TestSplitHeader(t *testing.T) {
	vpc := "version srcaddr dstaddr action log-status\n5 10.0.0.1 10.0.0.2 ACCEPT OK\n5 10.0.0.3 10.0.0.4 REJECT OK\n"
	events, err := Split([]byte(vpc))
	if err != nil {
		t.Fatal(err)
	}
	header, rest := SplitHeader(events)
	if string(header) != "version srcaddr dstaddr action log-status" || len(rest) != 2 || string(rest[0]) != "5 10.0.0.1 10.0.0.2 ACCEPT OK" {
		t.Fatalf("header %q, events %q", header, rest)
	}
	for _, body := range []string{
		"2 123456789010 eni-1 1.2.3.4 5.6.7.8 1 2 6 1 1 1 1 ACCEPT OK\n2 123456789010 eni-1 1.2.3.4 5.6.7.8 1 2 6 1 1 1 1 ACCEPT OK", // records only
		"version srcaddr",     // a header alone stays an event
		"{\"version\":1}\n{}", // JSON is never a header
	} {
		events, _ := Split([]byte(body))
		if h, rest := SplitHeader(events); h != nil || len(rest) != len(events) {
			t.Errorf("%q: header %q taken", body, h)
		}
	}
	// A '#' line may be a comment: it is the header and stays an event,
	// so it is not lost when no schema reads it as one.
	events, _ = Split([]byte("#Version: 1.0\n#Fields: date time\n2026-11-20 10:00:00"))
	if h, rest := SplitHeader(events); string(h) != "#Version: 1.0" || len(rest) != 3 || string(rest[0]) != "#Version: 1.0" {
		t.Errorf("W3C directive: header %q, rest %q", h, rest)
	}
}

func TestSplitScanner(t *testing.T) {
	for body, want := range map[string][]string{
		`{"a":"}{\"x"}` + "\n" + `{"b":[1,{"c":"]"}]}`: {`{"a":"}{\"x"}`, `{"b":[1,{"c":"]"}]}`},
		`[ {"a":1} , {"b":"]"} ]`:                      {`{"a":1}`, `{"b":"]"}`},
		`[{"a":1}, 2]`:                                 {`{"a":1}`, `2`}, // not all objects: the decoder's path
		`{"a":1`:                                       {`{"a":1`},       // unclosed: a text line
	} {
		got, err := Split([]byte(body))
		if err != nil {
			t.Errorf("%s: %v", body, err)
			continue
		}
		var gs []string
		for _, g := range got {
			gs = append(gs, string(g))
		}
		if strings.Join(gs, "|") != strings.Join(want, "|") {
			t.Errorf("%s: %q, want %q", body, gs, want)
		}
	}
	if got, err := Split([]byte(`[{"a":1}`)); err != nil || len(got) != 1 || string(got[0]) != `[{"a":1}` {
		t.Errorf("unclosed array: %q, %v; want it as one line", got, err)
	}
}

func BenchmarkSplitJSONLines(b *testing.B) {
	line := `{"eventVersion":"1.08","eventTime":"2026-11-23T21:04:05Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"eu-west-1","sourceIPAddress":"10.1.2.3","userAgent":"aws-cli/2.15.0 \"quoted\"","requestParameters":{"instancesSet":{"items":[{"instanceId":"i-0abc"}]}}}`
	body := []byte(strings.Repeat(line+"\n", 100))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if ev, err := Split(body); err != nil || len(ev) != 100 {
			b.Fatal(err, len(ev))
		}
	}
}

// A taken address says what to do about it.
func TestListenOnATakenAddress(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	srv, err := NewServer([]*Source{{ID: "s", Path: "s", Auth: Auth{Type: AuthNone}, MaxBodyBytes: 1 << 20, MaxInflated: 16 << 20}}, time.Second, func() Status { return Status{} })
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Listen(taken.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "another process listens there") || !strings.Contains(err.Error(), "CARACAL_HTTP_ADDRESS") {
		t.Fatalf("listen on a taken address: %v", err)
	}
}

// BenchmarkSplitJSONArray splits a JSON array of 100 CloudTrail-like
// events, the way `make bench` posts them.
func BenchmarkSplitJSONArray(b *testing.B) {
	event := `{"eventVersion":"1.08","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:ci","arn":"arn:aws:sts::111122223333:assumed-role/ci/x","accountId":"111122223333"},"eventTime":"2026-11-23T21:04:05Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"eu-west-1","sourceIPAddress":"10.1.2.3","userAgent":"aws-cli/2.15.0 \"quoted\"","requestParameters":{"instancesSet":{"items":[{"instanceId":"i-0abc"}]},"filterSet":{}},"responseElements":null,"requestID":"0f8fad5b-d9cb-469f-a165-70867728950e","eventID":"7c9e6679-7425-40de-944b-e07fc1f90ae7","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111122223333"}`
	body := []byte("[" + strings.TrimSuffix(strings.Repeat(event+",", 100), ",") + "]")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if ev, err := Split(body); err != nil || len(ev) != 100 {
			b.Fatal(err, len(ev))
		}
	}
}

// A body past the event limit is refused without the list of its events:
// deciding that it reads to its end as the array it opened as (and is not
// text lines) keeps none of them. Decoding each of 2M values took
// allocations by the million and seconds.
func TestTooManyEventsKeepsNoList(t *testing.T) {
	for name, body := range map[string][]byte{
		"numbers": []byte("[" + strings.Repeat("1,", 2_000_000) + "1]"),
		"objects": []byte("[" + strings.Repeat("{},", 2_000_000) + "{}]"),
	} {
		var err error
		allocs := testing.AllocsPerRun(1, func() { _, err = SplitAtMost(body, 1000) })
		if !errors.Is(err, ErrTooManyEvents) || allocs > 10*1000 { // the first 1,000 values read, not 2M
			t.Errorf("%s: %v with %.0f allocations, want ErrTooManyEvents with few", name, err, allocs)
		}
	}
}

// GET / shows each source as a sender's operator needs it: what it takes,
// what it accepted, and its last refusal with the reason (never a secret).
func TestStatusPageShowsEachSource(t *testing.T) {
	okta := &Source{ID: "okta", Label: "Okta", Path: "okta", LogTypes: []string{"Okta.SystemLog"}, Auth: Auth{Type: AuthBearer, Token: "t0k3n-s3cret"}}
	demo := &Source{ID: "demo", Path: "/demo/", Auth: Auth{Type: AuthNone}}
	srv, _ := server(t, nil, okta, demo)
	base := "http://" + srv.Addr()
	status := func() (st struct {
		Version string         `json:"version"`
		Sources []SourceStatus `json:"sources"`
	}, raw string) {
		t.Helper()
		code, body, _ := do(t, "GET", base+"/", nil, nil)
		if code != 200 {
			t.Fatalf("GET / = %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("GET / = %s: %v", body, err)
		}
		return st, body
	}
	st, _ := status()
	want := []SourceStatus{
		{ID: "demo", Path: "/http/demo", Auth: "none"},
		{ID: "okta", Label: "Okta", Path: "/http/okta", LogTypes: []string{"Okta.SystemLog"}, Auth: "bearer"},
	}
	if st.Version != "test" || !reflect.DeepEqual(st.Sources, want) {
		t.Fatalf("status before any request: %+v, want %+v", st, want)
	}
	if code, body, _ := do(t, "POST", base+"/http/okta", []byte(`{"a":1}`+"\n"+`{"a":2}`), map[string]string{"Authorization": "Bearer t0k3n-s3cret"}); code != 200 {
		t.Fatalf("POST = %d %s", code, body)
	}
	if code, _, _ := do(t, "POST", base+"/http/okta", []byte(`{"a":3}`), map[string]string{"Authorization": "Bearer wrong"}); code != 401 {
		t.Fatalf("wrong token = %d", code)
	}
	st, raw := status()
	o := st.Sources[1]
	if o.Requests != 1 || o.Events != 2 || o.LastAccepted == "" || o.Refused != 1 || o.LastRefused == nil ||
		o.LastRefused.Status != 401 || !strings.Contains(o.LastRefused.Error, "authentication failed") || o.LastRefused.At == "" {
		t.Errorf("okta after one accepted and one refused request: %+v (last refused %+v)", o, o.LastRefused)
	}
	if d := st.Sources[0]; d.Requests != 0 || d.Refused != 0 || d.LastAccepted != "" || d.LastRefused != nil {
		t.Errorf("demo took nothing: %+v", d)
	}
	if strings.Contains(raw, "s3cret") || strings.Contains(raw, "wrong") {
		t.Errorf("the status page shows a token: %s", raw)
	}
}

// The status page lists every source's path, and a path is all that
// guards a source with auth none: an unauthenticated client elsewhere
// must not learn it (nor the auth types, brokers or /readyz's reason).
func TestStatusPageDetailOnlyForLoopback(t *testing.T) {
	demo := &Source{ID: "demo", Path: "hidden-7f3a9c", Auth: Auth{Type: AuthNone}, MaxBodyBytes: 1 << 20, MaxInflated: 1 << 20}
	srv, err := NewServer([]*Source{demo}, time.Second, func() Status { return Status{Version: "test", Broker: "kafka-1.internal:9092"} })
	if err != nil {
		t.Fatal(err)
	}
	srv.SetReadiness(func(context.Context) error { return errors.New("broker [kafka-1.internal:9092] unreachable") })
	get := func(path, remote string, hdr map[string]string) (int, string) {
		r := httptest.NewRequest("GET", path, nil)
		r.RemoteAddr = remote
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	leaks := func(body string) bool {
		return strings.Contains(body, "hidden-7f3a9c") || strings.Contains(body, "kafka-1") || strings.Contains(body, `"none"`)
	}
	for _, tc := range []struct {
		name, remote string
		hdr          map[string]string
	}{
		{"remote", "203.0.113.9:5000", nil},
		{"remote IPv6", "[2001:db8::1]:5000", nil},
		{"through a proxy on this host", "127.0.0.1:5000", map[string]string{"X-Forwarded-For": "203.0.113.9"}},
		{"through a proxy (Forwarded)", "[::1]:5000", map[string]string{"Forwarded": "for=203.0.113.9"}},
	} {
		if code, body := get("/", tc.remote, tc.hdr); code != 200 || leaks(body) || !strings.Contains(body, `"ok"`) {
			t.Errorf("%s: GET / = %d %s, want 200 without the detail", tc.name, code, body)
		}
		if code, body := get("/readyz", tc.remote, tc.hdr); code != 503 || leaks(body) {
			t.Errorf("%s: GET /readyz = %d %s, want 503 without the reason", tc.name, code, body)
		}
	}
	for _, remote := range []string{"127.0.0.1:5000", "[::1]:5000"} {
		if code, body := get("/", remote, nil); code != 200 || !strings.Contains(body, "/http/hidden-7f3a9c") {
			t.Errorf("loopback %s: GET / = %d %s, want the detail", remote, code, body)
		}
		if code, body := get("/readyz", remote, nil); code != 503 || !strings.Contains(body, "unreachable") {
			t.Errorf("loopback %s: GET /readyz = %d %s, want the reason", remote, code, body)
		}
	}
	srv.SetStatusDetails(StatusDetailsAll)
	if code, body := get("/", "203.0.113.9:5000", nil); code != 200 || !strings.Contains(body, "/http/hidden-7f3a9c") {
		t.Errorf("status_details all: GET / = %d %s, want the detail", code, body)
	}
	srv.SetStatusDetails(StatusDetailsNone)
	if code, body := get("/", "127.0.0.1:5000", nil); code != 200 || leaks(body) {
		t.Errorf("status_details none: GET / = %d %s, want no detail", code, body)
	}
}

// Go's XML decoder reads a few MB a second: 16 KB of gzip holding one
// start tag of millions of attributes cost 4 s of CPU, and 4 million
// empty elements 3.4 s, for a request refused in the end. The splitter
// stops at the first element too large to be an event, and at the first
// element past the most events a request may hold.
func TestXMLSplitStopsEarly(t *testing.T) {
	// The tails are not XML: reading them would have made these lines.
	bad := []byte("</a>\n\x00 not xml")
	huge := append(append([]byte("<a"), bytes.Repeat([]byte(` b=""`), 40000)...), ">"...)
	if _, err := SplitLimited(append(huge, bad...), 100, 1000); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("a start tag past max_event_bytes: %v, want ErrEventTooLarge", err)
	}
	deep := append(bytes.Repeat([]byte("<a>"), 40000), bad...)
	if _, err := SplitLimited(deep, 100, 1000); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("an element past max_event_bytes: %v, want ErrEventTooLarge", err)
	}
	many := append(bytes.Repeat([]byte("<a/>"), 1000), bad...)
	if _, err := SplitLimited(many, 100, 1000); !errors.Is(err, ErrTooManyEvents) {
		t.Errorf("1000 elements, at most 100 events: %v, want ErrTooManyEvents", err)
	}
	// Elements of exactly the limit, with space between, are events.
	el := "<e>" + strings.Repeat("x", 993) + "</e>"
	body := "<?xml version=\"1.0\"?>\r\n" + el + "\r\n\r\n  " + el + "\r\n"
	if ev, err := SplitLimited([]byte(body), 100, 1000); err != nil || len(ev) != 2 || len(ev[0]) != 1000 {
		t.Errorf("two 1000-byte elements, limit 1000: %d events, %v", len(ev), err)
	}
	src := &Source{ID: "x", Path: "x", Auth: Auth{Type: AuthNone}, MaxBodyBytes: 1 << 20, MaxInflated: 16 << 20}
	srv, _ := server(t, nil, src)
	big := append(append([]byte("<a"), bytes.Repeat([]byte(` b=""`), 3<<20/5)...), "></a>"...)
	if code, body, _ := do(t, "POST", "http://"+srv.Addr()+"/http/x", gz(big), nil); code != 413 || !strings.Contains(body, "XML element") {
		t.Errorf("POST of a 3 MiB start tag = %d %s, want 413", code, body)
	}
}

// Text lines that open like a tag ("<INFO> ...") are lines however long
// the body: their first "element" never closes, so it is no element too
// large to be an event. A start tag that does not close, too long to be
// an event, is a line too long to be one.
func TestXMLBoundLeavesTagLikeLinesLines(t *testing.T) {
	var b bytes.Buffer
	for i := 0; b.Len() < 50000; i++ {
		fmt.Fprintf(&b, "<INFO> request %d served in 12 ms\n", i)
	}
	want, err := SplitAtMost(b.Bytes(), 1<<20)
	if err != nil || len(want) < 1000 {
		t.Fatalf("SplitAtMost: %d events, %v", len(want), err)
	}
	if got, err := SplitLimited(b.Bytes(), 1<<20, 1000); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("SplitLimited of %d tag-like lines: %d events, %v; want them as lines", len(want), len(got), err)
	}
	unclosed := append(append([]byte("<a"), bytes.Repeat([]byte(` b=""`), 40000)...), "/>\n"...)
	if got, err := SplitLimited(unclosed, 100, 1000); err != nil || len(got) != 1 || len(got[0]) <= 1000 {
		t.Errorf("an unclosed 200 KB start tag: %d events, %v; want one line, which the size check refuses", len(got), err)
	}
}
