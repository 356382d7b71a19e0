// lockwatch run --state DIR's store: facts of one run make a finding with
// the facts of the next, a finding is reported once across runs, and the
// files survive torn writes, a SIGKILL at any moment, planted links and
// another kernel's facts.
#include "state/fact_store.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/trace_merge.h"

namespace lockwatch::state {
namespace {

namespace fs = std::filesystem;
using engine::ClassFact;
using engine::EdgeFact;
using engine::StackFact;
using engine::UsageBit;
using engine::UsageFact;

const KernelIdentity kKernel{"6.1.0-test", "aabbcc", "host-a"};

class FactStoreTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char templ[] = "/tmp/lockwatch-state-XXXXXX";
        ASSERT_NE(mkdtemp(templ), nullptr);
        root_ = templ;
        dir_ = root_ + "/state";
    }
    void TearDown() override { fs::remove_all(root_); }

    std::string read(const std::string &name) const {
        std::ifstream in(dir_ + "/" + name);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
    void append_raw(const std::string &name, const std::string &text) const {
        std::ofstream(dir_ + "/" + name, std::ios::app) << text;
    }

    std::string root_;
    std::string dir_;
};

// One run: an engine, the state loaded into it as input 0, this run's
// facts as input 1 (in its own ids, as the live decoder gives them).
struct StateRun {
    explicit StateRun(const std::string &dir, KernelIdentity kernel = kKernel,
                      StateLimits limits = {})
        : merge({"state", "run"}, false), store(dir, kernel, limits) {
        engine.on_finding([this](const engine::Finding &f) {
            titles.push_back(f.title);
            std::string error;
            EXPECT_TRUE(store.keep_reported(f, &error)) << error;
            if (on_finding) {
                on_finding(f);
            }
        });
        store.load(engine, merge, 0);
    }
    void feed(engine::Event event) { keep_then_process(store, merge, 1, engine, event); }
    bool flush() {
        std::string error;
        bool ok = store.flush(&error);
        EXPECT_TRUE(ok) << error;
        return ok;
    }
    engine::Engine engine;
    engine::TraceMerge merge;
    FactStore store;
    std::vector<std::string> titles;
    std::function<void(const engine::Finding &)> on_finding;
};

// lockdep's softirq-safe -> softirq-unsafe, in two halves. Ids differ per
// run, as a live kernel's do after a reboot; in one run, usage_half(run, N)
// goes with order_half(run, N - 1).
StackFact stack(engine::StackId id, const char *symbol) {
    engine::Frame frame;
    frame.symbol = symbol;
    frame.offset = 0x10;
    return StackFact{id, {frame}};
}

UsageFact usage(engine::ClassId cls, UsageBit bit, engine::StackId at = engine::kNoStack) {
    UsageFact fact;
    fact.cls = cls;
    fact.bit = bit;
    fact.stack = at;
    return fact;
}

void usage_half(StateRun &run, std::uint32_t base) {
    run.feed(ClassFact{base + 1, "kioctx.ctx_lock"});
    run.feed(stack(base + 7, "aio_complete"));
    run.feed(usage(base + 1, UsageBit::UsedInSoftirq, base + 7));
}

void order_half(StateRun &run, std::uint32_t base) {
    run.feed(ClassFact{base + 2, "kioctx.ctx_lock"});
    run.feed(ClassFact{base + 3, "pid.wait_pidfd.lock"});
    run.feed(stack(base + 9, "io_submit_one"));
    run.feed(usage(base + 3, UsageBit::EnabledSoftirq, base + 9));
    EdgeFact edge;
    edge.prev = base + 2;
    edge.next = base + 3;
    edge.next_stack = base + 9;
    run.feed(edge);
}

TEST_F(FactStoreTest, UsageAndOrderOfTwoRunsMakeOneFindingReportedOnce) {
    {
        StateRun first(dir_);
        EXPECT_TRUE(first.store.loaded().created);
        usage_half(first, 100);
        first.flush();
        EXPECT_TRUE(first.titles.empty());
    }
    {
        StateRun second(dir_);
        EXPECT_EQ(second.store.loaded().records, 3u);  // class, stack, usage
        order_half(second, 500);
        ASSERT_EQ(second.titles.size(), 1u) << "the usage of the first run was not kept";
        EXPECT_EQ(second.engine.findings()[0].kind, engine::FindingKind::IrqSafeToUnsafe);
    }
    {
        StateRun third(dir_);
        EXPECT_EQ(third.store.loaded().reported, 1u);
        usage_half(third, 900);
        order_half(third, 899);
        EXPECT_TRUE(third.titles.empty()) << "reported again: " << third.titles[0];
        EXPECT_EQ(third.engine.stats().reported_before, 1u);
        EXPECT_EQ(third.store.stats().written, 0u) << "facts already kept were written again";
    }
}

TEST_F(FactStoreTest, StateReadsAsATraceWithStacks) {
    {
        StateRun run(dir_);
        order_half(run, 10);
    }
    std::string facts = read("facts.trace");
    EXPECT_NE(facts.find("\"recorded_by\":\"lockwatch run --state\""), std::string::npos);
    EXPECT_NE(facts.find("\"kernel_build_id\":\"aabbcc\""), std::string::npos);
    EXPECT_NE(facts.find("io_submit_one"), std::string::npos) << "the edge's stack was not kept";
    EXPECT_EQ(facts.find("\"id\":12,"), std::string::npos) << "a run's own class id was kept";
}

TEST_F(FactStoreTest, TornLastLineIsCutAndTheRestKept) {
    {
        StateRun run(dir_);
        usage_half(run, 1);
    }
    std::uint64_t whole = fs::file_size(dir_ + "/facts.trace");
    const std::string torn = "{\"t\":\"edge\",\"prev\":3";
    append_raw("facts.trace", torn);
    append_raw("reported", "0123456789abcdef circular pos");
    StateRun again(dir_);
    EXPECT_EQ(again.store.loaded().records, 3u);
    EXPECT_EQ(again.store.loaded().cut_bytes, torn.size());
    EXPECT_NE(again.store.loaded().cut_reason.find("incomplete"), std::string::npos);
    EXPECT_EQ(fs::file_size(dir_ + "/facts.trace"), whole);
    EXPECT_EQ(again.store.loaded().reported, 0u);
    EXPECT_EQ(read("reported"), "");
}

TEST_F(FactStoreTest, DamagedLineIsSkippedAndTheLinesAfterItKept) {
    {
        StateRun run(dir_);
        usage_half(run, 1);
    }
    append_raw("facts.trace", "{\"t\":\"nonsense\"}\n{\"t\":\"class\",\"id\":5,\"name\":\"x\"}\n");
    std::uint64_t size = fs::file_size(dir_ + "/facts.trace");
    StateRun again(dir_);
    EXPECT_EQ(again.store.loaded().records, 4u) << "the class after the damaged line was lost";
    EXPECT_EQ(again.store.loaded().damaged, 1u);
    EXPECT_NE(again.store.loaded().first_damage.find("facts.trace:5"), std::string::npos)
        << again.store.loaded().first_damage;
    EXPECT_EQ(again.store.loaded().cut_bytes, 0u);
    EXPECT_EQ(fs::file_size(dir_ + "/facts.trace"), size);
}

// Merged stack ids restart at 1 each run, and a stack the engine saw but
// the state did not keep uses one up: the file's own numbering must go on
// from the file's largest id, or a new stack takes an old one's id.
TEST_F(FactStoreTest, StackIdsOfThreeRunsNeverCollide) {
    {
        StateRun first(dir_);
        first.feed(stack(40, "never_kept"));
        usage_half(first, 100);  // its stack: merged id 2, the file's 1
    }
    {
        StateRun second(dir_);
        order_half(second, 200);  // new stacks: merged ids 2 and up
    }
    {
        StateRun third(dir_);
        third.feed(ClassFact{7, "third.lock"});
        third.feed(stack(9, "third_fn"));
        third.feed(usage(7, UsageBit::UsedInHardirq, 9));
    }
    std::map<std::uint64_t, std::string> stacks;  // file id -> its symbol
    std::map<std::string, std::string> usage_at;  // class name hash -> symbol
    std::istringstream lines(read("facts.trace"));
    std::string line;
    std::getline(lines, line);  // the header
    while (std::getline(lines, line)) {
        nlohmann::json r = nlohmann::json::parse(line);
        if (r["t"] == "stack") {
            std::uint64_t id = r["id"];
            EXPECT_TRUE(stacks.emplace(id, r["frames"][0]["sym"]).second)
                << "stack id " << id << " written twice";
        } else if (r["t"] == "usage" && r.contains("stack")) {
            std::uint64_t at = r["stack"];
            ASSERT_TRUE(stacks.contains(at)) << "a usage names a stack not written before it";
            usage_at[r["class"].dump()] = stacks[at];
        }
    }
    auto id_of = [](const char *name) {
        return std::to_string(engine::TraceMerge::class_id_of_name(name));
    };
    EXPECT_EQ(usage_at[id_of("kioctx.ctx_lock")], "aio_complete");
    EXPECT_EQ(usage_at[id_of("pid.wait_pidfd.lock")], "io_submit_one");
    EXPECT_EQ(usage_at[id_of("third.lock")], "third_fn");
}

// Two call sites in one function, two static locks kallsyms cannot name:
// one run's different locks with one name stay apart (no finding made of
// the two), and only the first is kept, under the name.
TEST_F(FactStoreTest, ClassesOfOneRunWithOneNameStayApart) {
    StateRun run(dir_);
    run.feed(ClassFact{1, "lock@worker_fn"});
    run.feed(ClassFact{2, "lock@worker_fn"});
    run.feed(ClassFact{3, "static-lock"});
    run.feed(ClassFact{4, "static-lock+0x1c0 [module area]"});
    run.feed(usage(1, UsageBit::UsedInSoftirq));
    run.feed(usage(2, UsageBit::EnabledSoftirq));
    run.feed(usage(3, UsageBit::UsedInHardirq));
    run.feed(usage(4, UsageBit::UsedInHardirq));
    EXPECT_TRUE(run.titles.empty()) << "two locks were joined: " << run.titles[0];
    EXPECT_EQ(run.store.stats().unnamed, 3u);
    run.flush();
    std::string facts = read("facts.trace");
    EXPECT_NE(facts.find("lock@worker_fn"), std::string::npos);
    EXPECT_EQ(facts.find("static-lock"), std::string::npos) << "a placeholder name was kept";
}

// A crash right after a finding is reported must not leave its signature
// without the facts that made it: they are on disk when it is reported.
TEST_F(FactStoreTest, TheFactsOfAFindingAreOnDiskWhenItIsReported) {
    StateRun run(dir_);
    bool edge_on_disk = false;
    run.on_finding = [&](const engine::Finding &) {
        edge_on_disk = read("facts.trace").find("\"t\":\"edge\"") != std::string::npos;
    };
    usage_half(run, 1);
    order_half(run, 0);
    ASSERT_EQ(run.titles.size(), 1u);
    EXPECT_TRUE(edge_on_disk) << "the finding was reported before the edge that made it was kept";
}

// A stack line lost to damage: facts still name its id, so a new stack must
// not take it (or those facts would show the new stack's frames).
TEST_F(FactStoreTest, ANewStackNeverTakesTheIdOfADamagedOne) {
    {
        StateRun run(dir_);
        usage_half(run, 1);  // the file's stack 1, named by the usage
    }
    std::string facts = read("facts.trace");
    std::size_t at = facts.rfind('\n', facts.find("\"t\":\"stack\""));
    ASSERT_NE(at, std::string::npos);
    facts[at + 1] = '#';  // the stack's line no longer parses
    std::ofstream(dir_ + "/facts.trace", std::ios::trunc) << facts;
    {
        StateRun run(dir_);
        EXPECT_EQ(run.store.loaded().damaged, 1u);
        run.feed(ClassFact{7, "other.lock"});
        run.feed(stack(9, "other_fn"));
        run.feed(usage(7, UsageBit::UsedInHardirq, 9));
    }
    std::string after = read("facts.trace");
    const std::string first = "\"id\":1,\"t\":\"stack\"";
    EXPECT_EQ(after.find(first), after.rfind(first)) << "a new stack took the damaged one's id:\n"
                                                     << after;
    EXPECT_NE(after.find("\"id\":2,\"t\":\"stack\""), std::string::npos) << after;
}

TEST_F(FactStoreTest, ReportedIsBoundedAtTheEnginesFindings) {
    { StateRun run(dir_); }
    std::string full;
    for (std::size_t i = 0; i < engine::EngineOptions{}.max_findings; ++i) {
        full += fmt::format("{:016x} circular earlier\n", i + 1);
    }
    append_raw("reported", full);
    StateRun run(dir_);
    usage_half(run, 1);
    order_half(run, 0);  // one run: the lock's id is the usage half's
    ASSERT_EQ(run.titles.size(), 1u);
    EXPECT_EQ(run.store.stats().reported_over, 1u);
    EXPECT_EQ(read("reported"), full) << "a full reported file grew";
}

TEST_F(FactStoreTest, DirectoryOthersCanWriteIsRefused) {
    fs::create_directory(dir_);
    fs::permissions(dir_, fs::perms::all);
    try {
        FactStore store(dir_, kKernel);
        ADD_FAILURE() << "a world-writable state directory was used";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("chmod go-w"), std::string::npos) << e.what();
    }
}

