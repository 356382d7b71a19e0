// The lockdep backend after lockdep's first report. lockdep turns itself off
// then (debug_locks_off()) and stops updating its per-CPU hardirq state,
// which the backend read: every later acquire saw a stale state, and a run
// like this one made 28 false "inconsistent lock state" findings on
// core-kernel locks. One guest of the lockdep kernel with two vCPUs, under
// `lockwatch run`: a real HARDIRQ-safe -> HARDIRQ-unsafe order that lockdep
// reports, then every healthy scenario, then a second, different real bug
// that lockdep (off by then) cannot report. lockwatch must report both bugs,
// nothing else, and say once that lockdep turned itself off.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include "scenario_table.h"
#include "vm_test_support.h"

namespace lockwatch::vmtest {
namespace {

const char *const kFirstBug = "hardirq_safe_unsafe";
// Needs the hardirq state at a task's acquire: with the stale state of a
// CPU that last ran with interrupts off, it goes unseen.
const char *const kSecondBug = "inconsistent_hardirq_last";

std::vector<Scenario> run_order() {
    std::vector<Scenario> order;
    const std::vector<Scenario> table = scenario_table();
    auto named = [&](const std::string &name) {
        return *std::find_if(table.begin(), table.end(),
                             [&](const Scenario &s) { return s.name == name; });
    };
    order.push_back(named(kFirstBug));
    for (const Scenario &s : table) {
        if (s.healthy()) {
            order.push_back(s);
        }
    }
    order.push_back(named(kSecondBug));
    return order;
}

std::string guest_script(const std::vector<Scenario> &order) {
    std::string names;
    for (const Scenario &s : order) {
        names += (names.empty() ? "" : " ") + s.name;
    }
    // The graph's red lines only: the findings' classes and chains.
    // The recorded facts replayed in the guest: the same findings.
    return scenarios_under_lockwatch_script(names,
                                            "--graph /tmp/graph.dot --record /tmp/trace.jsonl") +
           "echo \"graph: $(grep -c -- ' -> ' /tmp/graph.dot) dependencies\"\n"
           "grep 'color=red' /tmp/graph.dot | sed 's/^/graph: /'\n"
           "lockwatch replay /tmp/trace.jsonl --format json --json-brief | sed 's/^/replay: /'\n"
           "echo \"trace: $(wc -l < /tmp/trace.jsonl) lines, $(wc -c < /tmp/trace.jsonl) bytes\"\n"
           "dmesg\n";
}

struct OffRun {
    std::string setup_error;
    GuestRun guest;
    std::vector<LiveFinding> findings;
};

class LockdepOff : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        run_ = new OffRun;
        std::string kernel = test_kernel_image("lockdep", run_->setup_error);
        if (kernel.empty()) {
            return;
        }
        std::string module = build_scenario_module(
            std::string(SCENARIO_MODULE_DIR) + "/lockdep-off", "lockdep", run_->setup_error);
        if (module.empty()) {
            return;
        }
        run_->guest = run_in_vm_with_files(kernel, {}, {module + ":/lockwatch/"},
                                           guest_script(run_order()), 900, 2);
        run_->findings = findings_in(run_->guest.output);
    }
    static void TearDownTestSuite() {
        delete run_;
        run_ = nullptr;
    }
    void SetUp() override {
        ASSERT_EQ(run_->setup_error, "");
        ASSERT_EQ(run_->guest.exit_status, 0) << run_->guest.output << run_->guest.harness_log;
        ASSERT_NE(run_->guest.output.find("lockwatch-exit=0"), std::string::npos)
            << run_->guest.output;
    }
    // The findings that name a lock of `s`.
    static std::vector<LiveFinding> findings_of(const Scenario &s) {
        std::vector<LiveFinding> mine;
        for (const LiveFinding &f : run_->findings) {
            if (std::any_of(f.locks.begin(), f.locks.end(), [&](const std::string &lock) {
                    return names_scenario_lock(lock, s);
                })) {
                mine.push_back(f);
            }
        }
        return mine;
    }
    static std::string describe_all() {
        std::ostringstream out;
        for (const LiveFinding &f : run_->findings) {
            out << "\n  " << f.kind << "/" << f.irq << ": " << f.title << "; locks:";
            for (const std::string &lock : f.locks) {
                out << " '" << lock << "'";
            }
        }
        return out.str();
    }

    static OffRun *run_;
};

