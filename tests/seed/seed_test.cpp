// The seed bug end to end (label seed): `lockwatch vm` on the seed-bug
// kernel (no lockdep) must give the seeds' verdicts live, lockdep itself must
// give the same verdicts on the reference kernel, Debian's kernel (bug
// absent) must give none, and a finding must reach the host's journald.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "journald_fixture.h"

namespace lockwatch::seedtest {
namespace {

struct VmRun {
    int exit_status = -1;
    std::string output;   // the findings' text (stdout)
    std::string guest;    // the guest's own output (stderr)
    std::string console;  // the guest kernel's log
    std::vector<nlohmann::json> findings;
};

std::string slurp(const std::string &path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// One VM run per (kernel, order), shared by every test that looks at it.
const VmRun &run(const std::string &kernel, const std::string &order, bool journal = false,
                 const std::string &focus = "") {
    static std::map<std::string, VmRun> runs;
    std::string key = kernel + "/" + order + "/" + focus;
    if (auto it = runs.find(key); it != runs.end()) {
        return it->second;
    }
    std::string base =
        "/tmp/lockwatch-seedtest-" + std::to_string(getpid()) + "-" + kernel + "-" + order;
    std::string cmd = std::string(LOCKWATCH_BINARY) + " vm --timeout 300 --kernel " + kernel +
                      " --json " + base + ".jsonl --console " + base + ".console" +
                      (journal ? " --journal" : "") + (focus.empty() ? "" : " --focus " + focus) +
                      " -- seed-repro " + order + " >" + base + ".out 2>" + base + ".err";
    VmRun r;
    int status = std::system(cmd.c_str());
    r.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.output = slurp(base + ".out");
    r.guest = slurp(base + ".err");
    r.console = slurp(base + ".console");
    std::istringstream lines(slurp(base + ".jsonl"));
    std::string line;
    while (std::getline(lines, line)) {
        if (!line.empty()) {
            r.findings.push_back(nlohmann::json::parse(line, nullptr, false));
        }
    }
    for (const char *ext : {".out", ".err", ".console", ".jsonl"}) {
        unlink((base + ext).c_str());
    }
    return runs.emplace(key, std::move(r)).first->second;
}

std::string diagnostics(const VmRun &r) {
    std::string console_tail =
        r.console.size() > 3000 ? r.console.substr(r.console.size() - 3000) : r.console;
    return "exit " + std::to_string(r.exit_status) + "\n--- findings\n" + r.output +
           "\n--- guest\n" + r.guest + "\n--- guest kernel log (tail)\n" + console_tail;
}

std::vector<std::string> lock_names(const nlohmann::json &finding) {
    std::vector<std::string> names;
    for (const auto &l : finding["locks"]) {
        names.push_back(l["name"]);
    }
    return names;
}

const nlohmann::json *finding_of_kind(const VmRun &r, const std::string &kind) {
    for (const auto &f : r.findings) {
        if (f.value("kind", "") == kind) {
            return &f;
        }
    }
    return nullptr;
}

// lockdep names these classes by their init site; lockwatch by struct and
// member. The pairs for the seed's two locks:
const std::map<std::string, std::string> kLockdepName = {
    {"kioctx.ctx_lock", "&ctx->ctx_lock"},
    {"pid.wait_pidfd.lock", "&pid->wait_pidfd"},
};

const std::map<std::string, std::string> kLockdepWarning = {
    {"irq_safe_to_unsafe", "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"},
    {"irq_inversion", "WARNING: possible irq lock inversion dependency detected"},
};

// ---- the seed-bug kernel, no lockdep: lockwatch alone -------------------

class SeedKernel : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        journald_ = new testsupport::ScopedJournald;
        journald_error_ = journald_->start();
        run("seed", "edge-last", /*journal=*/!journald_error_);
    }
    static void TearDownTestSuite() {
        delete journald_;
        journald_ = nullptr;
    }
    static testsupport::ScopedJournald *journald_;
    static std::optional<std::string> journald_error_;
};
testsupport::ScopedJournald *SeedKernel::journald_ = nullptr;
std::optional<std::string> SeedKernel::journald_error_;

TEST_F(SeedKernel, EdgeLastIsSoftirqSafeToUnsafe) {
    const VmRun &r = run("seed", "edge-last");
    ASSERT_EQ(r.exit_status, 1) << "exit 1 means findings\n" << diagnostics(r);
    const nlohmann::json *f = finding_of_kind(r, "irq_safe_to_unsafe");
    ASSERT_NE(f, nullptr) << diagnostics(r);
    EXPECT_EQ((*f)["irq"], "softirq");
    EXPECT_EQ((*f)["title"], "possible deadlock in io_submit_one");
    EXPECT_EQ(lock_names(*f), (std::vector<std::string>{"kioctx.ctx_lock", "pid.wait_pidfd.lock"}));
    EXPECT_EQ((*f)["safe_lock"], "kioctx.ctx_lock");
    EXPECT_EQ((*f)["unsafe_lock"], "pid.wait_pidfd.lock");
    EXPECT_EQ((*f)["locks"][0]["usage"], "..-.");
    EXPECT_EQ((*f)["locks"][1]["usage"], "+.+.");
    EXPECT_EQ((*f)["vm_kernel"], "seed");
    EXPECT_NE(r.output.find("WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"),
              std::string::npos)
        << diagnostics(r);
}

TEST_F(SeedKernel, EdgeLastReportHasTheStacksOfBothUsagesAndTheEdge) {
    const VmRun &r = run("seed", "edge-last");
    const nlohmann::json *f = finding_of_kind(r, "irq_safe_to_unsafe");
    ASSERT_NE(f, nullptr) << diagnostics(r);
    std::string text = (*f)["text"];
    // ctx_lock became SOFTIRQ-safe in the RCU softirq, wait_pidfd.lock
    // SOFTIRQ-unsafe with softirqs on, and the edge came from aio's poll.
    // A frame, then the functions inlined into the next one (file:line
    // comes from the seed kernel's vmlinux).
    const std::string next = R"([^\n]*\n(?:\s+\S+ \S+:\d+ \[inline\]\n)*\s+)";
    std::regex safe(R"(IN-SOFTIRQ-W at:\n\s+_raw_spin_lock_irq\+0x[0-9a-f]+/0x[0-9a-f]+)" + next +
                    R"(free_ioctx_users\+)");
    std::regex unsafe(R"(SOFTIRQ-ON-W at:\n\s+_raw_spin_lock\+0x[0-9a-f]+/0x[0-9a-f]+)" + next +
                      R"(\w+)");
    std::regex edge(R"(\.\.\. acquired at:\n\s+_raw_spin_lock\+0x[0-9a-f]+/0x[0-9a-f]+)" + next +
                    R"(io_submit_one\+)");
    EXPECT_TRUE(std::regex_search(text, safe)) << text;
    EXPECT_TRUE(std::regex_search(text, unsafe)) << text;
    EXPECT_TRUE(std::regex_search(text, edge)) << text;
    EXPECT_FALSE(std::regex_search(text, std::regex("ffff[0-9a-f]{12}")))
        << "a raw kernel address leaked into the report\n"
        << text;
}

TEST_F(SeedKernel, EdgeLastReportNamesSourceLinesFromTheVmlinux) {
    const VmRun &r = run("seed", "edge-last");
    const nlohmann::json *f = finding_of_kind(r, "irq_safe_to_unsafe");
    ASSERT_NE(f, nullptr) << diagnostics(r);
    std::string text = (*f)["text"];
    // The edge: spin_lock() inlined into aio's poll path, inlined into
    // io_submit_one, as syzbot prints it.
    EXPECT_TRUE(std::regex_search(
        text, std::regex(R"(at: spin_lock include/linux/spinlock\.h:\d+ \[inline\]\n)")))
        << text;
    EXPECT_TRUE(std::regex_search(text, std::regex(R"(at: aio_poll fs/aio\.c:\d+ \[inline\]\n)")))
        << text;
    EXPECT_TRUE(std::regex_search(
        text, std::regex(R"(at: io_submit_one\+0x[0-9a-f]+/0x[0-9a-f]+ fs/aio\.c:\d+\n)")))
        << text;
    EXPECT_FALSE(std::regex_search(text, std::regex(R"( /\w+/[^\n]*\.[ch]:\d+)")))
        << "a build machine's path leaked into the report\n"
        << text;
    // The JSON frames carry the same places.
    bool placed = false;
    for (const auto &fr : (*f)["stacks"]["backtrace"]) {
        placed |= fr.value("file", "") == "fs/aio.c" && fr.value("line", 0) > 0;
    }
    EXPECT_TRUE(placed) << (*f)["stacks"].dump(1);
}

// lockdep's "already holding" names where the held lock was taken; so must
// lockwatch, from the lock call's return address (fentry for spin_lock_irq).
TEST_F(SeedKernel, EdgeLastReportSaysWhereTheHeldLockWasTaken) {
    const VmRun &r = run("seed", "edge-last");
    const nlohmann::json *f = finding_of_kind(r, "irq_safe_to_unsafe");
    ASSERT_NE(f, nullptr) << diagnostics(r);
    std::string text = (*f)["text"];
    EXPECT_TRUE(std::regex_search(
        text,
        std::regex(
            R"(already holding:\n(?: \(kioctx\.ctx_lock\)\{\.\.-\.\}, at: [^\n]+\n)*)"
            R"( \(kioctx\.ctx_lock\)\{\.\.-\.\}, at: io_submit_one\+0x[0-9a-f]+/0x[0-9a-f]+)")))
        << text;
}

TEST_F(SeedKernel, UsageLastIsIrqInversion) {
    const VmRun &r = run("seed", "usage-last");
    ASSERT_EQ(r.exit_status, 1) << diagnostics(r);
    const nlohmann::json *f = finding_of_kind(r, "irq_inversion");
    ASSERT_NE(f, nullptr) << diagnostics(r);
    EXPECT_EQ((*f)["irq"], "softirq");
    EXPECT_EQ((*f)["title"], "possible deadlock in free_ioctx_users");
    EXPECT_EQ(lock_names(*f), (std::vector<std::string>{"kioctx.ctx_lock", "pid.wait_pidfd.lock"}));
    EXPECT_NE(r.output.find("WARNING: possible irq lock inversion dependency detected"),
              std::string::npos)
        << diagnostics(r);
}

TEST_F(SeedKernel, FindingReachesTheHostJournal) {
    if (journald_error_) {
        GTEST_SKIP() << "no journald: " << *journald_error_;
    }
    const VmRun &r = run("seed", "edge-last");
    const nlohmann::json *f = finding_of_kind(r, "irq_safe_to_unsafe");
    ASSERT_NE(f, nullptr) << diagnostics(r);
    auto entries = testsupport::ScopedJournald::entries(
        "LOCKWATCH_VM_KERNEL=seed LOCKWATCH_SIGNATURE=" + (*f)["signature"].get<std::string>());
    ASSERT_FALSE(entries.empty()) << "the finding did not reach journald";
    const nlohmann::json &e = entries.back();
    EXPECT_EQ(e["LOCKWATCH_KIND"], "irq_safe_to_unsafe");
    EXPECT_EQ(e["LOCKWATCH_IRQ"], "softirq");
    EXPECT_EQ(e["LOCKWATCH_TITLE"], "possible deadlock in io_submit_one");
    EXPECT_EQ(e["LOCKWATCH_LOCKS"], "kioctx.ctx_lock{..-.},pid.wait_pidfd.lock{+.+.}");
    EXPECT_EQ(e["PRIORITY"], "4");
    // One line for journalctl's views and log shippers; the report in full
    // beside it.
    EXPECT_EQ(e["MESSAGE"],
              "possible deadlock in io_submit_one: SOFTIRQ-safe -> SOFTIRQ-unsafe "
              "(kioctx.ctx_lock -> pid.wait_pidfd.lock)");
    EXPECT_EQ(e["LOCKWATCH_REPORT"], (*f)["text"]);
    EXPECT_TRUE(std::regex_match(e.value("MESSAGE_ID", ""), std::regex("[0-9a-f]{32}")))
        << e.dump();
}

TEST_F(SeedKernel, FocusOnTheSuspectsStillCatchesIt) {
    // Only acquires inside the aio and proc functions under suspicion (and
    // the exit path that also marks wait_pidfd.lock) are tracked.
    const VmRun &r = run("seed", "edge-last", false,
                         "io_submit_one,proc_pid_lookup,free_ioctx_users,release_task");
    ASSERT_EQ(r.exit_status, 1) << diagnostics(r);
    const nlohmann::json *f = finding_of_kind(r, "irq_safe_to_unsafe");
    ASSERT_NE(f, nullptr) << diagnostics(r);
    EXPECT_EQ(lock_names(*f), (std::vector<std::string>{"kioctx.ctx_lock", "pid.wait_pidfd.lock"}));
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.guest, m, std::regex(R"(graph: (\d+) classes)"))) << r.guest;
    EXPECT_LT(std::stoi(m[1]), 40) << "focus must track far fewer classes than a full run";
}

