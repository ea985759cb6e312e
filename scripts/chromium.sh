#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the web board's browser tests (tests/desk_board.rs).
#
# Usage:
#   scripts/chromium.sh [paths]     prints two lines: CHROMIUM=<browser> and CHROMEDRIVER=<driver>,
#                                   installing Debian's packages first if they are missing
#   scripts/chromium.sh install     idempotent install only; prints the same two lines
#
# Lookup order: $CHROMIUM_BIN / $CHROMEDRIVER_BIN, then PATH (chromium, chromedriver). When either
# is missing, Debian's `chromium` and `chromium-driver` packages (and `fonts-wqy-microhei`, a
# CJK font) are installed with apt-get (as
# root: CI runs as root on a fresh machine; `apt-get update` runs once if the package lists are
# stale). The browser and the driver come from the same source package, so their versions always
# match — the usual cause of "session not created" with a separately downloaded chromedriver.
# Nothing is fetched at test run time once installed. Progress goes to stderr; stdout is only the
# two lines. Exits non-zero, with the reason, when they cannot be obtained.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/.tools"
export DEBIAN_FRONTEND=noninteractive

log() { echo "chromium.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

# A CJK font too (5 MB): the board is bilingual and its screenshots must show the Chinese labels,
# not empty boxes. Checked through its package, the one thing here not found on PATH.
PACKAGES=(chromium chromium-driver fonts-wqy-microhei)

have_font() {
    # shellcheck disable=SC2016  # dpkg-query's own format string, not an expansion
    dpkg-query -W -f='${Status}' fonts-wqy-microhei 2>/dev/null | grep -q 'install ok installed'
}

have_both() {
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
}

have_all() {
    have_both && { ! command -v dpkg-query >/dev/null 2>&1 || have_font; }
}

install_packages() {
    command -v apt-get >/dev/null 2>&1 ||
        die "not a Debian-like system (no apt-get): install Chromium and its chromedriver, or set CHROMIUM_BIN and CHROMEDRIVER_BIN"
    [[ $(id -u) -eq 0 ]] ||
        die "chromium/chromedriver missing and not root: run 'apt-get install chromium chromium-driver' as root, or set CHROMIUM_BIN and CHROMEDRIVER_BIN"
    mkdir -p "$TOOLS"
    # One installer at a time (tests run in parallel): wait, then see if another one finished.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$TOOLS/chromium.lock"
        flock 9
        if have_all; then
            return 0
        fi
    fi
    log "installing Debian's ${PACKAGES[*]} (apt-get)"
    if ! apt-get install -y --no-install-recommends "${PACKAGES[@]}" >&2; then
        log "apt-get install failed; running apt-get update once"
        apt-get update >&2 || die "apt-get update failed"
        apt-get install -y --no-install-recommends "${PACKAGES[@]}" >&2 ||
            die "apt-get install ${PACKAGES[*]} failed"
    fi
    have_both || die "chromium and chromedriver are still not on PATH after apt-get install"
}

print_paths() {
    local browser="${CHROMIUM_BIN:-}" driver="${CHROMEDRIVER_BIN:-}"
    [[ -n "$browser" ]] || browser=$(command -v chromium)
    [[ -n "$driver" ]] || driver=$(command -v chromedriver)
    [[ -x "$browser" ]] || die "$browser is not an executable"
    [[ -x "$driver" ]] || die "$driver is not an executable"
    echo "CHROMIUM=$browser"
    echo "CHROMEDRIVER=$driver"
}

case "${1:-paths}" in
paths | install)
    if [[ -z "${CHROMIUM_BIN:-}" || -z "${CHROMEDRIVER_BIN:-}" ]] && ! have_all; then
        install_packages
    fi
    print_paths
    ;;
*)
    sed -n '/^# Usage:/,/^#$/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
