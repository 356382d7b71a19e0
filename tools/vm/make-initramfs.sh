#!/usr/bin/env bash
# Build the test VM's initramfs: busybox-static, the given programs with the
# shared libraries they need, extra files, and an /init that mounts the usual
# file systems, runs one shell command with its output on the results port
# (/dev/ttyS1), writes `<token> LOCKWATCH-VM-EXIT <status>` on the control
# port (/dev/ttyS2) and powers off (tools/vm/README.md).
#
# Usage: tools/vm/make-initramfs.sh --out FILE.cpio.gz --token-file FILE
#            [--bin PATH]... [--file SRC[:DEST]]... --run 'SHELL COMMAND'
#   --out FILE        gzip'd newc archive; a name ending in .cpio is left
#                     uncompressed.
#   --token-file FILE this boot's token (32 hex digits), which starts every
#                     line of the control port; /init reads it and deletes
#                     it before anything else runs.
#   --bin PATH        an executable (a name is looked up in PATH), installed
#                     as /usr/bin/<name> with every library `ldd` lists,
#                     copied to the same path, plus the dynamic loader.
#   --file SRC[:DEST] a file or directory; DEST defaults to /<name of SRC>,
#                     a DEST ending in / receives /DEST/<name of SRC>.
#   --run CMD         run by /bin/sh (busybox ash) in /, stdin /dev/null,
#                     stdout and stderr to /dev/ttyS1, the control port on
#                     fd 9 and the token in $LOCKWATCH_VM_TOKEN.
# Exit: 0 ok, 2 usage, 3 missing input or tool, or the build failed.
set -euo pipefail

die() { echo "make-initramfs.sh: $2" >&2; exit "$1"; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../lib/safe-files.sh
. "$here/../lib/safe-files.sh"
usage="usage: make-initramfs.sh --out FILE.cpio.gz --token-file FILE [--bin PATH]... [--file SRC[:DEST]]... --run 'SHELL COMMAND'"

out='' run='' have_run=0 token_file=''
bins=() files=()
while (($#)); do
    case $1 in
        --out|--token-file|--bin|--file|--run)
            (($# >= 2)) || die 2 "$1 needs a value ($usage)"
            case $1 in
                --out) out=$2 ;;
                --token-file) token_file=$2 ;;
                --bin) bins+=("$2") ;;
                --file) files+=("$2") ;;
                --run) run=$2; have_run=1 ;;
            esac
            shift 2 ;;
        -h|--help) sed -n '2,24s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die 2 "unknown argument '$1' ($usage)" ;;
    esac
done
[[ -n $out ]] || die 2 "--out is required ($usage)"
((have_run)) || die 2 "--run is required ($usage)"
lw_check_file "$out" || die 3 "$lw_error"
[[ -n $token_file ]] || die 2 "--token-file is required ($usage)"
[[ -r $token_file ]] || die 3 "--token-file $token_file: cannot read it"
token=$(<"$token_file")
[[ $token =~ ^[0-9a-f]{32}$ ]] || die 2 "--token-file $token_file: not 32 hex digits"

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
(umask 077 && printf '%s\n' "$token" >"$root/lockwatch/token")

cat >"$root/init" <<'INIT'
#!/bin/sh
# lockwatch test-VM init: kernel log on ttyS0, the command's output on ttyS1,
# lines that carry this boot's token on ttyS2 (the control port).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
# The token first, and out of the file system before anything else runs.
read -r token </lockwatch/token
/bin/busybox rm -f /lockwatch/token
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
if [ ! -c /dev/ttyS1 ] || [ ! -c /dev/ttyS2 ]; then
    say "no /dev/ttyS1 or /dev/ttyS2: the results or the control port is missing"
    off
fi
exec 3<>/dev/ttyS1 4<>/dev/ttyS2
stty raw -echo <&3 || say "stty raw on /dev/ttyS1 failed"
stty raw -echo <&4 || say "stty raw on /dev/ttyS2 failed"
# Out of sight of a command that writes to every serial port it finds; a
# root command can still make the node again (tools/vm/README.md).
rm -f /dev/ttyS2
echo "$token LOCKWATCH-VM-START" >&4
cd /
# A command that hangs is ended by the host's time-out.
LOCKWATCH_VM_TOKEN=$token sh /lockwatch/run.sh </dev/null >&3 2>&3 9>&4 3>&- 4>&-
rc=$?
# End what the command left behind so that closing ttyS2 below is its last
# close, which waits until the marker has left the UART.
kill -KILL -1 2>/dev/null
sleep 0.1
echo "$token LOCKWATCH-VM-EXIT $rc" >&4
exec 3>&- 4>&-
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
