package laketest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIO returns the test MinIO server's endpoint ($CARACAL_TEST_S3_ENDPOINT,
// which .ci/run starts with scripts/minio.sh) and a new bucket on it named
// prefix-<random>, and points CARACAL_S3_ENDPOINT at the server for the
// test. Without a server the test is skipped, except under CI where it
// fails.
func MinIO(t testing.TB, prefix string) (endpoint, bucket string) {
	t.Helper()
	endpoint = os.Getenv("CARACAL_TEST_S3_ENDPOINT")
	if endpoint == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("CARACAL_TEST_S3_ENDPOINT unset under CI: .ci/run must start MinIO (scripts/minio.sh start)")
		}
		t.Skip("CARACAL_TEST_S3_ENDPOINT unset: no MinIO (run scripts/minio.sh start)")
	}
	t.Setenv("CARACAL_S3_ENDPOINT", endpoint)
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		t.Fatalf("CARACAL_TEST_S3_ENDPOINT %q: want http(s)://host:port", endpoint)
	}
	client, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewEnvAWS(), Secure: u.Scheme == "https"})
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	bucket = prefix + "-" + hex.EncodeToString(b[:])
	if err := client.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{Region: os.Getenv("AWS_REGION")}); err != nil {
		t.Fatal(err)
	}
	return endpoint, bucket
}
