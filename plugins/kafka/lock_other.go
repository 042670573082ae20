//go:build !unix

package kafka

import "os"

// lockFile cannot lock where flock is missing.
func lockFile(*os.File) (bool, error) { return false, errNoFileLocks }

// lockDir does not lock where flock is missing: run one embedded broker
// per data dir.
func lockDir(string) (func(), error) { return func() {}, nil }
