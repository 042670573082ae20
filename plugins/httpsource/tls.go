package httpsource

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// certReloader serves the certificate in certFile/keyFile and re-reads them
// when either file changes, so a renewed certificate (e.g. from an ACME
// client) is picked up without a restart.
type certReloader struct {
	certFile, keyFile string
	mu                sync.Mutex
	cert              *tls.Certificate
	modCert, modKey   time.Time
	checked           time.Time
}

// NewTLSConfig returns a TLS config that reloads the key pair on change.
func NewTLSConfig(certFile, keyFile string) (*tls.Config, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.get(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.get() },
	}, nil
}

func (r *certReloader) get() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && time.Since(r.checked) < time.Second {
		return r.cert, nil
	}
	r.checked = time.Now()
	ci, err := os.Stat(r.certFile)
	if err != nil {
		return r.fallback(fmt.Errorf("tls cert_file: %w", err))
	}
	ki, err := os.Stat(r.keyFile)
	if err != nil {
		return r.fallback(fmt.Errorf("tls key_file: %w", err))
	}
	if r.cert != nil && ci.ModTime().Equal(r.modCert) && ki.ModTime().Equal(r.modKey) {
		return r.cert, nil
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return r.fallback(fmt.Errorf("tls key pair: %w", err))
	}
	r.cert, r.modCert, r.modKey = &c, ci.ModTime(), ki.ModTime()
	return r.cert, nil
}

// fallback keeps serving the last good certificate when a reload fails
// (e.g. the files are being replaced).
func (r *certReloader) fallback(err error) (*tls.Certificate, error) {
	if r.cert != nil {
		return r.cert, nil
	}
	return nil, err
}
