// Command lakebench measures the lake: it writes LAKEBENCH_EVENTS (default
// 1,000,000) CloudTrail-sized events, normalized by the real parser into
// the JSON the lake stage receives and spread over 24 hour partitions,
// with the lake writer into a temporary local lake, then times `caracal
// search` (lake.ScanLake) for an IP that is in a few rows, for one that is
// in none, and for the first one within a single hour. It prints rows/s
// and MB/s for the writer, the lake's size against the same events as
// gzip'd JSON lines, and the search times. LAKEBENCH_WRITE_ONLY=1 stops
// after writing, for profilers that count the whole process.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/lake"
	"github.com/caracal-sec/caracal/plugins/parse"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
	"github.com/caracal-sec/caracal/tools/systest"
)

const needle = "192.0.2.77"

func main() {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("LAKEBENCH_EVENTS")); err == nil && v > 0 {
		n = v
	}
	root, err := systest.RepoRoot()
	check(err)
	schemas, err := schema.LoadDir(filepath.Join(root, "schemas"))
	check(err)
	cl, err := parse.NewClassifier(schemas)
	check(err)
	tables, err := lake.NewTables(schemas)
	check(err)
	dir, err := os.MkdirTemp("", "caracal-lakebench")
	check(err)
	defer os.RemoveAll(dir)
	store := &lake.LocalStorage{Dir: dir}
	w := &lake.Writer{Tables: tables, Storage: store, OnError: func(_ *lake.Record, err error) { check(err) }}

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	const batchSize = 50_000
	// Per core is per CPU-second, as make bench counts it: the wall clock
	// also holds the waits for each stored file's fsync.
	var writeTime, writeCPU time.Duration
	// LAKEBENCH_CPUPROFILE=file: a CPU profile of the first batch's write.
	var profile *os.File
	if path := os.Getenv("LAKEBENCH_CPUPROFILE"); path != "" {
		profile, err = os.Create(path)
		check(err)
	}
	var jsonBytes int64
	ctx := context.Background()
	for off := 0; off < n; off += batchSize {
		batch := make([]*lake.Record, 0, batchSize)
		for i := off; i < off+batchSize && i < n; i++ {
			ip := fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), rng.IntN(254)+1)
			if i%200_000 == 0 {
				ip = needle // a handful of rows hold the needle
			}
			// (float: i*24h in nanoseconds overflows int64)
			raw := cloudTrail(rng, i, ip, base.Add(time.Duration(float64(i)/float64(n)*24*float64(time.Hour))))
			jsonBytes += int64(len(raw)) + 1
			zw.Write(raw)
			zw.Write([]byte("\n"))
			// As the lake stage receives it: the process stage's JSON.
			ev, f := cl.ClassifyJSON(raw, []string{"AWS.CloudTrail"}, parse.Origin{SourceID: "bench", Offset: int64(i)})
			if f != nil {
				check(fmt.Errorf("%s", parse.Describe(f)))
			}
			batch = append(batch, &lake.Record{Topic: envelope.TopicEvents, Partition: 0, Offset: int64(i), Raw: ev.JSON})
		}
		// The generator's garbage is collected before the clock starts, so
		// the writer pays only for its own.
		runtime.GC()
		if profile != nil && off == 0 {
			check(pprof.StartCPUProfile(profile))
		}
		t0, c0 := time.Now(), cpuTime()
		check(w.Write(ctx, batch))
		writeTime += time.Since(t0)
		writeCPU += cpuTime() - c0
		if profile != nil && off == 0 {
			pprof.StopCPUProfile()
			check(profile.Close())
		}
	}
	fmt.Printf("lakebench: wrote %d CloudTrail events (%.0f MB of JSON) in %s: %.0f rows/s, %.1f MB/s of JSON (GOMAXPROCS=%d)\n",
		n, float64(jsonBytes)/1e6, writeTime.Round(time.Millisecond), float64(n)/writeTime.Seconds(), float64(jsonBytes)/1e6/writeTime.Seconds(), runtime.GOMAXPROCS(0))
	fmt.Printf("lakebench: writer CPU %s: %.0f rows/s per core, %.1f MB/s of JSON per core\n",
		writeCPU.Round(time.Millisecond), float64(n)/writeCPU.Seconds(), float64(jsonBytes)/1e6/writeCPU.Seconds())
	if os.Getenv("LAKEBENCH_WRITE_ONLY") != "" {
		return // the writer alone, e.g. under a profiler
	}
	check(zw.Close())
	var lakeBytes int64
	files := 0
	check(store.List(ctx, "", func(_ string, size int64) error { lakeBytes += size; files++; return nil }))
	fmt.Printf("lakebench: lake %d files, %.1f MB Parquet (zstd) vs %.1f MB gzip'd JSON lines (%.2fx)\n",
		files, float64(lakeBytes)/1e6, float64(gz.Len())/1e6, float64(lakeBytes)/float64(gz.Len()))

	search := func(label, ip string, since, until time.Time) {
		t0 := time.Now()
		st, err := lake.ScanLake(ctx, store, tables, lake.Scan{Column: "p_any_ip_addresses", Value: ip, Since: since, Until: until}, func(string, map[string]any) error { return nil })
		check(err)
		fmt.Printf("lakebench: search %-28s %4d rows in %8s (files %d read, %d pruned; row groups %d of %d skipped by bloom filter or statistics; %d rows decoded)\n",
			label, st.Matched, time.Since(t0).Round(time.Millisecond), st.Files, st.FilesPruned, st.RowGroupsPruned, st.RowGroups, st.Rows)
	}
	search("present IP, all time", needle, time.Time{}, time.Time{})
	search("absent IP, all time", "198.51.100.200", time.Time{}, time.Time{})
	search("present IP, one hour", needle, base, base.Add(time.Hour))
}

func cloudTrail(rng *rand.Rand, i int, ip string, at time.Time) []byte {
	b, _ := json.Marshal(systest.CloudTrailEvent(rng, fmt.Sprintf("lakebench-%d", i), ip, at))
	return b
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	check(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "lakebench:", err)
		os.Exit(1)
	}
}
