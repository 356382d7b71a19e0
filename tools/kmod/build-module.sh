#!/usr/bin/env bash
# Build the lock-scenario test module (lockwatch_scenarios.ko) for Debian's
# stock cloud kernel, the one tools/vm/run-vm.sh --kernel debian boots.
#
#   build-module.sh [--version VER] --out DIR
#
# VER defaults to the version tools/vm/fetch-kernel.sh resolves. The build
# needs that kernel's headers (linux-headers-VER, from Debian's archive); as
# root they are installed when missing. The last line on stdout is the .ko.
set -euo pipefail

die() { echo "build-module.sh: $2" >&2; exit "$1"; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version= out=
while (($#)); do
    case $1 in
        --version) (($# >= 2)) || die 2 "--version needs a value"; version=$2; shift 2 ;;
        --out) (($# >= 2)) || die 2 "--out needs a directory"; out=$2; shift 2 ;;
        -h|--help) sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die 2 "unknown argument '$1' (usage: build-module.sh [--version VER] --out DIR)" ;;
    esac
done
[[ -n $out ]] || die 2 "--out DIR is required"
if [[ -z $version ]]; then
    dir=$("$here/../vm/fetch-kernel.sh") || die 3 "cannot resolve Debian's kernel (fetch-kernel.sh failed)"
    version=${dir##*/debian-}
fi
[[ $version =~ ^[0-9][0-9a-z.+~-]*$ ]] || die 2 "bad kernel version '$version'"

headers=/usr/src/linux-headers-$version
if [[ ! -f $headers/Makefile ]]; then
    ((EUID == 0)) || die 3 "$headers missing: apt-get install linux-headers-$version"
    echo "build-module.sh: installing linux-headers-$version" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "linux-headers-$version" >/dev/null 2>&1 ||
        die 3 "cannot install linux-headers-$version (apt-get install failed)"
fi

mkdir -p "$out"
cp "$here/lockwatch_scenarios.c" "$here/Kbuild" "$out/"
log=$out/build.log
if ! make -C "$headers" M="$(cd "$out" && pwd)" modules >"$log" 2>&1; then
    grep -m1 -E 'error|Error' "$log" >&2 || true
    die 3 "module build failed; log: $log"
fi
echo "$(cd "$out" && pwd)/lockwatch_scenarios.ko"
