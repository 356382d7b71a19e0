// Text that `lockwatch run` prints: coverage, per-interval rates, the
// summary table. Pure functions of the numbers, so they can be tested.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "capture/capture.h"
#include "capture/kallsyms.h"

namespace lockwatch {

// "covered: ..." and "missing: ..." lines for the hooks.
std::string format_coverage(const std::vector<HookStatus> &hooks);

// One line per interval: total rate, then every function that ran, busiest first.
std::string format_interval(double elapsed_s, double interval_s,
                            const std::array<uint64_t, LW_FN_COUNT> &delta);

// The final table: every attached function with its calls and rate.
std::string format_summary(double elapsed_s, const std::vector<HookStatus> &hooks,
                           const std::array<uint64_t, LW_FN_COUNT> &calls);

// Every loss counter and every note, on one line.
std::string format_losses(const CaptureLosses &losses);

// lockdep backend: the one line said when lockdep has turned itself off
// (`tracer_flag`: the irq tracer's per-CPU flag gives the hardirq state from
// then on; else it is inferred from the held locks, and findings say so).
std::string format_lockdep_off(double since_boot_s, bool tracer_flag);

// How often the symbol table was read again for module code loaded since
// the start: "module symbols: 2 re-reads of /proc/kallsyms (1 deferred, 0 failed)".
std::string format_symbol_rereads(uint64_t reloads, uint64_t deferred, uint64_t failed);

// The first frame of a kernel stack that is neither a lock function nor BPF
// machinery (program, trampoline, dispatcher), as "symbol+0xoff/0xsize".
std::string caller_of(const std::vector<uint64_t> &frames, const Kallsyms &kallsyms);

// lockdep backend: how lockwatch's own classes (from lock addresses) agree
// with lockdep's (from init sites), pair by pair as the kernel meets them.
class ClassAgreement {
  public:
    void add(uint64_t lockdep_class, uint64_t derived_class, uint32_t derived_type,
             const std::string &derived_name = {});
    // A dependency between two lockdep classes: the classes that matter most
    // are those in edges, where a split or a merge changes what is found.
    void add_edge(uint64_t prev, uint64_t next);

    struct Counts {
        size_t compared = 0;    // lockdep classes compared
        size_t one_to_one = 0;  // ... whose address class holds no other
        size_t split = 0;       // ... whose locks fall into several address classes
        size_t merged = 0;      // address classes holding several lockdep classes
        // address classes of objects allocated before attach, keyed by the
        // first acquirer's call site instead of the allocation site
        size_t fallback = 0;
        size_t by_alloc_site = 0;  // address classes of type LW_CLASS_KMALLOC_ALLOC
    };
    // Over every compared lockdep class, or only those in edges.
    Counts counts(bool in_edges_only) const;

    size_t lockdep_classes() const { return by_lockdep_.size(); }
    size_t one_to_one() const { return counts(false).one_to_one; }
    size_t split() const { return counts(false).split; }
    size_t merged() const { return counts(false).merged; }
    // lockdep classes met in memory the address rules name by call site
    // (stacks, vmalloc): not compared.
    size_t by_call_site() const { return by_call_site_.size(); }
    std::string format() const;
    // The table of both counts, then each split and merged class of the
    // classes in edges, named by `lockdep_name` and the derived names.
    std::string table(const std::function<std::string(uint64_t)> &lockdep_name) const;
    // lockdep classes in edges that share their address class only with
    // classes of the same name but for lockdep's annotations (subclass "/N",
    // key "#N"): a kernel without lockdep has no trace of those, so no
    // address rule can map them one-to-one.
    size_t merged_by_annotation(const std::function<std::string(uint64_t)> &lockdep_name) const;
    // The address class standing for a lockdep class where there is one
    // (one-to-one or merged), with its name; a split class, or one never
    // compared, stands for itself (0 and no name).
    std::pair<uint64_t, const std::string *> address_class_of(uint64_t lockdep_class) const;

  private:
    std::map<uint64_t, std::set<uint64_t>> by_lockdep_;  // compared pairs only
    std::map<uint64_t, std::set<uint64_t>> by_derived_;
    std::map<uint64_t, std::string> derived_names_;
    std::set<uint64_t> fallback_;       // derived classes of type LW_CLASS_KMALLOC
    std::set<uint64_t> by_alloc_site_;  // ... of type LW_CLASS_KMALLOC_ALLOC
    std::set<uint64_t> by_call_site_;
    std::set<uint64_t> in_edges_;
};

}  // namespace lockwatch