// A crash can cut facts.trace or reported anywhere: every cut loads, the
// facts before the cut are all kept, and nothing but the torn end is lost.
TEST_F(FactStoreTest, EveryTornWriteLoadsAndKeepsWhatCameBefore) {
    {
        StateRun run(dir_);
        usage_half(run, 1);
        order_half(run, 0);
        ASSERT_EQ(run.titles.size(), 1u);
        for (int i = 0; i < 20; ++i) {
            run.feed(ClassFact{static_cast<engine::ClassId>(50 + i), "c" + std::to_string(i)});
        }
    }
    const std::string facts = read("facts.trace");
    const std::string reported = read("reported");
    const std::size_t records =
        static_cast<std::size_t>(std::count(facts.begin(), facts.end(), '\n') - 1);
    std::mt19937 random(777);
    for (int round = 0; round < 60; ++round) {
        std::size_t cut = std::uniform_int_distribution<std::size_t>(0, facts.size())(random);
        std::ofstream(dir_ + "/facts.trace", std::ios::trunc) << facts.substr(0, cut);
        std::ofstream(dir_ + "/reported", std::ios::trunc)
            << reported.substr(0, cut % (reported.size() + 1));
        std::size_t header = facts.find('\n') + 1;
        std::size_t whole_lines = cut < header
                                      ? 0
                                      : static_cast<std::size_t>(std::count(
                                            facts.begin() + header, facts.begin() + cut, '\n'));
        StateRun check(dir_);
        const StateLoad &load = check.store.loaded();
        EXPECT_EQ(load.records, whole_lines) << "cut at " << cut;
        EXPECT_LE(load.records, records);
        EXPECT_EQ(load.damaged, 0u) << "cut at " << cut << ": " << load.first_damage;
        StateRun again(dir_);
        EXPECT_EQ(again.store.loaded().cut_bytes, 0u) << "cut at " << cut;
        EXPECT_EQ(again.store.loaded().records, whole_lines) << "cut at " << cut;
    }
}

