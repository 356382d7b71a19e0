// tools/soak/soak.sh's short setting: lockwatch attached and detached again
// and again in one guest on Debian's kernel with two vCPUs, under virtio_net
// traffic, ext4 on a loop device, fork/exec, timers and modules unloaded and
// loaded, stopped by SIGINT, SIGTERM and SIGKILL in turn. Every cycle must
// attach and detach, leave nothing in the kernel, never stall, and find
// nothing on this healthy workload.
#include <sys/wait.h>

#include <cstdio>
#include <regex>
#include <string>

#include <gtest/gtest.h>

namespace {

std::string quote(const std::string &s) {
    std::string out = "'";
    for (char c : s) {
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    return out + "'";
}

struct SoakRun {
    int exit_status = -1;
    std::string output;
};

SoakRun run_soak() {
    std::string cmd = quote(SOAK_SCRIPT) + " --short --kmod build --lockwatch " +
                      quote(LOCKWATCH_BINARY) + " --bpftool " + quote(BPFTOOL_BINARY) +
                      " --stress-ng " + quote(STRESS_NG_BINARY) + " --out " + quote(SOAK_OUT_DIR) +
                      " 2>&1";
    SoakRun run;
    FILE *pipe = popen(cmd.c_str(), "r");
    if (!pipe) {
        return run;
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) {
        run.output.append(buf, n);
    }
    int status = pclose(pipe);
    run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

class Soak : public ::testing::Test {
  protected:
    static void SetUpTestSuite() { run_ = new SoakRun(run_soak()); }
    static void TearDownTestSuite() {
        delete run_;
        run_ = nullptr;
    }
    // The script's last line: "soak: N cycles in M min: A attached, ...".
    static std::smatch summary() {
        std::smatch m;
        std::regex_search(
            run_->output, m,
            std::regex(R"(soak: (\d+) cycles in \d+ min: (\d+) attached, (\d+) detached, (\d+) )"
                       R"(leaked, (\d+) hangs, (\d+) findings, (\d+) failed attaches)"));
        return m;
    }
    static SoakRun *run_;
};

SoakRun *Soak::run_ = nullptr;

TEST_F(Soak, RanEveryCycleAndExitedClean) {
    auto m = summary();
    ASSERT_FALSE(m.empty()) << run_->output;
    EXPECT_GE(std::stoi(m[1]), 3) << "at least one cycle per signal";
    // The whole soak's output once, here: the other tests name their line.
    EXPECT_EQ(run_->exit_status, 0) << run_->output;
}

TEST_F(Soak, EveryCycleAttachedAndDetached) {
    auto m = summary();
    ASSERT_FALSE(m.empty()) << "no summary line";
    EXPECT_EQ(m[2].str(), m[1].str()) << m[0];
    EXPECT_EQ(m[3].str(), m[1].str()) << m[0];
    EXPECT_EQ(m[7].str(), "0") << m[0];
    for (const char *sig : {"INT", "TERM", "KILL"}) {
        EXPECT_TRUE(std::regex_search(run_->output,
                                      std::regex(std::string(R"(soak-cycle \d+ sig=)") + sig +
                                                 R"( attach=\S+ programs=[1-9]\d* exit=\d+ )")))
            << sig;
    }
}

TEST_F(Soak, NothingLeftInTheKernel) {
    auto m = summary();
    ASSERT_FALSE(m.empty()) << "no summary line";
    EXPECT_EQ(m[4].str(), "0") << m[0];
    EXPECT_EQ(run_->output.find("left after detach"), std::string::npos);
}

TEST_F(Soak, NoHang) {
    auto m = summary();
    ASSERT_FALSE(m.empty()) << "no summary line";
    EXPECT_EQ(m[5].str(), "0") << m[0];
    EXPECT_EQ(run_->output.find("soak-stall"), std::string::npos);
}

TEST_F(Soak, NoFindingOnTheHealthyWorkload) {
    auto m = summary();
    ASSERT_FALSE(m.empty()) << "no summary line";
    EXPECT_EQ(m[6].str(), "0") << m[0];
    EXPECT_EQ(run_->output.find("WARNING:"), std::string::npos);
}

}  // namespace
