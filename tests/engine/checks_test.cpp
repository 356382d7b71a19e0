// One suite per lockdep check, each with cases that must and must not fire.
#include <gtest/gtest.h>

#include "engine_test_util.h"
#include "output/text.h"

namespace lockwatch::engine::testing {
namespace {

// ---------------------------------------------------------------- usage bits

TEST(UsageBits, UsageStringFollowsLockdepCharOrder) {
    // get_usage_chars(): hardirq write, hardirq read, softirq write, softirq read.
    EXPECT_EQ(usage_chars(0), "....");
    EXPECT_EQ(usage_chars(1u << 4), "..-.");                // IN-SOFTIRQ-W
    EXPECT_EQ(usage_chars((1u << 2) | (1u << 6)), "+.+.");  // HARDIRQ-ON-W, SOFTIRQ-ON-W
    EXPECT_EQ(usage_chars((1u << 0) | (1u << 2)), "?...");  // both directions
    EXPECT_EQ(usage_chars((1u << 1) | (1u << 7)), ".-.+");  // read variants
}

TEST(UsageBits, SpinLockIrqInProcessContextIsNotSoftirqUnsafe) {
    Sim s;
    ClassId a = s.cls("a");
    s.once(a, 1, af::kIrqsOff);
    EXPECT_FALSE(s.eng.has_usage(a, UsageBit::EnabledSoftirq));
    EXPECT_FALSE(s.eng.has_usage(a, UsageBit::EnabledHardirq));
    EXPECT_TRUE(s.eng.has_usage(a, UsageBit::Used));
    EXPECT_EQ(s.eng.usage_string(a), "....");
}

TEST(UsageBits, SpinLockBhIsHardirqUnsafeOnly) {
    Sim s;
    ClassId a = s.cls("a");
    s.once(a, 1, af::kBhOff);
    EXPECT_TRUE(s.eng.has_usage(a, UsageBit::EnabledHardirq));
    EXPECT_FALSE(s.eng.has_usage(a, UsageBit::EnabledSoftirq));
    EXPECT_EQ(s.eng.usage_string(a), "+...");
}

TEST(UsageBits, TrylockInIrqIsNotUsedInIrq) {
    Sim s;
    ClassId a = s.cls("a");
    s.once(a, 1, af::kTrylock, Context::Softirq);
    EXPECT_FALSE(s.eng.has_usage(a, UsageBit::UsedInSoftirq));
    s.once(a, 1, 0, Context::Softirq);
    EXPECT_TRUE(s.eng.has_usage(a, UsageBit::UsedInSoftirq));
}

TEST(UsageBits, ReadersSetReadBits) {
    Sim s;
    ClassId a = s.cls("a");
    s.once(a, 1, af::kRead, Context::Hardirq);
    s.once(a, 1, af::kRead);
    EXPECT_TRUE(s.eng.has_usage(a, UsageBit::UsedInHardirqRead));
    EXPECT_TRUE(s.eng.has_usage(a, UsageBit::EnabledSoftirqRead));
    EXPECT_FALSE(s.eng.has_usage(a, UsageBit::UsedInHardirq));
    EXPECT_EQ(s.eng.usage_string(a), ".?.+");  // IN-HARDIRQ-R and HARDIRQ-ON-R
}

// -------------------------------------------------------------------- edges

TEST(Edges, NestedAcquireAddsEdge) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.acq(a, 1);
    s.acq(b, 2);
    EXPECT_TRUE(s.eng.has_edge(a, b));
    EXPECT_FALSE(s.eng.has_edge(b, a));
}

TEST(Edges, TrylockAddsNoEdgeIntoTheTrylockedLock) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b"), c = s.cls("c");
    s.acq(a, 1);
    s.acq(b, 2, af::kTrylock);
    EXPECT_FALSE(s.eng.has_edge(a, b));
    // check_prevs_add(): from the trylocked lock and through it to the
    // newest non-trylock one.
    s.acq(c, 3);
    EXPECT_TRUE(s.eng.has_edge(b, c));
    EXPECT_TRUE(s.eng.has_edge(a, c));
}

TEST(Edges, OnlyTheNewestNonTrylockHeldLockGetsAnEdge) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b"), c = s.cls("c");
    s.acq(a, 1);
    s.acq(b, 2);
    s.acq(c, 3);
    EXPECT_TRUE(s.eng.has_edge(b, c));
    EXPECT_FALSE(s.eng.has_edge(a, c));
}

