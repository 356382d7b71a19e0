# The table of bench/vm/cost.sh, from the guests' cost-* lines (see
# cost-guest.sh). Files: the Debian boot's log, then, optionally, the seed
# and lockdep kernels' (their "none" runs are the reference).
function median(list,    n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
            t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
        }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function pct(added, base) { return base > 0 ? sprintf("%+.1f %%", 100 * added / base) : "-" }
FNR == 1 { file++ }
$1 == "cost-run" {
    key = file == 1 ? $2 : (file == 2 ? "seed" : "lockdep")
    if (!(key in total)) order[++configs] = key
    total[key] = total[key] " " $4
}
$1 == "cost-phase" && file == 1 { phase[$2, $4] = phase[$2, $4] " " $5; phases[$4] = 1 }
$1 == "cost-attach" { attach[$2] = $3 }
$1 == "cost-losses" { c = $2; sub(/^cost-losses [^ ]+ +/, ""); losses[c] = $0 }
$1 == "cost-findings" { findings = findings sprintf(" %s %s;", $2, $3) }
$1 == "cost-prog" { prog[++progs] = $0 }
$1 == "cost-profile" { profile[++profiles] = $0 }
$1 == "cost-xlated" { xlated[$2] = xlated[$2] " " $3 "=" $4 }
$1 == "cost-error" { errors[++nerr] = $0 }
END {
    unit = mode == "icount" ? "guest s = 10^9 instructions" : "wall-clock s"
    printf "lockwatch cost (%s; lock-workload %d rounds; median of %d runs)\n\n", unit, rounds, runs
    base = median(total["none"])
    printf "%-20s %9s %9s %9s %9s   %-8s %-8s %-8s %-8s\n", "configuration", "run s", "added s", "added", "x floor", "pipe", "proc", "fork", "aio"
    for (i = 1; i <= configs; i++) {
        c = order[i]
        if (c == "seed" || c == "lockdep") continue
        m = median(total[c]); added = m - base
        floor = ""
        if (c ~ /^(lockwatch|held|sites|baseline)-/) {
            f = "floor-" substr(c, index(c, "-") + 1)
            if (f in total) floor = sprintf("%.1fx", added / (median(total[f]) - base))
        }
        line = sprintf("%-20s %9.3f %9s %9s %9s  ", c, m, c == "none" ? "-" : sprintf("%.3f", added), c == "none" ? "-" : pct(added, base), floor)
        split("pipe proc fork aio", ph, " ")
        for (k = 1; k <= 4; k++) {
            b = median(phase["none", ph[k]]); v = median(phase[c, ph[k]])
            line = line sprintf(" %-8s", c == "none" ? sprintf("%.3f", v) : pct(v - b, b))
        }
        print line
    }
    if ("seed" in total && "lockdep" in total) {
        s = median(total["seed"]); l = median(total["lockdep"])
        printf "\nreference, the 6.1 seed tree: without lockdep %.3f s, with lockdep %.3f s: lockdep adds %s\n", s, l, pct(l - s, s)
        for (i = 1; i <= configs; i++) {
            c = order[i]
            if (c !~ /^(lockwatch|baseline)-/) continue
            printf "  %s adds %s: %.2f of what lockdep adds\n", c, pct(median(total[c]) - base, base), (median(total[c]) - base) / base / ((l - s) / s)
        }
    }
    if (progs) {
        printf "\nper program, kernel.bpf_stats_enabled (%s per call):\n", mode == "icount" ? "instructions" : "ns"
        for (i = 1; i <= progs; i++) {
            split(prog[i], p, " ")
            printf "  %-8s %-44s %12s calls %8s\n", p[2], p[3], p[4], p[5]
        }
    }
    if (profiles) {
        printf "\nper phase, lockwatch run --profile-phases (%s per time; a run of its own):\n", mode == "icount" ? "instructions" : "ns"
        for (i = 1; i <= profiles; i++) {
            line = profile[i]
            sub(/^cost-profile /, "", line)
            printf "  %s\n", line
        }
    }
    for (b in xlated) printf "  %s: xlated bytes per program:%s\n", b, xlated[b]
    if (length(attach)) {
        printf "\nattach time (guest s):"
        for (c in attach) printf " %s %s;", c, attach[c]
        print ""
    }
    if (findings != "") printf "findings:%s\n", findings
    for (c in losses) printf "%s %s\n", c, losses[c]
    for (i = 1; i <= nerr; i++) print errors[i]
}
