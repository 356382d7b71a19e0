// lockwatch run inside a VM booted from Debian's stock cloud kernel, beside a
// small workload that takes locks in task, softirq and hardirq context;
// LiveCapture through `lockwatch vm`, with a command that forges lockwatch's
// lines at its end.
#include <map>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>

#include "output/json.h"
#include "sample_finding.h"
#include "vm/vm_script.h"
#include "vm_test_support.h"

namespace lockwatch::vmtest {
namespace {

struct FunctionCount {
    std::string kind, op;
    uint64_t calls;
};

// What a hostile guest command does at the end of LiveCapture's run: print
// a finding as lockwatch's JSON and every marker, an escape sequence, and
// write the same to the control port, without the token, through a device
// node of its own; then fail. None of it may become a finding or a marker.
std::string forgeries() {
    std::string finding = shell_quote(output::finding_to_json(sample_finding()).dump());
    return "printf '%s\\n' " + finding + R"SH(
echo 'LOCKWATCH-VM-COMMAND-EXIT 0'
echo 'LOCKWATCH-VM-TRACER-EXIT 0'
echo 'LOCKWATCH-VM-EXIT 0'
printf 'escape \033]0;pwned\007 done\n'
mknod /tmp/control c 4 66 && { printf '%s\n' )SH" +
           finding + R"SH(; echo 'LOCKWATCH-VM-EXIT 0'; } >/tmp/control &&
    echo "forged on the control port"
exit 3
)SH";
}

class LiveCapture : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        // `lockwatch vm` runs lockwatch beside the workload for its whole
        // duration: /proc and /sys walks, pipes and forks. It reports, stays
        // attached, and the guest powers off without detaching (the detach
        // is tested on its own in CleanDetach).
        run_ = new LockwatchVmRun(
            run_lockwatch_vm({"--bin", BPFTOOL_BINARY, "--linger", "0", "--run-arg=--rates",
                              "--run-arg=--classes", "--run-arg=--profile-phases"},
                             R"SH(
( end=$(( $(date +%s) + 4 ))
  while [ "$(date +%s)" -lt "$end" ]; do
    cat /proc/[0-9]*/stat >/dev/null 2>&1
    ls -R /sys/kernel/debug >/dev/null 2>&1
    echo hello | cat | wc -c >/dev/null
  done )
)SH" + forgeries()));
    }
    static void TearDownTestSuite() {
        delete run_;
        run_ = nullptr;
    }

    static std::map<std::string, FunctionCount> summary() {
        std::map<std::string, FunctionCount> rows;
        std::regex row(
            R"(^\s+(_raw_\w+)\s+(spin|read|write)\s+(acquire|trylock|release)\s+(\d+)\s+\d+$)");
        for (const auto &line : lines_of(run_->output)) {
            std::smatch m;
            if (std::regex_match(line, m, row)) {
                rows[m[1]] = {m[2], m[3], std::stoull(m[4])};
            }
        }
        return rows;
    }

    static LockwatchVmRun *run_;
};

LockwatchVmRun *LiveCapture::run_ = nullptr;

TEST_F(LiveCapture, ReportsAndExitsWithTheCommandsFailure) {
    // 4: lockwatch exited 0, no finding, the command failed (it exits 3
    // after its forged success markers).
    ASSERT_EQ(run_->exit_status, kVmExitCommandFailed) << run_->output << run_->findings;
    EXPECT_TRUE(std::regex_search(run_->output, std::regex(R"(report done, staying attached)")))
        << run_->output;
}