TEST(Edges, TaskAndIrqContextsMakeNoEdgesBetweenThem) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b"), c = s.cls("c");
    s.acq(a, 1);                       // task context, cpu 0
    s.acq(b, 2, 0, Context::Hardirq);  // an interrupt on the same cpu
    s.acq(c, 3, 0, Context::Softirq);
    EXPECT_FALSE(s.eng.has_edge(a, b));
    EXPECT_FALSE(s.eng.has_edge(a, c));
    EXPECT_FALSE(s.eng.has_edge(b, c));
    EXPECT_EQ(s.eng.edge_count(), 0u);
}

TEST(Edges, DifferentCpusMakeNoEdges) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.acq(a, 1, 0, Context::Task, 0);
    s.acq(b, 2, 0, Context::Task, 1);
    EXPECT_EQ(s.eng.edge_count(), 0u);
}

TEST(Edges, ReleaseOutOfOrderKeepsStacksRight) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b"), c = s.cls("c");
    s.acq(a, 1);
    s.acq(b, 2);
    s.rel(1);  // not LIFO
    s.acq(c, 3);
    EXPECT_TRUE(s.eng.has_edge(b, c));
    EXPECT_FALSE(s.eng.has_edge(a, c));
    if (!sim_feeds_facts()) {  // the engine's own held stacks: raw events only
        EXPECT_EQ(s.eng.held_depth(0, Context::Task), 2u);
        s.rel(99);
        EXPECT_EQ(s.eng.stats().unmatched_releases, 1u);
    }
}

// ------------------------------------------------------ irq safe -> unsafe

// The seed 000 shape: a is taken in softirq (safe), b with softirqs on
// (unsafe), then b under a.
TEST(IrqSafeToUnsafe, SoftirqSafeTakesSoftirqUnsafe) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.once(a, 1, af::kIrqsOff, Context::Softirq);
    s.once(b, 2);
    s.acq(a, 1, af::kIrqsOff);
    s.acq(b, 2);
    ASSERT_EQ(s.count(FindingKind::IrqSafeToUnsafe), 1u);
    const Finding *f = s.first(FindingKind::IrqSafeToUnsafe);
    EXPECT_EQ(f->irq, IrqClass::Softirq);
    EXPECT_EQ(f->irq_state, "SOFTIRQ");
    EXPECT_EQ(f->safe_lock->name, "a");
    EXPECT_EQ(f->unsafe_lock->name, "b");
    EXPECT_EQ(f->safe_lock->usage, "..-.");
    EXPECT_EQ(f->unsafe_lock->usage, "+.+.");
    EXPECT_NE(
        output::render_text(*f).find("WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"),
        std::string::npos);
    EXPECT_EQ(f->chain, (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(s.count(FindingKind::Circular), 0u);
}

TEST(IrqSafeToUnsafe, HardirqVariant) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.once(a, 1, 0, Context::Hardirq);
    s.once(b, 2, af::kBhOff);  // hardirq-unsafe, not softirq-unsafe
    s.acq(a, 1, af::kIrqsOff);
    s.acq(b, 2);
    ASSERT_EQ(s.count(FindingKind::IrqSafeToUnsafe), 1u);
    EXPECT_EQ(s.first(FindingKind::IrqSafeToUnsafe)->irq_state, "HARDIRQ");
    EXPECT_EQ(s.first(FindingKind::IrqSafeToUnsafe)->irq, IrqClass::Hardirq);
}

TEST(IrqSafeToUnsafe, ReadSafeVariant) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.once(a, 1, af::kRead, Context::Hardirq);  // IN-HARDIRQ-R
    s.once(b, 2);                               // HARDIRQ-ON-W
    s.acq(a, 1, af::kIrqsOff);
    s.acq(b, 2);
    ASSERT_EQ(s.count(FindingKind::IrqSafeToUnsafe), 1u);
    EXPECT_EQ(s.first(FindingKind::IrqSafeToUnsafe)->irq_state, "HARDIRQ-READ");
}

