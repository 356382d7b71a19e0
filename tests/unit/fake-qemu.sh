#!/usr/bin/env bash
# A stand-in for qemu-system-x86_64 (LOCKWATCH_QEMU) in the host-side tests
# of run-vm.sh and lockwatch vm: no guest, only what a guest could send. It
# takes the boot's token out of the initramfs, as /init does, and plays
# $FAKE_GUEST_PLAN, one line per line sent:
#   R TEXT  on the guest's output (ttyS1, qemu's stdout)
#   C TEXT  on the control port (ttyS2), after the token and a space
#   U TEXT  on the control port, without the token
#   r TEXT, u TEXT  as R and U, without the newline
set -euo pipefail

initrd='' serials=()
while (($#)); do
    case $1 in
        -initrd) initrd=$2; shift 2 ;;
        -serial) serials+=("$2"); shift 2 ;;
        *) shift ;;
    esac
done
[[ -n $initrd && ${#serials[@]} -eq 3 ]] || { echo "fake-qemu: no -initrd or not 3 -serial" >&2; exit 1; }
token=$(cpio -i --quiet --to-stdout '*lockwatch/token' <"$initrd")
exec {control}>"${serials[2]#file:}"

while IFS= read -r line || [[ -n $line ]]; do
    text=${line:2}
    case ${line:0:1} in
        R) printf '%s\n' "$text" ;;
        r) printf '%s' "$text" ;;
        C) printf '%s %s\n' "$token" "$text" >&"$control" ;;
        U) printf '%s\n' "$text" >&"$control" ;;
        u) printf '%s' "$text" >&"$control" ;;
    esac
done <"$FAKE_GUEST_PLAN"
