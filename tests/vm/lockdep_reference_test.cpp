// Lockdep's own verdict on every scenario of tools/kmod/lockwatch_scenarios.c
// must be the one tools/kmod/scenarios.tsv records: the reference the live
// tests hold lockwatch to. Lockdep reports the first bug of a boot and then
// turns itself off, so each buggy scenario gets a boot of its own; the
// healthy ones share one (where nothing may be reported). Two guests at a
// time.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include <gtest/gtest.h>

#include "scenario_table.h"
#include "vm_test_support.h"

namespace lockwatch::vmtest {
namespace {

constexpr int kParallelGuests = 2;
const std::string kHealthy = "healthy";

// Loads the module, runs `names` in turn, prints the kernel log.
std::string reference_script(const std::string &names) {
    return run_scenarios_script(names) + "dmesg\n";
}

class LockdepReference : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        table_ = new std::vector<Scenario>(scenario_table());
        runs_ = new std::map<std::string, GuestRun>;
        std::string kernel = test_kernel_image("lockdep", setup_error_);
        if (kernel.empty()) {
            return;
        }
        std::string module = build_scenario_module(std::string(SCENARIO_MODULE_DIR) + "/lockdep",
                                                   "lockdep", setup_error_);
        if (module.empty()) {
            return;
        }
        boot_all(kernel, module);
    }
    static void boot_all(const std::string &kernel, const std::string &module) {
        std::map<std::string, std::string> boots;  // boot name -> scenarios it runs
        for (const Scenario &s : *table_) {
            std::string &names = boots[s.healthy() ? kHealthy : s.name];
            names += (names.empty() ? "" : " ") + s.name;
        }
        std::vector<std::string> order;
        for (const auto &[name, unused] : boots) {
            order.push_back(name);
            (*runs_)[name];  // every slot exists before the workers start
        }
        std::atomic<size_t> next{0};
        auto worker = [&] {
            for (size_t i; (i = next++) < order.size();) {
                runs_->at(order[i]) =
                    run_in_vm_with_files(kernel, {}, {module + ":/lockwatch/"},
                                         reference_script(boots.at(order[i])), 600, 2);
            }
        };
        auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> workers;
        for (int i = 0; i < kParallelGuests; i++) {
            workers.emplace_back(worker);
        }
        for (auto &w : workers) {
            w.join();
        }
        auto s =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t0);
        std::printf("%zu lockdep boots, %d at a time: %llds\n", order.size(), kParallelGuests,
                    static_cast<long long>(s.count()));
    }
    static void TearDownTestSuite() {
        delete table_;
        delete runs_;
        table_ = nullptr;
        runs_ = nullptr;
    }
    void SetUp() override { ASSERT_EQ(setup_error_, ""); }

    static const GuestRun &boot_of(const Scenario &s) {
        return runs_->at(s.healthy() ? kHealthy : s.name);
    }

    static std::vector<Scenario> *table_;
    static std::map<std::string, GuestRun> *runs_;
    static std::string setup_error_;
};

std::vector<Scenario> *LockdepReference::table_ = nullptr;
std::map<std::string, GuestRun> *LockdepReference::runs_ = nullptr;
std::string LockdepReference::setup_error_;

// The module knows the table's scenarios and the split halves, no more,
// no fewer.
TEST_F(LockdepReference, ModuleRunsTheTablesScenarios) {
    std::string names;
    for (const Scenario &s : *table_) {
        names += (names.empty() ? "" : " ") + s.name;
    }
    names += std::string(" ") + kSplitHalves;
    const GuestRun &run = runs_->at(kHealthy);
    ASSERT_EQ(run.exit_status, 0) << run.output << run.harness_log;
    EXPECT_NE(run.output.find("scenarios: " + names + "\n"), std::string::npos) << run.output;
}

TEST_F(LockdepReference, LockdepSaysWhatTheTableSays) {
    for (const Scenario &s : *table_) {
        const GuestRun &run = boot_of(s);
        ASSERT_EQ(run.exit_status, 0) << s.name << ":\n" << run.output << run.harness_log;
        EXPECT_NE(run.output.find("lockwatch_scenarios: " + s.name + " done"), std::string::npos)
            << s.name << " did not run:\n"
            << run.output;
        Verdict v = first_lockdep_verdict(run.output);
        std::printf("%-28s lockdep: %s%s\n", s.name.c_str(), v.kind.c_str(),
                    v.irq.empty() ? "" : ("/" + v.irq).c_str());
        if (s.healthy()) {
            EXPECT_EQ(v.kind, "none")
                << "a healthy scenario's boot has a report: " << v.header << "\n"
                << run.output;
            continue;
        }
        EXPECT_EQ(v.kind, s.kind) << s.name << ": " << v.header << "\n" << run.output;
        EXPECT_EQ(v.irq, s.irq) << s.name << ": " << v.header << "\n" << run.output;
        EXPECT_NE(run.output.find("(" + s.lock_prefix), std::string::npos)
            << s.name << ": the report names none of its locks\n"
            << run.output;
    }
}

}  // namespace
}  // namespace lockwatch::vmtest
