#!/usr/bin/env bash
# Boot a kernel in qemu with a generated initramfs, run one command in the
# guest, stream its output (from the guest's second serial port, ttyS1) to
# stdout, and exit with the command's exit status. The kernel log (ttyS0)
# goes to a console log file, never to stdout. The exit status comes back on
# a third port (ttyS2, the control port), in lines that start with a token
# made for this boot; other lines there go to --control-fd.
#
# Usage: tools/vm/run-vm.sh --kernel debian[:VER]|BZIMAGE|DIR [--timeout SECONDS]
#            [--console FILE] [--bin PATH]... [--file SRC[:DEST]]...
#            [--accel auto|kvm|tcg] [--append 'KERNEL ARGS'] [--smp N] [--mem SIZE]
#            [--modules NAME[,NAME]...] [--net] [--control-fd N] -- COMMAND [ARG]...
#   --kernel   debian: Debian's current cloud kernel (fetched and cached by
#              fetch-kernel.sh); debian:VER a given one; else a bzImage, or a
#              directory holding vmlinuz, bzImage or arch/x86/boot/bzImage.
#   --timeout  hard limit for the whole guest run, default 300 seconds.
#   --console  where to write the kernel log; default: a temporary file that
#              is kept (and named on stderr) only when the run fails.
#   --bin, --file  as for make-initramfs.sh (programs go to /usr/bin).
#   --accel    auto (default): KVM if /dev/kvm works within 10 s, else TCG.
#   --append   extra kernel command line.
#   --smp, --mem   guest CPUs (default 2, see below) and memory (default 1G).
#   --modules  the kernel's own modules to put in the guest, with what they
#              depend on, for the command to `modprobe`: from <dir>/modules/
#              (an INSTALL_MOD_PATH tree with modules.dep), which
#              fetch-kernel.sh makes for Debian's kernel and build-kernel.sh
#              beside the lockdep kernel's bzImage.
#   --net      a virtio-net NIC on qemu's user network (10.0.2.0/24, the
#              host at 10.0.2.2); Debian's kernel needs
#              --modules virtio_pci,virtio_net for it.
#   --control-fd  where the control port's other lines go, token removed.
#   COMMAND runs in / as root with busybox's sh in PATH; it is trusted with
#   the control port (fd 9) and the token ($LOCKWATCH_VM_TOKEN), and must
#   keep both from anything it runs that is not (tools/vm/README.md).
#   LOCKWATCH_QEMU_ARGS: extra qemu arguments, e.g. to look into a hung
#   guest: '-gdb unix:/tmp/guest.sock,server,nowait', then gdb vmlinux and
#   'target remote /tmp/guest.sock' (boot with --append nokaslr).
# Single-threaded TCG (thread=single): qemu's multi-threaded TCG (7.2) can
# keep running a stale translation of kernel text that another vCPU just
# patched (ftrace, kprobes, BPF trampolines): the guest then loops on a
# breakpoint that is no longer there, or jumps to address 0. One host thread
# running every vCPU in turn sees each patch at once, and still gives the
# guest several CPUs (cross-CPU lock nesting, remote wakeups).
# Exit: the command's status (0-239), or
#   240 usage error          241 qemu (or another host tool) missing
#   242 kernel not found / download failed   243 initramfs build failed
#   244 guest kernel panicked                245 time-out (guest hung)
#   246 guest ended without an exit marker
set -euo pipefail
# Bytes, not characters: read -n counts them, tr maps them.
export LC_ALL=C

readonly E_USAGE=240 E_TOOL=241 E_KERNEL=242 E_INITRAMFS=243 E_PANIC=244 E_TIMEOUT=245 E_NOMARKER=246
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lib/safe-files.sh
. "$here/../lib/safe-files.sh"

die() { echo "lockwatch-vm: error: $2" >&2; exit "$1"; }
note() { echo "lockwatch-vm: $*" >&2; }
usage="usage: run-vm.sh --kernel debian|BZIMAGE|DIR [--timeout S] [--console FILE] [--bin PATH]... [--file SRC[:DEST]]... [--accel auto|kvm|tcg] [--append ARGS] [--control-fd N] -- COMMAND..."