TEST(IrqSafeToUnsafe, ThroughAChain) {
    Sim s;
    ClassId a = s.cls("a"), m = s.cls("m"), b = s.cls("b");
    s.once(a, 1, af::kIrqsOff, Context::Softirq);
    s.once(b, 3);
    s.acq(a, 1, af::kIrqsOff);
    s.acq(m, 2);
    s.rel(2);
    s.rel(1);
    EXPECT_EQ(s.eng.findings().size(), 0u);
    s.acq(m, 2, af::kIrqsOff);
    s.acq(b, 3);
    ASSERT_EQ(s.count(FindingKind::IrqSafeToUnsafe), 1u);
    const Finding *f = s.first(FindingKind::IrqSafeToUnsafe);
    EXPECT_EQ(f->chain, (std::vector<std::string>{"a", "m", "b"}));
    EXPECT_NE(output::render_text(*f).find("Chain exists of:\n  a --> m --> b"), std::string::npos);
}

TEST(IrqSafeToUnsafe, NotWhenTheInnerLockIsAlwaysIrqOff) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.once(a, 1, af::kIrqsOff, Context::Softirq);
    s.once(b, 2, af::kIrqsOff);  // spin_lock_irq in process context
    s.acq(a, 1, af::kIrqsOff);
    s.acq(b, 2);
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

TEST(IrqSafeToUnsafe, NotWhenTheOuterLockIsNeverInIrq) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.once(b, 2);
    s.acq(a, 1, af::kIrqsOff);
    s.acq(b, 2);
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

TEST(IrqSafeToUnsafe, RecursiveReadersInIrqDoNotConflictWithReadersOutside) {
    // l is read in hardirq (recursive reader) and read with irqs on: a
    // read-held l cannot block an irq reader, so no inconsistency.
    Sim s;
    ClassId l = s.cls("l");
    s.once(l, 1, af::kRead, Context::Hardirq);
    s.once(l, 1, af::kRead);
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

// ----------------------------------------------------------- irq inversion

// The seed 001 shape: the edge a -> b and b's unsafety come first, a
// becomes softirq-safe last.
TEST(IrqInversion, LockBecomesIrqSafeAfterTakingAnUnsafeLock) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.acq(a, 1, af::kIrqsOff);
    s.acq(b, 2);
    s.rel(2);
    s.rel(1);
    s.once(b, 2);
    EXPECT_EQ(s.eng.findings().size(), 0u);
    s.once(a, 1, af::kIrqsOff, Context::Softirq);
    ASSERT_EQ(s.count(FindingKind::IrqInversion), 1u);
    const Finding *f = s.first(FindingKind::IrqInversion);
    EXPECT_EQ(f->irq_state, "SOFTIRQ");
    EXPECT_EQ(f->acquiring.name, "a");
    EXPECT_EQ(f->unsafe_lock->name, "b");
    EXPECT_EQ(f->acquiring.usage, "..-.");
    EXPECT_NE(output::render_text(*f).find(
                  "but this lock took another, SOFTIRQ-unsafe lock in the past:"),
              std::string::npos);
    EXPECT_EQ(f->context, Context::Softirq);
}

TEST(IrqInversion, LockBecomesIrqUnsafeAfterBeingTakenUnderASafeLock) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.once(a, 1, af::kIrqsOff, Context::Softirq);
    s.acq(a, 1, af::kIrqsOff);
    s.acq(b, 2);
    s.rel(2);
    s.rel(1);
    EXPECT_EQ(s.eng.findings().size(), 0u);
    s.once(b, 2);  // b becomes softirq-unsafe now
    ASSERT_EQ(s.count(FindingKind::IrqInversion), 1u);
    const Finding *f = s.first(FindingKind::IrqInversion);
    EXPECT_EQ(f->safe_lock->name, "a");
    EXPECT_EQ(f->unsafe_lock->name, "b");
    EXPECT_NE(output::render_text(*f).find(
                  "but this lock was taken by another, SOFTIRQ-safe lock in the past:"),
              std::string::npos);
}

TEST(IrqInversion, NotWhenTheInnerLockIsOnlyTakenWithBhOff) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.acq(a, 1, af::kIrqsOff);
    s.acq(b, 2);
    s.rel(2);
    s.rel(1);
    s.once(b, 2, af::kBhOff);
    s.once(a, 1, af::kIrqsOff, Context::Softirq);
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

// ------------------------------------------------------ inconsistent state

