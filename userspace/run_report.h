// Text that `lockwatch run` prints: coverage, per-interval rates, the
// summary table. Pure functions of the numbers, so they can be tested.
#pragma once

#include <array>
#include <cstdint>
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

// The first frame of a kernel stack that is neither a lock function nor BPF
// machinery (program, trampoline, dispatcher), as "symbol+0xoff/0xsize".
std::string caller_of(const std::vector<uint64_t> &frames, const Kallsyms &kallsyms);

}  // namespace lockwatch
