// The journald sink against a real systemd-journald that the test starts
// (and stops), read back with journalctl. Skipped, with the reason, where no
// journald can run (not root, no binary, it does not come up).
#include <signal.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine_test_util.h"
#include "engine/sinks.h"

namespace lockwatch::engine::testing {
namespace {

constexpr const char *kSocket = "/run/systemd/journal/socket";

bool journal_socket_answers() {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", kSocket);
    bool ok = connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0;
    close(fd);
    return ok;
}

std::string run_capture(const std::string &cmd) {
    std::string out;
    if (FILE *p = popen(cmd.c_str(), "r")) {
        char buf[4096];
        std::size_t n;
        while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
            out.append(buf, n);
        }
        pclose(p);
    }
    return out;
}

class Journald : public ::testing::Test {
  protected:
    void SetUp() override {
        if (journal_socket_answers()) {
            return;  // a journald already runs here: use it, leave it alone
        }
        if (geteuid() != 0) {
            GTEST_SKIP() << "journald test needs root to start systemd-journald";
        }
        const char *bin = "/lib/systemd/systemd-journald";
        if (access(bin, X_OK) != 0) {
            GTEST_SKIP() << "no " << bin << " to start";
        }
        if (access("/usr/bin/journalctl", X_OK) != 0 && access("/bin/journalctl", X_OK) != 0) {
            GTEST_SKIP() << "no journalctl to read the journal back";
        }
        mkdir("/run/systemd", 0755);
        mkdir("/run/systemd/journal", 0755);
        pid_ = fork();
        if (pid_ == 0) {
            int null = open("/dev/null", O_RDWR);
            dup2(null, 1);
            dup2(null, 2);
            execl(bin, bin, static_cast<char *>(nullptr));
            _exit(127);
        }
        ASSERT_GT(pid_, 0);
        for (int i = 0; i < 100 && !journal_socket_answers(); ++i) {
            int status;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                GTEST_SKIP() << "systemd-journald exited at start (status " << status << ")";
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (!journal_socket_answers()) {
            GTEST_SKIP() << "systemd-journald did not open " << kSocket << " within 5 s";
        }
    }
    void TearDown() override {
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            int status;
            waitpid(pid_, &status, 0);
        }
    }
    pid_t pid_ = -1;
};

TEST_F(Journald, OneEntryPerFindingWithStructuredFields) {
    Sim s;
    ClassId a = s.cls("kioctx.ctx_lock"), b = s.cls("pid.wait_pidfd.lock");
    StackId st = s.stack({"_raw_spin_lock+0x2a/0x40", "io_submit_one+0x97f/0x2b00"});
    s.once(a, 1, af::kIrqsOff, Context::Softirq);
    s.once(b, 2);
    s.acq(a, 1, af::kIrqsOff, Context::Task, 0, true, true, st);
    s.acq(b, 2, 0, Context::Task, 0, true, true, st);
    ASSERT_EQ(s.eng.findings().size(), 1u);
    const Finding &f = s.eng.findings()[0];

    std::random_device rd;
    std::string run = std::to_string(rd()) + std::to_string(getpid());
    JournaldSink sink({"LOCKWATCH_TEST_RUN=" + run});
    ASSERT_TRUE(sink.write(f)) << sink.last_error();

    nlohmann::json entry;
    int entries = 0;
    for (int i = 0; i < 100 && entries == 0; ++i) {
        std::string out = run_capture("journalctl -o json --no-pager LOCKWATCH_TEST_RUN=" + run +
                                      " LOCKWATCH_KIND=irq_safe_to_unsafe 2>/dev/null");
        std::size_t pos = 0;
        while ((pos = out.find('\n')) != std::string::npos) {
            std::string line = out.substr(0, pos);
            out.erase(0, pos + 1);
            if (line.empty() || line[0] != '{') {
                continue;
            }
            entry = nlohmann::json::parse(line);
            ++entries;
        }
        if (!entries) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    ASSERT_EQ(entries, 1) << "the entry did not show up in journalctl";
    EXPECT_EQ(entry["MESSAGE"], f.text);
    EXPECT_EQ(entry["PRIORITY"], "4");
    EXPECT_EQ(entry["LOCKWATCH_KIND"], "irq_safe_to_unsafe");
    EXPECT_EQ(entry["LOCKWATCH_IRQ"], "softirq");
    EXPECT_EQ(entry["LOCKWATCH_TITLE"], "possible deadlock in io_submit_one");
    EXPECT_EQ(entry["LOCKWATCH_SIGNATURE"], f.signature);
    EXPECT_EQ(entry["LOCKWATCH_LOCKS"], "kioctx.ctx_lock{..-.},pid.wait_pidfd.lock{+.+.}");
    EXPECT_EQ(entry["LOCKWATCH_CHAIN"], "kioctx.ctx_lock -> pid.wait_pidfd.lock");
}

}  // namespace
}  // namespace lockwatch::engine::testing
