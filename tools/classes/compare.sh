#!/usr/bin/env bash
# How lockwatch's classes of locks agree with lockdep's on the lockdep kernel
# (built with modules: tools/kernel/lockdep.config), under workload.sh: a
# virtio-net NIC on a bridge, a loop device with ext4, all modules.
#
#   compare.sh [--before] [--lockwatch PATH] [--kernel lockdep|BZIMAGE]
#
# Prints lockwatch's class comparison table: lockdep classes compared, how
# many map one-to-one to an address class, how many are split over several,
# how many address classes merge several lockdep classes, and how many
# address classes fell back to the first acquirer's call site; then each
# split and merge among the classes in edges. --before also runs the same
# workload with --no-alloc-sites (generic kmalloc objects keyed by their
# first acquirer's call site, the rule before allocation sites) and prints
# that table first. Exit: lockwatch vm's status of the last run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lockwatch=${LOCKWATCH_BINARY:-lockwatch}
kernel=lockdep before=0
while (($#)); do
    case $1 in
        --before) before=1; shift ;;
        --lockwatch) lockwatch=$2; shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        -h|--help) sed -n '2,15s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "compare.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
bins=()
for tool in mkfs.ext4 stress-ng; do
    path=$(PATH=$PATH:/usr/sbin:/sbin command -v "$tool" || true)
    [[ -n $path ]] || { echo "compare.sh: $tool not found (tools/setup.sh)" >&2; exit 2; }
    bins+=(--bin "$path")
done
# The workload's modules, where the kernel has them (the lockdep kernel
# does; a bzImage given without modules/ beside it gets the rest).
modules=(--modules virtio_pci,virtio_net,loop,ext4,bridge)
if [[ $kernel != lockdep && ! -d $(dirname "$kernel")/modules ]]; then
    modules=()
fi
out=$(mktemp -d "${TMPDIR:-/tmp}/lockwatch-classes.XXXXXX")
trap 'rm -rf "$out"' EXIT

# One run; its table (and the cost lines) to stdout.
run() { # label, extra lockwatch run arguments...
    local label=$1 status=0
    shift
    local args=()
    for a in "$@"; do args+=("--run-arg=$a"); done
    "$lockwatch" vm --kernel "$kernel" --net "${modules[@]}" "${bins[@]}" "${args[@]}" --timeout 900 \
        -- sh -c "$(cat "$here/workload.sh")" >"$out/findings" 2>"$out/guest" || status=$?
    echo "== $label (lockwatch vm exit $status)"
    grep '^classes-workload: ' "$out/guest" | grep -v ': done' || true
    grep -E '^(class comparison|  (all classes|classes in edges|split:|merged:|kmalloc classes|findings with|graph:)|    (raw_tp|all programs|[a-z_]+: ))' \
        "$out/guest" || true
    grep -q 'classes-workload: done' "$out/guest" || { echo "(workload did not finish)"; tail -n 20 "$out/guest"; }
    return "$status"
}
if ((before)); then
    run "before: first acquirer's call site (--no-alloc-sites)" --no-alloc-sites || true
fi
run "allocation sites"
