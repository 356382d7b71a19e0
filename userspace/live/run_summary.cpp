#include "live/run_summary.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "engine/kernel_frames.h"

namespace lockwatch {

std::string format_coverage(const std::vector<HookStatus> &hooks) {
    std::string covered, missing;
    size_t n_covered = 0, n_missing = 0;
    for (const HookStatus &hook : hooks) {
        if (hook.state == HookState::Attached) {
            covered += fmt::format(" {}", hook.function->symbol);
            ++n_covered;
        } else {
            missing += fmt::format("\n    {} ({})", hook.function->symbol, hook.reason);
            ++n_missing;
        }
    }
    std::string text =
        fmt::format("lock functions: {} covered, {} missing\n", n_covered, n_missing);
    text += fmt::format("  covered:{}\n", covered.empty() ? " none" : covered);
    if (n_missing) {
        text += fmt::format("  missing:{}\n", missing);
    }
    return text;
}

std::string format_interval(double elapsed_s, double interval_s,
                            const std::array<uint64_t, LW_FN_COUNT> &delta) {
    std::vector<size_t> order(delta.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return delta[a] > delta[b]; });
    uint64_t total = std::accumulate(delta.begin(), delta.end(), uint64_t{0});
    double scale = interval_s > 0 ? 1.0 / interval_s : 0.0;
    std::string line = fmt::format("[{:7.1f}s] {:.0f} lock ops/s:", elapsed_s, total * scale);
    const char *sep = " ";
    for (size_t id : order) {
        if (delta[id] == 0) {
            break;
        }
        line += fmt::format("{}{} {:.0f}", sep, lock_functions()[id].symbol, delta[id] * scale);
        sep = ", ";
    }
    return line + "\n";
}

std::string format_summary(double elapsed_s, const std::vector<HookStatus> &hooks,
                           const std::array<uint64_t, LW_FN_COUNT> &calls) {
    std::string text = fmt::format("summary after {:.1f} s:\n", elapsed_s);
    text += fmt::format("  {:<32} {:<6} {:<8} {:>12} {:>12}\n", "function", "kind", "op", "calls",
                        "calls/s");
    uint64_t total = 0;
    for (const HookStatus &hook : hooks) {
        if (hook.state != HookState::Attached) {
            continue;
        }
        const LockFunction &fn = *hook.function;
        uint64_t n = calls[fn.id];
        total += n;
        text +=
            fmt::format("  {:<32} {:<6} {:<8} {:>12} {:>12.0f}\n", fn.symbol, to_string(fn.kind),
                        to_string(fn.op), n, elapsed_s > 0 ? n / elapsed_s : 0.0);
    }
    text += fmt::format("  {:<32} {:<6} {:<8} {:>12} {:>12.0f}\n", "total", "", "", total,
                        elapsed_s > 0 ? total / elapsed_s : 0.0);
    return text + "\n";
}

std::string format_lockdep_off(double since_boot_s, bool tracer_flag) {
    return fmt::format(
        "lockdep has turned itself off (debug_locks 0, after its first report), seen at {:.3f} s "
        "since boot; lockwatch keeps checking, with the hardirq state {}",
        since_boot_s,
        tracer_flag ? "from the irq tracer's per-CPU flag (tracing_irq_cpu), as lockdep's own "
                      "no longer changes"
                    : "inferred from the held locks (this kernel has no tracing_irq_cpu), as "
                      "lockdep's own no longer changes");
}

namespace {

// What the kernel's recursion count leaves out (CaptureLosses::KprobeSkips).
std::string_view uncounted_kprobe_skips(const CaptureLosses &losses) {
    switch (losses.kprobe_skips) {
        case CaptureLosses::KprobeSkips::None:
            return "";
        case CaptureLosses::KprobeSkips::InsideKprobesUncounted:
            return " (the kernel does not count the kprobes it skips inside another kprobe)";
        case CaptureLosses::KprobeSkips::Uncounted:
            return " (this kernel does not count its skips of kprobe programs)";
    }
    return "";
}

}  // namespace

