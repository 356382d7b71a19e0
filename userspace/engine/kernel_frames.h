// Frames of a kernel stack that belong to the BPF machinery that ran one of
// lockwatch's programs rather than to the code that took the lock. A stack
// read in a program starts with them; whatever looks for the kernel's own
// frames (the stacks the engine gets, the first caller of a lock function,
// the "at:" of a report) skips them with this one list.
#pragma once

#include <array>
#include <string_view>

namespace lockwatch::engine {

inline constexpr std::array<std::string_view, 8> kBpfMachineryPrefixes = {
    "bpf_prog_",         // the program itself: bpf_prog_<tag>_<name>
    "bpf_trampoline",    // fentry/fexit: bpf_trampoline_<btf id>
    "bpf_dispatcher_",   // bpf_dispatcher_xdp_func
    "__bpf_prog_enter",  // the trampoline's calls around the program:
    "__bpf_prog_exit",   //   plain, _recur, _sleepable, ...
    "bpf_trace_run",     // raw tracepoints (the lockdep backend):
    "__bpf_trace_run",   //   bpf_trace_run2, __bpf_trace_run,
    "__traceiter_",      //   __traceiter_lock_acquire
};

inline bool is_bpf_machinery(std::string_view symbol) {
    for (std::string_view prefix : kBpfMachineryPrefixes) {
        if (symbol.starts_with(prefix)) {
            return true;
        }
    }
    return false;
}

}  // namespace lockwatch::engine