// ---- the reference kernel: lockdep's own verdict ------------------------

class LockdepKernel : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(LockdepKernel, LockdepAgreesWithLockwatch) {
    const auto &[order, kind] = GetParam();
    const VmRun &reference = run("lockdep", order);
    const VmRun &ours = run("seed", order);
    ASSERT_EQ(reference.exit_status == 5, false) << diagnostics(reference);
    const std::string &warning = kLockdepWarning.at(kind);
    size_t at = reference.console.find(warning);
    ASSERT_NE(at, std::string::npos) << "lockdep did not report it\n" << reference.console;
    std::string report = reference.console.substr(at, 4000);
    const nlohmann::json *f = finding_of_kind(ours, kind);
    ASSERT_NE(f, nullptr) << "lockwatch's finding of the same kind\n" << diagnostics(ours);
    for (const auto &name : lock_names(*f)) {
        EXPECT_NE(report.find("(" + kLockdepName.at(name) + ")"), std::string::npos)
            << name << " as lockdep names it\n"
            << report;
    }
}

// On the lockdep kernel lockwatch itself uses lockdep's tracepoints (auto
// picks them): its finding must name the locks exactly as lockdep does.
TEST_P(LockdepKernel, LockdepBackendNamesTheLocksAsLockdepDoes) {
    const auto &[order, kind] = GetParam();
    const VmRun &r = run("lockdep", order);
    EXPECT_NE(r.guest.find("backend lockdep (auto)"), std::string::npos) << diagnostics(r);
    const nlohmann::json *f = finding_of_kind(r, kind);
    ASSERT_NE(f, nullptr) << "lockwatch's own finding on the lockdep kernel\n" << diagnostics(r);
    std::vector<std::string> names = lock_names(*f);
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"&ctx->ctx_lock", "&pid->wait_pidfd"}))
        << (*f)["text"].get<std::string>();
    std::smatch m;
    ASSERT_TRUE(std::regex_search(
        r.guest, m,
        std::regex(R"(class agreement, [^:]*: (\d+) lockdep classes compared, (\d+) one-to-one)")))
        << diagnostics(r);
    EXPECT_GT(std::stoi(m[1]), 10) << "the run must have compared many classes";
    EXPECT_GT(std::stoi(m[2]), 0);
    // Where the held lock was taken: the same symbol+offset lockdep prints.
    if (kind != "irq_safe_to_unsafe") {
        return;  // lockdep's inversion report has no "already holding"
    }
    std::smatch at;
    ASSERT_TRUE(
        std::regex_search(r.console, at,
                          std::regex(R"(already holding:\r?\n[^\n]*\(&ctx->ctx_lock\)[^\n]*, at: )"
                                     R"(([\w.]+\+0x[0-9a-f]+/0x[0-9a-f]+))")))
        << "lockdep's report has no at: for the held lock\n"
        << r.console;
    std::string text = (*f)["text"];
    EXPECT_NE(text.find("(&ctx->ctx_lock){..-.}, at: " + at[1].str()), std::string::npos)
        << "lockdep: at: " << at[1] << "\n"
        << text;
}