std::string format_losses(const CaptureLosses &losses) {
    std::string text = "losses:";
    for (size_t i = 0; i < losses.bpf.size(); ++i) {
        text += fmt::format("{} {} {}", i ? "," : "", to_string(static_cast<lw_loss>(i)),
                            losses.bpf[i]);
    }
    text += fmt::format(", kernel recursion misses {}{}, short records {}, malformed records {}",
                        losses.kernel_recursion_misses, uncounted_kprobe_skips(losses),
                        losses.short_records, losses.malformed_records);
    if (losses.unread_at_stop != 0) {
        text += fmt::format(", unread at stop {}", losses.unread_at_stop);
    }
    text += "; notes:";
    for (size_t i = 0; i < LW_NOTE_EDGES_KEPT; ++i) {
        text += fmt::format("{} {} {}", i ? "," : "", to_string(static_cast<lw_note>(i)),
                            losses.notes[i]);
    }
    // A full map stops new facts of its kind (LW_LOSS_DEDUP_FULL).
    auto fill = [](uint64_t kept, uint64_t size) {
        return fmt::format("{}/{} ({:.1f} %)", kept, size, 100.0 * kept / size);
    };
    text += fmt::format("; dedup maps: edges {}, class_usage {}",
                        fill(losses.notes[LW_NOTE_EDGES_KEPT], LW_EDGES_MAP_ENTRIES),
                        fill(losses.notes[LW_NOTE_CLASSES_KEPT], LW_CLASS_USAGE_MAP_ENTRIES));
    if (losses.skipped_nested_tracepoints != 0) {
        text += fmt::format(
            ", lockdep tracepoints skipped while lockwatch ran (mostly its own "
            "rcu and map locks) {}",
            losses.skipped_nested_tracepoints);
    }
    return text;
}

std::string format_symbol_rereads(uint64_t reloads, uint64_t deferred, uint64_t failed) {
    return fmt::format("module symbols: {} re-read{} of /proc/kallsyms ({} deferred, {} failed)",
                       reloads, reloads == 1 ? "" : "s", deferred, failed);
}

std::string caller_of(const std::vector<uint64_t> &frames, const Kallsyms &kallsyms) {
    for (uint64_t ip : frames) {
        auto sym = kallsyms.symbolize(ip);
        if (!sym) {
            continue;
        }
        const std::string &name = sym->name;
        if (is_lock_function(name) || engine::is_bpf_machinery(name)) {
            continue;
        }
        return kallsyms.format(ip);
    }
    return "?";
}

void ClassAgreement::add(uint64_t lockdep_class, uint64_t derived_class, uint32_t derived_type,
                         const std::string &derived_name) {
    if (derived_type == LW_CLASS_SITE) {
        by_call_site_.insert(lockdep_class);
        return;
    }
    by_lockdep_[lockdep_class].insert(derived_class);
    by_derived_[derived_class].insert(lockdep_class);
    if (!derived_name.empty()) {
        derived_names_.emplace(derived_class, derived_name);
    }
    if (derived_type == LW_CLASS_KMALLOC) {
        fallback_.insert(derived_class);
    } else if (derived_type == LW_CLASS_KMALLOC_ALLOC) {
        by_alloc_site_.insert(derived_class);
    }
}

std::pair<uint64_t, const std::string *> ClassAgreement::address_class_of(
    uint64_t lockdep_class) const {
    auto at = by_lockdep_.find(lockdep_class);
    if (at == by_lockdep_.end() || at->second.size() != 1) {
        return {0, nullptr};
    }
    uint64_t derived = *at->second.begin();
    auto name = derived_names_.find(derived);
    return {derived, name == derived_names_.end() ? nullptr : &name->second};
}

void ClassAgreement::add_edge(uint64_t prev, uint64_t next) {
    in_edges_.insert(prev);
    in_edges_.insert(next);
}

ClassAgreement::Counts ClassAgreement::counts(bool in_edges_only) const {
    Counts n;
    std::set<uint64_t> derived_seen;
    for (const auto &[lockdep, derived] : by_lockdep_) {
        if (in_edges_only && !in_edges_.contains(lockdep)) {
            continue;
        }
        ++n.compared;
        n.one_to_one += derived.size() == 1 && by_derived_.at(*derived.begin()).size() == 1;
        n.split += derived.size() > 1;
        derived_seen.insert(derived.begin(), derived.end());
    }
    for (uint64_t derived : derived_seen) {
        n.merged += by_derived_.at(derived).size() > 1;
        n.fallback += fallback_.contains(derived);
        n.by_alloc_site += by_alloc_site_.contains(derived);
    }
    return n;
}

