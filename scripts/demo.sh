#!/usr/bin/env bash
# The demo: installs and starts a local Kafka-protocol broker (or uses $KAFKA_BROKERS), builds
# Klaxon, and runs `klaxon demo`: the live service on a simulated clock (480x real time: the
# example day in three minutes, with the real 1 h / 2 h / 4 h rules), fed examples/day.jsonl,
# printing escalations as they arrive. Ctrl-C stops everything it started.
# Extra arguments go to `klaxon demo` (e.g. --speed 240).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --quiet
BROKER_PID=""
cleanup() { scripts/broker.sh stop "${BROKER_PID:-}" >/dev/null 2>&1 || true; }
trap cleanup EXIT
eval "$(scripts/broker.sh start)"
export KAFKA_BROKERS
target/debug/klaxon demo "$@"
