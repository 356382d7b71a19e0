#!/usr/bin/env bash
# Fetch Debian's stock cloud kernel (linux-image-<ver>-cloud-amd64-unsigned)
# with `apt-get download` and keep vmlinuz, System.map, config and the
# kernel's own modules (modules/lib/modules/<ver>/, indexed by depmod, for
# run-vm.sh --modules) in
#   ${LOCKWATCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lockwatch}/kernels/debian-<ver>/
# with the package itself (package.deb) and its SHA256 (package.sha256). A
# cached kernel is reused without network access. The kernel directory is
# the last line printed on stdout.
#
# Usage: tools/vm/fetch-kernel.sh [--version VER]
#   VER: a Debian kernel ABI name such as 6.1.0-56-cloud-amd64 (or 6.1.0-56);
#        default: what linux-image-cloud-amd64 depends on right now.
# Exit: 0 ok, 2 usage, 3 version not resolvable, download, unpack or
#   verification failed, or an unsafe cache directory.
#
# Verification: a download must have the SHA256 that apt's metadata (the
# signed Packages index) gives for that exact package version; that hash is
# kept. Every later use checks package.deb against it again and every
# unpacked file against the package's own md5sums, so a cached kernel that
# changed is an error, never booted. The kept hash, not apt's metadata, is
# the reference then: asking apt takes seconds, and apt forgets a version
# once its lists move on, which would strand a cached --version kernel.
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
        -h|--help) sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
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
pkg=linux-image-$version-unsigned
unpacked() {
    [[ -s $1/vmlinuz && -s $1/System.map && -s $1/config && -s $1/modules/lib/modules/$version/modules.dep ]]
}
packaged() {
    [[ -s $1/package.deb && -s $1/package.sha256 ]]
}