std::string ClassAgreement::format() const {
    Counts all = counts(false), edges = counts(true);
    return fmt::format(
        "class agreement, lockdep's classes vs lockwatch's address rules: {} lockdep classes "
        "compared, {} one-to-one, {} split over several address classes, {} address classes "
        "merging several lockdep classes; {} lockdep classes in call-site memory not compared; "
        "in edges: {} compared, {} one-to-one, {} split, {} merged; {} address classes by first "
        "acquirer (allocated before attach)",
        all.compared, all.one_to_one, all.split, all.merged, by_call_site(), edges.compared,
        edges.one_to_one, edges.split, edges.merged, all.fallback);
}

namespace {

std::string percent(size_t part, size_t whole) {
    return whole ? fmt::format("{:.1f} %", 100.0 * static_cast<double>(part) / whole) : "-";
}

// lockdep's name of a class without its annotations: "&dentry->d_lock/2"
// (subclass 2, from spin_lock_nested()) and "&sb->s_type->i_lock_key#7" (the
// 7th key of that name, from lockdep_set_class() or another inlined
// spin_lock_init()) both become the bare name. Without lockdep both
// annotations compile to nothing, so no address rule can tell them apart.
std::string without_annotations(std::string name) {
    for (char mark : {'/', '#'}) {
        size_t at = name.rfind(mark);
        if (at != std::string::npos && at + 1 < name.size() &&
            std::all_of(name.begin() + static_cast<long>(at) + 1, name.end(),
                        [](char c) { return c >= '0' && c <= '9'; })) {
            name.resize(at);
        }
    }
    return name;
}

}  // namespace

size_t ClassAgreement::merged_by_annotation(
    const std::function<std::string(uint64_t)> &lockdep_name) const {
    // O(pairs): each compared pair is looked at once from each side.
    size_t n = 0;
    for (const auto &[lockdep, derived] : by_lockdep_) {
        if (!in_edges_.contains(lockdep) || derived.size() != 1) {
            continue;
        }
        const std::set<uint64_t> &mates = by_derived_.at(*derived.begin());
        std::string base = without_annotations(lockdep_name(lockdep));
        n += mates.size() > 1 && std::all_of(mates.begin(), mates.end(), [&](uint64_t other) {
                 return without_annotations(lockdep_name(other)) == base;
             });
    }
    return n;
}

std::string ClassAgreement::table(const std::function<std::string(uint64_t)> &lockdep_name) const {
    auto derived_name = [&](uint64_t id) {
        auto at = derived_names_.find(id);
        return at == derived_names_.end() ? std::string("?") : at->second;
    };
    std::string out =
        "class comparison          compared  one-to-one          split  merged  kmalloc by "
        "first acquirer, by allocation site\n";
    for (bool edges : {false, true}) {
        Counts n = counts(edges);
        out += fmt::format("  {:<22} {:>9}  {:>5} ({:>7})  {:>5}  {:>6}  {:>5} {:>5}\n",
                           edges ? "classes in edges" : "all classes", n.compared, n.one_to_one,
                           percent(n.one_to_one, n.compared), n.split, n.merged, n.fallback,
                           n.by_alloc_site);
    }
    Counts edges = counts(true);
    size_t invisible = merged_by_annotation(lockdep_name);
    size_t reachable = edges.compared - invisible;
    out += fmt::format(
        "  classes in edges that only lockdep's annotations tell apart (subclass /N, key #N): "
        "{}; reachable without lockdep: {} of {} ({}); one-to-one among those: {} ({})\n",
        invisible, reachable, edges.compared, percent(reachable, edges.compared), edges.one_to_one,
        percent(edges.one_to_one, reachable));
    std::set<uint64_t> merged;
    for (const auto &[lockdep, derived] : by_lockdep_) {
        if (!in_edges_.contains(lockdep)) {
            continue;
        }
        if (derived.size() > 1) {
            out += fmt::format("  split: {} ->", lockdep_name(lockdep));
            for (uint64_t d : derived) {
                out += " " + derived_name(d);
            }
            out += "\n";
        }
        for (uint64_t d : derived) {
            if (by_derived_.at(d).size() > 1) {
                merged.insert(d);
            }
        }
    }
    for (uint64_t d : merged) {
        out += fmt::format("  merged: {} <-", derived_name(d));
        for (uint64_t lockdep : by_derived_.at(d)) {
            out += " " + lockdep_name(lockdep);
        }
        out += "\n";
    }
    return out;
}

}  // namespace lockwatch
