#!/usr/bin/env bash
# Regenerates vmlinux.h, the CO-RE header the BPF programs compile against,
# from the BTF of Debian's stock cloud kernel (the production kernel lockwatch
# targets first). CO-RE relocations make the result work on other kernels.
#
#   tools/gen-vmlinux-h.sh [--version KERNEL_VERSION]   # writes ./vmlinux.h
#   tools/gen-vmlinux-h.sh --btf FILE                   # any ELF or raw BTF file
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
btf_source=""
fetch_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --btf) btf_source=$2; shift 2 ;;
        --version) fetch_args=(--version "$2"); shift 2 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "gen-vmlinux-h: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

command -v bpftool >/dev/null || PATH=$PATH:/usr/sbin
command -v bpftool >/dev/null || { echo "gen-vmlinux-h: bpftool not found (apt-get install bpftool)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -z "$btf_source" ]; then
    kdir=$("$top/tools/vm/fetch-kernel.sh" "${fetch_args[@]}" | tail -n 1)
    src=/usr/src/linux-source-6.1.tar.xz
    [ -r "$src" ] || { echo "gen-vmlinux-h: $src missing (apt-get install linux-source-6.1): it has scripts/extract-vmlinux" >&2; exit 1; }
    tar -xJf "$src" --wildcards '*/scripts/extract-vmlinux' -O > "$tmp/extract-vmlinux"
    sh "$tmp/extract-vmlinux" "$kdir/vmlinuz" > "$tmp/vmlinux"
    btf_source=$tmp/vmlinux
fi

bpftool btf dump file "$btf_source" format c > "$tmp/vmlinux.h"
mv "$tmp/vmlinux.h" "$top/vmlinux.h"
echo "gen-vmlinux-h: wrote $top/vmlinux.h ($(wc -l < "$top/vmlinux.h") lines)"
