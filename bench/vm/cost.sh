#!/usr/bin/env bash
# What lockwatch costs a kernel: a lock-heavy workload (lock-workload.c) in a
# test VM with no tracer, under empty programs on the same hooks (hook-floor,
# the floor of this design), under programs that only keep held-lock stacks
# (hook-floor --held-stack: the least a lockdep-like tracker does), under
# ones that also keep each held lock's call site (--held-sites: lockdep's
# "at:", read as lockwatch reads it) and under
# `lockwatch run` on each backend, all in one boot of Debian's stock kernel;
# then the same workload on the seed tree without and with lockdep, for
# reference. Prints one table.
#
# Usage: bench/vm/cost.sh [--mode icount|wall] [--runs N] [--rounds N]
#            [--backends "auto fentry kprobe"] [--no-lockdep] [--profile]
#            [--out DIR]
#   --mode icount (default): qemu -icount shift=0,sleep=off on one vCPU: the
#          guest clock counts executed instructions (1 ns each), so a run's
#          "seconds" are billions of instructions and repeat exactly on a
#          busy host. Instructions, not cycles: traps and cache misses weigh
#          less than on hardware.
#   --mode wall: ordinary TCG on one vCPU, wall-clock seconds, the median
#          of --runs (noisy: give it 5 or more).
#   --runs    measured runs per configuration (default 3; the table shows
#             the median)
#   --rounds  lock-workload's rounds per run (default 20000)
#   --backends  lockwatch's backends to measure, each with its own floor
#   --no-lockdep  skip the reference boots of the seed and lockdep kernels
#   --profile one more run per backend under `lockwatch run --profile-phases`:
#             what each step of an acquire and a release costs (instructions
#             in icount mode), for finding where the cost goes
#   --baseline  another lockwatch build (the program file, built on this
#             machine), measured in the same boot after this one on each
#             backend (rows baseline-BACKEND): a before/after comparison
#             without the variation between boots (two boots of one build
#             differed by 4 % of lockwatch's added instructions)
#   --out     keep the guest logs there (default: a temporary directory)
# Needs a build with the benchmarks (build/bench/hook-floor,
# build/bench/lock-workload) and the kernels: Debian's (fetched on first
# use) and, for the reference, tools/kernel/build-kernel.sh seed and lockdep
# (built on first use: 30 minutes or more).
# Exit: 0 table printed; 1 a configuration failed; 2 usage; 3 a VM failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
die() { echo "cost.sh: $2" >&2; exit "$1"; }

mode=icount runs=3 rounds=20000 backends="auto fentry kprobe" lockdep=1 out='' profile=0
baseline=
build=${LOCKWATCH_BUILD_DIR:-$root/build}
while (($#)); do
    case $1 in
        --mode|--runs|--rounds|--backends|--baseline|--out)
            (($# >= 2)) || die 2 "$1 needs a value"
            case $1 in
                --mode) mode=$2 ;;
                --runs) runs=$2 ;;
                --rounds) rounds=$2 ;;
                --backends) backends=$2 ;;
                --baseline) baseline=$2 ;;
                --out) out=$2 ;;
            esac
            shift 2 ;;
        --no-lockdep) lockdep=0; shift ;;
        --profile) profile=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die 2 "unknown argument '$1' (see --help)" ;;
    esac
done
[[ $mode == icount || $mode == wall ]] || die 2 "--mode must be icount or wall, not '$mode'"
[[ $runs =~ ^[1-9][0-9]?$ && $rounds =~ ^[1-9][0-9]{0,6}$ ]] || die 2 "--runs and --rounds must be positive numbers"
for backend in $backends; do
    [[ $backend =~ ^(auto|fentry|kprobe)$ ]] || die 2 "--backends: '$backend' is not auto, fentry or kprobe"
done
for tool in userspace/lockwatch bench/hook-floor bench/lock-workload; do
    [[ -x $build/$tool ]] || die 2 "$build/$tool is missing: build first (cmake --build build)"
done
if [[ -n $baseline ]]; then
    [[ -f $baseline && -x $baseline ]] || die 2 "--baseline $baseline: not an executable file"
fi
if [[ -z $out ]]; then
    out=$(mktemp -d "${TMPDIR:-/tmp}/lockwatch-cost.XXXXXX")
else
    mkdir -p -m 0700 "$out"
fi

vm_args=(--accel tcg --smp 1 --timeout 3600 --file "$here/cost-guest.sh:/cost-guest.sh"
         --bin "$build/userspace/lockwatch" --bin "$build/bench/hook-floor"
         --bin "$build/bench/lock-workload")
if [[ $mode == icount ]]; then
    export LOCKWATCH_QEMU_ARGS="${LOCKWATCH_QEMU_ARGS:-} -icount shift=0,sleep=off"
fi
[[ -n $baseline ]] && vm_args+=(--file "$baseline:/usr/bin/lockwatch-baseline")
bpftool=$(command -v bpftool || echo /usr/sbin/bpftool)
[[ -x $bpftool ]] && vm_args+=(--bin "$bpftool")

# boot NAME KERNEL CONFIGS STATS: one guest, its lines kept in $out/NAME.log
boot() {
    echo "cost.sh: booting $1 ($2): $3" >&2
    "$root/tools/vm/run-vm.sh" --kernel "$2" --console "$out/$1.console" "${vm_args[@]}" -- \
        sh /cost-guest.sh "$rounds" "$runs" "$3" "$4" "$profile" >"$out/$1.log" ||
        die 3 "the $1 guest failed (exit $?): see $out/$1.log and $out/$1.console"
    grep '^cost-error' "$out/$1.log" >&2 && failed=1
    return 0
}

failed=0
configs=none
for backend in $backends; do
    configs+=" floor-$backend held-$backend sites-$backend lockwatch-$backend"
    [[ -n $baseline ]] && configs+=" baseline-$backend"
done
boot debian debian "$configs" "$backends"
if ((lockdep)); then
    boot seed "$("$root/tools/kernel/build-kernel.sh" seed | tail -n 1)" none ""
    boot lockdep "$("$root/tools/kernel/build-kernel.sh" lockdep | tail -n 1)" none ""
fi

logs=("$out/debian.log")
((lockdep)) && logs+=("$out/seed.log" "$out/lockdep.log")
awk -v mode="$mode" -v runs="$runs" -v rounds="$rounds" -f "$here/cost-table.awk" "${logs[@]}"
echo "guest logs: $out"
exit $failed