kernel='' timeout_s=300 console='' accel=auto append='' smp=2 mem=1G modules='' net=0 control_fd=
initramfs_args=()
while (($#)); do
    case $1 in
        --) shift; break ;;
        --net) net=1; shift; continue ;;
        --kernel|--timeout|--console|--bin|--file|--accel|--append|--smp|--mem|--modules|--control-fd)
            (($# >= 2)) || die $E_USAGE "$1 needs a value ($usage)"
            case $1 in
                --kernel) kernel=$2 ;;
                --timeout) timeout_s=$2 ;;
                --console) console=$2 ;;
                --bin|--file) initramfs_args+=("$1" "$2") ;;
                --accel) accel=$2 ;;
                --append) append+=" $2" ;;
                --smp) smp=$2 ;;
                --mem) mem=$2 ;;
                --modules) modules+=${modules:+,}$2 ;;
                --control-fd) control_fd=$2 ;;
            esac
            shift 2 ;;
        -h|--help) sed -n '2,48s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die $E_USAGE "unknown argument '$1' ($usage)" ;;
    esac
done
(($#)) || die $E_USAGE "no guest command given after -- ($usage)"
[[ -n $kernel ]] || die $E_USAGE "--kernel is required ($usage)"
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die $E_USAGE "--timeout must be a positive number of seconds, not '$timeout_s'"
[[ $smp =~ ^[1-9][0-9]*$ ]] || die $E_USAGE "--smp must be a positive number, not '$smp'"
case $accel in auto|kvm|tcg) ;; *) die $E_USAGE "--accel must be auto, kvm or tcg, not '$accel'" ;; esac
if [[ -n $control_fd ]]; then
    if ! [[ $control_fd =~ ^[0-9]+$ ]] || ! { true >&"$control_fd"; } 2>/dev/null; then
        die $E_USAGE "--control-fd $control_fd is not a file descriptor open for writing"
    fi
fi

qemu=${LOCKWATCH_QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null 2>&1 || die $E_TOOL "$qemu not found (install qemu-system-x86: tools/setup.sh)"
command -v timeout >/dev/null 2>&1 || die $E_TOOL "timeout (coreutils) not found"

# The guest command, quoted for the guest's sh.
guest_cmd=''
for arg in "$@"; do
    guest_cmd+=" '${arg//\'/\'\\\'\'}'"
done
guest_cmd=${guest_cmd# }

# Kernel image.
case $kernel in
    debian|debian:*)
        fetch=("$here/fetch-kernel.sh")
        [[ $kernel == debian:* ]] && fetch+=(--version "${kernel#debian:}")
        if ! fetch_out=$("${fetch[@]}" 2>&1); then
            why=$(grep -v ': downloading ' <<<"$fetch_out" | tail -n1 || true)
            die $E_KERNEL "kernel download failed: ${why#fetch-kernel.sh: }"
        fi
        grep ': downloading ' <<<"$fetch_out" >&2 || true
        kdir=$(tail -n1 <<<"$fetch_out")
        kimage=$kdir/vmlinuz ;;
    *)
        kimage=$kernel kdir=''
        if [[ -d $kernel ]]; then
            kdir=$kernel
            kimage=''
            for k in vmlinuz bzImage arch/x86/boot/bzImage; do
                [[ -f $kernel/$k ]] && { kimage=$kernel/$k; break; }
            done
            [[ -n $kimage ]] || die $E_KERNEL "no vmlinuz, bzImage or arch/x86/boot/bzImage in $kernel"
        elif [[ -d $(dirname "$kernel")/modules ]]; then
            kdir=$(dirname "$kernel")  # a bzImage that build-kernel.sh keeps with its modules
        fi ;;
esac
[[ -f $kimage && -r $kimage ]] || die $E_KERNEL "kernel image $kimage not found"
[[ -z $modules || -n $kdir ]] || die $E_USAGE "--modules needs --kernel debian or a kernel directory with modules/"

