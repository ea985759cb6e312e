#!/usr/bin/env bash
# Prometheus Alertmanager for the delivery tests (tests/delivery.rs) and the demo.
#
# Usage:
#   scripts/alertmanager.sh [path]      prints the path of the alertmanager binary
#   scripts/alertmanager.sh install     extracts Debian's prometheus-alertmanager package into
#                                       .tools/alertmanager (idempotent) and prints the path
#
# Lookup order: $ALERTMANAGER_BIN, then PATH, then .tools/alertmanager/usr/bin; when none has it,
# Debian's `prometheus-alertmanager` package is downloaded (apt-get download: nothing is installed
# system-wide and no service is started) and extracted into .tools/alertmanager (git-ignored).
# Debian's build reads its default notification template from the fixed path
# /usr/share/prometheus/alertmanager/default.tmpl (no flag moves it); when that file is missing
# the script copies the package's templates there (needs root, as CI and the dev machines run),
# which is exactly what installing the package would put there. Progress goes to stderr; stdout is
# only the path. Exits non-zero, with the reason, when the binary cannot be obtained.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
LOCAL="$TOOLS/alertmanager/usr/bin"
PKG=prometheus-alertmanager

log() { echo "alertmanager.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}
# shellcheck source=scripts/lib/debian.sh
. "$ROOT/scripts/lib/debian.sh"

install_local() {
    install_lock alertmanager
    if [[ -x "$LOCAL/prometheus-alertmanager" ]]; then
        return 0
    fi
    deb_extract "$PKG" alertmanager
    [[ -x "$LOCAL/prometheus-alertmanager" ]] ||
        die "no usr/bin/prometheus-alertmanager in Debian's $PKG package"
}

find_bin() {
    if [[ -n "${ALERTMANAGER_BIN:-}" ]]; then
        [[ -x "$ALERTMANAGER_BIN" ]] || die "$ALERTMANAGER_BIN (from the environment) is not an executable"
        echo "$ALERTMANAGER_BIN"
    elif command -v prometheus-alertmanager >/dev/null 2>&1; then
        command -v prometheus-alertmanager
    elif command -v alertmanager >/dev/null 2>&1; then
        command -v alertmanager
    elif [[ -x "$LOCAL/prometheus-alertmanager" ]]; then
        echo "$LOCAL/prometheus-alertmanager"
    else
        log "alertmanager not found; extracting it from Debian's $PKG package into $TOOLS/alertmanager"
        install_local
        echo "$LOCAL/prometheus-alertmanager"
    fi
}

TEMPLATES=/usr/share/prometheus/alertmanager
# The default template where Debian's binary looks for it (see above).
ensure_templates() {
    local bin="$1"
    [[ "$bin" == "$LOCAL/prometheus-alertmanager" ]] || return 0
    [[ -f "$TEMPLATES/default.tmpl" ]] && return 0
    if mkdir -p "$TEMPLATES" 2>/dev/null && cp "$TOOLS/alertmanager$TEMPLATES"/*.tmpl "$TEMPLATES"/; then
        log "copied Debian's notification templates to $TEMPLATES"
    else
        die "$TEMPLATES/default.tmpl is missing and cannot be written (run once as root, or install prometheus-alertmanager)"
    fi
}

case "${1:-path}" in
path)
    bin=$(find_bin)
    ensure_templates "$bin"
    echo "$bin"
    ;;
install)
    [[ -x "$LOCAL/prometheus-alertmanager" ]] || install_local
    ensure_templates "$LOCAL/prometheus-alertmanager"
    echo "$LOCAL/prometheus-alertmanager"
    ;;
*)
    sed -n '/^# Usage:/,/^#$/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
