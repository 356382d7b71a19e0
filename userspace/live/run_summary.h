// Text that `lockwatch run` prints: coverage, per-interval rates, the
// summary table. Pure functions of the numbers, so they can be tested.
#pragma once

#include <array>
#include <cstdint>
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
    void add(uint64_t lockdep_class, uint64_t derived_class, uint32_t derived_type);
    size_t lockdep_classes() const { return by_lockdep_.size(); }
    size_t one_to_one() const;
    // lockdep classes whose locks fall into more than one address class.
    size_t split() const;
    // address classes that hold locks of more than one lockdep class.
    size_t merged() const;
    // lockdep classes met in memory the address rules name by call site
    // (stacks, vmalloc): not compared.
    size_t by_call_site() const { return by_call_site_.size(); }
    std::string format() const;

  private:
    std::map<uint64_t, std::set<uint64_t>> by_lockdep_;  // compared pairs only
    std::map<uint64_t, std::set<uint64_t>> by_derived_;
    std::set<uint64_t> by_call_site_;
};

}  // namespace lockwatch
