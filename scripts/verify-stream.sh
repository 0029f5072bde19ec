#!/usr/bin/env bash
# Check stream files with Xen's own checker, tools/python/scripts/verify-stream-v2.
#
#   scripts/verify-stream.sh [-f xl|libxl|libxc] [-v] FILE...
#
# The checker comes from Debian's xen-utils-4.17 package, which is downloaded (never
# installed) and unpacked into a cache directory outside the repository:
#   ${XI_XEN_UTILS:-$HOME/.cache/xi/xen-utils}
# (package name override: XI_XEN_UTILS_PKG). Nothing of it is copied into the project.
#
# Exit status: 0 every file passed; 1 some file failed; 2 bad usage;
# 77 the checker could not be obtained (callers treat this as "skip").
set -u

usage() {
    echo "usage: $0 [-f xl|libxl|libxc] [-v] FILE..." >&2
    exit 2
}

format=xl
verbose=
while getopts "f:vh" opt; do
    case "$opt" in
        f) format="$OPTARG" ;;
        v) verbose=-v ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
case "$format" in xl|libxl|libxc) ;; *) usage ;; esac

cache="${XI_XEN_UTILS:-$HOME/.cache/xi/xen-utils}"
pkg="${XI_XEN_UTILS_PKG:-xen-utils-4.17}"

find_checker() {
    ls "$cache"/usr/lib/xen-*/bin/verify-stream-v2 2>/dev/null | head -n 1
}

unavailable() {
    echo "verify-stream: checker unavailable: $*" >&2
    exit 77
}

checker="$(find_checker)"
if [ -z "$checker" ]; then
    command -v apt-get >/dev/null 2>&1 || unavailable "no apt-get to fetch $pkg"
    command -v dpkg-deb >/dev/null 2>&1 || unavailable "no dpkg-deb to unpack $pkg"
    mkdir -p "$(dirname "$cache")" || unavailable "cannot create $(dirname "$cache")"
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/xi-xen-utils.XXXXXX")" || unavailable "mktemp failed"
    trap 'rm -rf "$tmp"' EXIT
    if ! (cd "$tmp" && apt-get download "$pkg") >"$tmp/log" 2>&1; then
        # The package lists may be stale or missing; refresh them if we can.
        if [ "$(id -u)" = 0 ]; then
            apt-get update >>"$tmp/log" 2>&1
            (cd "$tmp" && apt-get download "$pkg") >>"$tmp/log" 2>&1 ||
                unavailable "apt-get download $pkg failed: $(tail -n 1 "$tmp/log")"
        else
            unavailable "apt-get download $pkg failed (try apt-get update): $(tail -n 1 "$tmp/log")"
        fi
    fi
    mkdir -p "$tmp/root"
    dpkg-deb -x "$tmp"/*.deb "$tmp/root" || unavailable "cannot unpack $pkg"
    # Publish atomically: concurrent callers may race here.
    if [ ! -d "$cache" ]; then
        mv "$tmp/root" "$cache" 2>/dev/null || true
    fi
    checker="$(find_checker)"
    [ -n "$checker" ] || unavailable "verify-stream-v2 not found in $pkg"
fi
command -v python3 >/dev/null 2>&1 || unavailable "python3 not found"
pylib="$(dirname "$(dirname "$checker")")/lib/python"

rc=0
for f in "$@"; do
    # verify-stream-v2 takes a bare number as a file descriptor.
    case "$f" in */*) path="$f" ;; *) path="./$f" ;; esac
    if [ ! -r "$path" ]; then
        echo "FAILED: $f: cannot read" >&2
        rc=1
        continue
    fi
    if PYTHONPATH="$pylib" python3 "$checker" -f "$format" $verbose -i "$path"; then
        echo "ok: $f"
    else
        echo "FAILED: $f" >&2
        rc=1
    fi
done
exit $rc
