#!/bin/sh
# The guest side of tools/soak/soak.sh: attach and detach `lockwatch run` over
# and over under a module workload, and dump every task's kernel stack when
# anything stops making progress. Runs under busybox sh in the test VM.
#
#   soak-guest.sh CYCLES DURATION_S WORK_S ATTACH_LIMIT_S DETACH_LIMIT_S [KMOD]
#
# Stops after CYCLES cycles (0: no limit) or DURATION_S seconds (0: no
# limit), whichever comes first. A cycle: start `lockwatch run`, wait for its
# --ready-file (at most ATTACH_LIMIT_S), let the workload run WORK_S seconds,
# stop it with SIGINT, SIGTERM or SIGKILL in turn, wait for it to exit (at
# most DETACH_LIMIT_S), then check that none of its BPF programs, maps,
# kprobes or ftrace hooks is left. The workload runs the whole time, across
# attach and detach: virtio_net traffic to qemu's user network, ext4 on a
# loop device, fork/exec, timers (stress-ng when present), the bridge and
# dummy modules unloaded and loaded again, and, with KMOD (a
# lockwatch_scenarios.ko), that module loaded, its healthy scenarios run and
# unloaded.
#
# Output lines, all on stdout:
#   soak-cycle N sig=INT attach=S.s programs=P exit=E detach=S.s settle=S.s leaked=L findings=F (summary=S.s detaching=S.s detached=S.s)
#     and lockwatch's own lines on its stop: graph, losses, the detach
#   soak-heartbeat t=S cycle=N phase=PHASE      (every 10 s, from the watchdog)
#   soak-stall ...                             (the watchdog's dump, see below)
#   soak-summary cycles=N attached=A detached=D leaked=L hangs=H findings=F failed=X seconds=S
# A stall is a phase that overran its limit: the watchdog, a process of its
# own, prints lockwatch's state (status, wchan, kernel stack of each thread,
# open fds), bpftool's program and map lists, then triggers sysrq w (blocked
# tasks) and l (every CPU's backtrace) and copies the kernel log since.
# shellcheck disable=SC3043  # busybox's sh has local
set -u

cycles=${1:?cycles} duration=${2:?duration} work=${3:?work seconds}
attach_limit=${4:?attach limit} detach_limit=${5:?detach limit} kmod=${6:-}
state=/tmp/soak
mkdir -p $state
: >$state/stalls

now() { local up; read -r up _ </proc/uptime; echo "${up%.*}"; }
# The watchdog reads what the main loop is doing, and until when, from here.
phase() {
    echo "$(($(now) + $2)) $1 ${3:-0} ${cycle:-0}" >$state/progress.new
    mv $state/progress.new $state/progress
}

lw_prog_pattern=' name \(fentry\|fexit\|kprobe\|kretprobe\|lockdep\|focus\|kmalloc\)_'
lw_programs() { bpftool prog show 2>/dev/null | grep -c "$lw_prog_pattern"; }
all_maps() { bpftool map show 2>/dev/null | grep -c '^[0-9]*:'; }
lines_of() { local n; n=$(grep -c . "$1" 2>/dev/null); echo "${n:-0}"; }
kprobes() { lines_of /sys/kernel/debug/kprobes/list; }
ftrace_hooks() { lines_of /sys/kernel/tracing/enabled_functions; }

# ---- the watchdog -----------------------------------------------------------

