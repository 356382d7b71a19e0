// Every lock scenario of tools/kmod/lockwatch_scenarios.c, live: lockwatch
// must say of each what lockdep says (tools/kmod/scenarios.tsv), on Debian's
// stock kernel and on the seed kernel, one guest per kernel and every
// scenario in turn in it. A finding belongs to the scenario whose lock
// prefix one of its locks carries ("circ2_a [lockwatch_scenarios]").
#include <cstdio>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "scenario_table.h"
#include "vm_test_support.h"

namespace lockwatch::vmtest {
namespace {

const std::vector<Scenario> &table() {
    static const std::vector<Scenario> scenarios = scenario_table();
    return scenarios;
}

std::string names_of(const std::vector<Scenario> &scenarios) {
    std::string names;
    for (const Scenario &s : scenarios) {
        names += (names.empty() ? "" : " ") + s.name;
    }
    return names;
}

// Runs every scenario while lockwatch runs, then prints its findings
// ("json: ...") and the module's lines of the kernel log.
std::string lockwatch_guest_script() {
    return scenarios_under_lockwatch_script(names_of(table())) +
           "dmesg | grep lockwatch_scenarios\n";
}

struct LiveRun {
    std::string setup_error;  // why there is no guest run
    GuestRun guest;
    std::vector<LiveFinding> findings;
};

LiveRun *run_scenarios_under_lockwatch(const std::string &flavor) {
    auto *run = new LiveRun;
    std::string kernel = "debian";
    if (flavor != "debian") {
        kernel = test_kernel_image(flavor, run->setup_error);
        if (kernel.empty()) {
            return run;
        }
    }
    std::string module = build_scenario_module(std::string(SCENARIO_MODULE_DIR) + "/" + flavor,
                                               flavor, run->setup_error);
    if (module.empty()) {
        run->setup_error = "cannot build the scenario module: " + run->setup_error;
        return run;
    }
    run->guest = run_in_vm_with_files(kernel, {}, {module + ":/lockwatch/"},
                                      lockwatch_guest_script(), 900, 2);
    run->findings = findings_in(run->guest.output);
    // Kept for a look after a failure: findings in full, the module's log.
    std::ofstream(std::string(SCENARIO_MODULE_DIR) + "/" + flavor + "/guest-output.txt")
        << run->guest.output << run->guest.harness_log;
    return run;
}

std::string describe(const std::vector<LiveFinding> &findings) {
    std::ostringstream out;
    for (const LiveFinding &f : findings) {
        out << "\n  " << f.kind << (f.irq.empty() ? "" : "/" + f.irq) << ": " << f.title
            << "; locks:";
        for (const std::string &lock : f.locks) {
            out << " '" << lock << "'";
        }
    }
    return findings.empty() ? "\n  (none)" : out.str();
}

// The findings made while `s` ran, by the kernel log's times: only a hint
// for when the names do not tell. Lockwatch's clock and the kernel log's
// differ by some milliseconds, hence the margin (scenarios are 300 ms apart).
std::vector<LiveFinding> findings_while_running(const LiveRun &run, const Scenario &s) {
    constexpr std::uint64_t kMarginNs = 100'000'000;
    std::vector<LiveFinding> during;
    for (const ScenarioSpan &span : scenario_spans(run.guest.output)) {
        if (span.name != s.name || span.end_ns == 0) {
            continue;
        }
        for (const LiveFinding &f : run.findings) {
            if (f.time_ns + kMarginNs >= span.start_ns && f.time_ns <= span.end_ns + kMarginNs) {
                during.push_back(f);
            }
        }
    }
    return during;
}

void expect_lockwatch_agrees(const LiveRun &run, const Scenario &s) {
    EXPECT_NE(run.guest.output.find("lockwatch_scenarios: " + s.name + " done"), std::string::npos)
        << "the scenario did not run:\n"
        << run.guest.output;
    std::vector<LiveFinding> mine;
    for (const LiveFinding &f : run.findings) {
        for (const std::string &lock : f.locks) {
            if (names_scenario_lock(lock, s)) {
                mine.push_back(f);
                break;
            }
        }
    }
    std::printf("%s: by name %zu findings, by time:%s\n", s.name.c_str(), mine.size(),
                describe(findings_while_running(run, s)).c_str());
    if (s.healthy()) {
        EXPECT_TRUE(mine.empty()) << s.name << " is healthy, yet:" << describe(mine);
        return;
    }
    EXPECT_FALSE(mine.empty()) << "no finding names a lock " << s.lock_prefix << "*; lockdep says "
                               << s.kind << (s.irq.empty() ? "" : "/" + s.irq)
                               << "; by time, the findings made while it ran:"
                               << describe(findings_while_running(run, s));
    if (s.name == "cache_reuse") {
        // Only then does the scenario test what it is for.
        EXPECT_NE(run.guest.output.find("cache_reuse: the new cache is where the old one was"),
                  std::string::npos)
            << run.guest.output;
        EXPECT_NE(run.guest.output.find("cache_reuse: a new lock is where an old one was"),
                  std::string::npos)
            << run.guest.output;
    }
    if (s.name == "kmalloc_reuse") {
        EXPECT_NE(run.guest.output.find("kmalloc_reuse: the new object is where the old one was"),
                  std::string::npos)
            << run.guest.output;
    }
    for (const LiveFinding &f : mine) {
        EXPECT_EQ(f.kind, s.kind) << f.title;
        EXPECT_EQ(f.irq, s.irq) << f.title;
        if (f.kind != "circular") {
            continue;
        }
        // A scenario's cycle runs through its own locks only: a lock named
        // after another (cache_reuse: after the destroyed cache whose
        // address the new one took) is a class taken for another's.
        for (const std::string &lock : f.locks) {
            EXPECT_TRUE(names_scenario_lock(lock, s)) << lock << " in " << describe({f});
        }
    }
}

template <class Kernel>
class LiveScenarios : public ::testing::TestWithParam<Scenario> {
  protected:
    static void SetUpTestSuite() { run_ = run_scenarios_under_lockwatch(Kernel::flavor); }
    static void TearDownTestSuite() {
        delete run_;
        run_ = nullptr;
    }
    void SetUp() override {
        ASSERT_NE(run_, nullptr);
        ASSERT_EQ(run_->setup_error, "");
        ASSERT_EQ(run_->guest.exit_status, 0) << run_->guest.output << run_->guest.harness_log;
        ASSERT_NE(run_->guest.output.find("lockwatch-exit=0"), std::string::npos)
            << run_->guest.output;
    }

    static LiveRun *run_;
};

template <class Kernel>
LiveRun *LiveScenarios<Kernel>::run_ = nullptr;

struct Debian {
    static constexpr const char *flavor = "debian";
};
struct Seed {
    static constexpr const char *flavor = "seed";
};

class DebianKernel : public LiveScenarios<Debian> {};
class SeedKernel : public LiveScenarios<Seed> {};

TEST_P(DebianKernel, LockwatchSaysWhatLockdepSays) {
    expect_lockwatch_agrees(*run_, GetParam());
}

TEST_P(SeedKernel, LockwatchSaysWhatLockdepSays) {
    expect_lockwatch_agrees(*run_, GetParam());
}

std::string scenario_name(const ::testing::TestParamInfo<Scenario> &info) {
    return info.param.name;
}

INSTANTIATE_TEST_SUITE_P(Scenarios, DebianKernel, ::testing::ValuesIn(table()), scenario_name);
INSTANTIATE_TEST_SUITE_P(Scenarios, SeedKernel, ::testing::ValuesIn(table()), scenario_name);

}  // namespace
}  // namespace lockwatch::vmtest
