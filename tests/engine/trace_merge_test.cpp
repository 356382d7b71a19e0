// Several traces as one graph (lockwatch replay A B): classes matched by
// name across hosts whose class ids differ, stacks renumbered, and each
// fact's origin kept. Host A saw the usages, host B the dependency: only
// the merge makes the seed's finding.
#include "engine/trace_merge.h"

#include <sstream>

#include <gtest/gtest.h>

#include "engine/engine.h"
#include "engine/trace.h"
#include "temp_dir.h"

namespace lockwatch::engine {
namespace {

const char *const kHostA = R"({"format":"lockwatch-trace","version":2,"hostname":"host-a"}
{"t":"class","id":11,"name":"kioctx.ctx_lock"}
{"t":"class","id":12,"name":"pid.wait_pidfd.lock"}
{"t":"stack","id":1,"frames":["aio_complete+0x40/0x200"]}
{"t":"usage","class":11,"bit":"USED_IN_SOFTIRQ","stack":1}
{"t":"usage","class":12,"bit":"ENABLED_SOFTIRQ","stack":1}
)";
const char *const kHostB = R"({"format":"lockwatch-trace","version":2,"hostname":"host-b"}
{"t":"class","id":77,"name":"kioctx.ctx_lock"}
{"t":"class","id":78,"name":"pid.wait_pidfd.lock"}
{"t":"stack","id":1,"frames":["io_submit_one+0x97f/0x2b00"]}
{"t":"edge","prev":77,"next":78,"stack":1,"prev_stack":1}
)";

std::vector<Finding> replay(const std::vector<const char *> &traces, TraceMerge *merge) {
    Engine eng;
    for (std::size_t i = 0; i < traces.size(); ++i) {
        std::istringstream in(traces[i]);
        TraceReader reader(in);
        while (auto ev = reader.next()) {
            if (merge) {
                merge->translate(i, *ev);
            }
            eng.process(*ev);
        }
        if (merge) {
            merge->set_origin(i, reader.hostname());
        }
        EXPECT_FALSE(reader.error()) << reader.error()->format("trace");
    }
    return eng.findings();
}

TEST(TraceMerge, NoHostAloneSeesTheBug) {
    EXPECT_TRUE(replay({kHostA}, nullptr).empty());
    EXPECT_TRUE(replay({kHostB}, nullptr).empty());
    // Without the merge the ids do not meet: two graphs in one engine.
    EXPECT_TRUE(replay({kHostA, kHostB}, nullptr).empty());
}

TEST(TraceMerge, TheMergedGraphDoesAndSaysWhoSawWhat) {
    TraceMerge merge({"a.jsonl", "b.jsonl"});
    std::vector<Finding> findings = replay({kHostA, kHostB}, &merge);
    ASSERT_EQ(findings.size(), 1u);
    const Finding &f = findings[0];
    EXPECT_EQ(f.kind, FindingKind::IrqSafeToUnsafe);
    EXPECT_EQ(f.irq, IrqClass::Softirq);
    ASSERT_EQ(f.chain, (std::vector<std::string>{"kioctx.ctx_lock", "pid.wait_pidfd.lock"}));
    EXPECT_EQ(merge.dependency_origins("kioctx.ctx_lock", "pid.wait_pidfd.lock"),
              std::vector<std::string>{"host-b (b.jsonl)"});
    EXPECT_EQ(merge.usage_origins("kioctx.ctx_lock", UsageBit::UsedInSoftirq),
              std::vector<std::string>{"host-a (a.jsonl)"});
    EXPECT_EQ(merge.usage_origins("pid.wait_pidfd.lock", UsageBit::EnabledSoftirq),
              std::vector<std::string>{"host-a (a.jsonl)"});
    EXPECT_TRUE(merge.usage_origins("kioctx.ctx_lock", UsageBit::UsedInHardirq).empty());
}

// A class without a name cannot be matched: each input keeps its own.
TEST(TraceMerge, NamelessClassesStayApart) {
    const char *a = R"({"format":"lockwatch-trace","version":2}
{"t":"class","id":1,"name":""}
{"t":"usage","class":1,"bit":"USED_IN_SOFTIRQ"}
)";
    const char *b = R"({"format":"lockwatch-trace","version":2}
{"t":"class","id":1,"name":""}
{"t":"usage","class":1,"bit":"ENABLED_SOFTIRQ"}
)";
    TraceMerge merge({"a", "b"});
    EXPECT_TRUE(replay({a, b}, &merge).empty()) << "two nameless classes were merged";
}