TEST(InconsistentState, UsedInSoftirqThenSoftirqsOn) {
    Sim s;
    ClassId a = s.cls("a");
    s.once(a, 1, 0, Context::Softirq);
    s.once(a, 1);
    ASSERT_EQ(s.count(FindingKind::InconsistentState), 1u);
    const Finding *f = s.first(FindingKind::InconsistentState);
    EXPECT_EQ(*f->prev_bit, UsageBit::UsedInSoftirq);
    EXPECT_EQ(*f->new_bit, UsageBit::EnabledSoftirq);
    EXPECT_NE(output::render_text(*f).find("inconsistent {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W} usage."),
              std::string::npos);
    EXPECT_EQ(f->title, "inconsistent lock state in unknown");
}

// spin_lock_irqsave(A); spin_lock(B); spin_unlock_irqrestore(A, flags):
// B stays held with hardirqs on, and lockdep_hardirqs_on() runs
// mark_held_locks(curr, LOCK_ENABLED_HARDIRQ), which marks B HARDIRQ-ON.
TEST(InconsistentState, LockStillHeldWhenIrqsComeBackOn) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.once(b, 2, 0, Context::Hardirq);  // IN-HARDIRQ-W
    s.acq(a, 1, af::kIrqsOff);
    s.acq(b, 2);  // hardirqs off: no usage bit yet
    EXPECT_EQ(s.eng.findings().size(), 0u);
    s.rel(1);
    s.irqs_on(/*softirqs=*/true, Context::Task, 0,
              s.stack({"_raw_spin_unlock_irqrestore+0x1c/0x40"}));
    ASSERT_EQ(s.count(FindingKind::InconsistentState), 1u);
    const Finding *f = s.first(FindingKind::InconsistentState);
    EXPECT_EQ(f->acquiring.name, "b");
    EXPECT_EQ(*f->prev_bit, UsageBit::UsedInHardirq);
    EXPECT_EQ(*f->new_bit, UsageBit::EnabledHardirq);
    EXPECT_TRUE(s.eng.has_usage(b, UsageBit::EnabledSoftirq));
    EXPECT_FALSE(s.eng.has_usage(a, UsageBit::EnabledHardirq));  // released before
}

// spin_unlock_bh() of an outer lock with hardirqs off marks nothing
// (lockdep_softirqs_on(): "if (lockdep_hardirqs_enabled())").
TEST(InconsistentState, SoftirqsOnWithHardirqsOffMarksNothing) {
    Sim s;
    ClassId b = s.cls("b");
    s.acq(b, 2, 0, Context::Task, 0, /*hardirqs=*/false, /*softirqs=*/false);
    IrqsEnabledEvent e;
    e.hardirqs_enabled = false;
    e.softirqs_enabled = true;
    s.eng.process(e);
    EXPECT_FALSE(s.eng.has_usage(b, UsageBit::EnabledSoftirq));
    EXPECT_FALSE(s.eng.has_usage(b, UsageBit::EnabledHardirq));
}

TEST(InconsistentState, ReadInIrqAndWriteWithIrqsOn) {
    Sim s;
    ClassId a = s.cls("a");
    s.once(a, 1, af::kRead, Context::Hardirq);  // IN-HARDIRQ-R
    s.once(a, 1, af::kBhOff);                   // HARDIRQ-ON-W
    ASSERT_EQ(s.count(FindingKind::InconsistentState), 1u);
    EXPECT_EQ(*s.first(FindingKind::InconsistentState)->prev_bit, UsageBit::UsedInHardirqRead);
}

TEST(InconsistentState, NotWithBhOffInProcessContext) {
    Sim s;
    ClassId a = s.cls("a");
    s.once(a, 1, 0, Context::Softirq);
    s.once(a, 1, af::kBhOff);
    s.once(a, 1, af::kIrqsOff);
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

// ---------------------------------------------------------------- circular

TEST(Circular, AbBa) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.acq(a, 1);
    s.acq(b, 2);
    s.rel(2);
    s.rel(1);
    s.acq(b, 2);
    s.acq(a, 1);
    ASSERT_EQ(s.count(FindingKind::Circular), 1u);
    const Finding *f = s.first(FindingKind::Circular);
    EXPECT_EQ(f->acquiring.name, "a");
    EXPECT_EQ(f->holding->name, "b");
    EXPECT_EQ(f->chain, (std::vector<std::string>{"b", "a", "b"}));
    EXPECT_NE(
        output::render_text(*f).find("WARNING: possible circular locking dependency detected"),
        std::string::npos);
}