# Checks the files unpacked in directory $2 against the md5sums of package
# $1: the package's boot/<file>-<ver> is <file> there, its lib/modules/ is
# under modules/, and nothing else may be there but depmod's modules.*
# indexes. Prints why not, in one line, and fails.
check_unpacked() {
    local deb=$1 d=$2 sums failed extra
    sums=$(dpkg-deb --ctrl-tarfile "$deb" 2>/dev/null | tar -xO ./md5sums 2>/dev/null) || {
        echo "${deb##*/} has no md5sums to check the unpacked files against"
        return 1
    }
    sums=$(awk -v v="$version" '
        $2 == "boot/vmlinuz-" v || $2 == "boot/System.map-" v || $2 == "boot/config-" v {
            print $1 "  " substr($2, 6, length($2) - 6 - length(v)); next }
        index($2, "lib/modules/" v "/") == 1 { print $1 "  modules/" $2 }' <<<"$sums")
    [[ $(grep -c -E '  (vmlinuz|System\.map|config)$' <<<"$sums") == 3 ]] || {
        echo "${deb##*/} does not list boot/vmlinuz, System.map and config of $version"
        return 1
    }
    if ! failed=$(cd "$d" && LC_ALL=C md5sum --check --quiet --strict 2>&1 <<<"$sums"); then
        failed=$(sed -n 's/: FAILED.*//p' <<<"$failed" | head -n1)
        echo "${failed:-a file} in $d does not match ${deb##*/}"
        return 1
    fi
    # A module the package does not have was put there.
    extra=$(cd "$d" && LC_ALL=C comm -23 <(find modules -type f | LC_ALL=C sort) \
        <(cut -c35- <<<"$sums" | LC_ALL=C sort) |
        { grep -v -E '^modules/lib/modules/[^/]+/modules\.[a-z.]+$' || true; } | head -n1)
    if [[ -n $extra ]]; then
        echo "$d/$extra is not part of ${deb##*/}"
        return 1
    fi
    if [[ -n $(find "$d" -type l -print -quit) ]]; then
        echo "$d holds a symbolic link; a package never leaves one there"
        return 1
    fi
}

# Checks a cached kernel before it is used: package.deb against the SHA256
# kept when apt's metadata vouched for it, then the unpacked files.
verify_entry() {
    local want got why
    want=$(cut -d' ' -f1 <"$dir/package.sha256")
    got=$(sha256sum <"$dir/package.deb" | cut -d' ' -f1)
    [[ $got == "$want" ]] ||
        die 3 "the cached $dir/package.deb has SHA256 $got, not the $want verified when it was fetched; remove $dir to fetch it again"
    why=$(check_unpacked "$dir/package.deb" "$dir") ||
        die 3 "the cached kernel changed since it was fetched: $why; remove $dir to fetch it again"
}

if unpacked "$dir" && packaged "$dir"; then
    verify_entry
    echo "$dir"
    exit 0
fi

for tool in apt-get apt-cache dpkg-deb tar depmod md5sum sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || die 3 "$tool not found: cannot fetch the Debian kernel"
done

work=$(mktemp -d "$cache/kernels/.fetch-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "fetch-kernel.sh: downloading $pkg" >&2
# As root apt drops privileges to _apt, which cannot write here; download as
# the calling user instead.
if ! (cd "$work" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$pkg") >"$work/log" 2>&1; then
    err=$(grep -E '^E: ' "$work/log" | head -n1 || true)
    die 3 "apt-get download $pkg failed${err:+: $err}"
fi
debs=("$work"/*.deb)
[[ -f ${debs[0]} ]] || die 3 "downloading $pkg produced no .deb"
deb=$work/package.deb
mv "${debs[0]}" "$deb"
pkg_version=$(dpkg-deb -f "$deb" Version 2>/dev/null) || die 3 "the downloaded $pkg is not a Debian package"
# Every SHA256 apt's metadata has for this exact version (one per archive
# that carries it); the download must have one of them.
mapfile -t known < <(apt-cache show "$pkg=$pkg_version" 2>/dev/null | sed -n 's/^SHA256: *\([0-9a-f]\{64\}\)$/\1/p')
((${#known[@]})) || die 3 "apt's metadata has no SHA256 for $pkg $pkg_version (run apt-get update and try again)"
sha=$(sha256sum <"$deb" | cut -d' ' -f1)
[[ " ${known[*]} " == *" $sha "* ]] ||
    die 3 "the downloaded $pkg $pkg_version has SHA256 $sha, not the ${known[0]} of apt's metadata: a corrupt or tampered download, not used (run apt-get update and try again)"
printf '%s  package.deb\n' "$sha" >"$work/package.sha256"

if unpacked "$dir"; then
    # Unpacked by an older fetch-kernel.sh, which kept no package: check it
    # against the package now, and keep the package for the next checks.
    why=$(check_unpacked "$deb" "$dir") ||
        die 3 "the cached kernel does not match $pkg $pkg_version: $why; remove $dir to fetch it again"
    mv -fT "$deb" "$dir/package.deb"
    mv -fT "$work/package.sha256" "$dir/package.sha256"
    echo "$dir"
    exit 0
fi

if ! dpkg-deb --fsys-tarfile "$deb" |
        tar -x -C "$work" --wildcards './boot/vmlinuz-*' './boot/System.map-*' './boot/config-*' \
            "./lib/modules/$version" 2>>"$work/log"; then
    die 3 "unpacking $pkg failed (no boot/vmlinuz-$version inside?)"
fi
mkdir -p "$work/out"
for f in vmlinuz System.map config; do
    [[ -s $work/boot/$f-$version ]] || die 3 "$pkg has no boot/$f-$version"
    mv "$work/boot/$f-$version" "$work/out/$f"
done
# The package leaves modules.dep to the installing system's depmod.
mkdir -p "$work/out/modules/lib"
mv "$work/lib/modules" "$work/out/modules/lib/modules"
depmod -b "$work/out/modules" -F "$work/out/System.map" "$version" 2>>"$work/log" ||
    die 3 "depmod failed for the modules of $version: $(tail -n1 "$work/log")"
printf '%s\n' "$pkg_version" >"$work/out/package-version"
mv "$deb" "$work/out/package.deb"
mv "$work/package.sha256" "$work/out/package.sha256"
why=$(check_unpacked "$work/out/package.deb" "$work/out") || die 3 "unpacking $pkg went wrong: $why"
# Another fetch may have finished meanwhile: keep whichever landed first.
if ! { unpacked "$dir" && packaged "$dir"; }; then
    rm -rf "$dir"
    mv -T "$work/out" "$dir" 2>/dev/null || [[ -s $dir/vmlinuz ]] || die 3 "cannot create $dir"
fi
echo "$dir"
