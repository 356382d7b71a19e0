#include "live/run_summary.h"

#include <map>
#include <sstream>

#include <gtest/gtest.h>

namespace lockwatch {
namespace {

std::vector<HookStatus> two_hooks() {
    const auto &fns = lock_functions();
    return {
        {&fns[LW_FN__raw_spin_lock], HookState::Attached, Availability::OutOfLine,
         HookFlavor::Kprobe, ""},
        {&fns[LW_FN__raw_spin_lock_nested], HookState::Unavailable, Availability::NotInKernel,
         HookFlavor::Kprobe, "inlined or not built on this kernel"},
    };
}

TEST(RunReport, CoverageListsCoveredAndMissingWithReason) {
    std::string text = format_coverage(two_hooks());
    EXPECT_NE(text.find("1 covered, 1 missing"), std::string::npos) << text;
    EXPECT_NE(text.find("covered: _raw_spin_lock\n"), std::string::npos) << text;
    EXPECT_NE(text.find("_raw_spin_lock_nested (inlined or not built on this kernel)"),
              std::string::npos)
        << text;
}

TEST(RunReport, IntervalListsBusiestFirstAndSkipsIdle) {
    std::array<uint64_t, LW_FN_COUNT> delta{};
    delta[LW_FN__raw_spin_unlock] = 10;
    delta[LW_FN__raw_spin_lock] = 30;
    std::string line = format_interval(2.0, 0.5, delta);
    EXPECT_NE(line.find("80 lock ops/s: _raw_spin_lock 60, _raw_spin_unlock 20"), std::string::npos)
        << line;
    EXPECT_EQ(line.find("_raw_read_lock"), std::string::npos) << line;
}

TEST(RunReport, SummaryHasOnlyAttachedFunctions) {
    std::array<uint64_t, LW_FN_COUNT> calls{};
    calls[LW_FN__raw_spin_lock] = 500;
    std::string text = format_summary(2.0, two_hooks(), calls);
    EXPECT_NE(text.find("_raw_spin_lock "), std::string::npos) << text;
    EXPECT_EQ(text.find("_raw_spin_lock_nested"), std::string::npos) << text;
    EXPECT_NE(text.find("500"), std::string::npos) << text;
}

TEST(RunReport, LossesNameEveryCounter) {
    CaptureLosses losses;
    losses.bpf[LW_LOSS_HELD_OVERFLOW] = 7;
    losses.bpf[LW_LOSS_RINGBUF_FULL] = 3;
    losses.kernel_recursion_misses = 2;
    losses.notes[LW_NOTE_UNMATCHED_RELEASE] = 5;
    std::string text = format_losses(losses);
    EXPECT_NE(text.find("held-lock stack overflow 7"), std::string::npos) << text;
    EXPECT_NE(text.find("ring buffer full 3"), std::string::npos) << text;
    EXPECT_NE(text.find("kernel recursion misses 2"), std::string::npos) << text;
    EXPECT_NE(text.find("unmatched releases 5"), std::string::npos) << text;
    EXPECT_EQ(losses.total(), 12u);
}

// Before 6.7 the kernel skips a nested kprobe program without counting it:
// the count says what it leaves out.
TEST(RunReport, RecursionMissesSayWhatTheKernelDoesNotCount) {
    CaptureLosses losses;
    losses.kernel_recursion_misses = 4;
    EXPECT_EQ(format_losses(losses).find("does not count"), std::string::npos);
    losses.kprobe_skips = CaptureLosses::KprobeSkips::Uncounted;
    std::string text = format_losses(losses);
    EXPECT_NE(text.find("kernel recursion misses 4 (this kernel does not count its skips of "
                        "kprobe programs),"),
              std::string::npos)
        << text;
    losses.kprobe_skips = CaptureLosses::KprobeSkips::InsideKprobesUncounted;
    text = format_losses(losses);
    EXPECT_NE(text.find("kernel recursion misses 4 (the kernel does not count the kprobes it "
                        "skips inside another kprobe),"),
              std::string::npos)
        << text;
}

// A full dedup map is a loss (facts not sent), and how full each map is
// shows before it happens.
TEST(RunReport, DedupMapsSayHowFullTheyAre) {
    CaptureLosses losses;
    losses.bpf[LW_LOSS_DEDUP_FULL] = 9;
    losses.notes[LW_NOTE_EDGES_KEPT] = 131072;
    losses.notes[LW_NOTE_CLASSES_KEPT] = 655;
    std::string text = format_losses(losses);
    EXPECT_NE(text.find("facts not sent: dedup map full 9"), std::string::npos) << text;
    EXPECT_NE(text.find("dedup maps: edges 131072/262144 (50.0 %), class_usage 655/65536 (1.0 %)"),
              std::string::npos)
        << text;
    EXPECT_EQ(text.find("edges map entries"), std::string::npos) << "a fill level, not a note";
    EXPECT_EQ(losses.total(), 9u);
}

// Records still in the ring when reading stopped are lost to the report:
// counted and named, not left to a free-text line.
TEST(RunReport, RecordsUnreadAtStopAreALoss) {
    CaptureLosses losses;
    EXPECT_EQ(format_losses(losses).find("unread at stop"), std::string::npos);
    losses.unread_at_stop = 4096;
    EXPECT_NE(format_losses(losses).find("unread at stop 4096"), std::string::npos);
    EXPECT_EQ(losses.total(), 4096u);
}

TEST(RunReport, LockdepNestedTracepointSkipsAreANoteNotALoss) {
    CaptureLosses losses;
    EXPECT_EQ(format_losses(losses).find("tracepoints skipped"), std::string::npos);
    losses.skipped_nested_tracepoints = 40;
    std::string text = format_losses(losses);
    auto notes = text.find("; notes:");
    ASSERT_NE(notes, std::string::npos) << text;
    auto skipped = text.find("lockdep tracepoints skipped while lockwatch ran");
    ASSERT_NE(skipped, std::string::npos) << text;
    EXPECT_GT(skipped, notes) << text;
    EXPECT_NE(text.find(") 40"), std::string::npos) << text;
    EXPECT_EQ(losses.total(), 0u);
}

TEST(RunReport, CallerSkipsLockFunctionsAndBpfFrames) {
    std::istringstream in(
        "ffffffff81000000 T bpf_trampoline_6442\n"
        "ffffffff81000100 T _raw_spin_lock\n"
        "ffffffff81000200 T do_work\n"
        "ffffffff81000300 T other\n");
    Kallsyms k = Kallsyms::parse(in);
    EXPECT_EQ(caller_of({0xffffffff81000010, 0xffffffff81000105, 0xffffffff81000220}, k),
              "do_work+0x20/0x100");
    EXPECT_EQ(caller_of({0xffffffff81000105}, k), "?");
}

// The lockdep backend's stacks start in the raw tracepoint's glue.
TEST(RunReport, CallerSkipsTheTracepointGlueOfTheLockdepBackend) {
    std::istringstream in(
        "ffffffff81000000 T bpf_prog_6deef7357e7b4530_lockdep_lock_op\n"
        "ffffffff81000100 T bpf_trace_run3\n"
        "ffffffff81000200 T __traceiter_lock_release\n"
        "ffffffff81000300 T __bpf_prog_enter_recur\n"
        "ffffffff81000400 T do_work\n"
        "ffffffff81000500 T other\n");
    Kallsyms k = Kallsyms::parse(in);
    EXPECT_EQ(caller_of({0xffffffff81000010, 0xffffffff81000310, 0xffffffff81000110,
                         0xffffffff81000210, 0xffffffff81000420},
                        k),
              "do_work+0x20/0x100");
}

TEST(ClassAgreement, CountsOneToOneSplitAndMergedClasses) {
    ClassAgreement agreement;
    agreement.add(1, 100, LW_CLASS_SLAB);  // one-to-one
    agreement.add(1, 100, LW_CLASS_SLAB);  // the same pair again
    agreement.add(2, 200, LW_CLASS_SLAB);  // 2 is split over two caches
    agreement.add(2, 201, LW_CLASS_SLAB);
    agreement.add(3, 300, LW_CLASS_STATIC);  // 300 merges 3 and 4
    agreement.add(4, 300, LW_CLASS_STATIC);
    agreement.add(5, 500, LW_CLASS_SITE);  // call-site memory: not compared
    EXPECT_EQ(agreement.lockdep_classes(), 4u);
    EXPECT_EQ(agreement.one_to_one(), 1u);
    EXPECT_EQ(agreement.split(), 1u);
    EXPECT_EQ(agreement.merged(), 1u);
    EXPECT_EQ(agreement.by_call_site(), 1u);
    EXPECT_NE(agreement.format().find("4 lockdep classes compared, 1 one-to-one"),
              std::string::npos)
        << agreement.format();
}

// Only the classes in edges change what is found: they get counts of their
// own, and their splits and merges are listed by name.
TEST(ClassAgreement, CountsTheClassesInEdgesApart) {
    ClassAgreement agreement;
    agreement.add(1, 100, LW_CLASS_KMALLOC_ALLOC, "kmalloc-512+0x28@neigh_alloc");
    agreement.add(2, 200, LW_CLASS_KMALLOC_ALLOC, "kmalloc-64+0x0@a");
    agreement.add(2, 201, LW_CLASS_KMALLOC, "kmalloc-64+0x0@locker:b");
    agreement.add(3, 300, LW_CLASS_SLAB, "x.lock");
    agreement.add(4, 300, LW_CLASS_SLAB, "x.lock");
    agreement.add(5, 500, LW_CLASS_SLAB, "y.lock");  // split, but in no edge
    agreement.add(5, 501, LW_CLASS_SLAB, "y.lock#2");
    agreement.add_edge(1, 2);
    agreement.add_edge(2, 3);
    ClassAgreement::Counts all = agreement.counts(false), edges = agreement.counts(true);
    EXPECT_EQ(all.compared, 5u);
    EXPECT_EQ(all.split, 2u);
    EXPECT_EQ(edges.compared, 3u);
    EXPECT_EQ(edges.one_to_one, 1u);
    EXPECT_EQ(edges.split, 1u);
    EXPECT_EQ(edges.merged, 1u) << "300 merges 3 (in an edge) with 4 (in none)";
    EXPECT_EQ(edges.fallback, 1u);
    EXPECT_EQ(edges.by_alloc_site, 2u);
    std::string table = agreement.table([](uint64_t id) { return "L" + std::to_string(id); });
    EXPECT_NE(
        table.find("classes in edges               3      1 ( 33.3 %)      1       1      1     2"),
        std::string::npos)
        << table;
    EXPECT_NE(table.find("split: L2 -> kmalloc-64+0x0@a kmalloc-64+0x0@locker:b"),
              std::string::npos)
        << table;
    EXPECT_NE(table.find("merged: x.lock <- L3 L4"), std::string::npos) << table;
    EXPECT_EQ(table.find("L5"), std::string::npos) << "not in an edge: not listed\n" << table;
}

// A merge of a class with its own subclasses or same-named keys is one no
// kernel without lockdep can avoid; a merge of two different names is not.
TEST(ClassAgreement, MergesOfAnnotationsAloneAreCountedApart) {
    ClassAgreement agreement;
    std::map<uint64_t, std::string> names = {{1, "&dentry->d_lock"},
                                             {2, "&dentry->d_lock/1"},
                                             {3, "&sb->s_type->i_lock_key#7"},
                                             {4, "&sb->s_type->i_lock_key"},
                                             {5, "&a->lock"},
                                             {6, "&b->lock"},
                                             {7, "&c->lock/x"}};
    agreement.add(1, 100, LW_CLASS_SLAB, "dentry.d_lockref.lock");
    agreement.add(2, 100, LW_CLASS_SLAB, "dentry.d_lockref.lock");
    agreement.add(3, 300, LW_CLASS_SLAB, "inode.i_lock");
    agreement.add(4, 300, LW_CLASS_SLAB, "inode.i_lock");
    agreement.add(5, 500, LW_CLASS_SLAB, "x.lock");
    agreement.add(6, 500, LW_CLASS_SLAB, "x.lock");
    agreement.add(7, 700, LW_CLASS_SLAB, "c.lock");
    for (uint64_t c = 1; c <= 7; ++c) {
        agreement.add_edge(c, c);
    }
    auto name = [&](uint64_t id) { return names.at(id); };
    EXPECT_EQ(agreement.merged_by_annotation(name), 4u);
    std::string table = agreement.table(name);
    EXPECT_NE(table.find("(subclass /N, key #N): 4; reachable without lockdep: 3 of 7 (42.9 %); "
                         "one-to-one among those: 1 (33.3 %)"),
              std::string::npos)
        << table;
}

}  // namespace
}  // namespace lockwatch

namespace lockwatch {
namespace {

TEST(RunSummary, SymbolRereadsAreCounted) {
    EXPECT_EQ(format_symbol_rereads(0, 0, 0),
              "module symbols: 0 re-reads of /proc/kallsyms (0 deferred, 0 failed)");
    EXPECT_EQ(format_symbol_rereads(1, 3, 0),
              "module symbols: 1 re-read of /proc/kallsyms (3 deferred, 0 failed)");
}

}  // namespace
}  // namespace lockwatch
