#include "capture/kernel_btf.h"

#include <bpf/btf.h>
#include <gtest/gtest.h>

#include <memory>

namespace lockwatch {
namespace {

using BtfPtr = std::unique_ptr<btf, void (*)(btf *)>;

// bpf_link_info as the kernel declares it, cut down to the path that
// matters: a union of anonymous structs, perf_event's own anonymous union,
// and its kprobe struct, with `missed` (6.7 on) or without (before).
BtfPtr link_info_btf(bool kprobe_missed) {
    BtfPtr b(btf__new_empty(), btf__free);
    int u64 = btf__add_int(b.get(), "__u64", 8, 0);
    int kprobe = btf__add_struct(b.get(), nullptr, 16);
    btf__add_field(b.get(), "func_name", u64, 0, 0);
    if (kprobe_missed) {
        btf__add_field(b.get(), "missed", u64, 64, 0);
    }
    int perf_union = btf__add_union(b.get(), nullptr, 16);
    btf__add_field(b.get(), "kprobe", kprobe, 0, 0);
    int perf_event = btf__add_struct(b.get(), nullptr, 24);
    btf__add_field(b.get(), "type", u64, 0, 0);
    btf__add_field(b.get(), nullptr, perf_union, 64, 0);
    int kinds = btf__add_union(b.get(), nullptr, 24);
    btf__add_field(b.get(), "perf_event", perf_event, 0, 0);
    btf__add_struct(b.get(), "bpf_link_info", 32);
    btf__add_field(b.get(), "type", u64, 0, 0);
    btf__add_field(b.get(), nullptr, kinds, 64, 0);
    return b;
}

TEST(KernelBtf, AKprobeLinkWithMissedCountsSkips) {
    auto b = link_info_btf(true);
    EXPECT_TRUE(counts_kprobe_skips(*b));
}

TEST(KernelBtf, AKprobeLinkWithoutMissedDoesNot) {
    auto b = link_info_btf(false);
    EXPECT_FALSE(counts_kprobe_skips(*b));
}

TEST(KernelBtf, NoLinkInfoDoesNot) {
    BtfPtr b(btf__new_empty(), btf__free);
    btf__add_int(b.get(), "__u64", 8, 0);
    EXPECT_FALSE(counts_kprobe_skips(*b));
}

TEST(KernelBtf, MemberPathsFollowNamesThroughAnonymousMembers) {
    auto b = link_info_btf(true);
    int info = btf__find_by_name_kind(b.get(), "bpf_link_info", BTF_KIND_STRUCT);
    ASSERT_GT(info, 0);
    const char *const type[] = {"type"};
    const char *const func_name[] = {"perf_event", "kprobe", "func_name"};
    const char *const skipped[] = {"kprobe", "missed"};  // perf_event left out
    const char *const beyond[] = {"type", "missed"};     // into an int
    EXPECT_TRUE(has_member_path(*b, info, type));
    EXPECT_TRUE(has_member_path(*b, info, func_name));
    EXPECT_FALSE(has_member_path(*b, info, skipped));
    EXPECT_FALSE(has_member_path(*b, info, beyond));
}

}  // namespace
}  // namespace lockwatch
