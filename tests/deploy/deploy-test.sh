#!/usr/bin/env bash
# The .deb and the unit as an operator meets them, under a real systemd: the
# package built with CPack, installed with dpkg into a container booted by
# systemd-nspawn (this host's root file system under an overlay whose upper
# layer is a tmpfs, so the host itself is untouched), then
#   - lockwatch --version and lockwatch vm --help, and the VM scripts found
#     relative to the install prefix;
#   - systemctl start lockwatch: on a kernel lockwatch can trace, the unit is
#     active once READY=1 came, and stops cleanly; on one it cannot (see
#     `lockwatch check`), it fails with status 3, says why in the journal and
#     in `systemctl status`, and is not restarted;
#   - the journal catalog entries installed; dpkg -r leaves no binary.
#     deploy-test.sh BUILD_DIR
# Exit 0 passed, 77 skipped (no root, no systemd-nspawn), else failed.
set -uo pipefail
build=${1:?usage: deploy-test.sh BUILD_DIR}
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
[[ $(id -u) == 0 ]] || skip "needs root to boot a container"
command -v systemd-nspawn >/dev/null || skip "no systemd-nspawn (Debian: systemd-container)"
command -v nsenter >/dev/null || skip "no nsenter (util-linux)"

work=$(mktemp -d /tmp/lockwatch-deploy.XXXXXX)
root=$(mktemp -d /run/lockwatch-deploy.XXXXXX)
nspawn_pid=''
cleanup() {
    if [[ -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
        kill -TERM "$nspawn_pid" 2>/dev/null
        for _ in $(seq 60); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$nspawn_pid" 2>/dev/null
    fi
    umount "$root/merged" 2>/dev/null
    umount "$root" 2>/dev/null
    rmdir "$root" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "== the package"
(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" >cpack.log 2>&1) ||
    { cat "$work/cpack.log"; fail "cpack"; }
deb=$(ls "$work"/lockwatch_*.deb) || fail "no .deb in $work"
echo "$(basename "$deb"): $(stat -c %s "$deb") bytes"
dpkg-deb -f "$deb" Depends
contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/lockwatch ./usr/lib/lockwatch/tools/vm/run-vm.sh \
    ./usr/lib/lockwatch/tools/kernel/build-kernel.sh ./usr/lib/lockwatch/tools/kernel/seed-bug.patch \
    ./usr/lib/lockwatch/tools/lib/safe-files.sh ./usr/lib/lockwatch/repro/seed-repro \
    ./usr/lib/systemd/system/lockwatch.service ./usr/lib/systemd/catalog/lockwatch.catalog \
    ./usr/share/man/man8/lockwatch.8 ./usr/share/doc/lockwatch/json-schema.json; do
    grep -q " $path\$" <<<"$contents" || fail "the package has no $path"
done

echo "== a container booted by systemd"
mkdir "$work/share" && cp "$deb" "$work/share/lockwatch.deb"
# nspawn's own --volatile=overlay refuses the host's root directory: the
# overlay is made here, its writable layer in a tmpfs of its own.
mount -t tmpfs -o size=2G,mode=0700 lockwatch-deploy "$root" &&
    mkdir "$root/upper" "$root/work" "$root/merged" &&
    mount -t overlay overlay -o "lowerdir=/,upperdir=$root/upper,workdir=$root/work" "$root/merged" ||
    skip "cannot mount an overlay of / here"
systemd-nspawn --quiet --directory="$root/merged" --register=no --keep-unit \
    --private-network --console=passive --bind-ro="$work/share:/lwtest" \
    --boot -- systemd.unit=basic.target >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
leader=''
for _ in $(seq 120); do
    leader=$(ps -o pid= --ppid "$nspawn_pid" | tr -d ' ' | head -1)
    [[ -n $leader ]] && [[ $(cat "/proc/$leader/comm" 2>/dev/null) == systemd ]] && break
    leader=''
    kill -0 "$nspawn_pid" 2>/dev/null || { cat "$work/nspawn.log"; fail "the container did not boot"; }
    sleep 0.5
done
[[ -n $leader ]] || { cat "$work/nspawn.log"; fail "no systemd in the container"; }
inside() { nsenter --target "$leader" --mount --uts --ipc --net --pid -- "$@"; }
# Until its manager answers and has finished starting up.
state=''
for _ in $(seq 240); do
    state=$(inside systemctl is-system-running 2>/dev/null)
    [[ $state == running || $state == degraded ]] && break
    sleep 0.5
done
echo "container: $state"
[[ $state == running || $state == degraded ]] || fail "the container's systemd is $state"

echo "== dpkg -i"
inside dpkg -i /lwtest/lockwatch.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
version=$(inside lockwatch --version) || fail "lockwatch --version"
echo "$version"
[[ $version == "lockwatch "* ]] || fail "lockwatch --version said '$version'"
# grep -q stops reading at the first match; under pipefail the writer's
# SIGPIPE would fail the pipeline, so each output is read whole first.
vm_help=$(inside lockwatch vm --help)
grep -q "Boot a test VM" <<<"$vm_help" || fail "lockwatch vm --help"
inside man -w lockwatch >/dev/null 2>&1 || inside test -f /usr/share/man/man8/lockwatch.8 || fail "no man page"
# The VM scripts are found beside the install: a missing kernel is the VM's
# failure (5), not missing tools (3).
out=$(inside lockwatch vm --kernel /nonexistent/bzImage --vmlinux none -- true 2>&1); rc=$?
[[ $rc == 5 ]] || fail "lockwatch vm without a kernel exited $rc: $out"
grep -q 'reinstall lockwatch' <<<"$out" && fail "the installed lockwatch did not find its tools: $out"
catalog=$(inside journalctl --list-catalog 2>/dev/null)
grep -q '^f49a2bfbd86d4734a09e121b011b5a88 lockwatch' <<<"$catalog" ||
    fail "the catalog entries are not in the journal's catalog"

echo "== systemctl start lockwatch"
inside lockwatch check >"$work/check.txt" 2>&1; can_trace=$?
cat "$work/check.txt"
inside systemctl start lockwatch.service; start_rc=$?
sleep 2
show() { inside systemctl show -P "$1" lockwatch.service; }
echo "start: $start_rc, ActiveState=$(show ActiveState), ExecMainStatus=$(show ExecMainStatus)," \
    "NRestarts=$(show NRestarts), StatusText=$(show StatusText)"
if [[ $can_trace == 0 ]]; then
    [[ $start_rc == 0 && $(show ActiveState) == active ]] || fail "the unit is not active"
    [[ $(show StatusText) == tracing ]] || fail "no READY=1 with STATUS=tracing"
    inside systemctl stop lockwatch.service || fail "systemctl stop"
    [[ $(show Result) == success ]] || fail "stopped with Result=$(show Result)"
    journal=$(inside journalctl -u lockwatch.service --no-pager)
    grep -q 'detached' <<<"$journal" || fail "no detach in the journal"
else
    [[ $start_rc != 0 ]] || fail "a kernel lockwatch cannot trace, and systemctl start succeeded"
    [[ $(show ExecMainStatus) == 3 ]] || fail "exit status $(show ExecMainStatus), not 3"
    [[ $(show StatusText) == "cannot trace: cannot trace this kernel: "* ]] || fail "no STATUS= refusal"
    sleep 1
    [[ $(show NRestarts) == 0 ]] || fail "restarted after a refusal (RestartPreventExitStatus)"
    inside journalctl -u lockwatch.service --no-pager >"$work/journal.txt"
    grep -q "cannot trace this kernel: $(grep -m1 '^FAIL' "$work/check.txt" | awk '{print $2}')" \
        "$work/journal.txt" || { cat "$work/journal.txt"; fail "the journal does not name the failing row"; }
fi
inside test -d /var/lib/lockwatch || fail "no StateDirectory /var/lib/lockwatch"

echo "== dpkg -r"
inside dpkg -r lockwatch >"$work/dpkg-r.log" 2>&1 || { cat "$work/dpkg-r.log"; fail "dpkg -r"; }
inside test ! -e /usr/bin/lockwatch || fail "/usr/bin/lockwatch is still there"
echo "PASS"
