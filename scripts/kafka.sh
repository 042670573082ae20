#!/usr/bin/env bash
# A real single-node Apache Kafka broker (KRaft, combined broker+controller) for
# the integration tests, run from the jars Maven fetches for scripts/kafka/pom.xml.
#
#   scripts/kafka.sh install   fetch the jars into $CARACAL_CACHE/kafka-<version>/libs (cached)
#   scripts/kafka.sh start     wipe the data dir, format storage, start, wait until a
#                              Metadata request lists the broker; print CARACAL_TEST_BROKERS=...
#   scripts/kafka.sh restart   stop and start the same broker, keeping its data
#   scripts/kafka.sh stop      stop it (SIGTERM, SIGKILL after KAFKA_STOP_TIMEOUT seconds)
#   scripts/kafka.sh kill      SIGKILL it (a crash); `restart` brings it back with its data
#   scripts/kafka.sh status    exit 0 and print the env line when it is running
#
# stdout carries only KEY=VALUE lines, so `eval "$(scripts/kafka.sh start)"` works;
# progress goes to stderr. The pid file, server.properties and the broker's log
# (kafka.log) live in the data dir.
#
# Environment: CARACAL_CACHE (default ~/.cache/caracal), KAFKA_PORT (19092),
# KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), KAFKA_DATA_DIR ($CARACAL_CACHE/kafka-data-<port>),
# KAFKA_NUM_PARTITIONS (1, for auto-created topics), KAFKA_HEAP (512m),
# KAFKA_START_TIMEOUT (120 s), KAFKA_STOP_TIMEOUT (30 s), JAVA (java on PATH: Java 17+).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/kafka/pom.xml"
cache="${CARACAL_CACHE:-$HOME/.cache/caracal}"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
libs="$cache/kafka-$version/libs"
port="${KAFKA_PORT:-19092}"
cport="${KAFKA_CONTROLLER_PORT:-$((port + 1))}"
data="${KAFKA_DATA_DIR:-$cache/kafka-data-$port}"
java="${JAVA:-java}"
pidfile="$data/kafka.pid"
log="$data/kafka.log"
name=broker
cmdline_pattern="kafka.Kafka $data/server.properties"
stop_timeout="${KAFKA_STOP_TIMEOUT:-30}"
# shellcheck source=service.sh
source "$here/service.sh"
# A fixed cluster id (base64url of 16 bytes): the data dir is wiped at every start anyway.
cluster_id="Y2FyYWNhbC10ZXN0LWtmaw"

say() { echo "kafka.sh: $*" >&2; }
die() {
	say "$*"
	exit 1
}

install() {
	if [[ -f "$libs/.complete" ]]; then
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found"
	say "fetching Apache Kafka $version with Maven into $libs"
	local tmp="$libs.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	# Maven's own repository sits in the cache too, so one CARACAL_CACHE holds every download.
	mvn -q -B -Dstyle.color=never -f "$pom" -Dmaven.repo.local="$cache/m2" \
		dependency:copy-dependencies -DoutputDirectory="$tmp" >&2 ||
		die "mvn dependency:copy-dependencies failed"
	[[ -f "$tmp/kafka_2.13-$version.jar" ]] || die "kafka_2.13-$version.jar missing after mvn"
	touch "$tmp/.complete"
	rm -rf "$libs"
	mv "$tmp" "$libs"
}

write_config() {
	mkdir -p "$data/logs"
	cat >"$data/server.properties" <<EOF
# Written by scripts/kafka.sh: single-node KRaft test broker.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data/logs
auto.create.topics.enable=true
num.partitions=${KAFKA_NUM_PARTITIONS:-1}
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
	# Quiet: warnings only, plus the line that says the server is up.
	cat >"$data/log4j2.properties" <<'EOF'
status = error
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = OUT
logger.raftserver.name = kafka.server.KafkaRaftServer
logger.raftserver.level = info
EOF
}

