package redact

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T0/B0/s3cr3t":  "https://hooks.slack.com/…",
		"https://feed.example.com/ips.csv?apikey=s3cr3t": "https://feed.example.com/…",
		"http://127.0.0.1:8080":                          "http://127.0.0.1:8080",
		"http://127.0.0.1:8080/":                         "http://127.0.0.1:8080",
		"https://user:s3cr3t@example.com":                "https://example.com",
		"not a url s3cr3t":                               "(URL withheld)",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
	err := Error(&url.Error{Op: "Post", URL: "https://hooks.slack.com/services/T0/B0/s3cr3t", Err: errors.New("connection refused")})
	if strings.Contains(err.Error(), "s3cr3t") || err.Error() != "Post https://hooks.slack.com/…: connection refused" {
		t.Errorf("Error = %q", err)
	}
	plain := errors.New("HTTP 500")
	if Error(plain) != plain {
		t.Error("an error without a URL was rewritten")
	}
}
