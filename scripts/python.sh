#!/usr/bin/env bash
# A Python venv with pyarrow and DuckDB, the independent readers the tests use to
# check that Caracal's Parquet files are readable by other tools.
#
#   scripts/python.sh          create or reuse $CARACAL_CACHE/venv; print CARACAL_PYTHON=<venv>/bin/python
#   scripts/python.sh --path   the same, but print only <venv>/bin/python (for $(...) in a Makefile)
#
# stdout carries only the KEY=VALUE line, so `eval "$(scripts/python.sh)"` works.
# Environment: CARACAL_CACHE (default ~/.cache/caracal), PYTHON (python3 on PATH).
set -euo pipefail

# Pinned to versions PyPI serves for CPython 3.11 on linux x86_64.
pins=(pyarrow==26.0.1 duckdb==2.0.0)

cache="${CARACAL_CACHE:-$HOME/.cache/caracal}"
venv="$cache/venv"
stamp="$venv/.caracal-pins"
python="${PYTHON:-python3}"

say() { echo "python.sh: $*" >&2; }
result() {
	if [[ "${1:-}" == "--path" ]]; then
		echo "$venv/bin/python"
	else
		echo "CARACAL_PYTHON=$venv/bin/python"
	fi
}

# Reuse the venv only when it was built with exactly these pins and still imports them.
if [[ -f "$stamp" && "$(cat "$stamp")" == "${pins[*]}" ]] &&
	"$venv/bin/python" -c 'import pyarrow, duckdb' 2>/dev/null; then
	result "${1:-}"
	exit 0
fi

say "creating $venv with ${pins[*]}"
rm -rf "$venv"
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
	--only-binary=:all: "${pins[@]}" >&2
"$venv/bin/python" -c 'import pyarrow, duckdb; print("pyarrow", pyarrow.__version__, "duckdb", duckdb.__version__)' >&2
echo "${pins[*]}" >"$stamp"
result "${1:-}"
