// The address rules the BPF programs use (bpf/address_regions.h), run here
// as plain C: where the module area is, and which stack frame is the
// acquiring call site.
#include <linux/types.h>

#include <vector>

#include <gtest/gtest.h>

#include "address_regions.h"

namespace {

constexpr __u64 kText = 0xffffffff81000000, kEtext = 0xffffffff82000000;
constexpr __u64 kLockStart = 0xffffffff81f00000, kLockEnd = 0xffffffff81f10000;
constexpr __u64 kImageEnd = 0xffffffff84000000;

TEST(AddressRegions, ModuleAreaLiesBetweenTheImageAndModulesEnd) {
    EXPECT_TRUE(lw_in_module_area(0xffffffffc0000000, kImageEnd));
    EXPECT_TRUE(lw_in_module_area(0xffffffffc8123456, kImageEnd));
    EXPECT_TRUE(lw_in_module_area(0xfffffffffeffffff, kImageEnd));
    EXPECT_FALSE(lw_in_module_area(0xffffffffff000000, kImageEnd));  // fixmap and up
    EXPECT_FALSE(lw_in_module_area(kText + 0x100, kImageEnd));       // the image
    EXPECT_FALSE(lw_in_module_area(0xffff888012345678, kImageEnd));  // direct map
    // Without KASLR the area starts at 512 MiB; never inside the image.
    EXPECT_TRUE(lw_in_module_area(0xffffffffa0001000, kImageEnd));
    EXPECT_FALSE(lw_in_module_area(0xffffffffa0001000, 0xffffffffa4000000));
}

TEST(AddressRegions, ModuleOffsetsCountFromAFixedStart) {
    EXPECT_EQ(lw_module_area_start(0xffffffffc0123000), 0xffffffffc0000000u);
    EXPECT_EQ(lw_module_area_start(0xffffffffa0123000), 0xffffffffa0000000u);
}

__u64 site_of(const std::vector<__u64> &ips) {
    int past_kernel = 0;
    for (__u64 ip : ips) {
        if (lw_is_call_site(ip, kText, kEtext, kLockStart, kLockEnd, kImageEnd, &past_kernel)) {
            return ip;
        }
    }
    return 0;
}

TEST(AddressRegions, CallSiteSkipsBpfAndLockTextAndAcceptsModuleCode) {
    const __u64 prog = 0xffffffffc0004000, trampoline = 0xffffffffc0006000;
    const __u64 lock_fn = kLockStart + 0x20, module_caller = 0xffffffffc0a00123;
    const __u64 kernel_caller = kText + 0x5000;
    // fentry: program, trampoline, lock function, then module code.
    EXPECT_EQ(site_of({prog, trampoline, lock_fn, module_caller, kernel_caller}), module_caller);
    // The kernel's own callers as before.
    EXPECT_EQ(site_of({prog, trampoline, lock_fn, kernel_caller}), kernel_caller);
    // Module-area frames before any kernel frame are BPF machinery.
    EXPECT_EQ(site_of({prog, trampoline}), 0u);
}

}  // namespace
