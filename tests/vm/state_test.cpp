// Facts that outlive a run, end to end on Debian's stock kernel: one guest,
// four `lockwatch run --state DIR` in turn, as a restarted daemon would be.
//   1. host-a: split_usage (split_safe used in softirq): no finding;
//   2. host-b: split_order (split_safe -> split_unsafe, which is taken with
//      softirqs on): the finding needs run 1's usage bit, from the state;
//   3. the healthy scenarios, SIGKILLed at a random moment;
//   4. both halves again: the state still loads, nothing is reported twice;
//   5. both halves in a new state with --record-ops: the recorded trace
//      makes the finding from its facts, and again from its operations.
// Runs 1 and 2 also --record: `lockwatch replay a b` merges them as two
// hosts' traces, and each alone makes no finding.
#include <gtest/gtest.h>

#include <regex>

#include "scenario_table.h"
#include "vm_test_support.h"

namespace lockwatch::vmtest {
namespace {

const char *const kGuestScript = R"SH(
insmod /lockwatch/lockwatch_scenarios.ko || echo "insmod failed"
mkdir -p /var/lib; S=/var/lib/lockwatch-state
# lwrun LABEL "SCENARIOS" KILL_MS [OPTIONS]: one run with the state, stopped
# by SIGINT (KILL_MS 0) or SIGKILLed KILL_MS ms after the scenarios began.
lwrun() {
    label=$1; names=$2; kill_ms=$3; shift 3
    rm -f /tmp/ready
    lockwatch run --state $S --json /tmp/f-$label.json --ready-file /tmp/ready "$@" \
        >/tmp/lw-$label.txt 2>&1 &
    lw=$!
    while [ ! -e /tmp/ready ] && kill -0 $lw 2>/dev/null; do sleep 0.2; done
    for s in $names; do
        echo $s > /sys/module/lockwatch_scenarios/parameters/run
        echo "$label: scenario $s: exit $?"
    done &
    if [ "$kill_ms" -gt 0 ]; then
        echo "$label: SIGKILL after $kill_ms ms"
        usleep $((kill_ms * 1000)); kill -KILL $lw
    else
        wait $!; sleep 1.5; kill -INT $lw
    fi
    wait $lw; echo "$label-exit=$?"
    wait
    sed "s/^/$label-lw: /" /tmp/lw-$label.txt
    [ -e /tmp/f-$label.json ] && sed "s/^/$label-json: /" /tmp/f-$label.json
}
hostname host-a; lwrun usage split_usage 0 --record /tmp/a.trace
hostname host-b; lwrun order split_order 0 --record /tmp/b.trace
hostname host-a
lwrun killed "healthy_irqsave healthy_bh healthy_order healthy_nested healthy_rwlock_read" \
    $(( $(od -An -N2 -tu2 /dev/urandom) % 3000 + 200 ))
lwrun again "split_usage split_order" 0
echo "state: $(wc -c < $S/facts.trace) bytes, $(wc -l < $S/facts.trace) lines"
echo "state: $(grep '"t":"stack"' $S/facts.trace | sed 's/.*"id":\([0-9]*\).*/\1/' | sort | uniq -d | wc -l) stack ids written twice"
echo "state: $(grep -c '"t":"class"' $S/facts.trace) classes, $(grep -c '"t":"edge"' $S/facts.trace) edges, $(grep -c '"t":"usage"' $S/facts.trace) usages, $(grep -c '"t":"stack"' $S/facts.trace) stacks"
# Every operation is a record: in focus only the scenarios' own (the module
# parameter's store, and the timer that takes a lock in softirq), or the
# ring buffer overflows and the operations the test needs may be lost.
S=/var/lib/lockwatch-ops
lwrun ops "split_usage split_order" 0 --record /tmp/ops.trace --record-ops \
    --focus param_attr_store,call_timer_fn
echo "ops: $(grep -c '"t":"acquire"' /tmp/ops.trace) acquires, $(grep -c '"t":"release"' /tmp/ops.trace) releases"
lockwatch replay /tmp/ops.trace --format json --json-brief | sed 's/^/ops-facts: /'
lockwatch replay /tmp/ops.trace --from-ops --format json --json-brief | sed 's/^/ops-derived: /'
lockwatch replay /tmp/a.trace /tmp/b.trace --json /tmp/merged.json | sed 's/^/merge: /'
sed 's/^/merge-json: /' /tmp/merged.json
lockwatch replay /tmp/a.trace --format json --json-brief | sed 's/^/only-a: /'
lockwatch replay /tmp/b.trace --format json --json-brief | sed 's/^/only-b: /'
)SH";

struct StateRun {
    std::string setup_error;
    GuestRun guest;
};

class PersistentState : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        run_ = new StateRun;
        std::string module = build_scenario_module(std::string(SCENARIO_MODULE_DIR) + "/state",
                                                   "debian", run_->setup_error);
        if (!module.empty()) {
            run_->guest =
                run_in_vm_with_files("debian", {}, {module + ":/lockwatch/"}, kGuestScript, 900);
        }
    }
    static void TearDownTestSuite() {
        delete run_;
        run_ = nullptr;
    }
    void SetUp() override {
        ASSERT_EQ(run_->setup_error, "");
        ASSERT_EQ(run_->guest.exit_status, 0) << run_->guest.output << run_->guest.harness_log;
    }
    static const std::string &out() { return run_->guest.output; }
    static bool has(const std::string &text) { return out().find(text) != std::string::npos; }
    static bool split_finding(const LiveFinding &f) {
        Scenario split{"split", "split_", "irq_safe_to_unsafe", "softirq"};
        bool safe = false, unsafe = false;
        for (const std::string &lock : f.locks) {
            safe = safe || lock.rfind("split_safe", 0) == 0;
            unsafe = unsafe || lock.rfind("split_unsafe", 0) == 0;
        }
        return f.kind == split.kind && f.irq == split.irq && safe && unsafe;
    }

    static StateRun *run_;
};

