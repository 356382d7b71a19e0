#!/bin/sh
# The guest side of bench/vm/cost.sh: in one boot, the workload with no
# tracer, under hook-floor's empty programs and under `lockwatch run`, for
# each configuration named; then, for each backend in STATS, one more run
# under lockwatch with kernel.bpf_stats_enabled, for the cost per program.
#
# Usage: cost-guest.sh ROUNDS RUNS "CONFIG..." "STATS_BACKEND..." [PROFILE]
#   CONFIG: none, floor-BACKEND (empty programs), held-BACKEND (programs
#   that only keep held-lock stacks), sites-BACKEND (held-lock stacks with
#   each lock's call site), lockwatch-BACKEND (BACKEND: auto,
#   fentry, kprobe; lockdep too for lockwatch on a lockdep kernel) or
#   baseline-BACKEND (the same with lockwatch-baseline, cost.sh --baseline)
# Prints, for cost.sh to read:
#   cost-run CONFIG N SECONDS           one run's total (lock-workload's)
#   cost-phase CONFIG N PHASE SECONDS   its loops
#   cost-losses CONFIG TEXT             lockwatch's losses line
#   cost-findings CONFIG N              lockwatch's findings (reports)
#   cost-attach CONFIG SECONDS          how long attaching took
#   cost-prog BACKEND NAME CALLS NS     bpf_stats per program
#   cost-xlated BACKEND NAME BYTES      the program's size after the verifier
#   cost-profile BACKEND LINE           PROFILE=1: lockwatch's cost per phase
#   cost-error TEXT
rounds=$1 runs=$2 configs=$3 stats=$4 profile=${5:-0}
ready=/tmp/cost-ready log=/tmp/cost-lw.log extra=

now() { cut -d' ' -f1 /proc/uptime; }

start_tracer() {  # CONFIG: starts what it names, waits until attached
    local t0
    rm -f $ready
    t0=$(now)
    case $1 in
        none) tracer=; return 0 ;;
        floor-*) hook-floor --backend "${1#floor-}" --ready-file $ready >$log 2>&1 & ;;
        held-*) hook-floor --backend "${1#held-}" --held-stack --ready-file $ready >$log 2>&1 & ;;
        sites-*) hook-floor --backend "${1#sites-}" --held-sites --ready-file $ready >$log 2>&1 & ;;
        lockwatch-*) lockwatch run --backend "${1#lockwatch-}" --ready-file $ready $extra >$log 2>&1 & ;;
        baseline-*) lockwatch-baseline run --backend "${1#baseline-}" --ready-file $ready >$log 2>&1 & ;;
        *) echo "cost-error unknown configuration $1"; return 1 ;;
    esac
    tracer=$!
    while [ ! -e $ready ] && kill -0 $tracer 2>/dev/null; do sleep 0.2; done
    if [ ! -e $ready ]; then
        echo "cost-error $1 did not attach: $(tail -n 3 $log | tr '\n' ' ')"
        wait $tracer
        tracer=
        return 1
    fi
    echo "cost-attach $1 $(echo "$(now) $t0" | awk '{print $1 - $2}')"
}

stop_tracer() {  # CONFIG
    [ -n "$tracer" ] || return 0
    kill -INT $tracer
    wait $tracer
    tracer=
    case $1 in
        lockwatch-*|baseline-*)
            echo "cost-losses $1 $(grep -m1 '^ *losses:' $log)"
            echo "cost-findings $1 $(grep -c '^WARNING: ' $log)" ;;
    esac
}

workload() {  # CONFIG N
    lock-workload "$rounds" | while read -r tag phase n unit secs rest; do
        case $phase in
            total) echo "cost-run $1 $2 $n" ;;
            *) echo "cost-phase $1 $2 $phase $secs" ;;
        esac
    done
}

# One run first, unmeasured: page cache, slab caches and dentries warm.
lock-workload "$rounds" >/dev/null
for config in $configs; do
    start_tracer "$config" || continue
    i=1
    while [ $i -le "$runs" ]; do
        workload "$config" $i
        i=$((i + 1))
    done
    stop_tracer "$config"
done

for backend in $stats; do
    sysctl -qw kernel.bpf_stats_enabled=1
    start_tracer "lockwatch-$backend" || continue
    lock-workload "$rounds" >/dev/null
    bpftool prog show 2>/dev/null | awk -v b="$backend" '
        / name / { for (i = 1; i < NF; i++) if ($i == "name") name = $(i + 1) }
        / xlated / { for (i = 1; i < NF; i++) if ($i == "xlated") print "cost-xlated", b, name, $(i + 1) }'
    stop_tracer "lockwatch-$backend"
    sysctl -qw kernel.bpf_stats_enabled=0
    sed -n '/cost per call/,/all programs/p' $log | awk -v b="$backend" '
        $3 == "calls" { print "cost-prog", b, $1, $2, $4 }
        $1 == "all" { print "cost-prog", b, "all", $3, $5 }'
    [ "$profile" = 1 ] || continue
    # Its own run: the stamps cost instructions of their own.
    extra=--profile-phases
    start_tracer "lockwatch-$backend" || continue
    lock-workload "$rounds" >/dev/null
    stop_tracer "lockwatch-$backend"
    extra=
    awk -v b="$backend" '/cost per phase/ { on = 1; print "cost-profile", b, $0; next }
        on && /^    / { print "cost-profile", b, $0; next } { on = 0 }' $log
done
