#!/usr/bin/env bash
# Measures how long `klaxon run` takes to resume after a crash, on the shipped config/ (only the
# broker address, topic and group names and the metrics port are changed).
#
# Usage: scripts/restart-times.sh [KILLS]           (default 5)
#   KAFKA_BROKERS=host:port   use that broker (else the local test broker is started and stopped)
#   KLAXON=path               the binary (default target/debug/klaxon, built if missing)
#   Any KLAXON__* variable in the environment reaches klaxon, e.g. to compare settings:
#     KLAXON__KAFKA__INSTANCE_ID= scripts/restart-times.sh    # static membership off (dynamic)
#
# Each round: klaxon is started, /readyz polled until 200 (partitions assigned and their state
# restored), left running 2 s, SIGKILLed, and started again at once. The first start (a fresh
# group) is reported apart; the restarts are what docs/spec.md §8 "Restart" bounds. A restart that is not
# ready within 120 s counts as 120 s. Prints one line per start and min/median/max of the restarts.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KILLS=${1:-5}
KLAXON=${KLAXON:-$ROOT/target/debug/klaxon}
LIMIT_S=120

if [[ ! -x "$KLAXON" ]]; then
    (cd "$ROOT" && cargo build --quiet)
fi

BROKER_PID=""
PID=""
WORK=$(mktemp -d)
cleanup() {
    if [[ -n "$PID" ]]; then kill -9 "$PID" 2>/dev/null || true; fi
    if [[ -n "$BROKER_PID" ]]; then "$ROOT/scripts/broker.sh" stop "$BROKER_PID" >/dev/null; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
if [[ -z "${KAFKA_BROKERS:-}" ]]; then
    eval "$("$ROOT/scripts/broker.sh" start)"
fi
export KAFKA_BROKERS

prefix="restart-$$-$(date +%s)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

start() {
    KLAXON__KAFKA__GROUP_ID="$prefix" \
        KLAXON__TOPICS__ALERTS="$prefix.alerts" \
        KLAXON__TOPICS__COMMANDS="$prefix.commands" \
        KLAXON__TOPICS__ESCALATIONS="$prefix.escalations" \
        KLAXON__TOPICS__DEAD_LETTER="$prefix.dlq" \
        KLAXON__TOPICS__CHANGELOG="$prefix.state" \
        KLAXON__TOPICS__REPARTITION="$prefix.repartition" \
        KLAXON__METRICS__LISTEN="127.0.0.1:$port" \
        RUST_LOG=info,rdkafka=warn \
        "$KLAXON" run --config "$ROOT/config" --log-format text >>"$WORK/klaxon.log" 2>&1 &
    PID=$!
}

# Seconds (with ms) from now until /readyz answers 200, or LIMIT_S.
time_to_ready() {
    local t0 now
    t0=$(date +%s%N)
    while true; do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then
            break
        fi
        now=$(date +%s%N)
        if ((now - t0 > LIMIT_S * 1000000000)); then
            echo "$LIMIT_S.000"
            return
        fi
        sleep 0.1
    done
    now=$(date +%s%N)
    printf '%d.%03d\n' $(((now - t0) / 1000000000)) $((((now - t0) / 1000000) % 1000))
}

times=()
for ((i = 0; i <= KILLS; i++)); do
    start
    t=$(time_to_ready)
    if ((i == 0)); then
        echo "first start (new group): ${t} s to ready"
    else
        echo "restart $i: ${t} s from start to ready"
        times+=("$t")
    fi
    sleep 2
    kill -9 "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
n=${#times[@]}
min=$(echo "$sorted" | head -1)
max=$(echo "$sorted" | tail -1)
med=$(echo "$sorted" | sed -n "$(((n + 1) / 2))p")
echo "restarts: $n  min ${min} s  median ${med} s  max ${max} s"
grep -h "resumed\|fenced\|FENCED" "$WORK/klaxon.log" | tail -n "$((KILLS + 1))" || true
