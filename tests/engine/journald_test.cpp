// The journald sink against a real systemd-journald that the test starts
// (and stops), read back with journalctl. Skipped, with the reason, where no
// journald can run (not root, no binary, it does not come up).
#include <unistd.h>

#include <random>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine_test_util.h"
#include "output/journald.h"
#include "output/text.h"
#include "journald_fixture.h"

namespace lockwatch::engine::testing {
namespace {

class Journald : public ::testing::Test {
  protected:
    void SetUp() override {
        if (auto why_not = journald_.start()) {
            GTEST_SKIP() << "journald test: " << *why_not;
        }
    }
    testsupport::ScopedJournald journald_;
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
    output::JournaldSink sink({"LOCKWATCH_TEST_RUN=" + run});
    ASSERT_TRUE(sink.write(f)) << sink.last_error();

    auto found = testsupport::ScopedJournald::entries("LOCKWATCH_TEST_RUN=" + run +
                                                      " LOCKWATCH_KIND=irq_safe_to_unsafe");
    int entries = static_cast<int>(found.size());
    nlohmann::json entry = found.empty() ? nlohmann::json() : found[0];
    ASSERT_EQ(entries, 1) << "the entry did not show up in journalctl";
    EXPECT_EQ(entry["MESSAGE"], output::render_text(f));
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
