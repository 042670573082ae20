package main

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/httpsource"
	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// waitingListener answers on the ingest stage's address while `caracal
// run` waits for its broker at start, before the stages (and the HTTP
// input's own listener) exist: /healthz 200, as the process is alive;
// anything else 503 with Retry-After, as the HTTP input answers once
// running when the broker is out of reach. Without it senders and load
// balancers met a closed port for as long as the broker was away.
type waitingListener struct{ srv *http.Server }

// listenWhileWaiting starts a waitingListener at the address (and with
// the TLS certificate) of the ingest pipeline's caracal_http input.
func listenWhileWaiting(pipeline string) (*waitingListener, error) {
	data, err := os.ReadFile(pipeline)
	if err != nil {
		return nil, err
	}
	addr, certFile, keyFile := "127.0.0.1:8000", "", ""
	tlsOn := false
	eachComponent(expandEnv(data, false), "caracal_http", func(conf *yaml.Node) {
		if v := yamlnode.Value(conf, "address"); v != nil {
			addr = v.Value
		}
		t := yamlnode.Value(conf, "tls")
		if v := yamlnode.Value(t, "enabled"); v != nil {
			_ = v.Decode(&tlsOn) // true, True, yes... as Benthos reads it
		}
		if v := yamlnode.Value(t, "cert_file"); v != nil {
			certFile = v.Value
		}
		if v := yamlnode.Value(t, "key_file"); v != nil {
			keyFile = v.Value
		}
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tlsOn {
		conf, err := httpsource.NewTLSConfig(certFile, keyFile) // the input's own
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, conf)
	}
	w := &waitingListener{srv: &http.Server{Handler: httpsource.StartingHandler("starting: waiting for the broker"), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = w.srv.Serve(ln) }()
	return w, nil
}

// close frees the address for the HTTP input.
func (w *waitingListener) close() {
	if w == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = w.srv.Close()
	}
}