# Copies the named modules, what they depend on (modules.dep), and the
# modules.* indexes into $1/lib/modules/<release>/.
stage_modules() {
    local root=$kdir/modules/lib/modules release dep name want line path
    local -A needed=()
    release=$(cd "$root" 2>/dev/null && ls -d -- */ 2>/dev/null | head -n1) || true
    release=${release%/}
    dep=$root/$release/modules.dep
    [[ -n $release && -s $dep ]] || die $E_KERNEL "--modules: no modules.dep under $root (a kernel directory needs modules/lib/modules/<release>/)"
    IFS=, read -r -a want <<<"$modules"
    for name in "${want[@]}"; do
        [[ $name =~ ^[A-Za-z0-9_-]+$ ]] || die $E_USAGE "--modules: bad module name '$name'"
        line=$(grep -m1 -E "(^|/)(${name//[-_]/[-_]})\.ko(\.[a-z]+)?:" "$dep") ||
            die $E_KERNEL "--modules: $name is not a module of $release (built in, or not built?)"
        for path in ${line/:/}; do needed[$path]=1; done
    done
    mkdir -p "$1/lib/modules/$release"
    cp "$root/$release"/modules.* "$1/lib/modules/$release/"
    for path in "${!needed[@]}"; do
        mkdir -p "$1/lib/modules/$release/${path%/*}"
        cp "$root/$release/$path" "$1/lib/modules/$release/$path"
    done
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lockwatch-vm.XXXXXX")
keep_tmp=0
qpid=''
# shellcheck disable=SC2317  # called from the EXIT trap
cleanup() {
    [[ -n $qpid ]] && kill "$qpid" 2>/dev/null
    rm -f "$tmp/initramfs.cpio" "$tmp/probe.cpio" "$tmp/probe.out" "$tmp/control" "$tmp/token"
    ((keep_tmp)) || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
[[ -n $console ]] || console=$tmp/console.log
mkdir -p "$(dirname "$console")"
# Made afresh, never through a symbolic link planted in its place: qemu
# would write the guest's kernel log wherever it points.
lw_create_file "$console" || die $E_USAGE "--console: $lw_error"
qemu_err=$tmp/qemu.stderr
if [[ -n $modules ]]; then
    stage_modules "$tmp/modroot"
    initramfs_args+=(--file "$tmp/modroot/lib/modules:/lib/modules")
fi

# This boot's token: 128 random bits. It reaches the guest only inside the
# initramfs, where /init reads and deletes it first thing (tools/vm/README.md).
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
[[ $token =~ ^[0-9a-f]{32}$ ]] || die $E_TOOL "cannot read 16 random bytes from /dev/urandom"
(umask 077 && printf '%s\n' "$token" >"$tmp/token")
initramfs_args+=(--token-file "$tmp/token")

"$here/make-initramfs.sh" --out "$tmp/initramfs.cpio" "${initramfs_args[@]}" --run "$guest_cmd" ||
    die $E_INITRAMFS "building the initramfs failed (see the line above)"

base_args=(-m "$mem" -nodefaults -no-user-config -display none -monitor none
           -no-reboot -kernel "$kimage")
cmdline="console=ttyS0 panic=-1 rdinit=/init$append"

# KVM only where /dev/kvm exists and really boots a guest in time. The
# verdict is remembered until the host reboots.
cache=$(lw_cache_root)
boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo unknown)
verdict=$cache/kvm-probe-$boot_id
if [[ $accel == auto && -r /dev/kvm && -w /dev/kvm ]]; then
    lw_safe_dir "$cache" "$lw_cache_hint" || die $E_USAGE "$lw_error"
    lw_check_file "$verdict" || die $E_USAGE "$lw_error"
    if [[ -s $verdict ]]; then
        accel=$(<"$verdict")
        [[ $accel == kvm || $accel == tcg ]] || accel=auto
    fi
fi
if [[ $accel == auto ]]; then
    accel=tcg
    if [[ -r /dev/kvm && -w /dev/kvm ]]; then
        if "$here/make-initramfs.sh" --out "$tmp/probe.cpio" --token-file "$tmp/token" --run true 2>/dev/null &&
           timeout -k 2 10 "$qemu" -accel kvm -cpu host "${base_args[@]}" -initrd "$tmp/probe.cpio" \
               -append "console=ttyS0 panic=-1 rdinit=/init quiet" -serial null -serial null \
               -serial stdio </dev/null >"$tmp/probe.out" 2>/dev/null &&
           grep -q "^$token LOCKWATCH-VM-EXIT 0" "$tmp/probe.out"; then
            accel=kvm
        else
            note "KVM probe failed or hung; using TCG"
        fi
        rm -f "$cache"/kvm-probe-*
        echo "$accel" | lw_write_file "$verdict" || note "cannot remember the KVM probe's verdict: $lw_error"
    fi
fi
if [[ $accel == kvm ]]; then
    [[ -r /dev/kvm && -w /dev/kvm ]] || die $E_TOOL "--accel kvm: /dev/kvm is missing or not accessible"
    accel_args=(-accel kvm -cpu host)
else
    accel_args=(-accel tcg,thread=single -cpu max)
    # A TCG guest on a busy host can be too slow for the kernel's IO-APIC
    # timer check, which then panics ("IO-APIC + timer doesn't work!").
    cmdline+=" no_timer_check"
fi
((net)) && base_args+=(-netdev user,id=net0 -device virtio-net-pci,netdev=net0)
# shellcheck disable=SC2206  # word splitting is the point
extra_args=(${LOCKWATCH_QEMU_ARGS:-})

# The guest's output (ttyS1) is qemu's stdout: straight to ours, or, for a
# terminal, with every control character a '?' (a guest's escape sequences
# would reach the terminal; 0xc2 starts the C1 controls U+0080-U+009F). The
# control port (ttyS2) is a fifo read below; the child opens it before qemu
# starts, so that qemu failing early ends the read.
if [[ -t 1 ]]; then
    exec {results}> >(exec tr '\000-\010\013-\037\177\302' '?')
else
    exec {results}>&1
fi
mkfifo "$tmp/control"
t0=$EPOCHREALTIME
timeout -k 5 "$timeout_s" "$qemu" "${accel_args[@]}" -smp "$smp" "${base_args[@]}" "${extra_args[@]}" -initrd "$tmp/initramfs.cpio" \
    -append "$cmdline" -serial "file:$console" -serial stdio -serial file:/dev/fd/3 \
    </dev/null 1>&"$results" 3>"$tmp/control" 2>"$qemu_err" &
qpid=$!

# The control port: lines "<token> <payload>" (tools/vm/README.md). Lines
# are read up to 1 MiB (as lockwatch vm does); a longer one is dropped
# whole. A line without the token is not the guest's init or lockwatch:
# rejected, counted, reported below.
readonly max_line=1048576
status='' t_start='' t_end='' rejected=0 first_rejected='' overlong=0 overlong_bytes=0 unread=0
reject() { ((++rejected == 1)) && first_rejected=$1; return 0; }
take_control_line() {
    local line=$1 payload
    if [[ ${line:0:33} != "$token " ]]; then
        reject "$line"
        return
    fi
    # From here on, $payload only: the token is not for stderr.
    payload=${line:33}
    case $payload in
        LOCKWATCH-VM-START) [[ -n $t_start ]] || t_start=$EPOCHREALTIME ;;
        LOCKWATCH-VM-EXIT\ *)
            if [[ $payload =~ ^LOCKWATCH-VM-EXIT\ ([0-9]{1,3})$ ]] && ((10#${BASH_REMATCH[1]} <= 255)); then
                status=$((10#${BASH_REMATCH[1]}))
                t_end=$EPOCHREALTIME
            else
                reject "$payload"
            fi ;;
        *)
            if [[ -n $control_fd ]]; then
                printf '%s\n' "$payload" >&"$control_fd"
            else
                ((++unread))
            fi ;;
    esac
}
while IFS= read -r -n $((max_line + 1)) line || [[ -n $line ]]; do
    if ((${#line} > max_line)); then
        ((++overlong)) || true
        overlong_bytes=$((overlong_bytes + ${#line}))
        while :; do
            rc=0
            IFS= read -r -n 65536 line || rc=$?
            overlong_bytes=$((overlong_bytes + ${#line}))
            ((rc == 0 && ${#line} == 65536)) || break
        done
        continue
    fi
    take_control_line "$line"
done <"$tmp/control"
qrc=0
wait "$qpid" || qrc=$?
qpid=''
exec {results}>&-

# Printable, one line, at most 200 bytes: what a guest wrote, for stderr.
printable() {
    local s=${1//[$'\n\r']/}
    printf '%s' "${s:0:200}" | tr -c '[:print:]' '?'
}
if ((rejected)); then
    note "rejected $rejected lines of the control port (the first: '$(printable "$first_rejected")'): without this boot's token, or a bad exit marker"
fi
if ((overlong)); then
    note "dropped $overlong lines of the control port longer than $max_line bytes ($overlong_bytes bytes in all)"
fi
if ((unread)); then
    note "dropped $unread lines of the control port for a reader: none was given (--control-fd)"
fi

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
fail() {
    keep_tmp=1
    echo "lockwatch-vm: error: $2" >&2
    exit "$1"
}

panic=$(printable "$(grep -a -m1 'Kernel panic' "$console" || true)")
if [[ -n $status ]]; then
    note "boot $(elapsed "$t0" "${t_start:-$t_end}")s, command $(elapsed "${t_start:-$t_end}" "$t_end")s (accel $accel, kernel $kimage)"
    if ((status != 0)); then
        keep_tmp=1
        note "guest command exited $status; console log: $console"
    fi
    exit "$status"
fi
if ((qrc == 124 || qrc == 137)); then
    fail $E_TIMEOUT "guest timed out after ${timeout_s}s (hung?); last console lines in $console"
fi
if [[ -n $panic ]]; then
    fail $E_PANIC "guest kernel panicked: ${panic#*] }; console log: $console"
fi
if ((qrc != 0)); then
    err=$(grep -v '^$' "$qemu_err" | head -n1 || true)
    fail $E_NOMARKER "qemu exited $qrc without an exit marker${err:+: $err}; console log: $console"
fi
fail $E_NOMARKER "guest stopped without an exit marker (did the command power off or kill init?); console log: $console"
