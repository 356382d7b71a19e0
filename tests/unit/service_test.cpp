// lockwatch as a systemd service, without systemd: the notification
// protocol (sd_notify(3)) against a socket of the test's own, as the
// service manager reads it, and the unit file through systemd-analyze.
// Under a real systemd: tests/deploy (label deploy).
#include "live/service_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "temp_dir.h"
#include "vm/vm_script.h"

namespace lockwatch {
namespace {

namespace fs = std::filesystem;

// A datagram socket in place of systemd's, named by $NOTIFY_SOCKET.
class NotifySocket : public ::testing::Test {
  protected:
    void SetUp() override {
        path_ = (dir_ / "notify").string();
        fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ASSERT_GE(fd_, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
        ASSERT_EQ(bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)), 0);
        setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    }
    void TearDown() override {
        unsetenv("NOTIFY_SOCKET");
        close(fd_);
    }
    // Every datagram that has arrived, in order.
    std::vector<std::string> received() {
        std::vector<std::string> out;
        char buf[4096];
        ssize_t n;
        while ((n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
            out.emplace_back(buf, n);
        }
        return out;
    }

    test_support::TempDir tmp_{"notify"};
    const fs::path dir_ = tmp_.path();
    std::string path_;
    int fd_ = -1;
};

TEST_F(NotifySocket, ReadyThenStoppingEachWithAStatusLine) {
    notify_ready("tracing");
    notify_status("3 findings\nso far");
    notify_stopping("stopping after 3 findings");
    std::vector<std::string> got = received();
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0], "READY=1\nSTATUS=tracing");
    EXPECT_EQ(got[1], "STATUS=3 findings so far") << "a status is one line";
    EXPECT_EQ(got[2], "STOPPING=1\nSTATUS=stopping after 3 findings");
}

TEST_F(NotifySocket, NothingWithoutTheVariable) {
    unsetenv("NOTIFY_SOCKET");
    notify_ready("tracing");
    EXPECT_TRUE(received().empty());
}

// `lockwatch run` that cannot trace (no capabilities) tells the service
// manager why, and never READY=1.
TEST_F(NotifySocket, ARefusedRunSaysWhyAndIsNeverReady) {
    if (access("/usr/bin/setpriv", X_OK) != 0) {
        GTEST_SKIP() << "no /usr/bin/setpriv (util-linux) to drop capabilities";
    }
    std::string cmd = "/usr/bin/setpriv --bounding-set=-all --inh-caps=-all -- " +
                      shell_quote(LOCKWATCH_BINARY) + " run --duration 1 >/dev/null 2>&1";
    int rc = std::system(cmd.c_str());
    EXPECT_EQ(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 3);
    std::vector<std::string> got = received();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].rfind("STATUS=cannot trace: cannot trace this kernel: ", 0), 0u) << got[0];
    EXPECT_EQ(got[0].find("READY=1"), std::string::npos);
}

std::string slurp(const fs::path &p) {
    return test_support::read_file(p);
}

// The unit as cmake --install writes it, checked by systemd's own parser
// (every option known and valid here, the executables there), with
// ExecStart= pointed at this build's lockwatch. Skipped without
// systemd-analyze.
TEST(Unit, SystemdAnalyzeVerifiesIt) {
    if (access("/usr/bin/systemd-analyze", X_OK) != 0) {
        GTEST_SKIP() << "no systemd-analyze";
    }
    test_support::TempDir tmp("unit");
    const fs::path &dir = tmp.path();
    std::string install = "DESTDIR=" + shell_quote((dir / "root").string()) + " cmake --install " +
                          shell_quote(LOCKWATCH_BUILD_DIR) + " --prefix /usr >" +
                          shell_quote((dir / "install.log").string()) + " 2>&1";
    ASSERT_EQ(std::system(install.c_str()), 0) << slurp(dir / "install.log");
    std::string unit = slurp(dir / "root/usr/lib/systemd/system/lockwatch.service");
    ASSERT_NE(unit.find("ExecStart=/usr/bin/lockwatch run "), std::string::npos) << unit;
    for (const char *line : {"Type=notify\n", "StateDirectory=lockwatch\n", "Restart=on-failure\n",
                             "RestartPreventExitStatus=2 3\n", "SuccessExitStatus=1\n"}) {
        EXPECT_NE(unit.find(line), std::string::npos) << line;
    }
    unit.replace(unit.find("/usr/bin/lockwatch"), 18, LOCKWATCH_BINARY);
    { std::ofstream(dir / "lockwatch.service") << unit; }
    // --man=no: Documentation=man:lockwatch(8) is not installed on this host.
    std::string verify = "systemd-analyze verify --man=no " +
                         shell_quote((dir / "lockwatch.service").string()) + " >" +
                         shell_quote((dir / "verify.log").string()) + " 2>&1";
    int rc = std::system(verify.c_str());
    std::string log = slurp(dir / "verify.log");
    EXPECT_EQ(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 0) << log;
    EXPECT_EQ(log.find("lockwatch.service:"), std::string::npos)
        << "a warning on the unit: " << log;
    // A misspelt option is what verify exists for: it must say so.
    { std::ofstream(dir / "lockwatch.service") << unit << "[Service]\nProtectSystm=strict\n"; }
    std::system(verify.c_str());
    EXPECT_NE(slurp(dir / "verify.log").find("ProtectSystm"), std::string::npos)
        << "verify does not look at the options";
}

}  // namespace
}  // namespace lockwatch