TEST(Circular, ReportsTheShortestCycle) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b"), c = s.cls("c"), d = s.cls("d"), e = s.cls("e");
    auto nest = [&](ClassId x, ClassId y) {
        s.acq(x, 10 + x);
        s.acq(y, 10 + y);
        s.rel(10 + y);
        s.rel(10 + x);
    };
    nest(b, d);
    nest(d, e);
    nest(e, a);  // long way back: b -> d -> e -> a
    nest(b, c);
    nest(c, a);  // short way back: b -> c -> a
    EXPECT_EQ(s.eng.findings().size(), 0u);
    nest(a, b);
    ASSERT_EQ(s.count(FindingKind::Circular), 1u);
    const Finding *f = s.first(FindingKind::Circular);
    EXPECT_EQ(f->chain, (std::vector<std::string>{"a", "b", "c", "a"}));
    EXPECT_EQ(f->path.size(), 3u);
}

TEST(Circular, ConsistentOrderIsFine) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b"), c = s.cls("c");
    for (int i = 0; i < 3; ++i) {
        s.acq(a, 1);
        s.acq(b, 2);
        s.acq(c, 3);
        s.rel(3);
        s.rel(2);
        s.rel(1);
    }
    s.acq(a, 1);
    s.acq(c, 3);
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

TEST(Circular, RecursiveReadersDoNotMakeACycle) {
    // T1: read_lock(a) [recursive]; lock(b).  T2: lock(b); read_lock(a).
    // Both take a as readers, so neither waits on the other: no deadlock.
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.acq(a, 1, af::kRead | af::kRecursiveRead);
    s.acq(b, 2);
    s.rel(2);
    s.rel(1);
    s.acq(b, 2);
    s.acq(a, 1, af::kRead | af::kRecursiveRead);
    EXPECT_EQ(s.count(FindingKind::Circular), 0u);
}

TEST(Circular, NonRecursiveReadersDoMakeACycle) {
    // The same with queued-rwlock readers in task context (not recursive: a
    // waiting writer blocks new readers).
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.acq(a, 1, af::kRead);
    s.acq(b, 2);
    s.rel(2);
    s.rel(1);
    s.acq(b, 2);
    s.acq(a, 1, af::kRead);
    EXPECT_EQ(s.count(FindingKind::Circular), 1u);
    EXPECT_NE(output::render_text(*s.first(FindingKind::Circular)).find("  rlock(a);"),
              std::string::npos);
}

TEST(Circular, ReadersUnderDisabledSoftirqsAreRecursiveAndMakeNoCycle) {
    // read_lock_is_recursive() is in_interrupt(), which counts softirq-
    // disabled sections: read_lock_bh(a) is a recursive read, and so is a
    // read_lock(a) inside local_bh_disable(). T1: read_lock_bh(a); lock(b).
    // T2: local_bh_disable(); lock(b); read_lock(a). No cycle for lockdep.
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.acq(a, 1, af::kRead | af::kBhOff);
    s.acq(b, 2);
    s.rel(2);
    s.rel(1);
    s.acq(b, 2, 0, Context::Task, 0, true, /*softirqs=*/false);
    s.acq(a, 1, af::kRead, Context::Task, 0, true, /*softirqs=*/false);
    EXPECT_EQ(s.count(FindingKind::Circular), 0u);
}

// The same pair a -> r first through a recursive reader (softirqs off: no
// cycle with r -> a) and then through a plain one (a cycle): the stronger
// dependency must still reach the engine. Through the BPF facts this needs
// the edges map to key read levels, not just read or not.
TEST(Circular, AStrongerDependencyOnAKnownPairStillCounts) {
    Sim s;
    ClassId a = s.cls("a"), r = s.cls("r");
    s.acq(a, 1, 0, Context::Task, 0, true, /*softirqs=*/false);
    s.acq(r, 2, af::kRead, Context::Task, 0, true, /*softirqs=*/false);  // recursive
    s.rel(2);
    s.rel(1);
    s.acq(r, 2, af::kRead);  // not recursive
    s.acq(a, 1);
    s.rel(1);
    s.rel(2);
    EXPECT_EQ(s.count(FindingKind::Circular), 0u);  // a -(ER)-> r -(SN)-> a is not strong
    s.acq(a, 1);
    s.acq(r, 2, af::kRead);  // a -(EN)-> r: now a cycle
    EXPECT_EQ(s.count(FindingKind::Circular), 1u);
}

