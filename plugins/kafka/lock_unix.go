//go:build unix

package kafka

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile takes f's lock for this process without waiting: false when
// another process holds it. The lock is the kernel's (flock), so it goes
// with the process however it ends, SIGKILL included.
func lockFile(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		return false, nil
	default: // a file system without locks (some network mounts)
		return false, fmt.Errorf("%w: %s: %v", errNoFileLocks, f.Name(), err)
	}
}

// lockDir takes dir for this process: two embedded brokers writing one
// log would corrupt it, and lose events both had acknowledged. The file
// keeps the holder's pid for the error.
func lockDir(dir string) (release func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("embedded broker data dir: %w", err)
	}
	held, err := lockFile(f)
	if err != nil {
		// No locks: run as before, one broker per data dir being the
		// operator's to keep.
		f.Close()
		return func() {}, nil
	}
	if !held {
		holder := ""
		if b, _ := os.ReadFile(f.Name()); len(b) > 0 {
			holder = " (pid " + strings.TrimSpace(string(b)) + ")"
		}
		f.Close()
		return nil, fmt.Errorf("embedded broker data dir %s is in use by another Caracal process%s: stop it, or give this one its own data_dir (CARACAL_DATA_DIR)", dir, holder)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