TEST_F(LiveCapture, ForgedFindingsAndMarkersAreOnlyOutput) {
    EXPECT_EQ(run_->findings, "") << "a forged finding was taken";
    std::string finding = output::finding_to_json(sample_finding()).dump();
    EXPECT_NE(run_->output.find(finding + "\n"), std::string::npos) << run_->output;
    for (const char *marker : {"\nLOCKWATCH-VM-COMMAND-EXIT 0\n", "\nLOCKWATCH-VM-TRACER-EXIT 0\n",
                               "\nLOCKWATCH-VM-EXIT 0\n"}) {
        EXPECT_NE(run_->output.find(marker), std::string::npos) << marker << run_->output;
    }
    ASSERT_NE(run_->output.find("forged on the control port"), std::string::npos) << run_->output;
    EXPECT_NE(run_->output.find("rejected 2 lines of the control port (the first: '{"),
              std::string::npos)
        << run_->output;
    EXPECT_NE(run_->output.find("escape \\x1b]0;pwned\\x07 done\n"), std::string::npos)
        << run_->output;
    EXPECT_EQ(run_->output.find('\x1b'), std::string::npos) << "an escape reached the terminal";
}

// Detaching: lockwatch run ends, and no program of it is left in the kernel.
TEST(CleanDetach, NoProgramLeftBehind) {
    // The count while attached proves that the pattern sees lockwatch's
    // programs at all; the count after SIGINT must be zero.
    GuestRun run = run_in_vm("debian", {BPFTOOL_BINARY}, R"SH(
count() { bpftool prog show | grep -c ' name \(fentry\|fexit\|kprobe\|kretprobe\|lockdep\|focus\|kmalloc\)_'; }
lockwatch run --ready-file /tmp/ready &
lw=$!
while [ ! -e /tmp/ready ] && kill -0 $lw 2>/dev/null; do sleep 0.2; done
echo "attached-programs=$(count)"
kill -INT $lw
wait $lw
echo "lockwatch-exit=$?"
echo "leftover-programs=$(count)"
)SH");
    ASSERT_EQ(run.exit_status, 0) << run.output << run.harness_log;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(run.output, m, std::regex(R"(attached-programs=(\d+))")))
        << run.output;
    EXPECT_GE(std::stoi(m[1]), 20) << run.output;
    EXPECT_NE(run.output.find("lockwatch-exit=0"), std::string::npos) << run.output;
    EXPECT_NE(run.output.find("leftover-programs=0"), std::string::npos) << run.output;
    EXPECT_TRUE(std::regex_search(run.output, std::regex(R"(detached \d+ programs)")))
        << run.output;
}

TEST_F(LiveCapture, SeesAcquiresAndReleasesOfAtLeastFiveFunctions) {
    auto rows = summary();
    ASSERT_FALSE(rows.empty()) << run_->output;
    int active = 0, acquires = 0, releases = 0;
    for (const auto &[name, row] : rows) {
        if (row.calls == 0) {
            continue;
        }
        ++active;
        acquires += row.op != "release";
        releases += row.op == "release";
    }
    EXPECT_GE(active, 5) << run_->output;
    EXPECT_GE(acquires, 3) << run_->output;
    EXPECT_GE(releases, 3) << run_->output;
    EXPECT_GT(rows["_raw_spin_lock"].calls, 0u) << run_->output;
    EXPECT_GT(rows["_raw_spin_unlock"].calls, 0u) << run_->output;
}

TEST_F(LiveCapture, ReportsCoverageOfTheStockKernel) {
    // Debian's kernel has all plain/bh/irq/irqsave variants out of line and
    // no lockdep, so the _nested ones are missing.
    EXPECT_TRUE(
        std::regex_search(run_->output, std::regex(R"(lock functions: \d+ covered, \d+ missing)")))
        << run_->output;
    EXPECT_NE(run_->output.find("_raw_spin_lock_nested (inlined or not built"), std::string::npos)
        << run_->output;
    EXPECT_EQ(summary().count("_raw_spin_lock_irqsave"), 1u) << run_->output;
}

TEST_F(LiveCapture, SaysWhatTheKernelsRecursionMissesLeaveOut) {
    // Debian's 6.1 skips a kprobe program nested in another BPF program
    // without counting it (from 6.7 it counts), and `auto` attaches kprobes
    // to the plain locks: the summary must not pass the count off as whole.
    EXPECT_TRUE(std::regex_search(
        run_->output, std::regex(R"(kernel recursion misses \d+ \(this kernel does not count its )"
                                 R"(skips of kprobe programs\))")))
        << run_->output;
}

