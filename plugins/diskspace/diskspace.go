// Package diskspace keeps a reserve of free space on the disk the embedded
// broker and the local lake share. A write that fails half way on a full
// disk is the one failure the broker cannot take back cleanly (franz-go's
// kfake has already counted the batch's sequence when its segment write
// fails, so the producer's retry is taken for a duplicate and acknowledged
// unwritten), so writers stop short of a full disk instead: the lake first,
// then the broker, leaving room for the small writes (offset commits,
// transaction markers) that finish the work in flight.
package diskspace

import (
	"fmt"
	"math"
)

const (
	// BrokerReserve is the free space below which the embedded broker
	// refuses produce requests (KAFKA_STORAGE_ERROR, which producers
	// retry).
	BrokerReserve = 64 << 20
	// LakeReserve is the free space a local lake file must leave; it is
	// larger than the broker's so the lake pauses while the broker still
	// takes events.
	LakeReserve = 2 * BrokerReserve
)

// Free is the space available to this process on the file system holding
// path (math.MaxUint64 where the platform cannot tell).
func Free(path string) (uint64, error) { return free(path) }

// Check says why writing n more bytes under path would leave less than
// reserve free, or nil.
func Check(path string, n, reserve uint64) error {
	avail, err := Free(path)
	if err != nil {
		return fmt.Errorf("free space of %s: %w", path, err)
	}
	if avail == math.MaxUint64 || avail >= n+reserve {
		return nil
	}
	return &LowError{Path: path, Free: avail, Need: n + reserve}
}

// LowError is a disk too full to write on.
type LowError struct {
	Path       string
	Free, Need uint64
}

func (e *LowError) Error() string {
	return fmt.Sprintf("disk almost full: %s has %d MiB free, writing needs %d MiB (free space on it to go on)",
		e.Path, e.Free>>20, (e.Need+1<<20-1)>>20)
}
