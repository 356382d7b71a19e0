// What hostile or runaway input can make the engine keep and print: every
// bound of EngineOptions, the path elision of findings, and process names
// that are not whole UTF-8.
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "output/json.h"
#include "output/text.h"
#include "worst_cases.h"

namespace lockwatch::engine {
namespace {

EngineOptions bounded(std::size_t EngineOptions::*bound, std::size_t value) {
    EngineOptions o;
    o.*bound = value;
    return o;
}

Task task_named(std::string_view comm) {
    Task t;
    t.set_comm(comm);
    return t;
}

TEST(TaskName, CutCharacterBecomesAQuestionMark) {
    // 14 bytes + "é" (2 bytes): the kernel keeps 15, half of the é.
    EXPECT_EQ(task_named("aaaaaaaaaaaaaa\xc3\xa9").comm_view(), "aaaaaaaaaaaaaa?");
    EXPECT_EQ(task_named("caf\xc3\xa9").comm_view(), "caf\xc3\xa9");
    EXPECT_EQ(task_named("\xe2\x82\xac-sign").comm_view(), "\xe2\x82\xac-sign");
}

TEST(TaskName, ControlCharactersAndInvalidBytesBecomeQuestionMarks) {
    EXPECT_EQ(task_named("\x1b[31mred").comm_view(), "?[31mred");
    EXPECT_EQ(task_named("a\nb\x7f").comm_view(), "a?b?");
    EXPECT_EQ(task_named("\xc2\x9b"
                         "2J")
                  .comm_view(),
              "??2J")
        << "C1 CSI";
    EXPECT_EQ(task_named("\xff\xfe\xc0\xaf").comm_view(), "????") << "invalid and overlong";
    EXPECT_EQ(task_named("\xed\xa0\x80x").comm_view(), "???x") << "a surrogate";
}

// The reported crash: a finding by a task whose name the kernel cut inside
// a character, written as JSON.
TEST(TaskName, FindingOfACutNameIsValidJson) {
    Engine eng;
    std::vector<Finding> found;
    eng.on_finding([&](const Finding &f) { found.push_back(f); });
    eng.process(ClassFact{1, "c"});
    for (LockId lock : {1, 2}) {
        AcquireEvent a;
        a.lock = lock;
        a.cls = 1;
        a.task = task_named("aaaaaaaaaaaaaa\xc3\xa9");
        eng.process(a);
    }
    ASSERT_EQ(found.size(), 1u);
    std::string line = output::finding_to_json(found[0]).dump();
    EXPECT_EQ(nlohmann::json::parse(line)["task"]["comm"], "aaaaaaaaaaaaaa?");
}

TEST(Bounds, ClassesOverTheLimitAreDroppedAndCounted) {
    Engine eng(bounded(&EngineOptions::max_classes, 10));
    worst::classes(eng, 1, 20);
    worst::edge(eng, 1, 15);
    worst::edge(eng, 2, 3);
    EXPECT_EQ(eng.class_count(), 10u);
    EXPECT_EQ(eng.edge_count(), 1u);
    EXPECT_EQ(eng.stats().classes_over_limit, 11u) << "10 class records, one edge";
    EXPECT_NE(format_bounds(eng.stats()).find("11 classes"), std::string::npos);
}

TEST(Bounds, EdgesOverTheLimitAreDroppedAndCounted) {
    Engine eng(bounded(&EngineOptions::max_edges, 3));
    worst::cycle(eng, 5);  // 5 edges; the 4th and 5th (closing) are dropped
    EXPECT_EQ(eng.edge_count(), 3u);
    EXPECT_EQ(eng.stats().edges_over_limit, 2u);
    EXPECT_TRUE(eng.findings().empty()) << "an edge not kept is not checked either";
}

TEST(Bounds, FindingsOverTheLimitAreDroppedAndCounted) {
    Engine eng(bounded(&EngineOptions::max_findings, 2));
    for (ClassId c = 1; c <= 8; c += 2) {  // four distinct ABBA pairs
        worst::edge(eng, c, c + 1);
        worst::edge(eng, c + 1, c);
    }
    EXPECT_EQ(eng.findings().size(), 2u);
    EXPECT_EQ(eng.stats().findings_over_limit, 2u);
    worst::edge(eng, 2, 1);  // a duplicate is not over the limit
    EXPECT_EQ(eng.stats().findings_over_limit, 2u);
}

TEST(Bounds, StacksOverTheLimitAreDroppedAndCounted) {
    Engine eng(bounded(&EngineOptions::max_stacks, 2));
    for (StackId id = 1; id <= 3; ++id) {
        worst::big_stack(eng, id, 1, 16);
    }
    worst::big_stack(eng, 1, 2, 16);  // replacing a kept id is fine
    EXPECT_EQ(eng.stats().stacks_over_limit, 1u);
}

// A long cycle keeps the ends of its path; the text numbers the entries as
// lockdep would and says what it left out.
TEST(Bounds, LongCycleKeepsTheEndsOfItsPath) {
    Engine eng;
    worst::cycle(eng, 2000);
    ASSERT_EQ(eng.findings().size(), 1u);
    const Finding &f = eng.findings()[0];
    EXPECT_EQ(f.path.size(), kMaxPathEntries);
    EXPECT_EQ(f.path[kMaxPathEntries / 2].elided_before, 2000 - kMaxPathEntries);
    EXPECT_EQ(f.chain.size(), kMaxPathEntries + 1);
    // 2001 names (the cycle ends where it starts): 32, the marker for 1937, 32.
    EXPECT_EQ(f.chain[kMaxPathEntries / 2], "... 1937 more ...");
    EXPECT_EQ(eng.stats().path_entries_elided, 2000 - kMaxPathEntries);
    std::string text = output::render_text(f);
    EXPECT_NE(text.find("-> #1999 ("), std::string::npos) << "the deepest entry keeps its number";
    EXPECT_NE(text.find("... 1936 more dependencies ..."), std::string::npos);
    EXPECT_NE(text.find("-> #0 ("), std::string::npos);
    EXPECT_LT(text.size(), 20'000u);
    nlohmann::json j = output::finding_to_json(f);
    EXPECT_EQ(j["paths"]["dependency"][kMaxPathEntries / 2]["elided_before"], 1936);
    auto back = output::finding_from_json(j);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, f) << "elided_before survives JSON";
}

// lockdep indents a path by its depth: a 20000-class chain once rendered
// 602 MB. The indentation is capped and the middle left out.
TEST(Bounds, LongIrqChainMakesABoundedReport) {
    Engine eng;
    worst::irq_chain(eng, 3000);
    ASSERT_EQ(eng.findings().size(), 1u);
    const Finding &f = eng.findings()[0];
    EXPECT_EQ(f.kind, FindingKind::IrqSafeToUnsafe);
    EXPECT_EQ(f.safe_path.size(), kMaxPathEntries);
    std::string text = output::render_text(f);
    EXPECT_LT(text.size(), 40'000u) << text.substr(0, 2000);
    EXPECT_NE(text.find("... 2937 more dependencies ..."), std::string::npos);
}

// One big stack along a long cycle: a report prints it at most
// kMaxPathEntries + a few times.
TEST(Bounds, BigStackAlongACycleIsPrintedABoundedNumberOfTimes) {
    Engine eng;
    worst::big_stack(eng, 7, 64, 128);  // ~8 KiB of frame text
    worst::cycle(eng, 500, 7);
    ASSERT_EQ(eng.findings().size(), 1u);
    std::string text = output::render_text(eng.findings()[0]);
    EXPECT_LT(text.size(), (kMaxPathEntries + 8) * 64 * 160) << "a stack printed per entry at most";
}

}  // namespace
}  // namespace lockwatch::engine