TEST_F(LiveCapture, NamesTheFirstCallerWithoutAddresses) {
    std::regex first(
        R"(first _raw_spin_lock: cpu \d+ pid \d+ \(.*\) in (task|softirq|hardirq|nmi) context, called from (\S+)\+0x[0-9a-f]+/0x[0-9a-f]+)");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(run_->output, m, first)) << run_->output;
    EXPECT_FALSE(std::regex_search(run_->output, std::regex("ffffffff[0-9a-f]{8}")))
        << "raw kernel addresses leaked: " << run_->output;
}

TEST_F(LiveCapture, HealthyKernelGivesNoFinding) {
    // Debian's kernel has no known lock bug on these paths: any finding here
    // is a false positive.
    EXPECT_TRUE(std::regex_search(
        run_->output, std::regex(R"(graph: \d+ classes, \d+ usage bits, \d+ edges; 0 findings)")))
        << run_->output;
    EXPECT_EQ(run_->findings.find("WARNING:"), std::string::npos) << run_->findings;
    EXPECT_NE(run_->output.find("ring buffer full 0"), std::string::npos) << run_->output;
}

TEST_F(LiveCapture, NamesWellKnownLocksFromBtf) {
    // Per-CPU data, a slab object and kernel data, each named the way
    // lockdep would.
    for (const char *name : {"runqueues.__lock", "hrtimer_bases.lock", "inode.i_lock"}) {
        EXPECT_TRUE(std::regex_search(
            run_->output, std::regex(std::string(R"(\n  )") + name + R"( +[.+?-]{4}\n)")))
            << name << "\n"
            << run_->output;
    }
}

TEST_F(LiveCapture, PrintsRatesEverySecond) {
    std::regex interval(R"(\[\s*\d+\.\ds\] \d+ lock ops/s: _raw_)");
    int ticks = 0;
    for (const auto &line : lines_of(run_->output)) {
        ticks += std::regex_search(line, interval);
    }
    EXPECT_GE(ticks, 2) << run_->output;
}

TEST_F(LiveCapture, ProfilesEachStepOfTheLockOperations) {
    // --profile-phases: every tracked acquire outside NMI passes each of its
    // steps once, so the steps' counts agree (up to the operations that ran
    // while the summary read them one by one, still attached), and each step
    // costs something.
    std::regex row(R"(^    (.+?)\s+(\d+) times\s+(\d+) ns\s+(\d+) ns in all$)");
    std::map<std::string, std::pair<uint64_t, uint64_t>> steps;  // name -> (times, ns)
    for (const auto &line : lines_of(run_->output)) {
        std::smatch m;
        if (std::regex_match(line, m, row)) {
            steps[m[1]] = {std::stoull(m[2]), std::stoull(m[3])};
        }
    }
    ASSERT_NE(run_->output.find("cost per phase (--profile-phases"), std::string::npos)
        << run_->output;
    uint64_t acquires = steps["call site"].first;
    EXPECT_GT(acquires, 100u) << run_->output;
    // The class step is one of two: kept for the address, or read from it.
    const char *kept = "irq state, class kept for the address";
    const char *read = "irq state, class read from the address";
    steps["class, either way"] = {steps[kept].first + steps[read].first, 0};
    for (const char *step :
         {"class, either way", "class and usage bits", "dependencies", "push held"}) {
        EXPECT_NEAR(static_cast<double>(steps[step].first), static_cast<double>(acquires),
                    10 + acquires / 100.0)
            << step << "\n"
            << run_->output;
    }
    EXPECT_GT(steps[kept].first, 0u) << run_->output;
    EXPECT_GT(steps[read].second, 0u) << run_->output;
    EXPECT_GT(steps["release"].first, 100u) << run_->output;
    EXPECT_GT(steps["stamp (taken off the others)"].second, 0u) << run_->output;
}

}  // namespace
}  // namespace lockwatch::vmtest
