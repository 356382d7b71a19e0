// lockdep's read level of an acquire (acquire_flags.h's lw_read_level()),
// the one rule the BPF programs, the fact decoder and the engine share.
#include <vector>

#include <gtest/gtest.h>

#include "engine/events.h"

namespace lockwatch::engine {
namespace {

constexpr unsigned kAllContexts[] = {LW_CTX_TASK, LW_CTX_SOFTIRQ, LW_CTX_HARDIRQ, LW_CTX_NMI};
constexpr unsigned kInterruptContexts[] = {LW_CTX_SOFTIRQ, LW_CTX_HARDIRQ, LW_CTX_NMI};
// Flags that say nothing about reading: the level must not depend on them.
constexpr unsigned kOtherFlags[] = {0, LW_ACQ_TRYLOCK, LW_ACQ_IRQS_OFF,
                                    LW_ACQ_TRYLOCK | LW_ACQ_IRQS_OFF};
// Softirqs off where the reader takes the lock, by this acquire (_bh) or
// before it: in_interrupt() is true there.
constexpr unsigned kSoftirqsOffFlags[] = {LW_ACQ_BH, LW_ACQ_SOFTIRQS_OFF,
                                          LW_ACQ_BH | LW_ACQ_SOFTIRQS_OFF};

TEST(ReadLevel, AnAcquireWithoutReadIsAWriteWhateverElseItSays) {
    for (unsigned context : kAllContexts) {
        for (unsigned other : kOtherFlags) {
            EXPECT_EQ(lw_read_level(other, context), 0u) << other << " in " << context;
            // A level without LW_ACQ_READ is not a read.
            EXPECT_EQ(lw_read_level(other | LW_ACQ_RECURSIVE_READ, context), 0u);
            EXPECT_EQ(lw_read_level(other | LW_ACQ_NONRECURSIVE_READ, context), 0u);
        }
    }
}

TEST(ReadLevel, AWriteIsAWriteWithSoftirqsOffToo) {
    for (unsigned context : kAllContexts) {
        for (unsigned off : kSoftirqsOffFlags) {
            EXPECT_EQ(lw_read_level(off, context), 0u) << off << " in " << context;
        }
    }
}

// read_lock_bh(L); ...; read_lock(L) is a legal recursive read for lockdep.
TEST(ReadLevel, AQueuedRwlockReaderWithSoftirqsOffIsRecursiveInTaskContext) {
    for (unsigned off : kSoftirqsOffFlags) {
        for (unsigned other : kOtherFlags) {
            EXPECT_EQ(lw_read_level(off | other | LW_ACQ_READ, LW_CTX_TASK), 2u) << off << other;
        }
    }
}

TEST(ReadLevel, AQueuedRwlockReaderIsRecursiveOnlyInInterruptContext) {
    for (unsigned other : kOtherFlags) {
        EXPECT_EQ(lw_read_level(other | LW_ACQ_READ, LW_CTX_TASK), 1u) << other;
        for (unsigned context : kInterruptContexts) {
            EXPECT_EQ(lw_read_level(other | LW_ACQ_READ, context), 2u)
                << other << " in " << context;
        }
    }
}

// The lockdep backend and traces say the level; the rule does not override it.
TEST(ReadLevel, ALevelLockdepSaidWinsInEveryContext) {
    for (unsigned context : kAllContexts) {
        for (unsigned other : kOtherFlags) {
            EXPECT_EQ(lw_read_level(other | LW_ACQ_READ | LW_ACQ_RECURSIVE_READ, context), 2u)
                << other << " in " << context;
            EXPECT_EQ(lw_read_level(other | LW_ACQ_READ | LW_ACQ_NONRECURSIVE_READ, context), 1u)
                << other << " in " << context;
        }
    }
}

TEST(ReadLevel, TheEngineReadsTheBitsTheBpfProgramsSend) {
    EXPECT_EQ(acquire_flags::kRead, static_cast<std::uint32_t>(LW_ACQ_READ));
    EXPECT_EQ(acquire_flags::kRecursiveRead, static_cast<std::uint32_t>(LW_ACQ_RECURSIVE_READ));
    EXPECT_EQ(acquire_flags::kNonRecursiveRead,
              static_cast<std::uint32_t>(LW_ACQ_NONRECURSIVE_READ));
    const Context contexts[] = {Context::Task, Context::Softirq, Context::Hardirq, Context::Nmi};
    for (unsigned i = 0; i < 4; ++i) {
        EXPECT_EQ(static_cast<unsigned>(contexts[i]), kAllContexts[i]);
        for (std::uint32_t flags = 0; flags <= acquire_flags::kAll; ++flags) {
            EXPECT_EQ(read_level(flags, contexts[i]), lw_read_level(flags, kAllContexts[i]))
                << flags << " in " << context_name(contexts[i]);
        }
    }
}

// lockdep's mark_usage() order: used-in bits before enabled ones, hardirq
// before softirq, USED last. An acquire in softirq with hardirqs on sets
// IN-SOFTIRQ and HARDIRQ-ON; lockdep marks (and may report) IN-SOFTIRQ first.
TEST(UsageRule, BitsComeInMarkUsagesOrder) {
    std::vector<unsigned> order;
    for (unsigned i = 0; i < LW_USAGE_BITS; ++i) {
        order.push_back(lw_usage_bit_at(i));
    }
    const std::vector<unsigned> expected{LW_USED_IN_HARDIRQ,
                                         LW_USED_IN_HARDIRQ_READ,
                                         LW_USED_IN_SOFTIRQ,
                                         LW_USED_IN_SOFTIRQ_READ,
                                         LW_ENABLED_HARDIRQ,
                                         LW_ENABLED_HARDIRQ_READ,
                                         LW_ENABLED_SOFTIRQ,
                                         LW_ENABLED_SOFTIRQ_READ,
                                         LW_USED,
                                         LW_USED_READ};
    EXPECT_EQ(order, expected);
}

TEST(UsageRule, WhatAnAcquireMarks) {
    // A plain lock in softirq with hardirqs on: IN-SOFTIRQ-W, HARDIRQ-ON-W, USED.
    EXPECT_EQ(lw_usage_mask(0, LW_CTX_SOFTIRQ, 1, 0),
              1u << LW_USED_IN_SOFTIRQ | 1u << LW_ENABLED_HARDIRQ | 1u << LW_USED);
    // A trylock in hardirq is no use in irq; a reader sets the _READ bits.
    EXPECT_EQ(lw_usage_mask(LW_ACQ_TRYLOCK | LW_ACQ_READ, LW_CTX_HARDIRQ, 0, 0),
              1u << LW_USED_READ);
    // Softirqs on count only with hardirqs on.
    EXPECT_EQ(lw_usage_mask(0, LW_CTX_TASK, 0, 1), 1u << LW_USED);
    EXPECT_EQ(lw_usage_mask(LW_ACQ_READ, LW_CTX_TASK, 1, 1),
              1u << LW_ENABLED_HARDIRQ_READ | 1u << LW_ENABLED_SOFTIRQ_READ | 1u << LW_USED_READ);
}

}  // namespace
}  // namespace lockwatch::engine
