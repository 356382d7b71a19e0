// Findings compare as plain data: field by field, stacks by their frames.
#include <gtest/gtest.h>

#include "engine_test_util.h"

namespace lockwatch::engine::testing {
namespace {

Frame frame(const std::string &symbol, std::uint64_t offset) {
    Frame f;
    f.symbol = symbol;
    f.offset = offset;
    return f;
}

TEST(StackRef, ComparesFramesNotPointers) {
    StackRef a(Stack{frame("io_submit_one", 0x97f)});
    StackRef b(Stack{frame("io_submit_one", 0x97f)});
    StackRef c(Stack{frame("io_submit_one", 0x980)});
    EXPECT_NE(a.get(), b.get());
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    EXPECT_NE(a, StackRef());
}

TEST(StackRef, NullIsNoFrames) {
    EXPECT_EQ(StackRef(), StackRef(nullptr));
    EXPECT_EQ(StackRef(), StackRef(Stack{}));
    EXPECT_FALSE(StackRef());
    EXPECT_TRUE(StackRef(Stack{}));
}

TEST(FindingEquality, EveryPartCounts) {
    Sim s;
    ClassId a = s.cls("a"), b = s.cls("b");
    StackId st = s.stack({"_raw_spin_lock+0x2a/0x40", "do_thing+0x10/0x80"});
    s.acq(a, 1, 0, Context::Task, 0, true, true, st);
    s.acq(b, 2, 0, Context::Task, 0, true, true, st);
    s.rel(2);
    s.rel(1);
    s.acq(b, 2, 0, Context::Task, 0, true, true, st);
    s.acq(a, 1, 0, Context::Task, 0, true, true, st);
    ASSERT_EQ(s.eng.findings().size(), 1u);
    const Finding &f = s.eng.findings()[0];

    Finding copy = f;
    EXPECT_EQ(copy, f);
    copy.acquiring.at = StackRef(Stack{*f.acquiring.at});  // same frames, own storage
    EXPECT_EQ(copy, f);
    copy.path.back().acquired_at = StackRef(Stack{frame("elsewhere", 1)});
    EXPECT_NE(copy, f);
    copy = f;
    copy.held[0].read = 2;
    EXPECT_NE(copy, f);
    copy = f;
    copy.irq_flags.hardirqs_enabled = !copy.irq_flags.hardirqs_enabled;
    EXPECT_NE(copy, f);
}

}  // namespace
}  // namespace lockwatch::engine::testing
