// Package redact keeps secrets that live in URLs out of logs, lake rows
// and alerts: a Slack, Teams or Discord webhook's path is its secret, and
// threat-intelligence feeds take their API key in the query.
package redact

import (
	"errors"
	"fmt"
	"net/url"
)

// URL is u with only its scheme and host: "https://hooks.slack.com/…".
// The host is what tells where a failure happened.
func URL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(URL withheld)"
	}
	shown := p.Scheme + "://" + p.Host
	if p.Path != "" && p.Path != "/" || p.RawQuery != "" || p.Fragment != "" {
		shown += "/…"
	}
	return shown
}

// Error rewrites a request error (*url.Error, as net/http returns) to name
// the URL as URL does; other errors are returned as they are.
func Error(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("%s %s: %w", ue.Op, URL(ue.URL), ue.Err)
}
