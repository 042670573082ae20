package kafka

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A transactional stage keeps its transactional id across restarts. When a
// process killed mid-transaction restarts with the same id, registering it
// makes the broker abort the dead process's transaction at once. With a new
// id that transaction stays open until the broker's transaction timeout
// (60 s): every read_committed reader of the stage's outputs waits that long
// (a killed detect stalls the alert stage; a killed alert stage's successor
// waits for its own state to settle), and the alerts the dead process had
// sent are sent again when the backlog is replayed.
//
// The ids are kept in the data dir, one file per slot, each held by a file
// lock while its process runs: processes of one stage sharing a data dir
// each take their own slot, so no two live processes share an id (they
// would fence each other), and a restart takes the slot of the process it
// replaces (the kernel drops a dead process's locks). Other hosts have
// their own data dirs, hence their own ids; and as a data dir may be copied
// to another host (a cloned disk or image), the id names the host too.
//
// The id is not made the group's static member id (KIP-345), which would
// also spare a restart the wait for a rebalance: under make chaos that left
// transactions hanging on __consumer_offsets after the broker restart. The
// slot keeps the group member id instead, for the restart to remove the
// dead member from the group (see member.go).

// maxIDSlots bounds the processes of one stage that keep an id in one data
// dir; more get a new id each start.
const maxIDSlots = 64

// idDir is where, under the data dir, the ids are kept.
const idDir = "transactional-ids"

// randomID is a new process-unique id (KIP-447: the group generation
// fences zombies, so an id only has to be unique per live process).
func randomID() string {
	var id [8]byte
	_, _ = rand.Read(id[:])
	return hex.EncodeToString(id[:])
}

// processID is this process's transactional id suffix in cfg.Group: kept
// across restarts in cfg.DataDir when it can be, else new. slot is the kept
// id's file ("" for a new id); release gives the slot up: call it when the
// consumer closes.
func processID(cfg ConsumerConfig) (id, slot string, release func()) {
	if cfg.DataDir != "" {
		id, slot, release, err := keptID(cfg.DataDir, cfg.Group)
		if err == nil {
			return id, slot, release
		}
		if cfg.OnWarn != nil {
			cfg.OnWarn(fmt.Sprintf("Consumer group %s: transactional id not kept (%v): after a crash, readers of this stage's output wait up to %v for its open transaction", cfg.Group, err, TransactionTimeout))
		}
	}
	return randomID(), "", func() {}
}

// keptID returns the id kept for group in dataDir's first free slot, the
// slot's file and a release for the slot, to call when the stage stops. It
// fails where ids cannot be kept (no data dir, a read-only one, no file
// locks): the caller then uses a random id.
func keptID(dataDir, group string) (string, string, func(), error) {
	dir := filepath.Join(dataDir, idDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", nil, err
	}
	name := strings.NewReplacer("/", "_", "\\", "_").Replace(group)
	for n := 0; n < maxIDSlots; n++ {
		slot := filepath.Join(dir, name+"."+strconv.Itoa(n))
		f, err := os.OpenFile(slot, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return "", "", nil, err
		}
		held, err := lockFile(f)
		if err != nil {
			f.Close()
			return "", "", nil, err
		}
		if !held {
			f.Close() // another live process's slot
			continue
		}
		release := func() { f.Close() } // closing drops the lock
		host, _ := os.Hostname()
		b, err := io.ReadAll(f) // the slot just locked, read through its handle
		if id := strings.TrimSpace(string(b)); err == nil && len(id) == 16 {
			if _, err := hex.DecodeString(id); err == nil {
				return host + "-" + id, slot, release, nil
			}
		}
		id := randomID()
		if err := writeID(f, id); err != nil {
			release()
			return "", "", nil, err
		}
		return host + "-" + id, slot, release, nil
	}
	return "", "", nil, fmt.Errorf("all %d slots of %s in %s are held by running processes", maxIDSlots, group, dir)
}

func writeID(f *os.File, id string) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt([]byte(id+"\n"), 0); err != nil {
		return err
	}
	return f.Sync()
}

// errNoFileLocks is lockFile's answer where the system has none.
var errNoFileLocks = errors.New("file locks are not available here")
