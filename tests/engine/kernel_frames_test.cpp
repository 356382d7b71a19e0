// The BPF frames every stack reader skips (engine/kernel_frames.h).
#include <gtest/gtest.h>

#include "engine/kernel_frames.h"
#include "engine/finding_names.h"

namespace lockwatch::engine {
namespace {

// Names as kallsyms shows them on 6.1 and newer kernels.
constexpr std::string_view kMachinery[] = {
    "bpf_prog_6deef7357e7b4530_kprobe__raw_spin_lock",
    "bpf_trampoline_6442491851",
    "bpf_dispatcher_xdp_func",
    "__bpf_prog_enter",
    "__bpf_prog_enter_recur",
    "__bpf_prog_exit_recur",
    "bpf_trace_run2",
    "__bpf_trace_run",
    "__traceiter_lock_acquire",
};

// Kernel code, some of it BPF's own, that takes locks itself.
constexpr std::string_view kKernelCode[] = {
    "io_submit_one",
    "_raw_spin_lock",
    "htab_map_update_elem",
    "bpf_ringbuf_reserve",
    "trace_lock_acquire",
    "lock_acquire",
    "",
};

TEST(KernelFrames, TheBpfMachineryIsSkipped) {
    for (std::string_view name : kMachinery) {
        EXPECT_TRUE(is_bpf_machinery(name)) << name;
    }
}

TEST(KernelFrames, TheKernelsOwnFramesAreKept) {
    for (std::string_view name : kKernelCode) {
        EXPECT_FALSE(is_bpf_machinery(name)) << name;
    }
}

// A report's "at:" starts after the machinery as after the lock internals.
TEST(KernelFrames, AReportSkipsTheSameFramesBeforeTheAcquireSite) {
    for (std::string_view name : kMachinery) {
        EXPECT_TRUE(is_lock_internal(name)) << name;
    }
    EXPECT_FALSE(is_lock_internal("io_submit_one"));
}

}  // namespace
}  // namespace lockwatch::engine
