#!/usr/bin/env bash
# Every check and test: formatting, clippy, unit, property, golden and CLI tests, the Kafka
# integration tests against a real broker (started here by scripts/broker.sh unless
# KAFKA_BROKERS names one), a real Prometheus scraping a running Klaxon (tests/deploy_observability.rs;
# scripts/prometheus.sh provides it), a real Alertmanager receiving pages (tests/delivery.rs;
# scripts/alertmanager.sh provides it), the duty board in a real headless Chromium
# (tests/desk_board.rs; scripts/chromium.sh installs Debian's chromium and chromium-driver), and
# the deployment checks (promtool, dashboards, manifests).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

BROKER_PID=""
cleanup() { scripts/broker.sh stop "${BROKER_PID:-}" >/dev/null 2>&1 || true; }
trap cleanup EXIT
eval "$(scripts/broker.sh start)"
export KAFKA_BROKERS

scripts/prometheus.sh >/dev/null # Prometheus for tests/deploy_observability.rs (installed once)
scripts/alertmanager.sh >/dev/null # Alertmanager for tests/delivery.rs (installed once)
scripts/chromium.sh >/dev/null   # headless Chromium + chromedriver for tests/desk_board.rs (installed once)
cargo test --locked --workspace --all-targets # the service crate and crates/klaxon-core
scripts/check-deploy.sh
