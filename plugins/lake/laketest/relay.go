package laketest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Relay forwards the TCP connections made to its address to a server (the
// test MinIO), until cut: then connections are refused, as by a server that
// went down. Object storage that goes away or comes back late is a relay
// cut, or one started late.
type Relay struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

// NewRelay listens on addr ("127.0.0.1:0": any port) and forwards to
// target (host:port). It is cut when the test ends.
func NewRelay(t testing.TB, addr, target string) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{ln: ln}
	t.Cleanup(r.Cut)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, up)
			r.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return r
}

// Addr is where the relay listens.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Cut closes the listener and every forwarded connection.
func (r *Relay) Cut() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}
