#!/usr/bin/env bash
# Soak lockwatch's attach and detach in one test VM boot: start `lockwatch
# run`, wait until it is attached, let a module workload run, stop it with
# SIGINT, SIGTERM or SIGKILL in turn, check that nothing of it is left in the
# kernel, and again, for a number of cycles or minutes. A watchdog in the
# guest dumps every task's kernel stack (sysrq w and l) and lockwatch's own
# state when a phase overruns; one on the host asks qemu for the same when
# the guest stops printing altogether.
#
# Usage: tools/soak/soak.sh [--short|--long] [--cycles N] [--minutes M]
#            [--work S] [--kernel debian|BZIMAGE|DIR] [--smp N] [--out DIR]
#            [--lockwatch PATH] [--bpftool PATH] [--stress-ng PATH|none]
#            [--kmod KO|build|none] [--attach-limit S] [--detach-limit S]
#            [--stall S]
#   --short       the CI setting: 3 cycles (one per signal) of 4 s of workload
#                 (the default)
#   --long        no cycle limit, 60 minutes (--minutes changes it)
#   --cycles, --minutes   stop after N cycles or M minutes, whichever first
#                 (0: no limit)
#   --work        seconds of workload per cycle while attached (default 4)
#   --kernel      as run-vm.sh takes it (default debian; needs its modules:
#                 virtio_net, loop, bridge, dummy)
#   --out         where the logs go (default: a new directory under TMPDIR):
#                 guest.log (everything the guest printed), console.log (the
#                 kernel log, with the sysrq dumps), monitor.log (qemu's
#                 monitor, for the host watchdog)
#   --lockwatch   the binary to soak (default build/userspace/lockwatch)
#   --kmod        the lock-scenario module to load, run (healthy scenarios
#                 only) and unload each cycle: a .ko, `build` (with
#                 tools/kmod/build-module.sh, into --out), or none (default)
#   --attach-limit, --detach-limit   seconds before the guest watchdog calls
#                 an attach or a detach hung (defaults 600 and 120: in a TCG
#                 guest under this workload on a busy host, BPF's verifier
#                 alone took up to ten minutes per attach)
#   --stall       seconds without a line from the guest before the host
#                 watchdog acts (default 300): sysrq w and l through qemu's
#                 monitor, then an NMI, which the guest (booted with
#                 unknown_nmi_panic panic_print=0x41) answers with every
#                 task's state and every CPU's backtrace on the console
# Prints every guest line, then one line:
#   soak: N cycles in M min: A attached, D detached, L leaked, H hangs, F findings, X failed attaches
# Exit: 0 clean; 1 a hang, a leak, a finding, a failed attach or detach;
# 2 usage; 3 the VM or the build of the module failed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
die() { echo "soak.sh: $2" >&2; exit "$1"; }
usage="usage: soak.sh [--short|--long] [--cycles N] [--minutes M] [--work S] [--kernel K] [--smp N] [--out DIR] [--lockwatch PATH] [--kmod KO|build|none]"

cycles=3 minutes=0 work=4 kernel=debian smp=2 out='' kmod=none
lockwatch=$root/build/userspace/lockwatch bpftool='' stress_ng=''
attach_limit=600 detach_limit=120 stall=300
while (($#)); do
    case $1 in
        --short) cycles=3 minutes=0; shift ;;
        --long) cycles=0 minutes=60; shift ;;
        --cycles|--minutes|--work|--kernel|--smp|--out|--lockwatch|--bpftool|--stress-ng|--kmod|--attach-limit|--detach-limit|--stall)
            (($# >= 2)) || die 2 "$1 needs a value ($usage)"
            case $1 in
                --cycles) cycles=$2 ;;
                --minutes) minutes=$2 ;;
                --work) work=$2 ;;
                --kernel) kernel=$2 ;;
                --smp) smp=$2 ;;
                --out) out=$2 ;;
                --lockwatch) lockwatch=$2 ;;
                --bpftool) bpftool=$2 ;;
                --stress-ng) stress_ng=$2 ;;
                --kmod) kmod=$2 ;;
                --attach-limit) attach_limit=$2 ;;
                --detach-limit) detach_limit=$2 ;;
                --stall) stall=$2 ;;
            esac
            shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die 2 "unknown argument '$1' ($usage)" ;;
    esac
done
for n in cycles minutes work smp attach_limit detach_limit stall; do
    [[ ${!n} =~ ^[0-9]+$ ]] || die 2 "--${n//_/-} must be a whole number, not '${!n}'"
done
((cycles > 0 || minutes > 0)) || die 2 "--cycles and --minutes cannot both be 0 (no end)"
[[ -x $lockwatch ]] || die 2 "no lockwatch binary at $lockwatch (build it, or give --lockwatch)"
bpftool=${bpftool:-$(command -v bpftool || echo /usr/sbin/bpftool)}
[[ -x $bpftool ]] || die 2 "bpftool not found (apt-get install bpftool, or give --bpftool)"
[[ -n $stress_ng ]] || stress_ng=$(command -v stress-ng || echo none)