// --------------------------------------------------------------- recursive

TEST(Recursive, SameClassTwice) {
    LOCKWATCH_RAW_PATH_ONLY(
        "without lockdep, nesting annotations are invisible: the BPF programs report "
        "recursion on the same instance only");
    Sim s;
    ClassId a = s.cls("a");
    s.acq(a, 1);
    s.acq(a, 2);  // another instance of the same class
    ASSERT_EQ(s.count(FindingKind::Recursive), 1u);
    const Finding *f = s.first(FindingKind::Recursive);
    EXPECT_EQ(f->acquiring.name, "a");
    EXPECT_NE(output::render_text(*f).find("WARNING: possible recursive locking detected"),
              std::string::npos);
    EXPECT_EQ(s.count(FindingKind::Circular), 0u);  // no self-edge reported as a cycle
}

TEST(Recursive, IrqTakingALockItsCpuHolds) {
    Sim s;
    ClassId a = s.cls("a");
    s.acq(a, 1);
    s.acq(a, 1, 0, Context::Hardirq);
    EXPECT_EQ(s.count(FindingKind::Recursive), 1u);
}

TEST(Recursive, RecursiveReadAfterReadIsFine) {
    Sim s;
    ClassId a = s.cls("a");
    s.acq(a, 1, af::kRead);
    s.acq(a, 1, af::kRead | af::kRecursiveRead);
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

// read_lock_bh(l); ...; read_lock(l): the second reader runs with softirqs
// disabled, so it is recursive (read == 2), and lockdep's check_deadlock()
// lets it pass: "if ((next->read == 2) && prev->read) continue;".
TEST(Recursive, ReadAgainUnderDisabledSoftirqsIsFine) {
    Sim s;
    ClassId a = s.cls("a");
    s.acq(a, 1, af::kRead | af::kBhOff);
    s.acq(a, 1, af::kRead);  // the Sim keeps softirqs off under the held _bh lock
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

// The same two readers with softirqs on: a queued rwlock's task-context
// reader is not recursive (a waiting writer blocks it), lockdep reports.
TEST(Recursive, ReadAgainWithSoftirqsOnIsRecursiveLocking) {
    Sim s;
    ClassId a = s.cls("a");
    s.acq(a, 1, af::kRead);
    s.acq(a, 1, af::kRead);
    EXPECT_EQ(s.count(FindingKind::Recursive), 1u);
}

TEST(Recursive, NonRecursiveReadAfterWriteIsNot) {
    Sim s;
    ClassId a = s.cls("a");
    s.acq(a, 1);
    s.acq(a, 1, af::kRead | af::kRecursiveRead);
    EXPECT_EQ(s.count(FindingKind::Recursive), 1u);
}

TEST(Recursive, ReleaseInBetweenIsFine) {
    Sim s;
    ClassId a = s.cls("a");
    s.once(a, 1);
    s.once(a, 2);
    s.acq(a, 1);
    s.acq(a, 2, af::kTrylock);  // trylock cannot deadlock
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

// validate_chain() runs check_deadlock() for no trylock: a read_trylock()
// of a lock the task holds for reading succeeds and is legal, in task
// context too, where a plain reader is not recursive.
TEST(Recursive, ATrylockOfAHeldInstanceIsNone) {
    Sim s;
    ClassId a = s.cls("a");
    s.acq(a, 1, af::kRead);
    s.acq(a, 1, af::kRead | af::kTrylock);
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

// ------------------------------------------------------ reporting contract

TEST(Findings, EachReportedOnceWithAStableSignature) {
    std::string sig;
    for (int run = 0; run < 2; ++run) {
        Sim s;
        std::vector<const Finding *> seen;
        s.eng.on_finding([&](const Finding &f) { seen.push_back(&f); });
        ClassId a = s.cls("a"), b = s.cls("b");
        for (int i = 0; i < 3; ++i) {
            s.acq(a, 1);
            s.acq(b, 2);
            s.rel(2);
            s.rel(1);
            s.acq(b, 2);
            s.acq(a, 1);
            s.rel(1);
            s.rel(2);
        }
        ASSERT_EQ(seen.size(), 1u);
        EXPECT_EQ(seen[0]->signature.size(), 16u);
        if (run == 0) {
            sig = seen[0]->signature;
        } else {
            EXPECT_EQ(seen[0]->signature, sig);
        }
    }
}

TEST(Findings, TextNamesLockwatchAndNoAddresses) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    StackId st = s.stack({"_raw_spin_lock+0x2a/0x40", "spin_lock [inline]", "do_thing+0x10/0x80"});
    const LockId la = 0xffff888095e78748ull, lb = 0xffff88808c9d9018ull;
    s.acq(a, la, 0, Context::Task, 0, true, true, st);
    s.acq(b, lb, 0, Context::Task, 0, true, true, st);
    s.rel(lb);
    s.rel(la);
    s.acq(b, lb, 0, Context::Task, 0, true, true, st);
    s.acq(a, la, 0, Context::Task, 0, true, true, st);
    ASSERT_EQ(s.eng.findings().size(), 1u);
    const std::string t = output::render_text(s.eng.findings()[0]);
    EXPECT_NE(t.find("observed by lockwatch, not lockdep"), std::string::npos);
    EXPECT_EQ(t.find("ffff8880"), std::string::npos);
    EXPECT_EQ(t.find("inferred"), std::string::npos);
    EXPECT_NE(t.find(" (b){+.+.}, at: spin_lock [inline]\n (b){+.+.}, at: do_thing+0x10/0x80\n"),
              std::string::npos);
    EXPECT_EQ(s.eng.findings()[0].title, "possible deadlock in do_thing");
}

TEST(Findings, InferredHardirqStateIsSaid) {
    Sim s;
    ClassId a = s.cls("a");
    s.acq(a, 1, 0, Context::Softirq);
    s.rel(1, Context::Softirq);
    s.acq(a, 1, 0, Context::Task, 0, true, true, kNoStack, /*inferred=*/true);
    ASSERT_EQ(s.eng.findings().size(), 1u);
    EXPECT_TRUE(s.eng.findings()[0].hardirq_state_inferred);
    EXPECT_NE(output::render_text(s.eng.findings()[0]).find("inferred"), std::string::npos);
}

TEST(Findings, InferredStateUsesHeldIrqLocks) {
    // With an inferred state, an _irq lock held in this context means irqs
    // are off: b is then not hardirq-unsafe.
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.acq(a, 1, af::kIrqsOff, Context::Task, 0, true, true, kNoStack, true);
    s.acq(b, 2, 0, Context::Task, 0, true, true, kNoStack, true);
    EXPECT_FALSE(s.eng.has_usage(b, UsageBit::EnabledHardirq));
}

TEST(Titles, SkipLockPrimitivesAndInlineFrames) {
    Stack st = {{"lock_acquire", 0x19b, 0x420, "", 0, false},
                {"__raw_spin_lock", 0, 0, "", 0, true},
                {"_raw_spin_lock", 0x2a, 0x40, "", 0, false},
                {"spin_lock", 0, 0, "", 0, true},
                {"aio_poll", 0, 0, "", 0, true},
                {"io_submit_one", 0x97f, 0x2b00, "fs/aio.c", 1878, false}};
    EXPECT_EQ(make_title(FindingKind::IrqSafeToUnsafe, &st), "possible deadlock in io_submit_one");
    EXPECT_EQ(make_title(FindingKind::InconsistentState, &st),
              "inconsistent lock state in io_submit_one");
    EXPECT_EQ(output::format_frame(st[5]), "io_submit_one+0x97f/0x2b00 fs/aio.c:1878");
    EXPECT_EQ(output::format_frame(st[4]), "aio_poll [inline]");
}

// -------------------------------------------------------------------- facts

TEST(Facts, UsageAndEdgeFactsRunTheSameChecks) {
    Engine eng;
    eng.process(ClassFact{7, "kioctx.ctx_lock"});
    eng.process(ClassFact{9, "pid.wait_pidfd.lock"});
    UsageFact u;
    u.cls = 7;
    u.bit = UsageBit::UsedInSoftirq;
    eng.process(u);
    u.cls = 9;
    u.bit = UsageBit::EnabledSoftirq;
    eng.process(u);
    EXPECT_EQ(eng.findings().size(), 0u);
    EdgeFact e;
    e.prev = 7;
    e.next = 9;
    eng.process(e);
    ASSERT_EQ(eng.findings().size(), 1u);
    EXPECT_EQ(eng.findings()[0].kind, FindingKind::IrqSafeToUnsafe);
    EXPECT_EQ(eng.findings()[0].safe_lock->name, "kioctx.ctx_lock");
    eng.process(e);  // a repeated fact is a no-op
    EXPECT_EQ(eng.findings().size(), 1u);
    EXPECT_EQ(eng.edge_count(), 1u);
}

TEST(Facts, EdgeFactsFindCycles) {
    Engine eng;
    EdgeFact e;
    e.prev = 1;
    e.next = 2;
    eng.process(e);
    e.prev = 2;
    e.next = 1;
    eng.process(e);
    ASSERT_EQ(eng.findings().size(), 1u);
    EXPECT_EQ(eng.findings()[0].kind, FindingKind::Circular);
    EXPECT_EQ(eng.stats().unknown_classes, 2u);
    EXPECT_EQ(eng.findings()[0].acquiring.name.rfind("unnamed-", 0), 0u);
}

// -------------------------------------------------------------------- NMI

// lockdep is off in NMI; lock_acquire() there only runs verify_lock_unused():
// a lock already used outside NMI is "inconsistent {INITIAL USE} -> {IN-NMI}".
TEST(Nmi, LockUsedOutsideNmiThenTakenInNmiIsInconsistent) {
    Sim s;
    ClassId a = s.cls("a");
    s.once(a, 1);
    s.once(a, 1, 0, Context::Nmi);
    ASSERT_EQ(s.count(FindingKind::InconsistentState), 1u);
    const Finding *f = s.first(FindingKind::InconsistentState);
    EXPECT_EQ(*f->prev_bit, UsageBit::Used);
    EXPECT_EQ(*f->new_bit, UsageBit::InNmi);
    EXPECT_NE(output::render_text(*f).find("inconsistent {INITIAL USE} -> {IN-NMI} usage."),
              std::string::npos);
    EXPECT_EQ(s.eng.stats().unmatched_releases, 0u);  // the NMI release matched nothing, quietly
}

// "READ locks only conflict with USED, such that if we only ever use READ
// locks, there is no deadlock possible -- RCU."
TEST(Nmi, ReadersOnBothSidesAreFineAWriterInNmiIsNot) {
    Sim s;
    ClassId a = s.cls("a");
    s.once(a, 1, af::kRead);
    s.once(a, 1, af::kRead, Context::Nmi);
    EXPECT_EQ(s.eng.findings().size(), 0u);
    s.once(a, 1, 0, Context::Nmi);
    ASSERT_EQ(s.count(FindingKind::InconsistentState), 1u);
    EXPECT_EQ(*s.first(FindingKind::InconsistentState)->prev_bit, UsageBit::UsedRead);
}

// Nothing an NMI takes enters the graph: no usage, no held lock, no edge,
// so a use outside NMI afterwards is not a finding either (lockdep's order).
TEST(Nmi, NmiAcquisitionsLeaveNoTrace) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    s.acq(a, 1, 0, Context::Nmi);
    s.acq(b, 2, 0, Context::Nmi);
    s.rel(2, Context::Nmi);
    s.rel(1, Context::Nmi);
    s.acq(a, 1, af::kTrylock, Context::Nmi);  // trylocks are not checked at all
    EXPECT_FALSE(s.eng.has_edge(a, b));
    EXPECT_FALSE(s.eng.has_usage(a, UsageBit::Used));
    s.once(a, 1);
    s.once(b, 2);
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

// --nmi-graph keeps NMI as a context of its own, like before.
TEST(Nmi, TheStricterGraphTracksNmiLikeAnyContext) {
    EngineOptions strict;
    strict.nmi_graph = true;
    Sim s(strict);
    ClassId a = s.cls("a"), b = s.cls("b");
    s.acq(a, 1, 0, Context::Nmi);
    s.acq(b, 2, 0, Context::Nmi);
    EXPECT_TRUE(s.eng.has_edge(a, b));
    EXPECT_EQ(s.eng.findings().size(), 0u);
}

}  // namespace
}  // namespace lockwatch::engine::testing
