#!/usr/bin/env bash
# Build the test VM's initramfs: busybox-static, the given programs with the
# shared libraries they need, extra files, and an /init that mounts the usual
# file systems, runs one shell command with its output on the results port
# (/dev/ttyS1), writes `LOCKWATCH-VM-EXIT <status>` there and powers off.
#
# Usage: tools/vm/make-initramfs.sh --out FILE.cpio.gz [--bin PATH]...
#            [--file SRC[:DEST]]... --run 'SHELL COMMAND'
#   --out FILE        gzip'd newc archive; a name ending in .cpio is left
#                     uncompressed.
#   --bin PATH        an executable (a name is looked up in PATH), installed
#                     as /usr/bin/<name> with every library `ldd` lists,
#                     copied to the same path, plus the dynamic loader.
#   --file SRC[:DEST] a file or directory; DEST defaults to /<name of SRC>,
#                     a DEST ending in / receives /DEST/<name of SRC>.
#   --run CMD         run by /bin/sh (busybox ash) in /, stdin /dev/null,
#                     stdout and stderr to /dev/ttyS1.
# Exit: 0 ok, 2 usage, 3 missing input or tool, or the build failed.
set -euo pipefail

die() { echo "make-initramfs.sh: $2" >&2; exit "$1"; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lib/safe-files.sh
. "$here/../lib/safe-files.sh"
usage="usage: make-initramfs.sh --out FILE.cpio.gz [--bin PATH]... [--file SRC[:DEST]]... --run 'SHELL COMMAND'"

out='' run='' have_run=0
bins=() files=()
while (($#)); do
    case $1 in
        --out|--bin|--file|--run)
            (($# >= 2)) || die 2 "$1 needs a value ($usage)"
            case $1 in
                --out) out=$2 ;;
                --bin) bins+=("$2") ;;
                --file) files+=("$2") ;;
                --run) run=$2; have_run=1 ;;
            esac
            shift 2 ;;
        -h|--help) sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die 2 "unknown argument '$1' ($usage)" ;;
    esac
done
[[ -n $out ]] || die 2 "--out is required ($usage)"
((have_run)) || die 2 "--run is required ($usage)"
lw_check_file "$out" || die 3 "$lw_error"

for tool in cpio gzip ldd find sort; do
    command -v "$tool" >/dev/null 2>&1 || die 3 "$tool not found (run tools/setup.sh)"
done
busybox=${LOCKWATCH_BUSYBOX:-}
if [[ -z $busybox ]]; then
    for b in /bin/busybox /usr/bin/busybox; do
        [[ -x $b ]] && { busybox=$b; break; }
    done
fi
[[ -n $busybox && -x $busybox ]] || die 3 "busybox not found (install busybox-static: tools/setup.sh)"

root=$(mktemp -d "${TMPDIR:-/tmp}/lockwatch-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT

# Copy the shared libraries (and loader) that `ldd` lists for $1.
copy_libs() {
    local elf=$1 lddout line lib
    # ldd fails for static programs ("not a dynamic executable"): nothing to copy.
    lddout=$(ldd "$elf" 2>/dev/null) || return 0
    while IFS= read -r line; do
        if [[ $line == *"=> not found"* ]]; then
            die 3 "$elf needs ${line%% =>*}, which ldd cannot find"
        fi
        lib=
        if [[ $line =~ =\>\ (/[^ ]+) ]]; then
            lib=${BASH_REMATCH[1]}
        elif [[ $line =~ ^[[:space:]]*(/[^ ]+) ]]; then
            lib=${BASH_REMATCH[1]}
        fi
        [[ -n $lib && ! -e $root$lib ]] || continue
        mkdir -p "$root${lib%/*}"
        cp -L "$lib" "$root$lib" || die 3 "cannot copy $lib (needed by $elf)"
    done <<<"$lddout"
}

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,lockwatch}
cp -L "$busybox" "$root/bin/busybox"
copy_libs "$busybox"
# Applet links are made at boot (busybox --install -s), one process instead
# of hundreds here; /init itself needs only /bin/sh.
ln -s busybox "$root/bin/sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"