// Two locks one host told apart (two call sites of one function) are not
// joined because they share a name: only the first matches other inputs.
TEST(TraceMerge, ClassesOfOneInputWithOneNameStayApart) {
    const char *a = R"({"format":"lockwatch-trace","version":2}
{"t":"class","id":1,"name":"lock@worker_fn"}
{"t":"class","id":2,"name":"lock@worker_fn"}
{"t":"usage","class":1,"bit":"USED_IN_SOFTIRQ"}
{"t":"usage","class":2,"bit":"ENABLED_SOFTIRQ"}
)";
    const char *b = R"({"format":"lockwatch-trace","version":2}
{"t":"class","id":9,"name":"lock@worker_fn"}
{"t":"usage","class":9,"bit":"ENABLED_SOFTIRQ"}
)";
    TraceMerge alone({"a"});
    EXPECT_TRUE(replay({a}, &alone).empty()) << "one input's two locks were joined";
    TraceMerge merge({"a", "b"});
    std::vector<Finding> found = replay({a, b}, &merge);
    ASSERT_EQ(found.size(), 1u) << "the first class no longer matches by name";
    EXPECT_EQ(found[0].kind, FindingKind::InconsistentState);
    EXPECT_EQ(merge.class_of(0, 1), TraceMerge::class_id_of_name("lock@worker_fn"));
    EXPECT_NE(merge.class_of(0, 2), TraceMerge::class_id_of_name("lock@worker_fn"));
}

// run --record-ops: a trace with facts and the operations they came from.
// Here the facts make the seed's finding and the operations make none, so
// which of the two a replay took shows.
TEST(TraceOperations, ReplayTakesTheFactsOrWithFromOpsTheOperations) {
    const std::string header =
        R"({"format":"lockwatch-trace","version":2,"operations":"with facts"})";
    const std::string body = std::string(kHostA).substr(std::string(kHostA).find('\n') + 1) +
                             R"({"t":"edge","prev":11,"next":12,"stack":1,"prev_stack":1}
{"t":"acquire","cpu":0,"pid":1,"comm":"t","lock":1,"class":11}
{"t":"release","cpu":0,"pid":1,"comm":"t","lock":1}
)";
    lockwatch::test_support::TempDir tmp("ops");
    std::ofstream(tmp.path() / "ops.jsonl") << header << "\n" << body;
    std::ofstream(tmp.path() / "facts.jsonl") << kHostA;
    auto replay = [&](const std::string &args) {
        return lockwatch::test_support::run_shell(
            "cd '" + tmp.path().string() + "' && " LOCKWATCH_BINARY " replay " + args, tmp.path());
    };
    auto facts = replay("ops.jsonl");
    EXPECT_EQ(facts.status, 1) << facts.out << facts.err;
    auto ops = replay("--from-ops ops.jsonl");
    EXPECT_EQ(ops.status, 0) << "the facts were replayed too:\n" << ops.out << ops.err;
    auto plain = replay("--from-ops facts.jsonl");
    EXPECT_EQ(plain.status, 3) << plain.out;  // a bad input, as a bad line is
    EXPECT_NE(plain.err.find("not recorded with run --record-ops"), std::string::npos) << plain.err;
}

// The command: two files, one finding, its facts by origin.
TEST(TraceMerge, ReplayOfTwoFilesPrintsTheOrigins) {
    lockwatch::test_support::TempDir tmp("merge");
    std::ofstream(tmp.path() / "a.jsonl") << kHostA;
    std::ofstream(tmp.path() / "b.jsonl") << kHostB;
    auto run = lockwatch::test_support::run_shell(
        "cd '" + tmp.path().string() + "' && " LOCKWATCH_BINARY " replay a.jsonl b.jsonl",
        tmp.path());
    EXPECT_EQ(run.status, 1) << run.err;  // 1: findings
    EXPECT_NE(run.out.find("SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"), std::string::npos)
        << run.out;
    EXPECT_NE(run.out.find("  kioctx.ctx_lock -> pid.wait_pidfd.lock: from host-b (b.jsonl)\n"),
              std::string::npos)
        << run.out;
    EXPECT_NE(run.out.find("  kioctx.ctx_lock USED_IN_SOFTIRQ: from host-a (a.jsonl)\n"),
              std::string::npos)
        << run.out;
}

}  // namespace
}  // namespace lockwatch::engine