# Everything about one task: state, wait channel, each thread's kernel stack.
dump_task() {
    local p=/proc/$1 t
    [ -d "$p" ] || { echo "  pid $1: gone"; return; }
    echo "  pid $1 ($(cat $p/comm 2>/dev/null)): $(grep -E '^(State|SigPnd|ShdPnd|SigBlk|SigCgt)' $p/status 2>/dev/null | tr '\t\n' '  ')"
    for t in $p/task/*; do
        echo "  thread ${t##*/} ($(cat $t/comm 2>/dev/null)) $(grep State: $t/status 2>/dev/null | tr '\t' ' ') wchan $(cat $t/wchan 2>/dev/null) syscall $(cut -d' ' -f1 $t/syscall 2>/dev/null)"
        sed 's/^/      /' $t/stack 2>/dev/null
    done
    echo "  open files: $(ls -l $p/fd 2>/dev/null | sed -n 's/.*-> //p' | sort | uniq -c | tr '\n' ';')"
    # Busy in user space (a loop) or asleep: its CPU time over 2 s.
    t=$(cut -d' ' -f14,15 $p/stat 2>/dev/null); sleep 2
    echo "  utime stime (ticks): $t, 2 s later $(cut -d' ' -f14,15 $p/stat 2>/dev/null)"
}

dump_state() {
    local p mark
    echo "soak-stall: cycle $4 phase $2 overran its limit (lockwatch pid $3, uptime $(now) s)"
    if [ "$3" != 0 ]; then
        dump_task "$3"
        echo "  its log, last lines:"
        tail -n 15 $state/lw.log | sed 's/^/    /'
    fi
    for p in /proc/[0-9]*; do  # every other task in uninterruptible sleep
        case "$(grep State: $p/status 2>/dev/null)" in
            *D*) [ "${p#/proc/}" != "$3" ] && dump_task "${p#/proc/}" ;;
        esac
    done
    echo "  bpftool prog show:"
    bpftool prog show 2>&1 | grep -E '^[0-9]+:' | sed 's/^/    /'
    echo "  bpftool map show:"
    bpftool map show 2>&1 | grep -E '^[0-9]+:' | sed 's/^/    /'
    echo "  kprobes $(kprobes), ftrace hooks $(ftrace_hooks)"
    mark=$(dmesg | wc -l)
    echo w >/proc/sysrq-trigger
    echo l >/proc/sysrq-trigger
    sleep 2
    echo "  kernel log (sysrq w, l):"
    dmesg | tail -n +$((mark + 1)) | sed 's/^/    /'
    echo "soak-stall: end of dump"
}

watchdog() {
    local t last_beat=0 dumped='' deadline ph pid cyc
    while [ ! -e $state/done ]; do
        t=$(now)
        read -r deadline ph pid cyc <$state/progress 2>/dev/null || { sleep 1; continue; }
        if [ "$t" -gt "$deadline" ] && [ "$dumped" != "$cyc/$ph" ]; then
            dumped="$cyc/$ph"
            echo "$cyc $ph" >>$state/stalls
            dump_state "$deadline" "$ph" "$pid" "$cyc"
        fi
        if [ $((t - last_beat)) -ge 10 ]; then
            echo "soak-heartbeat t=$t cycle=$cyc phase=$ph"
            last_beat=$t
        fi
        sleep 1
    done
}

# ---- the workload -----------------------------------------------------------

setup() {
    for tool in lockwatch bpftool; do
        command -v $tool >/dev/null || { echo "soak: $tool is not in the guest"; return 1; }
    done
    echo 1 >/proc/sys/kernel/sysrq
    # Blocked-task and soft-lockup reports reach the console well within a stall.
    sysctl -qw kernel.hung_task_timeout_secs=30 2>/dev/null
    ip link set lo up
    modprobe -a virtio_pci virtio_net loop bridge dummy || return 1
    ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 || return 1
    dd if=/dev/zero of=/tmp/ext4.img bs=1M count=32 2>/dev/null
    losetup /dev/loop0 /tmp/ext4.img && mke2fs -q /dev/loop0 >/dev/null && mkdir -p /mnt/ext4 &&
        mount -t ext4 /dev/loop0 /mnt/ext4 >/dev/null || return 1
    [ -z "$kmod" ] || [ -f "$kmod" ] || { echo "soak: $kmod not found"; return 1; }
}

