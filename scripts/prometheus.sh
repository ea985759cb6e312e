#!/usr/bin/env bash
# Prometheus binaries for the tests and the deployment checks.
#
# Usage:
#   scripts/prometheus.sh [server]      prints the path of the Prometheus server binary
#   scripts/prometheus.sh promtool      prints the path of promtool
#   scripts/prometheus.sh install       extracts Debian's prometheus package into .tools/prometheus
#                                       (idempotent) and prints the server's path
#
# Lookup order: $PROMETHEUS_BIN / $PROMTOOL_BIN, then PATH, then .tools/prometheus/usr/bin; when
# none has it, Debian's `prometheus` package is downloaded (apt-get download: nothing is installed
# system-wide and no Prometheus service is started) and extracted into .tools/prometheus
# (git-ignored). Progress goes to stderr; stdout is only the path. Exits non-zero, with the
# reason, when the binary cannot be obtained.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
LOCAL="$TOOLS/prometheus/usr/bin"

log() { echo "prometheus.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}
# shellcheck source=scripts/lib/debian.sh
. "$ROOT/scripts/lib/debian.sh"

# Extracts Debian's prometheus package into .tools/prometheus (server and promtool).
install_local() {
    install_lock prometheus
    if [[ -x "$LOCAL/prometheus" && -x "$LOCAL/promtool" ]]; then
        return 0
    fi
    deb_extract prometheus prometheus
    [[ -x "$LOCAL/prometheus" && -x "$LOCAL/promtool" ]] ||
        die "no usr/bin/prometheus and usr/bin/promtool in Debian's prometheus package"
}

# find NAME ENV_VALUE: prints the path of NAME, installing it if needed.
find_bin() {
    local name="$1" from_env="$2"
    if [[ -n "$from_env" ]]; then
        [[ -x "$from_env" ]] || die "$from_env (from the environment) is not an executable"
        echo "$from_env"
    elif command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
    elif [[ -x "$LOCAL/$name" ]]; then
        echo "$LOCAL/$name"
    else
        log "$name not found; extracting it from Debian's prometheus package into $TOOLS/prometheus"
        install_local
        echo "$LOCAL/$name"
    fi
}

case "${1:-server}" in
server) find_bin prometheus "${PROMETHEUS_BIN:-}" ;;
promtool) find_bin promtool "${PROMTOOL_BIN:-}" ;;
install)
    if [[ ! -x "$LOCAL/prometheus" || ! -x "$LOCAL/promtool" ]]; then
        install_local
    fi
    echo "$LOCAL/prometheus"
    ;;
*)
    sed -n '/^# Usage:/,/^#$/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