// lockdep itself watches the same run: under a mixed load on its kernel,
// where lockdep finds nothing, lockwatch's lockdep backend must not either,
// and must lose no release (a lost release is how false findings are made).
TEST(LockdepKernelUnderStress, LockdepBackendAgreesWithLockdep) {
    std::string base = "/tmp/lockwatch-seedtest-" + std::to_string(getpid()) + "-stress";
    std::string cmd = std::string(LOCKWATCH_BINARY) +
                      " vm --timeout 600 --kernel lockdep --bin " STRESS_NG_BINARY " --console " +
                      base +
                      ".console -- stress-ng --sock 1 --timer 1 "
                      "--fork 1 --pipe 1 --aio 1 --procfs 1 --timeout 20s >" +
                      base + ".out 2>" + base + ".err";
    int status = std::system(cmd.c_str());
    VmRun r;
    r.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.output = slurp(base + ".out");
    r.guest = slurp(base + ".err");
    r.console = slurp(base + ".console");
    for (const char *ext : {".out", ".err", ".console"}) {
        unlink((base + ext).c_str());
    }
    ASSERT_NE(r.guest.find("backend lockdep (auto)"), std::string::npos) << diagnostics(r);
    EXPECT_EQ(r.console.find("WARNING:"), std::string::npos)
        << "lockdep itself reported something: the premise is gone\n"
        << diagnostics(r);
    EXPECT_EQ(r.exit_status, 0) << "0: no finding\n" << diagnostics(r);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.guest, m, std::regex(R"(unmatched releases (\d+))")))
        << diagnostics(r);
    EXPECT_LT(std::stoi(m[1]), 1000) << diagnostics(r);
}

