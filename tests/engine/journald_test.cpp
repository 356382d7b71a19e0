// The journald sink against a real systemd-journald that the test starts
// (and stops), read back with journalctl. Skipped, with the reason, where no
// journald can run (not root, no binary, it does not come up).
#include <unistd.h>

#include <random>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine_test_util.h"
#include "output/journald.h"
#include "output/text.h"
#include "journald_fixture.h"
#include "version.h"

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
    // One line for journalctl's views and log shippers; the report apart.
    EXPECT_EQ(entry["MESSAGE"],
              "possible deadlock in io_submit_one: SOFTIRQ-safe -> SOFTIRQ-unsafe "
              "(kioctx.ctx_lock -> pid.wait_pidfd.lock)");
    EXPECT_EQ(entry["LOCKWATCH_REPORT"], output::render_text(f));
    EXPECT_EQ(entry["MESSAGE_ID"], "f49a2bfbd86d4734a09e121b011b5a88");
    EXPECT_EQ(entry["LOCKWATCH_VERSION"], LOCKWATCH_VERSION);
    EXPECT_FALSE(entry.contains("CODE_FILE")) << entry["CODE_FILE"];
    EXPECT_FALSE(entry.contains("CODE_FUNC")) << entry["CODE_FUNC"];
    EXPECT_EQ(entry["PRIORITY"], "4");
    EXPECT_EQ(entry["LOCKWATCH_KIND"], "irq_safe_to_unsafe");
    EXPECT_EQ(entry["LOCKWATCH_IRQ"], "softirq");
    EXPECT_EQ(entry["LOCKWATCH_TITLE"], "possible deadlock in io_submit_one");
    EXPECT_EQ(entry["LOCKWATCH_SIGNATURE"], f.signature);
    EXPECT_EQ(entry["LOCKWATCH_LOCKS"], "kioctx.ctx_lock{..-.},pid.wait_pidfd.lock{+.+.}");
    EXPECT_EQ(entry["LOCKWATCH_CHAIN"], "kioctx.ctx_lock -> pid.wait_pidfd.lock");
}

// A notice that is not a finding (lockdep turned itself off): its own
// MESSAGE_ID, priority notice, no report fields.
TEST_F(Journald, NoticeHasItsMessageIdAndPriority) {
    std::random_device rd;
    std::string run = std::to_string(rd()) + std::to_string(getpid());
    std::string error;
    ASSERT_TRUE(output::journal_notice(output::kLockdepOffMessageId, "lockdep turned itself off",
                                       &error, {"LOCKWATCH_TEST_RUN=" + run}))
        << error;
    auto found = testsupport::ScopedJournald::entries("LOCKWATCH_TEST_RUN=" + run);
    ASSERT_EQ(found.size(), 1u) << "the notice did not show up in journalctl";
    EXPECT_EQ(found[0]["MESSAGE"], "lockdep turned itself off");
    EXPECT_EQ(found[0]["MESSAGE_ID"], std::string(output::kLockdepOffMessageId));
    EXPECT_EQ(found[0]["PRIORITY"], "5");
    EXPECT_EQ(found[0]["SYSLOG_IDENTIFIER"], "lockwatch");
    EXPECT_FALSE(found[0].contains("LOCKWATCH_REPORT"));
}

// MESSAGE: one line per kind, cut to its bound without splitting a character.
TEST(JournalMessage, OneLinePerKindWithinItsBound) {
    Finding f;
    f.title = "possible deadlock in f";
    f.irq_state = "HARDIRQ";
    f.chain = {"a", "b", "a"};
    f.kind = FindingKind::Circular;
    EXPECT_EQ(output::journal_message(f),
              "possible deadlock in f: circular locking dependency (a -> b -> a)");
    f.kind = FindingKind::IrqInversion;
    EXPECT_EQ(output::journal_message(f),
              "possible deadlock in f: irq lock inversion, HARDIRQ (a -> b -> a)");
    f.chain.clear();
    LockRef x;
    x.name = "x";
    f.locks = {x};
    f.kind = FindingKind::Recursive;
    EXPECT_EQ(output::journal_message(f), "possible deadlock in f: recursive locking (x)");
    f.kind = FindingKind::InconsistentState;
    EXPECT_EQ(output::journal_message(f),
              "possible deadlock in f: inconsistent HARDIRQ lock state (x)");
    // The cut (at 508 bytes) falls inside an "é": the whole character goes.
    x.name = std::string(464, 'n');
    for (int i = 0; i < 50; ++i) {
        x.name += "\xc3\xa9";
    }
    f.locks = {x};
    std::string cut = output::journal_message(f);
    EXPECT_LE(cut.size(), output::kMaxJournalMessageBytes);
    EXPECT_EQ(cut.substr(cut.size() - 4), " ...");
    EXPECT_EQ(cut.substr(cut.size() - 5, 1), "n") << "a character was split";
    EXPECT_EQ(cut.find('\n'), std::string::npos);
}

// Every kind (and the lockdep-off notice) has its own MESSAGE_ID, and the
// catalog has an entry for each
// that journalctl reads (journalctl --update-catalog into a scratch root).
TEST(JournalCatalog, AnEntryForEveryKind) {
    std::string catalog =
        testsupport::run_capture("cat " LOCKWATCH_SOURCE_DIR "/packaging/lockwatch.catalog");
    std::set<std::string> ids;
    for (FindingKind k :
         {FindingKind::IrqSafeToUnsafe, FindingKind::IrqInversion, FindingKind::InconsistentState,
          FindingKind::Circular, FindingKind::Recursive}) {
        std::string id(output::journal_message_id(k));
        EXPECT_EQ(id.size(), 32u);
        EXPECT_TRUE(ids.insert(id).second) << "two kinds share " << id;
        EXPECT_NE(catalog.find("-- " + id + "\n"), std::string::npos) << id;
    }
    // The notices that are not findings have entries too.
    std::string notice(output::kLockdepOffMessageId);
    EXPECT_EQ(notice.size(), 32u);
    EXPECT_TRUE(ids.insert(notice).second) << "a finding kind shares " << notice;
    EXPECT_NE(catalog.find("-- " + notice + "\n"), std::string::npos) << notice;
    if (access("/usr/bin/journalctl", X_OK) != 0 && access("/bin/journalctl", X_OK) != 0) {
        GTEST_SKIP() << "no journalctl to compile the catalog";
    }
    char tmpl[] = "/tmp/lockwatch-catalog-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string root = tmpl;
    std::string listed = testsupport::run_capture(
        "mkdir -p " + root + "/usr/lib/systemd/catalog " + root + "/var/lib/systemd/catalog && " +
        "cp " LOCKWATCH_SOURCE_DIR "/packaging/lockwatch.catalog " + root +
        "/usr/lib/systemd/catalog/ && journalctl --root=" + root +
        " --update-catalog 2>&1 && journalctl --root=" + root + " --list-catalog 2>&1; rm -rf " +
        root);
    for (const std::string &id : ids) {
        EXPECT_NE(listed.find(id + " lockwatch: "), std::string::npos) << id << "\n" << listed;
    }
}
}  // namespace
}  // namespace lockwatch::engine::testing