out=${out:-$(mktemp -d "${TMPDIR:-/tmp}/lockwatch-soak.XXXXXX")}
mkdir -p "$out"
: >"$out/guest.log"  # this run's alone, when --out is used again
# The guest runs it as `lockwatch`, whatever its name here.
if [[ ${lockwatch##*/} != lockwatch ]]; then
    mkdir -p "$out/bin"
    cp "$lockwatch" "$out/bin/lockwatch"
    lockwatch=$out/bin/lockwatch
fi
bins=(--bin "$lockwatch" --bin "$bpftool")
[[ $stress_ng == none ]] || bins+=(--bin "$stress_ng")
files=(--file "$here/soak-guest.sh:/soak/")
guest_kmod=''
case $kmod in
    none) ;;
    build)
        ko=$("$root/tools/kmod/build-module.sh" --kernel debian --out "$out/kmod" 2>&1 | tail -n1) || true
        [[ -f $ko ]] || die 3 "building the scenario module failed: $ko"
        files+=(--file "$ko:/soak/") guest_kmod=/soak/${ko##*/} ;;
    *)  [[ -f $kmod ]] || die 2 "--kmod $kmod: no such file"
        files+=(--file "$kmod:/soak/") guest_kmod=/soak/${kmod##*/} ;;
esac

# The guest's own limit: the cycles or minutes, plus boot and a margin for
# the last cycle and its dumps.
if ((minutes > 0)); then
    timeout_s=$((minutes * 60 + 600))
else
    timeout_s=$((cycles * (work + attach_limit + detach_limit + 60) + 300))
fi

# qemu's monitor on two FIFOs (pipe:), so that plain bash can talk to it.
mon=$out/monitor
rm -f "$mon.in" "$mon.out"
mkfifo "$mon.in" "$mon.out"
cat "$mon.out" >"$out/monitor.log" &
mon_reader=$!
exec 4<>"$mon.in"
monitor() { printf '%s\n' "$1" >&4; }

results=$out/results.fifo
rm -f "$results"
mkfifo "$results"
LOCKWATCH_QEMU_ARGS="${LOCKWATCH_QEMU_ARGS:-} -monitor pipe:$mon" \
    "$root/tools/vm/run-vm.sh" --kernel "$kernel" --smp "$smp" --net --timeout "$timeout_s" \
    --modules virtio_pci,virtio_net,loop,bridge,dummy --console "$out/console.log" \
    --append "unknown_nmi_panic panic_print=0x41" "${bins[@]}" "${files[@]}" \
    -- sh /soak/soak-guest.sh "$cycles" $((minutes * 60)) "$work" "$attach_limit" \
    "$detach_limit" "$guest_kmod" >"$results" 2>"$out/run-vm.stderr" &
vm=$!
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    kill "$vm" "$mon_reader" 2>/dev/null || true
    rm -f "$results" "$mon.in" "$mon.out"
}
trap cleanup EXIT

# The host watchdog: the guest prints a heartbeat every 10 s; silence for
# --stall seconds means a wedged guest (or one too stuck to run its own
# watchdog): ask the kernel for its stacks from outside.
summary='' host_stalls=0 started=$SECONDS
exec 3<"$results"
while :; do
    if IFS= read -r -t "$stall" line <&3; then
        printf '%s\n' "$line" | tee -a "$out/guest.log"
        [[ $line == soak-summary* ]] && summary=$line
        continue
    elif (($? <= 128)); then
        break  # end of the guest's output
    fi
    host_stalls=$((host_stalls + 1))
    echo "soak: host watchdog: no line from the guest for $stall s; sysrq w and l by the monitor, then an NMI (the dumps go to $out/console.log)" |
        tee -a "$out/guest.log"
    monitor 'sendkey alt-sysrq-w'
    sleep 5
    monitor 'sendkey alt-sysrq-l'
    sleep 10
    monitor 'nmi'
    sleep 20
    kill "$vm" 2>/dev/null || true
    break
done
vm_rc=0
wait "$vm" || vm_rc=$?
minutes_run=$(((SECONDS - started + 30) / 60))

if [[ -z $summary ]]; then
    echo "soak: the guest gave no summary (run-vm.sh exit $vm_rc: $(tail -n1 "$out/run-vm.stderr")); logs in $out"
    ((host_stalls > 0)) && exit 1
    exit 3
fi
declare -A n=()
for kv in ${summary#soak-summary }; do n[${kv%%=*}]=${kv#*=}; done
hangs=$((n[hangs] + host_stalls))
echo "soak: ${n[cycles]} cycles in $minutes_run min: ${n[attached]} attached, ${n[detached]} detached, ${n[leaked]} leaked, $hangs hangs, ${n[findings]} findings, ${n[failed]} failed attaches; logs in $out"
((hangs == 0 && n[leaked] == 0 && n[findings] == 0 && n[failed] == 0 &&
  n[attached] == n[cycles] && n[detached] == n[cycles])) || exit 1
