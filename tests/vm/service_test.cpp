// lockwatch run as its systemd unit runs it, on a kernel it can trace (a
// test VM on Debian's kernel): with only the unit's capabilities in its
// bounding set (setpriv, as CapabilityBoundingSet= does for a root service),
// READY=1 once attached and STOPPING=1 when the stop begins, on a socket in
// NOTIFY_SOCKET's place; --json appending to what is there and reopened on
// SIGHUP after a logrotate-style move; exit 0 on SIGTERM without findings.
// (Under a real systemd: tests/deploy.)
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "vm_test_support.h"

namespace lockwatch::vmtest {
namespace {

namespace fs = std::filesystem;

TEST(Service, UnitCapabilitiesNotifyAppendAndSighup) {
    // util-linux's setpriv, under a name busybox has no applet for.
    char tmpl[] = "/tmp/lockwatch-service-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    fs::path dir = tmpl;
    fs::copy_file("/usr/bin/setpriv", dir / "util-setpriv");
    GuestRun run = run_in_vm("debian", {(dir / "util-setpriv").string(), NOTIFY_LISTEN_BINARY},
                             R"SH(
notify-listen /tmp/notify &
sleep 0.5
echo '{"earlier":1}' > /tmp/findings.jsonl
NOTIFY_SOCKET=/tmp/notify util-setpriv --bounding-set=-all,+sys_admin,+syslog --inh-caps=-all \
    lockwatch run --no-text --json /tmp/findings.jsonl --ready-file /tmp/ready > /tmp/run.log 2>&1 &
lw=$!
i=0; while [ ! -e /tmp/ready ] && kill -0 $lw 2>/dev/null && [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done
grep CapBnd /proc/$lw/status
mv /tmp/findings.jsonl /tmp/findings.old
kill -HUP $lw
i=0; while [ ! -e /tmp/findings.jsonl ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done
[ -e /tmp/findings.jsonl ] && echo "REOPENED"
kill -TERM $lw
wait $lw
echo "RUN-EXIT $?"
head -1 /tmp/findings.old
grep -E '^lockwatch: (reopened|detached|cannot)' /tmp/run.log
sleep 0.5
)SH",
                             900);
    fs::remove_all(dir);
    const std::string &out = run.output;
    ASSERT_EQ(run.exit_status, 0) << run.harness_log << out;
    // CAP_SYS_ADMIN (21) and CAP_SYSLOG (34), nothing else.
    EXPECT_NE(out.find("CapBnd:\t0000000400200000"), std::string::npos) << out;
    EXPECT_NE(out.find("RUN-EXIT 0"), std::string::npos) << out;
    EXPECT_NE(out.find("REOPENED"), std::string::npos) << out;
    EXPECT_NE(out.find("lockwatch: reopened /tmp/findings.jsonl (SIGHUP)"), std::string::npos)
        << out;
    EXPECT_NE(out.find("{\"earlier\":1}"), std::string::npos) << "--json did not append: " << out;
    auto ready = out.find("NOTIFY READY=1|STATUS=tracing");
    auto stopping = out.find("NOTIFY STOPPING=1|STATUS=stopping after 0 findings");
    ASSERT_NE(ready, std::string::npos) << out;
    ASSERT_NE(stopping, std::string::npos) << out;
    EXPECT_LT(ready, stopping);
    EXPECT_LT(out.find("lockwatch: detached"), std::string::npos) << out;
}

}  // namespace
}  // namespace lockwatch::vmtest
