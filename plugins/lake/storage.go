package lake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/caracal-sec/caracal/plugins/diskspace"
)

// Storage is where lake objects go: a local directory or object storage.
// Put must be atomic (a reader sees the whole object or none) and
// idempotent (writing the same key again replaces it).
type Storage interface {
	Put(ctx context.Context, key string, data []byte) error
	// URL names the storage for humans.
	URL() string
}

// ProbeKey is where Probe writes: outside every table (query engines and
// Hive-style readers skip names starting with "_"), the same key each time.
const ProbeKey = "_caracal/writable"

// Probe checks that the storage takes a write.
func Probe(ctx context.Context, s Storage) error {
	body := fmt.Appendf(nil, "{\"writer\":\"caracal\",\"at\":%q}\n", time.Now().UTC().Format(time.RFC3339))
	if err := s.Put(ctx, ProbeKey, body); err != nil {
		return fmt.Errorf("the lake at %s cannot be written (check its credentials, bucket, endpoint and free space): %w", s.URL(), err)
	}
	return nil
}

var keyRe = regexp.MustCompile(`^[A-Za-z0-9_=./-]+$`)

// CheckKey rejects keys that could escape the lake: absolute paths, ".."
// segments, or characters outside a conservative set.
func CheckKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || !keyRe.MatchString(key) {
		return fmt.Errorf("invalid lake key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("invalid lake key %q: empty, . or .. segment", key)
		}
	}
	return nil
}

// LocalStorage writes objects as files under a directory.
type LocalStorage struct {
	Dir string
}

// URL implements Storage.
func (l *LocalStorage) URL() string { return l.Dir }

// Put writes to a temporary file, syncs it and renames it into place, so a
// crash never leaves a partial file under the final name.
func (l *LocalStorage) Put(ctx context.Context, key string, data []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	path := filepath.Join(l.Dir, filepath.FromSlash(key))
	dir := filepath.Dir(path)
	// The directories about to be created (a new hour): their entries
	// are synced too, or a power loss could take a whole hour's files
	// whose offsets were committed.
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || d == filepath.Dir(d) {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	// Stop short of a full disk: the embedded broker shares it (see
	// package diskspace). The roll is written again once there is space.
	if err := diskspace.Check(dir, uint64(len(data)), diskspace.LakeReserve); err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(suffix[:]))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("lake: %w", err)
	}
	_, werr := f.Write(data)
	serr := f.Sync()
	cerr := f.Close()
	if err := firstErr(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lake: write %s: %w", key, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("lake: %w", err)
	}
	syncDir(dir)
	for _, d := range created {
		syncDir(filepath.Dir(d))
	}
	return nil
}

// syncDir makes a directory's entries durable (best effort: not every
// file system syncs directories).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// OpenReader returns the read side of the storage at a lake URL.
func OpenReader(url string) (Reader, error) {
	st, err := OpenStorage(url)
	if err != nil {
		return nil, err
	}
	r, ok := st.(Reader)
	if !ok {
		return nil, fmt.Errorf("lake %s cannot be read", st.URL())
	}
	// A mistyped path would read as an empty lake: a search finding
	// nothing must mean the lake has nothing, not that it was not there.
	if l, ok := st.(*LocalStorage); ok {
		if info, err := os.Stat(l.Dir); err != nil || !info.IsDir() {
			return nil, fmt.Errorf("lake %s: no such directory (the lake stage creates it with its first file; is the path right?)", l.Dir)
		}
	}
	return r, nil
}

// OpenStorage returns the storage for a lake URL: a directory path (or
// file://), or s3://bucket/prefix.
func OpenStorage(url string) (Storage, error) {
	switch {
	case strings.HasPrefix(url, "s3://"):
		return NewS3Storage(url)
	case strings.HasPrefix(url, "file://"):
		return &LocalStorage{Dir: strings.TrimPrefix(url, "file://")}, nil
	case strings.Contains(url, "://"):
		return nil, fmt.Errorf("lake URL %q: use a directory or s3://bucket/prefix", url)
	}
	return &LocalStorage{Dir: url}, nil
}