for b in "${bins[@]}"; do
    path=$b
    [[ $path == */* ]] || path=$(command -v "$b" 2>/dev/null) || die 3 "--bin $b: not found in PATH"
    [[ -f $path && -x $path ]] || die 3 "--bin $b: not an executable file"
    rm -f "$root/usr/bin/${path##*/}"
    cp -L "$path" "$root/usr/bin/${path##*/}"
    copy_libs "$path"
done

for spec in "${files[@]}"; do
    src=${spec%%:*}
    dest=/${src##*/}
    [[ $spec == *:* ]] && dest=${spec#*:}
    [[ -n $src && -e $src ]] || die 3 "--file $spec: $src does not exist"
    src=${src%/}
    [[ $dest == /* ]] || dest=/$dest
    [[ $dest == */ ]] && dest=$dest${src##*/}
    mkdir -p "$root${dest%/*}"
    rm -rf "$root$dest"
    cp -RL "$src" "$root$dest" || die 3 "--file $spec: copy failed"
done

printf '%s\n' "$run" >"$root/lockwatch/run.sh"

cat >"$root/init" <<'INIT'
#!/bin/sh
# lockwatch test-VM init: kernel log on ttyS0, results on ttyS1.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
/bin/busybox --install -s
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
say() { echo "lockwatch-init: $*"; }
off() { sync; poweroff -f; echo o >/proc/sysrq-trigger; sleep 10; }
mnt() { mkdir -p "$3" && mount -t "$1" "$2" "$3" || say "cannot mount $1 on $3"; }
mnt proc proc /proc
mnt sysfs sysfs /sys
mnt tracefs tracefs /sys/kernel/tracing
mnt debugfs debugfs /sys/kernel/debug
mnt bpf bpf /sys/fs/bpf
mnt cgroup2 cgroup2 /sys/fs/cgroup
mnt tmpfs tmpfs /tmp
mnt devpts devpts /dev/pts
mnt tmpfs tmpfs /dev/shm
ulimit -l unlimited || say "ulimit -l unlimited failed"
hostname lockwatch-vm
ip link set lo up 2>/dev/null
if [ ! -c /dev/ttyS1 ]; then
    say "no /dev/ttyS1: the results port is missing"
    off
fi
exec 3<>/dev/ttyS1
stty raw -echo <&3 || say "stty raw on /dev/ttyS1 failed"
echo LOCKWATCH-VM-START >&3
cd /
# A command that hangs is ended by the host's time-out.
sh /lockwatch/run.sh </dev/null >&3 2>&3
rc=$?
# End what the command left behind so that closing ttyS1 below is its last
# close, which waits until the marker has left the UART.
kill -KILL -1 2>/dev/null
sleep 0.1
echo "LOCKWATCH-VM-EXIT $rc" >&3
exec 3>&-
off
INIT
chmod 0755 "$root/init" "$root/lockwatch/run.sh"

mkdir -p "$(dirname "$out")"
# A fresh temporary file beside --out, renamed over it: a predictable name
# there could be a symbolic link someone planted.
tmpout=$(mktemp "$out.XXXXXX") || die 3 "cannot create a temporary file beside $out"
# gzip unless --out ends in .cpio: an uncompressed archive boots faster
# under TCG, where the guest's gunzip is slow.
compress=(gzip -6 -n)
[[ $out == *.cpio ]] && compress=(cat)
if ! (cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
        cpio --null -o -H newc -R 0:0 --quiet | "${compress[@]}") >"$tmpout"; then
    rm -f "$tmpout"
    die 3 "writing $out failed"
fi
chmod 0644 "$tmpout"
mv -fT "$tmpout" "$out"