INSTANTIATE_TEST_SUITE_P(
    BothOrders, LockdepKernel,
    ::testing::Values(std::make_pair(std::string("edge-last"), std::string("irq_safe_to_unsafe")),
                      std::make_pair(std::string("usage-last"), std::string("irq_inversion"))),
    [](const auto &info) { return info.param.first == "edge-last" ? "EdgeLast" : "UsageLast"; });

// ---- Debian's kernel: the bug is absent --------------------------------

class DebianKernel : public ::testing::TestWithParam<std::string> {};

TEST_P(DebianKernel, NoFinding) {
    const VmRun &r = run("debian", GetParam());
    EXPECT_EQ(r.exit_status, 0) << diagnostics(r);
    EXPECT_TRUE(r.findings.empty()) << diagnostics(r);
    EXPECT_NE(r.guest.find("seed-repro " + GetParam() + ": done"), std::string::npos)
        << "the reproducer must have run through\n"
        << diagnostics(r);
}

INSTANTIATE_TEST_SUITE_P(BothOrders, DebianKernel, ::testing::Values("edge-last", "usage-last"),
                         [](const auto &info) {
                             return info.param == "edge-last" ? "EdgeLast" : "UsageLast";
                         });

}  // namespace
}  // namespace lockwatch::seedtest