# Each worker loops until the soak is done.
worker() {
    while [ ! -e $state/done ]; do "$@"; done >/dev/null 2>&1
}
net_load() { ping -q -c 100 -s 1400 -i 0.02 -W 1 10.0.2.2; }
disk_load() {
    dd if=/dev/urandom of=/mnt/ext4/f bs=64k count=16 conv=fsync
    cat /mnt/ext4/f >/dev/null; rm -f /mnt/ext4/f; sync; sleep 0.5
}
exec_load() { sh -c 'cat /proc/self/stat; ls /proc/[0-9]*/fd'; sleep 0.2; }
module_load() {
    modprobe -r bridge && modprobe bridge
    modprobe dummy && ip link add soak0 type dummy && ip link set soak0 up &&
        ip link del soak0 && modprobe -r dummy
    if [ -n "$kmod" ]; then
        insmod "$kmod"
        for s in healthy_irqsave healthy_bh healthy_order healthy_trylock_reverse \
            healthy_nested healthy_local_irq_save healthy_rwlock_read healthy_read_bh_abba; do
            echo $s >/sys/module/lockwatch_scenarios/parameters/run
        done
        rmmod lockwatch_scenarios
    fi
    sleep 2
}

start_workload() {
    worker net_load &
    worker disk_load &
    worker exec_load &
    worker module_load &
    if command -v stress-ng >/dev/null; then
        # Output to a file, never a pipe that a straggler could keep open.
        # Timers at 1 kHz, not the stressor's default 1 MHz: hrtimers and
        # their softirq stay busy, and the CPUs are left to the rest.
        stress-ng --timer 1 --timer-freq 1000 --fork 1 --timeout 0 >$state/stress.log 2>&1 &
        echo $! >$state/stress.pid
    fi
}

# ---- the cycles -------------------------------------------------------------

# True while pid $1 has not exited (neither gone nor a zombie).
running() {
    case "$(cut -d' ' -f3 /proc/$1/stat 2>/dev/null)" in ''|Z) return 1 ;; esac
}
# Waits until pid $1 has exited, at most $2 seconds (by the clock: each
# check forks, which takes far longer than its sleep in a loaded guest);
# true when it did. With a log ($3) and a start (centiseconds, $4), notes
# when the stop reached each step there: timeline="summary=S detaching=S
# detached=S" (seconds since $4, - for a step not seen).
wait_exit() {
    local end=$(($(now) + $2)) step
    # Not the counters' names: at_ in front.
    at_summary=- at_detaching=- at_detached=-
    while running $1; do
        if [ -n "${3:-}" ]; then
            for step in summary detaching detached; do
                eval "[ \$at_$step = - ]" || continue
                case $step in
                    summary) grep -q '^summary after' "$3" ;;
                    detaching) grep -q '^lockwatch: detaching' "$3" ;;
                    detached) grep -q '^lockwatch: detached' "$3" ;;
                esac && eval "at_$step=$(since "$4")"
            done
        fi
        timeline="summary=$at_summary detaching=$at_detaching detached=$at_detached"
        [ "$(now)" -ge $end ] && return 1
        sleep 0.2
    done
    timeline="summary=$at_summary detaching=$at_detaching detached=$at_detached"
}

