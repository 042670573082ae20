package lake

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Storage writes objects to S3 or an S3-compatible server (MinIO, R2,
// Ceph). A PUT is atomic: readers see the old object or the new one.
type S3Storage struct {
	client *minio.Client
	bucket string
	prefix string
	url    string
}

// NewS3Storage opens s3://bucket/prefix. The endpoint comes from
// CARACAL_S3_ENDPOINT or AWS_ENDPOINT_URL (default AWS), the region from
// AWS_REGION, credentials from the usual AWS chain (environment, shared
// credentials file, instance/task role). A custom endpoint uses path-style
// addressing unless CARACAL_S3_PATH_STYLE=false.
func NewS3Storage(u string) (*S3Storage, error) {
	parsed, err := url.Parse(u)
	if err != nil || parsed.Host == "" {
		return nil, fmt.Errorf("lake URL %q: want s3://bucket/prefix", u)
	}
	endpoint := firstNonEmpty(os.Getenv("CARACAL_S3_ENDPOINT"), os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL"))
	secure := true
	lookup := minio.BucketLookupAuto
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	} else {
		if e, err := url.Parse(endpoint); err == nil && e.Host != "" {
			secure = e.Scheme == "https"
			endpoint = e.Host
		}
		if os.Getenv("CARACAL_S3_PATH_STYLE") != "false" {
			lookup = minio.BucketLookupPath
		}
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
		&credentials.IAM{},
	})
	client, err := minio.New(endpoint, &minio.Options{
		Creds: creds, Secure: secure, Region: os.Getenv("AWS_REGION"), BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", endpoint, err)
	}
	return &S3Storage{client: client, bucket: parsed.Host, prefix: strings.Trim(parsed.Path, "/"), url: u}, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// URL implements Storage.
func (s *S3Storage) URL() string { return s.url }

// Put uploads the object; large objects go up in parts.
func (s *S3Storage) Put(ctx context.Context, key string, data []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	name := s.name(key)
	_, err := s.client.PutObject(ctx, s.bucket, name, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		ContentType: "application/vnd.apache.parquet",
		PartSize:    16 << 20,
	})
	if err != nil {
		return fmt.Errorf("lake: put s3://%s/%s: %w", s.bucket, name, err)
	}
	return nil
}

// Client exposes the S3 client (for search and tests).
func (s *S3Storage) Client() *minio.Client { return s.client }

// Bucket and Prefix locate the lake in the bucket.
func (s *S3Storage) Bucket() string { return s.bucket }

// Prefix is the key prefix of the lake inside the bucket.
func (s *S3Storage) Prefix() string { return s.prefix }

func (s *S3Storage) name(key string) string {
	if s.prefix != "" {
		return s.prefix + "/" + key
	}
	return key
}

// List implements Reader.
func (s *S3Storage) List(ctx context.Context, prefix string, fn func(string, int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine if fn fails
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.name(prefix), Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("lake: list s3://%s/%s: %w", s.bucket, s.name(prefix), obj.Err)
		}
		if !strings.HasSuffix(obj.Key, ".parquet") {
			continue
		}
		key := strings.TrimPrefix(obj.Key, s.prefix+"/")
		if s.prefix == "" {
			key = obj.Key
		}
		if err := fn(key, obj.Size); err != nil {
			return err
		}
	}
	return nil
}

// Open implements Reader: ranged GETs serve Parquet's random reads.
func (s *S3Storage) Open(ctx context.Context, key string) (io.ReaderAt, io.Closer, error) {
	if err := CheckKey(key); err != nil {
		return nil, nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.name(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("lake: get s3://%s/%s: %w", s.bucket, s.name(key), err)
	}
	return obj, obj, nil
}
