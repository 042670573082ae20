package main

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
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
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	relay := laketest.NewRelay(t, "127.0.0.1:0", target.Host)
	data := t.TempDir()
	env := []string{"CARACAL_LAKE_URL=s3://" + bucket + "/lake", "CARACAL_LAKE_ROLL_PERIOD=1s", "CARACAL_SHUTDOWN_TIMEOUT=5s"}
	p := start(t, data, append(env, "CARACAL_S3_ENDPOINT=http://"+relay.Addr()))
	if !waitUntil(90*time.Second, 100*time.Millisecond, func() bool { code, _ := getReady(p.MetricsAddr); return code == 200 }) {
		t.Fatal("the lake did not connect within 90s")
	}
	relay.Cut()
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