format_storage() {
	say "formatting KRaft storage in $data/logs"
	"$java" -Xmx256m -cp "$libs/*" -Dlog4j2.configurationFile="$data/log4j2.properties" \
		kafka.tools.StorageTool format --standalone --cluster-id "$cluster_id" \
		--config "$data/server.properties" >>"$log" 2>&1 ||
		{
			tail -n 30 "$log" >&2
			die "storage format failed"
		}
}

launch() {
	say "starting Apache Kafka $version on 127.0.0.1:$port (controller :$cport, data $data)"
	local heap="${KAFKA_HEAP:-512m}"
	# setsid and closed descriptors: the broker must not hold the caller's terminal or pipes.
	# The inner shell writes its own pid and then execs java, so the pid file names the
	# broker whether or not setsid had to fork.
	rm -f "$pidfile"
	# shellcheck disable=SC2016 # expanded by the inner shell
	setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" \
		"$java" -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-Djava.awt.headless=true -Dlog4j2.configurationFile="$data/log4j2.properties" \
		-cp "$libs/*" kafka.Kafka "$data/server.properties" \
		</dev/null >>"$log" 2>&1 &
	for _ in $(seq 50); do
		[[ -s "$pidfile" ]] && return 0
		sleep 0.1
	done
	die "broker did not start (no pid file)"
}

# One Metadata (v4) request over plain TCP: ready when the reply lists at least one broker.
metadata_ok() {
	python3 - "$port" <<'EOF' 2>/dev/null
import socket, struct, sys
port = int(sys.argv[1])
client = b"caracal-kafka-sh"
body = struct.pack(">hhih", 3, 4, 7, len(client)) + client + struct.pack(">i?", -1, False)
with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
    s.sendall(struct.pack(">i", len(body)) + body)
    def read(n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf
    size = struct.unpack(">i", read(4))[0]
    resp = read(size)
corr, _throttle, brokers = struct.unpack(">iii", resp[:12])
sys.exit(0 if corr == 7 and brokers >= 1 else 1)
EOF
}

wait_ready() {
	local timeout="${KAFKA_START_TIMEOUT:-120}" start=$SECONDS
	while ((SECONDS - start < timeout)); do
		if ! alive_pid; then
			tail -n 40 "$log" >&2 || true
			die "broker exited during startup (log: $log)"
		fi
		if metadata_ok; then
			say "ready after $((SECONDS - start)) s"
			return 0
		fi
		sleep 0.5
	done
	tail -n 40 "$log" >&2 || true
	die "broker not ready after ${timeout} s (log: $log)"
}

print_env() {
	echo "CARACAL_TEST_BROKERS=127.0.0.1:$port"
}

command -v python3 >/dev/null || die "python3 is needed for the readiness check"
case "${1:-}" in
install)
	install
	;;
start)
	install
	stop
	if ! port_free "$port" || ! port_free "$cport"; then
		die "127.0.0.1:$port or :$cport is taken by another process"
	fi
	rm -rf "$data"
	mkdir -p "$data"
	write_config
	format_storage
	launch
	wait_ready
	print_env
	;;
restart)
	[[ -f "$data/server.properties" ]] || die "no broker data in $data: run start first"
	stop
	if ! port_free "$port" || ! port_free "$cport"; then
		die "127.0.0.1:$port or :$cport is taken by another process"
	fi
	launch
	wait_ready
	print_env
	;;
stop)
	stop
	;;
kill)
	if pid="$(running_pid)"; then
		say "SIGKILL broker pid $pid"
		kill -KILL "$pid"
		while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
	fi
	rm -f "$pidfile"
	;;
status)
	if ! running_pid >/dev/null || ! metadata_ok; then
		die "not running on 127.0.0.1:$port"
	fi
	print_env
	;;
*)
	echo "usage: $0 install|start|restart|stop|kill|status" >&2
	exit 2
	;;
esac