OffRun *LockdepOff::run_ = nullptr;

// The premise: lockdep reported the first bug and so turned itself off.
TEST_F(LockdepOff, LockdepReportedTheFirstBugAndTurnedOff) {
    Verdict v = first_lockdep_verdict(run_->guest.output);
    EXPECT_EQ(v.kind, "irq_safe_to_unsafe") << v.header;
    EXPECT_EQ(v.irq, "hardirq");
    const std::string said = "lw: lockwatch: lockdep has turned itself off";
    size_t first = run_->guest.output.find(said);
    EXPECT_NE(first, std::string::npos) << "the live output does not say lockdep turned off";
    EXPECT_EQ(run_->guest.output.find(said, first + 1), std::string::npos) << "said twice";
    EXPECT_NE(run_->guest.output.find("lw:   lockdep: lockdep has turned itself off"),
              std::string::npos)
        << "the summary does not say lockdep turned off";
    // The exact source, not the inferred fallback.
    EXPECT_NE(
        run_->guest.output.find("from the irq tracer's per-CPU flag (tracing_irq_cpu)", first),
        std::string::npos)
        << "the hardirq state after lockdep's report is not read from tracing_irq_cpu";
}

TEST_F(LockdepOff, EachBugIsReportedAsLockdepWould) {
    for (const Scenario &s : run_order()) {
        if (s.healthy()) {
            continue;
        }
        std::vector<LiveFinding> mine = findings_of(s);
        EXPECT_FALSE(mine.empty())
            << s.name << " was not reported; all findings:" << describe_all();
        for (const LiveFinding &f : mine) {
            EXPECT_EQ(f.kind, s.kind) << s.name << ": " << f.title;
            EXPECT_EQ(f.irq, s.irq) << s.name << ": " << f.title;
        }
    }
}

// run --graph: the first bug's two locks and the edge between them in red.
TEST_F(LockdepOff, TheGraphShowsTheFindingsInRed) {
    const std::string &out = run_->guest.output;
    EXPECT_TRUE(std::regex_search(out, std::regex(R"(graph: \d+ dependencies)"))) << out;
    EXPECT_TRUE(std::regex_search(out, std::regex(R"(graph: +c\d+ \[label="hsu_safe\\n)")));
    EXPECT_TRUE(std::regex_search(out, std::regex(R"(graph: +c\d+ \[label="hsu_unsafe\\n)")));
    EXPECT_TRUE(
        std::regex_search(out, std::regex(R"(graph: +c\d+ -> c\d+ \[label="\d+", color=red)")))
        << out;
}

// run --record: replaying what it recorded makes the same findings.
TEST_F(LockdepOff, TheRecordReplaysToTheSameFindings) {
    std::vector<LiveFinding> replayed = findings_in(run_->guest.output, "replay: ");
    std::multiset<std::string> live_signatures, replayed_signatures;
    for (const LiveFinding &f : run_->findings) {
        live_signatures.insert(f.signature);
    }
    for (const LiveFinding &f : replayed) {
        replayed_signatures.insert(f.signature);
    }
    EXPECT_FALSE(live_signatures.empty());
    EXPECT_EQ(replayed_signatures, live_signatures);
    std::smatch size;
    std::regex_search(run_->guest.output, size, std::regex(R"(trace: (\d+) lines, (\d+) bytes)"));
    std::printf("record: %s\n", size.str(0).c_str());
}

// No finding on a healthy scenario's locks, nor on the kernel's own (a
// finding that names no scenario lock at all).
TEST_F(LockdepOff, NothingElseIsReported) {
    std::vector<Scenario> order = run_order();
    size_t unexplained = 0;
    for (const LiveFinding &f : run_->findings) {
        bool buggy_lock = false;
        for (const Scenario &s : order) {
            for (const std::string &lock : f.locks) {
                if (!names_scenario_lock(lock, s)) {
                    continue;
                }
                EXPECT_FALSE(s.healthy()) << "a finding on healthy " << s.name << ": " << f.title;
                buggy_lock = buggy_lock || !s.healthy();
            }
        }
        unexplained += buggy_lock ? 0 : 1;
    }
    EXPECT_EQ(unexplained, 0u) << run_->findings.size() << " findings:" << describe_all();
    std::printf("lockdep off: %zu findings in all\n", run_->findings.size());
}

}  // namespace
}  // namespace lockwatch::vmtest
