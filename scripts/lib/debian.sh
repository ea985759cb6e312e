# shellcheck shell=bash
# Shared by scripts/prometheus.sh and scripts/alertmanager.sh: fetch one of Debian's packages and
# unpack it under .tools/ without installing it system-wide (no service is started, nothing else on
# the machine changes). Source it after setting TOOLS and defining `log` and `die`.

export DEBIAN_FRONTEND=noninteractive

# install_lock NAME: one installer at a time (tests run in parallel). Returns once the lock on
# .tools/NAME.lock is held; the caller then checks whether another installer already finished.
install_lock() {
    mkdir -p "$TOOLS"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$TOOLS/$1.lock"
        flock 9
    fi
}

# deb_extract PACKAGE DIR: downloads Debian's PACKAGE (running `apt-get update` once, as root, if
# the package lists are stale) and extracts it into .tools/DIR, replacing what was there.
deb_extract() {
    local pkg="$1" dir="$2"
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
        die "not a Debian-like system (no apt-get/dpkg-deb): install $pkg yourself and put its binaries on PATH"
    fi
    local dl="$TOOLS/$dir-deb"
    rm -rf "$dl"
    mkdir -p "$dl"
    if ! (cd "$dl" && apt-get download "$pkg" >&2); then
        if [[ $(id -u) -eq 0 ]]; then
            log "apt-get download failed; running apt-get update once"
            apt-get update >&2 || die "apt-get update failed"
            (cd "$dl" && apt-get download "$pkg" >&2) || die "apt-get download $pkg failed"
        else
            die "apt-get download $pkg failed (run 'apt-get update' as root first)"
        fi
    fi
    rm -rf "${TOOLS:?}/$dir"
    dpkg-deb -x "$dl/${pkg}"_*.deb "$TOOLS/$dir" || die "dpkg-deb -x $pkg failed"
    rm -rf "$dl"
}
