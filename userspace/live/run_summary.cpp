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

std::string format_losses(const CaptureLosses &losses) {
    std::string text = "losses:";
    for (size_t i = 0; i < losses.bpf.size(); ++i) {
        text += fmt::format("{} {} {}", i ? "," : "", to_string(static_cast<lw_loss>(i)),
                            losses.bpf[i]);
    }
    text +=
        fmt::format(", kernel recursion misses {}, short records {}, malformed records {}",
                    losses.kernel_recursion_misses, losses.short_records, losses.malformed_records);
    text += "; notes:";
    for (size_t i = 0; i < losses.notes.size(); ++i) {
        text += fmt::format("{} {} {}", i ? "," : "", to_string(static_cast<lw_note>(i)),
                            losses.notes[i]);
    }
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

void ClassAgreement::add(uint64_t lockdep_class, uint64_t derived_class, uint32_t derived_type) {
    if (derived_type == LW_CLASS_SITE) {
        by_call_site_.insert(lockdep_class);
        return;
    }
    by_lockdep_[lockdep_class].insert(derived_class);
    by_derived_[derived_class].insert(lockdep_class);
}

size_t ClassAgreement::one_to_one() const {
    size_t n = 0;
    for (const auto &[lockdep, derived] : by_lockdep_) {
        n += derived.size() == 1 && by_derived_.at(*derived.begin()).size() == 1;
    }
    return n;
}

size_t ClassAgreement::split() const {
    size_t n = 0;
    for (const auto &[lockdep, derived] : by_lockdep_) {
        n += derived.size() > 1;
    }
    return n;
}

size_t ClassAgreement::merged() const {
    size_t n = 0;
    for (const auto &[derived, lockdep] : by_derived_) {
        n += lockdep.size() > 1;
    }
    return n;
}

std::string ClassAgreement::format() const {
    return fmt::format(
        "class agreement, lockdep's classes vs lockwatch's address rules: {} lockdep classes "
        "compared, {} one-to-one, {} split over several address classes, {} address classes "
        "merging several lockdep classes; {} lockdep classes in call-site memory not compared",
        lockdep_classes(), one_to_one(), split(), merged(), by_call_site());
}

}  // namespace lockwatch
