// The exit-status contract of every command (exit_status.h, `lockwatch
// --help`), each status by the command that gives it, and standard output
// left to the JSON lines when they take it. lockwatch vm's statuses are in
// vm_host_test.cpp (they need a fake guest).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "temp_dir.h"
#include "vm/vm_script.h"

namespace lockwatch {
namespace {

namespace fs = std::filesystem;

using Ran = test_support::ShellRun;

class ExitStatus : public ::testing::Test {
  protected:
    static std::string slurp(const fs::path &p) { return test_support::read_file(p); }
    // `lockwatch ARGS`, run by sh, with `prefix` before it (env, setpriv).
    Ran lockwatch(const std::string &args, const std::string &prefix = "") {
        return test_support::run_shell(
            prefix + shell_quote(LOCKWATCH_BINARY) + " " + args + " </dev/null", dir_);
    }
    // A process with no capability at all, as root or not: setpriv(1)
    // clears the bounding set before lockwatch is executed.
    static std::string without_capabilities() {
        return access("/usr/bin/setpriv", X_OK) == 0
                   ? "/usr/bin/setpriv --bounding-set=-all --inh-caps=-all -- "
                   : "";
    }

    test_support::TempDir tmp_{"exit"};
    const fs::path dir_ = tmp_.path();
    const std::string seed_trace = LOCKWATCH_TRACE_DIR "/seed_000_softirq_safe_to_unsafe.jsonl";
};

TEST_F(ExitStatus, HelpAndVersionAreZero) {
    Ran help = lockwatch("--help");
    EXPECT_EQ(help.status, 0);
    EXPECT_NE(help.out.find("Exit status, for every command: 0 no finding"), std::string::npos)
        << help.out;
    Ran version = lockwatch("--version");
    EXPECT_EQ(version.status, 0);
    EXPECT_EQ(version.out.rfind("lockwatch ", 0), 0u) << version.out;
    EXPECT_EQ(lockwatch("vm --help").status, 0);
}

// CLI11's own codes (105 and up) never leak out: every parse error is 2.
TEST_F(ExitStatus, EveryUsageErrorIsTwo) {
    for (const char *args :
         {"", "--no-such-option", "no-such-command", "run --backend nope", "run --duration -3",
          "replay", "replay --format nope x", "vm", "vm --timeout 0 -- true", "check --what"}) {
        Ran r = lockwatch(args);
        EXPECT_EQ(r.status, 2) << "lockwatch " << args << "\n" << r.err;
        EXPECT_FALSE(r.err.empty()) << "lockwatch " << args << " said nothing";
    }
    EXPECT_EQ(lockwatch("replay /nonexistent/trace.jsonl").status, 2);
    EXPECT_EQ(lockwatch("replay " + seed_trace + " /nonexistent/trace.jsonl").status, 2);
    EXPECT_EQ(lockwatch("replay " + seed_trace + " --json /nonexistent/dir/f.jsonl").status, 2);
}

TEST_F(ExitStatus, ReplayZeroWithoutFindingsOneWithThreeOnABrokenTrace) {
    std::ofstream(dir_ / "empty.jsonl") << R"({"format":"lockwatch-trace","version":2})"
                                        << "\n";
    std::ofstream(dir_ / "broken.jsonl") << R"({"format":"lockwatch-trace","version":2})"
                                         << "\n{\"t\":\"nonsense\"}\n";
    EXPECT_EQ(lockwatch("replay " + (dir_ / "empty.jsonl").string()).status, 0);
    Ran found = lockwatch("replay " + seed_trace);
    EXPECT_EQ(found.status, 1);
    EXPECT_NE(found.out.find("SOFTIRQ-safe -> SOFTIRQ-unsafe"), std::string::npos);
    EXPECT_EQ(lockwatch("replay --exit-code " + seed_trace).status, 1) << "the old flag still runs";
    Ran broken = lockwatch("replay " + (dir_ / "broken.jsonl").string());
    EXPECT_EQ(broken.status, 3) << broken.err;
}

// --json -: every line of standard output is JSON; the text is on stderr.
TEST_F(ExitStatus, ReplayJsonOnStandardOutputAlone) {
    Ran r = lockwatch("replay " + seed_trace + " --json -");
    EXPECT_EQ(r.status, 1);
    std::istringstream lines(r.out);
    std::string line;
    int n = 0;
    while (std::getline(lines, line)) {
        EXPECT_TRUE(nlohmann::json::parse(line, nullptr, false).is_object()) << line;
        ++n;
    }
    EXPECT_EQ(n, 1) << r.out;
    EXPECT_NE(r.err.find("WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"),
              std::string::npos)
        << r.err;
}

// Without CAP_SYS_ADMIN (capget, whatever the uid), run refuses
// before loading anything, names the row that failed and points to
// `lockwatch check` and `lockwatch vm`; check says the same with 3.
TEST_F(ExitStatus, RunAndCheckWithoutCapabilitiesAreThree) {
    if (without_capabilities().empty()) {
        GTEST_SKIP() << "no /usr/bin/setpriv (util-linux) to drop capabilities";
    }
    Ran run = lockwatch("run --duration 1", without_capabilities());
    EXPECT_EQ(run.status, 3) << run.err;
    EXPECT_NE(run.err.find("lockwatch: cannot trace this kernel: "), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("'lockwatch check' lists every requirement"), std::string::npos)
        << run.err;
    EXPECT_NE(run.err.find("lockwatch vm --kernel debian"), std::string::npos) << run.err;
    Ran check = lockwatch("check", without_capabilities());
    EXPECT_EQ(check.status, 3) << check.out;
    EXPECT_NE(check.out.find("FAIL  CAP_SYS_ADMIN"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("FAIL  backend auto"), std::string::npos) << check.out;
}

}  // namespace
}  // namespace lockwatch
