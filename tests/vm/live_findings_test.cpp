// Findings out of a real kernel: Debian's stock cloud kernel with the lock
// scenarios of tools/kmod/lockwatch_scenarios.c, loaded while lockwatch runs.
// One boot for every scenario: each insmod makes one bug and unloads.
#include <regex>

#include <gtest/gtest.h>

#include "vm_test_support.h"

namespace lockwatch::vmtest {
namespace {

class LiveFindings : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        std::string error;
        module_ = build_scenario_module(SCENARIO_MODULE_DIR, error);
        if (module_.empty()) {
            build_error_ = new std::string(error);
            return;
        }
        run_ = new GuestRun(run_in_vm_with_files("debian", {}, {module_ + ":/lockwatch/"}, R"SH(
lockwatch run --json /tmp/findings.json --ready-file /tmp/ready &
lw=$!
while [ ! -e /tmp/ready ] && kill -0 $lw 2>/dev/null; do sleep 0.2; done
for scenario in recursion; do
    insmod /lockwatch/lockwatch_scenarios.ko scenario=$scenario 2>/dev/null
    echo "scenario $scenario: insmod exit $?"
done
sleep 1
kill -USR1 $lw
i=0; while [ -e /tmp/ready ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done
[ -e /tmp/ready ] && echo "lockwatch-exit=124" || echo "lockwatch-exit=0"
sed 's/^/json: /' /tmp/findings.json
dmesg | grep lockwatch_scenarios
echo "LOCKWATCH-VM-EXIT 0"
sync; sleep 1; poweroff -f
)SH"));
    }
    static void TearDownTestSuite() {
        delete run_;
        run_ = nullptr;
        delete build_error_;
        build_error_ = nullptr;
    }
    void SetUp() override {
        ASSERT_EQ(build_error_, nullptr) << "cannot build the scenario module: " << *build_error_;
        ASSERT_NE(run_, nullptr);
        ASSERT_EQ(run_->exit_status, 0) << run_->output << run_->harness_log;
        ASSERT_NE(run_->output.find("lockwatch-exit=0"), std::string::npos) << run_->output;
    }

    static std::string module_;
    static std::string *build_error_;
    static GuestRun *run_;
};

std::string LiveFindings::module_;
std::string *LiveFindings::build_error_ = nullptr;
GuestRun *LiveFindings::run_ = nullptr;

// spin_lock(&l) twice by one task: the same instance again while held, which
// the BPF side sends as a recursion record. Before records of that type were
// decoded, nothing reported it.
TEST_F(LiveFindings, SameLockTakenAgainIsRecursiveLocking) {
    EXPECT_NE(run_->output.find("lockwatch_scenarios: recursion done"), std::string::npos)
        << "the scenario did not run: " << run_->output;
    EXPECT_NE(run_->output.find("WARNING: possible recursive locking detected"), std::string::npos)
        << run_->output;
    EXPECT_TRUE(
        std::regex_search(run_->output, std::regex(R"(insmod/\d+ is trying to acquire lock:)")))
        << run_->output;
    EXPECT_TRUE(std::regex_search(run_->output,
                                  std::regex(R"(json: \{.*"kind":"recursive".*"comm":"insmod")")))
        << run_->output;
    EXPECT_TRUE(std::regex_search(run_->output, std::regex(R"(graph: .*; [1-9]\d* findings)")))
        << run_->output;
}

}  // namespace
}  // namespace lockwatch::vmtest