TEST_F(FactStoreTest, AnotherKernelsFactsAreSetAside) {
    {
        StateRun run(dir_);
        usage_half(run, 1);
    }
    StateRun other(dir_, KernelIdentity{"6.1.0-test", "ddeeff", "host-a"});
    EXPECT_TRUE(other.store.loaded().created);
    EXPECT_NE(other.store.loaded().set_aside.find("another build"), std::string::npos);
    EXPECT_EQ(other.engine.class_count(), 0u);
    EXPECT_TRUE(fs::exists(dir_ + "/facts.trace.old"));
    EXPECT_TRUE(fs::exists(dir_ + "/reported.old"));
    StateRun newer(dir_, KernelIdentity{"6.2.0", "", "host-a"});
    EXPECT_NE(newer.store.loaded().set_aside.find("of kernel 6.1.0-test"), std::string::npos);
}

TEST_F(FactStoreTest, PlantedLinksAreRefused) {
    fs::create_directory(root_ + "/elsewhere");
    fs::create_directory_symlink(root_ + "/elsewhere", dir_);
    EXPECT_THROW(FactStore(dir_, kKernel), std::runtime_error);
    fs::remove(dir_);
    fs::create_directory(dir_);
    std::ofstream(root_ + "/victim") << "precious\n";
    fs::create_symlink(root_ + "/victim", dir_ + "/facts.trace");
    try {
        FactStore store(dir_, kKernel);
        ADD_FAILURE() << "a symbolic link was followed";
    } catch (const std::runtime_error &e) {
        EXPECT_NE(std::string(e.what()).find("symbolic link"), std::string::npos) << e.what();
    }
    fs::remove(dir_ + "/facts.trace");
    fs::create_hard_link(root_ + "/victim", dir_ + "/facts.trace");
    EXPECT_THROW(FactStore(dir_, kKernel), std::runtime_error);
    std::ifstream victim(root_ + "/victim");
    std::string text((std::istreambuf_iterator<char>(victim)), {});
    EXPECT_EQ(text, "precious\n");
}

