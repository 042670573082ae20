#!/usr/bin/env bash
# icount.sh: instructions per operation of a Go benchmark, counted by
# valgrind (callgrind), with the functions that execute them.
#
#   scripts/icount.sh ./plugins/parse 'LogTypes/AWS.ALB$' [N] [TOP]
#
# On a shared machine a benchmark's ns/op moves by half from run to run;
# the instruction count moves by well under 0.1%, so it shows a change of
# 1% that timings cannot. It is not time (cache misses and the garbage
# collector are not in it): confirm a gain with alternating timed runs.
#
# The benchmark runs N and 2N times (default 10000) with GOGC=off and one
# CPU, and the difference of the two counts, divided by N, is the cost of
# one operation without the set-up. TOP (default 30) functions are listed
# by their own instructions per operation. Needs valgrind (Debian
# package `valgrind`); about a minute for a benchmark of 50k instructions.
set -euo pipefail
pkg=${1:?usage: icount.sh <package> <benchmark regexp> [N] [TOP]}
bench=${2:?usage: icount.sh <package> <benchmark regexp> [N] [TOP]}
n=${3:-10000}
top=${4:-30}
command -v valgrind >/dev/null || { echo "icount.sh: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/bench.test" "$pkg"
dir=$(go list -f '{{.Dir}}' "$pkg")

# count RUNS OUT: callgrind of RUNS iterations into OUT. Go's runtime now
# and then dies under valgrind (its preemption signals, off here, were the
# usual cause); such a run is tried again.
count() {
	for _ in 1 2 3 4 5 6 7 8; do
		if (cd "$dir" && GODEBUG=asyncpreemptoff=1 GOGC=off valgrind --tool=callgrind --callgrind-out-file="$2" "$work/bench.test" \
			-test.run '^$' -test.bench "$bench" -test.cpu 1 -test.benchtime "${1}x") >"$work/log" 2>&1 &&
			grep -q Collected "$work/log"; then
			callgrind_annotate --auto=no --threshold=100 "$2" >"$2.txt" 2>/dev/null
			return
		fi
	done
	cat "$work/log" >&2
	echo "icount.sh: valgrind did not complete the benchmark" >&2
	exit 1
}
count "$n" "$work/a"
count $((2 * n)) "$work/b"

python3 - "$work/a.txt" "$work/b.txt" "$n" "$top" "$bench" <<'PY'
import re, sys

def load(path):
    funcs, total = {}, 0
    for line in open(path):
        m = re.match(r'^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(\S.*)$', line)
        if not m:
            continue
        count, name = int(m.group(1).replace(',', '')), m.group(2)
        if 'PROGRAM TOTALS' in name:
            total = count
        elif ':' in name and '=>' not in name:
            name = re.sub(r' \[.*\]$', '', name).split(':', 1)[1]
            funcs[name] = funcs.get(name, 0) + count
    return funcs, total

(a, ta), (b, tb) = load(sys.argv[1]), load(sys.argv[2])
n, top = int(sys.argv[3]), int(sys.argv[4])
print(f"{sys.argv[5]}: {(tb - ta) / n:,.0f} instructions/op")
rows = sorted(((b[k] - a.get(k, 0)) / n, k) for k in b)
for per_op, name in reversed(rows[-top:]):
    print(f"{per_op:9,.0f}  {name}")
PY
