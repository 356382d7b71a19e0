// --graph: the engine's graph as plain data (Engine::graph_view()) and its
// dot rendering: a node per class filled by its usage, an edge per
// dependency with its report count, the findings' chains in red; and the
// text Graphviz accepts.
#include "output/dot.h"

#include <unistd.h>

#include <fstream>
#include <regex>

#include <gtest/gtest.h>

#include "engine_test_util.h"
#include "temp_dir.h"

namespace lockwatch::engine::testing {
namespace {

GraphView replay_graph(const std::string &name, std::vector<Finding> *findings) {
    std::ifstream in(std::string(LOCKWATCH_TRACES_DIR) + "/" + name);
    Engine eng;
    TraceReader reader(in);
    while (auto ev = reader.next()) {
        eng.process(*ev);
    }
    *findings = eng.findings();
    return eng.graph_view();
}

TEST(GraphView, EveryClassWithItsUsageAndEveryDependency) {
    std::vector<Finding> findings;
    GraphView g = replay_graph("seed_000_softirq_safe_to_unsafe.jsonl", &findings);
    ASSERT_EQ(g.classes.size(), 2u);
    ASSERT_EQ(g.dependencies.size(), 1u);
    const auto &prev = g.classes[g.dependencies[0].prev];
    const auto &next = g.classes[g.dependencies[0].next];
    EXPECT_EQ(prev.name, "&(&ctx->ctx_lock)->rlock");
    EXPECT_EQ(usage_chars(prev.usage), "..-.");
    EXPECT_EQ(next.name, "&pid->wait_pidfd");
    EXPECT_EQ(usage_chars(next.usage), "+.+.");
    EXPECT_EQ(g.dependencies[0].reports, 1u);
}

// Each fact that names a dependency again counts; a new read level too.
TEST(GraphView, ADependencyCountsItsReports) {
    Engine eng;
    eng.add_class(ClassFact{1, "a"});
    eng.add_class(ClassFact{2, "b"});
    EdgeFact edge;
    edge.prev = 1;
    edge.next = 2;
    eng.add_edge(edge);
    eng.add_edge(edge);
    edge.next_read = 2;
    eng.add_edge(edge);
    GraphView g = eng.graph_view();
    ASSERT_EQ(g.dependencies.size(), 1u);
    EXPECT_EQ(g.dependencies[0].reports, 3u);
}

TEST(Dot, ClassesFilledByUsageAndTheFindingsChainInRed) {
    std::vector<Finding> findings;
    GraphView g = replay_graph("seed_000_softirq_safe_to_unsafe.jsonl", &findings);
    ASSERT_EQ(findings.size(), 1u);
    std::string dot = output::render_dot(g, findings);
    // The softirq-safe lock is orange, the lock taken with interrupts on blue.
    EXPECT_TRUE(std::regex_search(
        dot,
        std::regex(
            R"(label="&amp;\(&amp;ctx->ctx_lock\)->rlock\\n\{\.\.-\.\}", fillcolor="#fbd38d", color=red)")))
        << dot;
    EXPECT_TRUE(std::regex_search(
        dot, std::regex(R"(label="&amp;pid->wait_pidfd\\n\{\+\.\+\.\}", fillcolor="#bcd7f0")")))
        << dot;
    EXPECT_NE(dot.find("c0 -> c1 [label=\"1\", color=red"), std::string::npos) << dot;
    // Without the finding, nothing is red.
    std::string plain = output::render_dot(g, {});
    EXPECT_EQ(plain.find("color=red"), std::string::npos) << plain;
}

TEST(Dot, NamesAreEscaped) {
    EXPECT_EQ(output::dot_escape(R"(a"b\c)"), R"(a\"b\\c)");
    EXPECT_EQ(output::dot_escape("a\nb\x1b"), "a?b?");
    EXPECT_EQ(output::dot_escape("&lt;&x"), "&amp;lt;&amp;x");
    GraphView g;
    g.classes.push_back({1, "x\"] ; evil [label=\"", 0});
    std::string dot = output::render_dot(g, {});
    EXPECT_NE(dot.find(R"(label="x\"] ; evil [label=\"\n{....}")"), std::string::npos) << dot;
}

// Graphviz reads what render_dot() writes (skipped without graphviz).
TEST(Dot, GraphvizRendersIt) {
    if (access("/usr/bin/dot", X_OK) != 0) {
        GTEST_SKIP() << "no /usr/bin/dot (Debian: graphviz)";
    }
    std::vector<Finding> findings;
    GraphView g = replay_graph("seed_001_irq_inversion.jsonl", &findings);
    g.classes.push_back({99, "odd \"name\" \\ here", 0});
    lockwatch::test_support::TempDir tmp("dot");
    std::ofstream(tmp.path() / "g.dot") << output::render_dot(g, findings);
    auto run = lockwatch::test_support::run_shell(
        "cd '" + tmp.path().string() + "' && dot -Tsvg g.dot -o g.svg", tmp.path());
    EXPECT_EQ(run.status, 0) << run.err;
    EXPECT_NE(lockwatch::test_support::read_file(tmp.path() / "g.svg").find("<svg"),
              std::string::npos);
}

}  // namespace
}  // namespace lockwatch::engine::testing
