#!/usr/bin/env bash
# The end-to-end load harness: starts the local broker (or uses $KAFKA_BROKERS), builds Klaxon in
# release mode and runs `klaxon load-test` (arguments are passed on, e.g. --alerts 200000).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --locked --quiet
BROKER_PID=""
cleanup() { scripts/broker.sh stop "${BROKER_PID:-}" >/dev/null 2>&1 || true; }
trap cleanup EXIT
eval "$(scripts/broker.sh start)"
export KAFKA_BROKERS
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%dT%H:%MZ)"
target/release/klaxon load-test "$@"