TEST_F(FactStoreTest, FactsPastTheLimitAreCountedNotKept) {
    StateRun run(dir_, kKernel, StateLimits{.max_bytes = 400});
    for (int i = 0; i < 50; ++i) {
        run.feed(ClassFact{static_cast<engine::ClassId>(i + 1), "class_" + std::to_string(i)});
    }
    run.flush();
    EXPECT_GT(run.store.stats().over_limit, 30u);
    EXPECT_LT(fs::file_size(dir_ + "/facts.trace"), 500u);
}

// A writer killed at a random moment, twenty times over the same state:
// every load succeeds, what a load cut off is only ever the torn end, and
// no fact a flush had written before is ever lost.
TEST_F(FactStoreTest, SurvivesSigkillAtRandomMoments) {
    std::mt19937 random(12345);
    std::uint64_t kept_before = 0;
    for (int round = 0; round < 20; ++round) {
        pid_t child = fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            try {
                StateRun run(dir_);
                for (int i = 0;; ++i) {
                    std::string name = "r" + std::to_string(round) + "_" + std::to_string(i);
                    run.feed(ClassFact{static_cast<engine::ClassId>(i + 1), name});
                    run.feed(usage(static_cast<engine::ClassId>(i + 1), UsageBit::UsedInHardirq));
                    if (i % 7 == 0) {
                        std::string error;
                        run.store.flush(&error);
                    }
                }
            } catch (...) {
            }
            _exit(1);  // never back into the test runner
        }
        usleep(std::uniform_int_distribution<useconds_t>(2000, 60000)(random));
        kill(child, SIGKILL);
        int status = 0;
        waitpid(child, &status, 0);
        StateRun check(dir_);
        const StateLoad &load = check.store.loaded();
        EXPECT_GE(load.records, kept_before) << "round " << round << " lost kept facts";
        EXPECT_TRUE(load.cut_reason.empty() ||
                    load.cut_reason.find("incomplete") != std::string::npos)
            << load.cut_reason;
        kept_before = load.records;
    }
    EXPECT_GT(kept_before, 20u);
}

}  // namespace
}  // namespace lockwatch::state
