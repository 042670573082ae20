#!/usr/bin/env bash
# A real S3 server (MinIO, single drive) for the integration tests, built from
# source with `go install` through the Go module proxy and cached.
#
#   scripts/minio.sh install   build the pinned MinIO into $CARACAL_CACHE/bin (cached; a few minutes cold)
#   scripts/minio.sh start     wipe the data dir, start, wait for /minio/health/live; print
#                              CARACAL_TEST_S3_ENDPOINT=..., AWS_ACCESS_KEY_ID=..., AWS_SECRET_ACCESS_KEY=...
#   scripts/minio.sh stop      stop it
#   scripts/minio.sh status    exit 0 and print the env lines when it is running
#
# stdout carries only KEY=VALUE lines, so `eval "$(scripts/minio.sh start)"` works;
# progress goes to stderr. The pid file and MinIO's log (minio.log) sit beside the
# data (in $MINIO_DATA_DIR/..., i.e. $CARACAL_CACHE/minio-<port>/).
#
# Environment: CARACAL_CACHE (default ~/.cache/caracal), MINIO_PORT (19000),
# MINIO_CONSOLE_PORT (MINIO_PORT+1), MINIO_ROOT_USER / MINIO_ROOT_PASSWORD (fixed test
# defaults below), MINIO_START_TIMEOUT (60 s), GO (go on PATH).
set -euo pipefail

# The newest MinIO the Go module proxy serves (MinIO tags releases outside semver,
# so the proxy knows it by this pseudo-version).
version="v0.0.0-20260212201848-7aac2a2c5b7c"

cache="${CARACAL_CACHE:-$HOME/.cache/caracal}"
bin="$cache/bin/minio-$version"
port="${MINIO_PORT:-19000}"
console_port="${MINIO_CONSOLE_PORT:-$((port + 1))}"
home="$cache/minio-$port"
data="$home/data"
pidfile="$home/minio.pid"
log="$home/minio.log"
user="${MINIO_ROOT_USER:-caracaltest}"
password="${MINIO_ROOT_PASSWORD:-caracaltestsecret}"
endpoint="http://127.0.0.1:$port"
name=MinIO
cmdline_pattern="server --address 127.0.0.1:$port"
stop_timeout=20
# shellcheck source=service.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/service.sh"

say() { echo "minio.sh: $*" >&2; }
die() {
	say "$*"
	exit 1
}

install() {
	if [[ -x "$bin" ]]; then
		return 0
	fi
	local go="${GO:-go}"
	command -v "$go" >/dev/null || die "go not found"
	say "building MinIO $version with go install (a few minutes the first time)"
	local tmp="$cache/bin/.minio-build.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	# GOFLAGS from the caller (e.g. -mod=vendor) must not leak into MinIO's own build.
	GOBIN="$tmp" GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
		"$go" install -ldflags="-s -w" "github.com/minio/minio@$version" >&2 ||
		die "go install github.com/minio/minio@$version failed"
	mv "$tmp/minio" "$bin"
	rm -rf "$tmp"
}

live() {
	curl -fsS -o /dev/null --max-time 2 "$endpoint/minio/health/live" 2>/dev/null
}

launch() {
	say "starting MinIO on $endpoint (data $data)"
	rm -f "$pidfile"
	# The inner shell writes its own pid and then execs MinIO, so the pid file names the
	# server whether or not setsid had to fork; no descriptor of the caller is kept.
	# shellcheck disable=SC2016 # $$ and $1 are expanded by the inner shell
	MINIO_ROOT_USER="$user" MINIO_ROOT_PASSWORD="$password" MINIO_BROWSER=off \
		MINIO_UPDATE=off MINIO_CI_CD=1 \
		setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" \
		"$bin" server --address "127.0.0.1:$port" --console-address "127.0.0.1:$console_port" \
		--certs-dir "$home/certs" --quiet --anonymous "$data" \
		</dev/null >>"$log" 2>&1 &
	for _ in $(seq 50); do
		[[ -s "$pidfile" ]] && return 0
		sleep 0.1
	done
	die "MinIO did not start (no pid file)"
}

wait_ready() {
	local timeout="${MINIO_START_TIMEOUT:-60}" start=$SECONDS
	while ((SECONDS - start < timeout)); do
		if ! alive_pid; then
			tail -n 40 "$log" >&2 || true
			die "MinIO exited during startup (log: $log)"
		fi
		if live; then
			say "ready after $((SECONDS - start)) s"
			return 0
		fi
		sleep 0.3
	done
	tail -n 40 "$log" >&2 || true
	die "MinIO not ready after ${timeout} s (log: $log)"
}

print_env() {
	echo "CARACAL_TEST_S3_ENDPOINT=$endpoint"
	echo "AWS_ACCESS_KEY_ID=$user"
	echo "AWS_SECRET_ACCESS_KEY=$password"
}

case "${1:-}" in
install)
	install
	;;
start)
	command -v curl >/dev/null || die "curl is needed for the readiness check"
	install
	stop
	if ! port_free "$port" || ! port_free "$console_port"; then
		die "127.0.0.1:$port or :$console_port is taken by another process"
	fi
	rm -rf "$home"
	mkdir -p "$data" "$home/certs"
	launch
	wait_ready
	print_env
	;;
stop)
	stop
	;;
status)
	if ! running_pid >/dev/null || ! live; then
		die "not running on $endpoint"
	fi
	print_env
	;;
*)
	echo "usage: $0 install|start|stop|status" >&2
	exit 2
	;;
esac
