#!/usr/bin/env bash
# Fetch Debian's stock cloud kernel (linux-image-<ver>-cloud-amd64-unsigned)
# with `apt-get download` and keep vmlinuz, System.map, config and the
# kernel's own modules (modules/lib/modules/<ver>/, indexed by depmod, for
# run-vm.sh --modules) in
#   ${LOCKWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lockwatch}/kernels/debian-<ver>/
# A cached kernel is reused without network access. The kernel directory is
# the last line printed on stdout.
#
# Usage: tools/vm/fetch-kernel.sh [--version VER]
#   VER: a Debian kernel ABI name such as 6.1.0-56-cloud-amd64 (or 6.1.0-56);
#        default: what linux-image-cloud-amd64 depends on right now.
# Exit: 0 ok, 2 usage, 3 version not resolvable / download or unpack failed,
#   or an unsafe cache directory.
set -euo pipefail

die() { echo "fetch-kernel.sh: $2" >&2; exit "$1"; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lib/safe-files.sh
. "$here/../lib/safe-files.sh"

version=
while (($#)); do
    case $1 in
        --version) (($# >= 2)) || die 2 "--version needs a value"; version=$2; shift 2 ;;
        --version=*) version=${1#*=}; shift ;;
        -h|--help) sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die 2 "unknown argument '$1' (usage: fetch-kernel.sh [--version VER])" ;;
    esac
done

cache=$(lw_cache_root)
# Only root (or whoever runs this) may write where root keeps kernels.
lw_safe_dir "$cache" "$lw_cache_hint" || die 3 "$lw_error"
lw_safe_dir "$cache/kernels" "$lw_cache_hint" || die 3 "$lw_error"

# The ABI name linux-image-cloud-amd64 currently depends on, from apt's
# local lists (no network).
resolve_current() {
    apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: linux-image-\([0-9][^ ]*-cloud-amd64\)\(-unsigned\)\{0,1\}$/\1/p' |
        head -n1
}

# apt-cache takes a second or two; remember its answer until apt's lists change.
memo=$cache/kernels/.debian-current
lw_check_file "$memo" || die 3 "$lw_error"
lists=/var/lib/apt/lists
if [[ -z $version && -s $memo && -d $lists && $memo -nt $lists ]]; then
    version=$(<"$memo")
fi
if [[ -z $version ]]; then
    command -v apt-cache >/dev/null 2>&1 || die 3 "apt-cache not found: give --version or run on Debian"
    version=$(resolve_current || true)
    if [[ -z $version ]]; then
        # Package lists may be missing on a fresh machine: refresh once.
        if ((EUID == 0)); then
            apt-get update -qq >/dev/null 2>&1 || true
            version=$(resolve_current || true)
        fi
    fi
    [[ -n $version ]] || die 3 "cannot resolve the Debian cloud kernel version (apt-cache depends linux-image-cloud-amd64 gave nothing; run apt-get update or pass --version)"
    printf '%s\n' "$version" | lw_write_file "$memo" || die 3 "$lw_error"
fi
[[ $version == *-cloud-amd64 ]] || version=$version-cloud-amd64
[[ $version =~ ^[0-9][0-9a-z.+~-]*$ ]] || die 2 "bad kernel version '$version'"

dir=$cache/kernels/debian-$version
lw_check_dir "$dir" "$lw_cache_hint" || die 3 "$lw_error"
complete() {
    [[ -s $1/vmlinuz && -s $1/System.map && -s $1/config && -s $1/modules/lib/modules/$version/modules.dep ]]
}
if complete "$dir"; then
    echo "$dir"
    exit 0
fi

for tool in apt-get dpkg-deb tar depmod; do
    command -v "$tool" >/dev/null 2>&1 || die 3 "$tool not found: cannot fetch the Debian kernel"
done

work=$(mktemp -d "$cache/kernels/.fetch-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT

pkg=linux-image-$version-unsigned
echo "fetch-kernel.sh: downloading $pkg" >&2
# As root apt drops privileges to _apt, which cannot write here; download as
# the calling user instead.
if ! (cd "$work" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$pkg") >"$work/log" 2>&1; then
    err=$(grep -E '^E: ' "$work/log" | head -n1 || true)
    die 3 "apt-get download $pkg failed${err:+: $err}"
fi
debs=("$work"/*.deb)
[[ -f ${debs[0]} ]] || die 3 "downloading $pkg produced no .deb"
if ! dpkg-deb --fsys-tarfile "${debs[0]}" |
        tar -x -C "$work" --wildcards './boot/vmlinuz-*' './boot/System.map-*' './boot/config-*' \
            "./lib/modules/$version" 2>>"$work/log"; then
    die 3 "unpacking ${debs[0]##*/} failed (no boot/vmlinuz-$version inside?)"
fi
mkdir -p "$work/out"
for f in vmlinuz System.map config; do
    [[ -s $work/boot/$f-$version ]] || die 3 "${debs[0]##*/} has no boot/$f-$version"
    mv "$work/boot/$f-$version" "$work/out/$f"
done
# The package leaves modules.dep to the installing system's depmod.
mkdir -p "$work/out/modules/lib"
mv "$work/lib/modules" "$work/out/modules/lib/modules"
depmod -b "$work/out/modules" -F "$work/out/System.map" "$version" 2>>"$work/log" ||
    die 3 "depmod failed for the modules of $version: $(tail -n1 "$work/log")"
dpkg-deb -f "${debs[0]}" Version >"$work/out/package-version"
# Another fetch may have finished meanwhile: keep whichever landed first.
complete "$dir" || {
    rm -rf "$dir"
    mv -T "$work/out" "$dir" 2>/dev/null || [[ -s $dir/vmlinuz ]] || die 3 "cannot create $dir"
}
echo "$dir"
