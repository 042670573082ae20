package main

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/caracal-sec/caracal/plugins/lake"
	"github.com/caracal-sec/caracal/plugins/lake/laketest"
)

// A stop while object storage is out of reach cannot write the lake's
// pending roll: the process still stops within shutdown_timeout, but exits
// 1 saying what it left (not 0, as if the stop were clean), and the next
// start stores the event, which was never acknowledged.
func TestStopWithTheLakeOutOfReach(t *testing.T) {
	endpoint, bucket := laketest.MinIO(t, "caracal-stop")
	st, err := lake.NewS3Storage("s3://" + bucket + "/lake")
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCuttableProxy(t, strings.TrimPrefix(strings.TrimPrefix(endpoint, "http://"), "https://"))
	data := t.TempDir()
	env := []string{"CARACAL_LAKE_URL=s3://" + bucket + "/lake", "CARACAL_LAKE_ROLL_PERIOD=1s", "CARACAL_SHUTDOWN_TIMEOUT=5s"}
	p := start(t, data, append(env, "CARACAL_S3_ENDPOINT=http://"+proxy.addr()))
	if !waitUntil(90*time.Second, 100*time.Millisecond, func() bool { code, _ := getReady(p.MetricsAddr); return code == 200 }) {
		t.Fatal("the lake did not connect within 90s")
	}
	proxy.cut()
	eventID := "stop-" + bucket
	post(t, p, rootLogin(t, eventID))
	if !waitUntil(90*time.Second, 100*time.Millisecond, func() bool { return strings.Contains(p.Output(), "Lake: could not store files") }) {
		t.Fatalf("the lake did not try to store a roll within 90s:\n%s", p.Tail(40))
	}
	err = p.Stop(60 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited with 1") {
		t.Fatalf("stop with the lake's roll unstored: %v, want exit 1", err)
	}
	if !strings.Contains(p.Output(), "caracal: stopped with work unfinished: the lake holds a roll") {
		t.Fatalf("the exit does not say what was left:\n%s", p.Tail(20))
	}

	// With object storage back, the event that was never acknowledged is
	// read again and stored.
	p = start(t, data, append(env, "CARACAL_S3_ENDPOINT="+endpoint))
	local := t.TempDir()
	stored := func() bool {
		for obj := range st.Client().ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "lake/aws_cloudtrail/", Recursive: true}) {
			if obj.Err != nil || !strings.HasSuffix(obj.Key, ".parquet") {
				continue
			}
			if err := st.Client().FGetObject(context.Background(), bucket, obj.Key, filepath.Join(local, filepath.Base(obj.Key)), minio.GetObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			for _, r := range laketest.ReadTable(t, local) {
				if r["eventID"] == eventID {
					return true
				}
			}
		}
		return false
	}
	if !waitUntil(90*time.Second, time.Second, stored) {
		t.Fatalf("event %s not in the lake within 90s of object storage coming back", eventID)
	}
	if err := p.Stop(60 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// cuttableProxy forwards TCP connections to a server until cut, after which
// connections are refused, as by a server that went down.
type cuttableProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCuttableProxy(t *testing.T, target string) *cuttableProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &cuttableProxy{ln: ln}
	t.Cleanup(px.cut)
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
			px.mu.Lock()
			px.conns = append(px.conns, c, up)
			px.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return px
}

func (px *cuttableProxy) addr() string { return px.ln.Addr().String() }

// cut closes the listener and every forwarded connection.
func (px *cuttableProxy) cut() {
	px.ln.Close()
	px.mu.Lock()
	defer px.mu.Unlock()
	for _, c := range px.conns {
		c.Close()
	}
	px.conns = nil
}
