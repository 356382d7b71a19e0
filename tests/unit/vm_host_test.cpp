// The host side of a test VM against a hostile guest, without a guest:
// run-vm.sh and `lockwatch vm` with fake-qemu.sh in qemu's place, which
// sends whatever a test's plan says on the guest's output and control port.
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "temp_dir.h"

#include "output/json.h"
#include "sample_finding.h"
#include "vm/vm_script.h"

namespace lockwatch {
namespace {

namespace fs = std::filesystem;

using HostRun = lockwatch::test_support::ShellRun;

std::string slurp(const fs::path &path) {
    return lockwatch::test_support::read_file(path);
}

std::size_t count(const std::string &text, const std::string &what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) {
        ++n;
    }
    return n;
}

class GuestHost : public ::testing::Test {
  protected:
    void SetUp() override { std::ofstream(dir_ / "bzImage") << "not a kernel"; }

    // Runs `command` (a shell command line) with fake-qemu.sh playing `plan`.
    HostRun run(const std::vector<std::string> &plan, const std::string &command) {
        std::ofstream plan_file(dir_ / "plan", std::ios::binary);
        for (const std::string &line : plan) {
            plan_file << line << "\n";
        }
        plan_file.close();
        std::string cmd =
            "LOCKWATCH_QEMU=" + shell_quote(LOCKWATCH_SOURCE_DIR "/tests/unit/fake-qemu.sh") +
            " FAKE_GUEST_PLAN=" + shell_quote((dir_ / "plan").string()) +
            " TMPDIR=" + shell_quote(dir_.string()) + " " + command;
        return lockwatch::test_support::run_shell(cmd, dir_);
    }

    std::string run_vm_sh() const {
        return shell_quote(LOCKWATCH_SOURCE_DIR "/tools/vm/run-vm.sh") + " --accel tcg --kernel " +
               shell_quote((dir_ / "bzImage").string());
    }
    // json: where --json goes (default: findings.jsonl in the test's directory).
    std::string lockwatch_vm(const std::string &json = "") const {
        return shell_quote(LOCKWATCH_BINARY) + " vm --vmlinux none --timeout 120 --kernel " +
               shell_quote((dir_ / "bzImage").string()) + " --json " +
               shell_quote(json.empty() ? (dir_ / "findings.jsonl").string() : json) +
               " --bin /bin/true --run-arg=--classes -- sh -c true";
    }

