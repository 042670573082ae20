// Package laketest reads lake tables back with pyarrow, an independent
// Parquet reader, so tests do not only trust Caracal's own writer and reader.
package laketest

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"
)

// Python returns an interpreter with pyarrow: $CARACAL_PYTHON, else python3.
// Without one the test is skipped, except under CI where it fails.
func Python(t testing.TB) string {
	t.Helper()
	py := os.Getenv("CARACAL_PYTHON")
	if py == "" {
		py = "python3"
	}
	if err := exec.Command(py, "-c", "import pyarrow.parquet").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("pyarrow is not importable by %s under CI (scripts/python.sh installs it): %v", py, err)
		}
		t.Skipf("pyarrow not importable by %s (run scripts/python.sh and set CARACAL_PYTHON)", py)
	}
	return py
}

const readScript = `
import sys, json, glob, datetime, decimal
import pyarrow.parquet as pq

def enc(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        s = v.strftime('%Y-%m-%dT%H:%M:%S')
        if v.microsecond:
            s += ('.%06d' % v.microsecond).rstrip('0')
        return s + 'Z'
    if isinstance(v, (bytes, bytearray)):
        return v.decode('utf-8', 'replace')
    if isinstance(v, decimal.Decimal):
        return float(v)
    return str(v)

rows = []
for f in sorted(glob.glob(sys.argv[1] + '/**/*.parquet', recursive=True)):
    for r in pq.read_table(f).to_pylist():
        r['_file'] = f
        rows.append(r)
json.dump(rows, sys.stdout, default=enc)
`

// ReadTable returns every row of every Parquet file under dir (recursively),
// as pyarrow decodes them, with the file path in "_file". Timestamps come
// back as RFC 3339 UTC strings.
func ReadTable(t testing.TB, dir string) []map[string]any {
	t.Helper()
	py := Python(t)
	out, err := exec.Command(py, "-c", readScript, dir).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("pyarrow read %s: %v\n%s", dir, err, ee.Stderr)
		}
		t.Fatalf("pyarrow read %s: %v", dir, err)
	}
	var rows []map[string]any
	if err := json.Unmarshal(out, &rows); err != nil {
		t.Fatalf("pyarrow output: %v", err)
	}
	return rows
}
