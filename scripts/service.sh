# Process handling shared by kafka.sh and minio.sh (sourced, not run).
# The caller sets: name (for messages), pidfile, cmdline_pattern (a string
# the server's command line contains) and stop_timeout (seconds), and
# defines say.

# The launched process is still alive, whatever it runs yet: until the inner
# shell has exec'd, its command line is bash's, so running_pid would take a
# server that is still starting for one that exited.
alive_pid() {
	[[ -f "$pidfile" ]] || return 1
	local pid
	pid="$(cat "$pidfile")"
	[[ -n "$pid" && -r "/proc/$pid/status" ]] || return 1
	! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status"
}

# Our pid file names a live process that is really this server (not a reused pid).
running_pid() {
	[[ -f "$pidfile" ]] || return 1
	local pid
	pid="$(cat "$pidfile")"
	[[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$cmdline_pattern" || return 1
	echo "$pid"
}

# Nothing listens there (so readiness cannot be answered by somebody else's server).
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# SIGTERM, then SIGKILL after stop_timeout seconds.
stop() {
	local pid
	if ! pid="$(running_pid)"; then
		rm -f "$pidfile"
		return 0
	fi
	say "stopping $name pid $pid"
	kill -TERM "$pid" 2>/dev/null || true
	local start=$SECONDS
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS - start >= stop_timeout)); then
			say "$name pid $pid still up after ${stop_timeout} s: SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.2
	done
	rm -f "$pidfile"
}