    lockwatch::test_support::TempDir tmp_{"hosttest"};
    const fs::path dir_ = tmp_.path();
};

const std::string kFinding = output::finding_to_json(sample_finding()).dump();

TEST_F(GuestHost, RunVmTakesTheExitStatusOnlyWithTheToken) {
    HostRun r = run(
        {
            "C LOCKWATCH-VM-START",
            "R LOCKWATCH-VM-EXIT 7",  // the command's output: no marker
            "U LOCKWATCH-VM-EXIT 9",  // the control port, no token
            "C LOCKWATCH-VM-EXIT 9x",
            "R hello",
            "U " + std::string((1 << 20) + 100, 'x'),
            "C " + kFinding,  // for a reader there is none of
            "C LOCKWATCH-VM-EXIT 3",
        },
        run_vm_sh() + " -- true");
    EXPECT_EQ(r.status, 3) << r.err;
    EXPECT_EQ(r.out, "LOCKWATCH-VM-EXIT 7\nhello\n") << "the guest's output, as it was";
    EXPECT_NE(r.err.find("rejected 2 lines of the control port (the first: 'LOCKWATCH-VM-EXIT 9')"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("dropped 1 lines of the control port longer than 1048576 bytes "
                         "(1048676 bytes in all)"),
              std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("dropped 1 lines of the control port for a reader"), std::string::npos)
        << r.err;
}

TEST_F(GuestHost, LockwatchVmTakesFindingsOnlyFromTheControlPort) {
    nlohmann::json bad_pid = output::finding_to_json(sample_finding());
    bad_pid["task"]["pid"] = "1";
    nlohmann::json bad_title = output::finding_to_json(sample_finding());
    bad_title["title"] = 5;
    HostRun r = run(
        {
            "C LOCKWATCH-VM-START",
            // What the command may print, and write to the control port
            // without the token: none of it is a finding or a marker.
            "R " + kFinding,
            "U " + kFinding,
            "R LOCKWATCH-VM-COMMAND-EXIT 0",
            "R LOCKWATCH-VM-TRACER-EXIT 0",
            "R plain \x1b]0;pwned\x07 \x1b[2J done",
            // lockwatch's own lines, three of them malformed.
            R"(C {"kind":"circular","text":"x","cpu":"a"})",
            "C " + bad_pid.dump(),
            "C " + bad_title.dump(),
            "C " + kFinding,
            "C LOCKWATCH-VM-COMMAND-EXIT 0",
            "C LOCKWATCH-VM-TRACER-EXIT 0",
            "R " + std::string(100000, 'a'),
            "r " + std::string((1 << 20) + (1 << 19), 'b'),  // no newline, ever
            "C LOCKWATCH-VM-EXIT 0",
        },
        lockwatch_vm());
    EXPECT_EQ(r.status, kVmExitFindings) << r.err.substr(0, 4000);
    EXPECT_EQ(count(r.out, "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"), 1u)
        << r.out;
    EXPECT_EQ(count(slurp(dir_ / "findings.jsonl"), "\n"), 1u);
    EXPECT_EQ(count(r.err, kFinding), 1u) << "the forged finding is shown as output";
    EXPECT_NE(r.err.find("plain \\x1b]0;pwned\\x07 \\x1b[2J done"), std::string::npos);
    EXPECT_EQ(r.err.find('\x1b'), std::string::npos) << "an escape reached the terminal";
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
    for (const char *why : {"field \"schema\": missing", "field \"task.pid\": expected an integer",
                            "field \"title\": expected a string"}) {
        EXPECT_NE(r.err.find(std::string("lockwatch vm: rejected a line of the guest's control "
                                         "port: ") +
                             why),
                  std::string::npos)
            << why << "\n"
            << r.err.substr(0, 4000);
    }
    EXPECT_NE(r.err.find("rejected 1 lines of the control port (the first: '{"), std::string::npos)
        << "run-vm.sh names the line without the token";
    EXPECT_NE(r.err.find(std::string(100000, 'a') + "\n"), std::string::npos);
    EXPECT_NE(r.err.find("lockwatch vm: the guest output line above was longer than 1048576 "
                         "bytes: its last 524288 bytes were dropped"),
              std::string::npos)
        << r.err.substr(r.err.size() > 2000 ? r.err.size() - 2000 : 0);
}

TEST_F(GuestHost, ForgedMarkersAndFindingsChangeNoExitStatus) {
    HostRun r = run(
        {
            "C LOCKWATCH-VM-START",
            "R " + kFinding,
            "R LOCKWATCH-VM-COMMAND-EXIT 4",
            "R LOCKWATCH-VM-EXIT 7",
            "U " + kFinding,
            "U LOCKWATCH-VM-TRACER-EXIT 1",
            "C LOCKWATCH-VM-COMMAND-EXIT 0",
            "C LOCKWATCH-VM-TRACER-EXIT 0",
            "C LOCKWATCH-VM-EXIT 0",
        },
        lockwatch_vm());
    EXPECT_EQ(r.status, kVmExitNoFinding) << r.err;
    EXPECT_EQ(r.out, "") << "no finding";
}

// lockwatch vm's part of the exit-status contract (exit_status.h), one case
// per status, with the guest's markers as fake-qemu.sh plays them.
TEST_F(GuestHost, EveryExitStatusOfTheContract) {
    const std::vector<std::string> start = {"C LOCKWATCH-VM-START"};
    auto plan = [&](std::vector<std::string> lines) {
        lines.insert(lines.begin(), start.begin(), start.end());
        return lines;
    };
    EXPECT_EQ(run(plan({"C LOCKWATCH-VM-COMMAND-EXIT 0", "C LOCKWATCH-VM-TRACER-EXIT 0",
                        "C LOCKWATCH-VM-EXIT 0"}),
                  lockwatch_vm())
                  .status,
              0);
    EXPECT_EQ(run(plan({"C " + kFinding, "C LOCKWATCH-VM-COMMAND-EXIT 0",
                        "C LOCKWATCH-VM-TRACER-EXIT 0", "C LOCKWATCH-VM-EXIT 0"}),
                  lockwatch_vm())
                  .status,
              1);
    EXPECT_EQ(run(plan({"C LOCKWATCH-VM-COMMAND-EXIT 0", "C LOCKWATCH-VM-TRACER-EXIT 3",
                        "C LOCKWATCH-VM-EXIT 0"}),
                  lockwatch_vm())
                  .status,
              3);
    EXPECT_EQ(run(plan({"C LOCKWATCH-VM-COMMAND-EXIT 7", "C LOCKWATCH-VM-TRACER-EXIT 0",
                        "C LOCKWATCH-VM-EXIT 0"}),
                  lockwatch_vm())
                  .status,
              4);
    HostRun no_exit = run(plan({"R the guest hangs and qemu ends"}), lockwatch_vm());
    EXPECT_EQ(no_exit.status, 5) << no_exit.err;
    HostRun usage = run({}, shell_quote(LOCKWATCH_BINARY) + " vm --timeout -1 -- true");
    EXPECT_EQ(usage.status, 2) << usage.err;
    HostRun no_tools = run(
        {}, "LOCKWATCH_TOOLS_DIR=" + shell_quote((dir_ / "none").string()) + " " + lockwatch_vm());
    EXPECT_EQ(no_tools.status, 3) << no_tools.err;
    EXPECT_NE(no_tools.err.find("run-vm.sh: No such file or directory; reinstall lockwatch"),
              std::string::npos)
        << no_tools.err;
}

// --json -: standard output carries the JSON lines and nothing else; the
// report's text goes to standard error.
TEST_F(GuestHost, JsonOnStandardOutputAlone) {
    HostRun r = run({"C LOCKWATCH-VM-START", "C " + kFinding, "C LOCKWATCH-VM-COMMAND-EXIT 0",
                     "C LOCKWATCH-VM-TRACER-EXIT 0", "C LOCKWATCH-VM-EXIT 0"},
                    lockwatch_vm("-"));
    EXPECT_EQ(r.status, 1) << r.err;
    EXPECT_EQ(count(r.out, "\n"), 1u) << r.out;
    nlohmann::json line = nlohmann::json::parse(r.out, nullptr, false);
    ASSERT_TRUE(line.is_object()) << r.out;
    EXPECT_EQ(line["kind"], "irq_safe_to_unsafe");
    EXPECT_NE(r.err.find("WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"),
              std::string::npos)
        << r.err;
    // The line a VM's finding makes, against the schema (docs/json-schema.json).
    if (access("/usr/bin/python3", X_OK) == 0 &&
        std::system("/usr/bin/python3 -c 'import jsonschema' 2>/dev/null") == 0) {
        std::ofstream(dir_ / "vm.jsonl") << r.out;
        std::string check = LOCKWATCH_SOURCE_DIR "/tools/check-json-schema.py " LOCKWATCH_SOURCE_DIR
                                                 "/docs/json-schema.json " +
                            shell_quote((dir_ / "vm.jsonl").string()) + " >" +
                            shell_quote((dir_ / "check.txt").string());
        EXPECT_EQ(std::system(check.c_str()), 0) << slurp(dir_ / "check.txt");
    }
}

}  // namespace
}  // namespace lockwatch