StateRun *PersistentState::run_ = nullptr;

TEST_F(PersistentState, AUsageAloneIsNoFinding) {
    EXPECT_TRUE(has("usage-exit=0")) << out();
    EXPECT_TRUE(findings_in(out(), "usage-json: ").empty());
    EXPECT_TRUE(std::regex_search(
        out(),
        std::regex(R"(usage-lw: lockwatch: state \S+: 0 records \(\d+ bytes\) and 0 reported)")))
        << out();
}

// The usage of run 1 and the order of run 2: the finding lockdep would make
// had both happened while one process lived.
TEST_F(PersistentState, AUsageAndAnOrderOfTwoRunsMakeTheFinding) {
    EXPECT_TRUE(has("order-exit=1")) << out();
    std::vector<LiveFinding> found = findings_in(out(), "order-json: ");
    ASSERT_EQ(found.size(), 1u) << out();
    EXPECT_TRUE(split_finding(found[0])) << found[0].title;
}

// A SIGKILL at a random moment leaves a state the next run loads whole
// (a torn last line at most), and nothing is reported again.
TEST_F(PersistentState, AKillAndARestartReportNothingTwice) {
    EXPECT_TRUE(has("killed-exit=137")) << out();
    EXPECT_TRUE(has("again-exit=0")) << out();
    EXPECT_TRUE(findings_in(out(), "again-json: ").empty()) << out();
    EXPECT_TRUE(findings_in(out(), "killed-json: ").empty()) << out();
    EXPECT_TRUE(std::regex_search(
        out(),
        std::regex(
            R"(again-lw: lockwatch: state \S+: [1-9]\d* records \(\d+ bytes\) and 1 reported)")))
        << out();
    EXPECT_TRUE(has("(1 more reported by earlier runs, not repeated)")) << out();
    EXPECT_TRUE(has("state: 0 stack ids written twice")) << out();
    std::smatch cut;
    if (std::regex_search(out(), cut, std::regex(R"(again-lw: lockwatch: state: cut .*)"))) {
        EXPECT_NE(cut.str(0).find("incomplete"), std::string::npos) << cut.str(0);
    }
    // What each run said of its state, and the state's size at the end.
    for (const std::string &line : lines_of(out())) {
        if (line.find("lockwatch: state") != std::string::npos ||
            line.find("-exit=") != std::string::npos || line.rfind("state: ", 0) == 0 ||
            line.find("SIGKILL after") != std::string::npos) {
            std::printf("%s\n", line.c_str());
        }
    }
}

// run --record-ops: the trace holds the lock operations too. Replayed, its
// facts make the live run's finding, and its operations alone, derived by
// the engine, make it again.
TEST_F(PersistentState, RecordedOperationsMakeTheFindingAgain) {
    std::vector<LiveFinding> live = findings_in(out(), "ops-json: ");
    ASSERT_EQ(live.size(), 1u) << out();
    EXPECT_TRUE(split_finding(live[0])) << live[0].title;
    std::vector<LiveFinding> facts = findings_in(out(), "ops-facts: ");
    ASSERT_EQ(facts.size(), 1u) << out();
    EXPECT_EQ(facts[0].signature, live[0].signature);
    std::vector<LiveFinding> derived = findings_in(out(), "ops-derived: ");
    ASSERT_EQ(derived.size(), 1u) << out();
    EXPECT_EQ(derived[0].signature, live[0].signature) << derived[0].title;
    std::smatch ops;
    ASSERT_TRUE(std::regex_search(
        out(), ops, std::regex(R"(ops-lw: lockwatch: recorded \d+ records \((\d+) operations\))")))
        << out();
    EXPECT_GT(std::stoul(ops[1]), 0u);
    for (const std::string &line : lines_of(out())) {
        if (line.rfind("ops: ", 0) == 0 || line.rfind("ops-lw: lockwatch:", 0) == 0 ||
            line.find("losses:") != std::string::npos) {
            std::printf("%s\n", line.c_str());
        }
    }
}

// The two runs' records as two hosts' traces: merged, they make the finding
// neither makes alone, and each fact is traced to its host.
TEST_F(PersistentState, TwoHostsTracesMergeIntoTheFinding) {
    EXPECT_TRUE(findings_in(out(), "only-a: ").empty()) << out();
    EXPECT_TRUE(findings_in(out(), "only-b: ").empty()) << out();
    std::vector<LiveFinding> merged = findings_in(out(), "merge-json: ");
    ASSERT_EQ(merged.size(), 1u) << out();
    EXPECT_TRUE(split_finding(merged[0])) << merged[0].title;
    EXPECT_TRUE(std::regex_search(
        out(),
        std::regex(R"(merge:   split_safe.* USED_IN_SOFTIRQ: from host-a \(/tmp/a.trace\))")))
        << out();
    EXPECT_TRUE(std::regex_search(
        out(),
        std::regex(R"(merge:   split_safe.* -> split_unsafe.*: from host-b \(/tmp/b.trace\))")))
        << out();
}

}  // namespace
}  // namespace lockwatch::vmtest