# Seconds since $1 (uptime centiseconds) as S.s.
since() {
    local up c
    read -r up _ </proc/uptime
    c=$(( ${up%.*}${up#*.} - $1 ))
    echo "$((c / 100)).$(((c % 100) / 10))"
}
centis() { local up; read -r up _ </proc/uptime; echo "${up%.*}${up#*.}"; }

# Waits until no program, map, kprobe or ftrace hook of lockwatch's is left,
# at most 20 s (after SIGKILL the kernel frees them when the last fd closes,
# and a program's memory after an RCU grace period); prints what is left.
settle() {
    local end=$(($(now) + 20)) p m k f
    while :; do
        p=$(lw_programs) m=$(($(all_maps) - base_maps)) k=$(kprobes) f=$(ftrace_hooks)
        [ "$p$m$k$f" = 0000 ] && return 0
        [ "$(now)" -ge $end ] && break
        sleep 0.2
    done
    echo "soak: left after detach: $p programs, $m maps, $k kprobes, $f ftrace hooks"
    return 1
}

one_cycle() {
    local sig=$1 log=$state/lw.log end lw t0 t1 t2 attach programs detach rc left found

    rm -f $state/ready
    t0=$(centis)
    phase attach "$attach_limit"
    # --stats: a line every 10 s, so that its log shows whether it still reads.
    lockwatch run --stats --interval 10 --ready-file $state/ready >$log 2>&1 &
    lw=$!
    phase attach "$attach_limit" $lw
    end=$(($(now) + attach_limit))
    while [ ! -e $state/ready ] && running $lw && [ "$(now)" -lt $end ]; do
        sleep 0.2
    done
    if [ ! -e $state/ready ]; then
        echo "soak-cycle $cycle attach failed after $(since $t0) s:"; sed 's/^/  /' $log | tail -20
        kill -KILL $lw 2>/dev/null; wait_exit $lw 30; wait $lw 2>/dev/null
        failed=$((failed + 1))
        settle >/dev/null
        return
    fi
    attach=$(since $t0) programs=$(lw_programs)
    attached=$((attached + 1))
    phase work $((work + 30)) $lw
    sleep "$work"
    t1=$(centis)
    phase detach "$detach_limit" $lw
    kill -$sig $lw
    if ! wait_exit $lw $((detach_limit + 15)) $log $t1; then
        # The watchdog has dumped by now (and counted the stall); try the
        # hard way once.
        echo "soak-cycle $cycle sig=$sig: lockwatch did not exit within $((detach_limit + 15)) s; SIGKILL"
        kill -KILL $lw
        if ! wait_exit $lw 60 $log $t1; then
            echo "soak-cycle $cycle: lockwatch survived SIGKILL for 60 s; giving up"
            return 1
        fi
    fi
    wait $lw; rc=$?
    detach=$(since $t1)
    phase settle 60 0
    t2=$(centis)
    if settle; then left=0; else left=1; leaked=$((leaked + 1)); fi
    found=$(grep -c '^WARNING:' $log)
    findings=$((findings + found))
    case $sig in
        KILL) [ $rc = 137 ] && detached=$((detached + 1)) ;;
        *) [ $rc = 0 ] && grep -q 'detached [0-9]* programs' $log && detached=$((detached + 1)) ;;
    esac
    echo "soak-cycle $cycle sig=$sig attach=$attach programs=$programs exit=$rc detach=$detach settle=$(since $t2) leaked=$left findings=$found ($timeline)"
    grep -E '^(summary after|lockwatch: (stopped|detached)|  (graph|losses|module symbols):)' $log | sed 's/^ */  | /' 
    if [ "$found" != 0 ] || { [ $sig != KILL ] && [ $rc != 0 ]; }; then
        sed 's/^/  | /' $log | tail -60
    fi
}

cycle=0 attached=0 detached=0 leaked=0 hangs=0 findings=0 failed=0
phase setup 120
watchdog &
if ! setup; then
    echo "soak: setup failed"
    touch $state/done
    exit 1
fi
base_maps=$(all_maps)
start_workload
echo "soak: cpus $(nproc), kernel $(uname -r), workload started${kmod:+ with $kmod}"
start=$(now)
while :; do
    [ "$cycles" -gt 0 ] && [ $cycle -ge "$cycles" ] && break
    [ "$duration" -gt 0 ] && [ $(($(now) - start)) -ge "$duration" ] && break
    cycle=$((cycle + 1))
    case $((cycle % 3)) in 1) sig=INT ;; 2) sig=TERM ;; 0) sig=KILL ;; esac
    one_cycle $sig || break
done
phase finish 120
touch $state/done
[ -f $state/stress.pid ] && kill "$(cat $state/stress.pid)" 2>/dev/null
wait
hangs=$((hangs + $(grep -c . $state/stalls)))
echo "soak-summary cycles=$cycle attached=$attached detached=$detached leaked=$leaked hangs=$hangs findings=$findings failed=$failed seconds=$(($(now) - start))"
