package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/caracal-sec/caracal/plugins/envelope"
)

// Email sends alerts over SMTP: smtp://host:port (STARTTLS when the server
// offers it) or smtps://host:port (TLS from the start), PLAIN auth when a
// username is set. Temporary failures (4xx replies, network errors) are
// retried; permanent ones (5xx) are not.
type Email struct {
	Name      string
	URL       string
	From      string
	To        []string
	Username  string
	Password  string
	Filter    Filter
	Retry     Retry
	OnAttempt func(Attempt)
	// TLSConfig overrides the TLS settings (tests).
	TLSConfig *tls.Config
}

// ID implements Destination.
func (e *Email) ID() string { return e.Name }

// Accepts implements Destination.
func (e *Email) Accepts(a *envelope.Alert) bool { return e.Filter.Match(a) }

// Deliver sends the alert as a text/plain message.
func (e *Email) Deliver(ctx context.Context, a *envelope.Alert) error {
	msg := e.message(a)
	return deliverWithRetry(ctx, e.Name, a.AlertID, e.Retry, e.OnAttempt, func(ctx context.Context) (int, time.Duration, error) {
		err := e.send(ctx, msg)
		var te *textproto.Error
		if errors.As(err, &te) {
			if te.Code >= 500 {
				return te.Code, 0, permanent{err}
			}
			return te.Code, 0, err
		}
		if err != nil {
			return 0, 0, err
		}
		return 250, 0, nil
	})
}

func (e *Email) message(a *envelope.Alert) []byte {
	var b bytes.Buffer
	subject := mime.QEncoding.Encode("utf-8", truncate("["+a.Severity+"] "+title(a), 200))
	host := "caracal.local"
	if i := strings.LastIndexByte(e.From, '@'); i >= 0 {
		host = e.From[i+1:]
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\n", e.From, strings.Join(e.To, ", "), subject)
	// The same alert always has the same Message-ID, so a redelivery is
	// recognisable as such by mail systems and people.
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\nDate: %s\r\n", a.AlertID, host, time.Now().UTC().Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n")
	fmt.Fprintf(&b, "X-Caracal-Alert-Id: %s\r\n\r\n", a.AlertID)
	var body strings.Builder
	fmt.Fprintf(&body, "%s\n\n", title(a))
	if a.Description != "" {
		fmt.Fprintf(&body, "%s\n\n", a.Description)
	}
	for _, f := range facts(a) {
		fmt.Fprintf(&body, "%-10s %s\n", f[0]+":", f[1])
	}
	if c := contextText(a); c != "" {
		fmt.Fprintf(&body, "\nContext:\n%s", c)
	}
	if a.Runbook != "" {
		fmt.Fprintf(&body, "\nRunbook: %s\n", a.Runbook)
	}
	// Normalize line endings and dot-stuffing is done by the smtp package.
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(body.String(), "\r\n", "\n"), "\n", "\r\n"))
	return b.Bytes()
}

func (e *Email) send(ctx context.Context, msg []byte) error {
	u, err := url.Parse(e.URL)
	if err != nil {
		return permanent{fmt.Errorf("email url %q: %w", e.URL, err)}
	}
	host := u.Hostname()
	tlsConf := e.TLSConfig
	if tlsConf == nil {
		tlsConf = &tls.Config{ServerName: host}
	}
	d := net.Dialer{Timeout: 30 * time.Second}
	var conn net.Conn
	switch u.Scheme {
	case "smtp":
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	case "smtps":
		conn, err = (&tls.Dialer{NetDialer: &d, Config: tlsConf}).DialContext(ctx, "tcp", u.Host)
	default:
		return permanent{fmt.Errorf("email url %q: use smtp://host:port or smtps://host:port", e.URL)}
	}
	if err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello("caracal"); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok && u.Scheme == "smtp" {
		if err := c.StartTLS(tlsConf); err != nil {
			return err
		}
	}
	if e.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", e.Username, e.Password, host)); err != nil {
			return err
		}
	}
	if err := c.Mail(e.From); err != nil {
		return err
	}
	for _, to := range e.To {
		if err := c.Rcpt(to); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
