// The two seed reports, replayed from traces written from their stacks:
// lockwatch must reach lockdep's verdicts (kind, locks, usage strings, title).
#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/trace.h"
#include "engine_test_util.h"
#include "output/host_info.h"
#include "output/json.h"
#include "output/text.h"

namespace lockwatch::engine {
namespace {

using testing::replay_trace_file;

TEST(SeedReplay, Seed000SoftirqSafeToUnsafe) {
    auto findings = replay_trace_file("seed_000_softirq_safe_to_unsafe.jsonl");
    ASSERT_EQ(findings.size(), 1u);
    const Finding &f = findings[0];
    const std::string text = output::render_text(f);
    EXPECT_EQ(f.kind, FindingKind::IrqSafeToUnsafe);
    EXPECT_EQ(f.irq, IrqClass::Softirq);
    EXPECT_EQ(f.title, "possible deadlock in io_submit_one");
    EXPECT_EQ(f.safe_lock->name, "&(&ctx->ctx_lock)->rlock");
    EXPECT_EQ(f.safe_lock->usage, "..-.");
    EXPECT_EQ(f.unsafe_lock->name, "&pid->wait_pidfd");
    EXPECT_EQ(f.unsafe_lock->usage, "+.+.");
    EXPECT_EQ(f.task.comm_view(), "syz-executor.1");
    EXPECT_EQ(f.task.pid, 23827);
    // Lines as the seed report prints them (addresses aside).
    for (const char *line : {
             "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected\n",
             "syz-executor.1/23827 [HC0[0]:SC0[0]:HE0:SE1] is trying to acquire:\n",
             " (&pid->wait_pidfd){+.+.}, at: io_submit_one+0x97f/0x2b00 fs/aio.c:1878\n",
             "which would create a new lock dependency:\n (&(&ctx->ctx_lock)->rlock){..-.} -> "
             "(&pid->wait_pidfd){+.+.}\n",
             "... which became SOFTIRQ-irq-safe at:\n  lock_acquire+0x19b/0x420",
             "  free_ioctx_users+0x2b/0x3e0 fs/aio.c:618\n",
             "... which became SOFTIRQ-irq-unsafe at:\n...\n  lock_acquire",
             "  proc_pid_make_inode+0x1c0/0x390 fs/proc/base.c:1880\n",
             "  lock(&pid->wait_pidfd);\n"
             "                               local_irq_disable();\n"
             "                               lock(&(&ctx->ctx_lock)->rlock);\n"
             "                               lock(&pid->wait_pidfd);\n"
             "  <Interrupt>\n"
             "    lock(&(&ctx->ctx_lock)->rlock);\n\n *** DEADLOCK ***\n",
             "1 lock held by syz-executor.1/23827:\n #0: (&(&ctx->ctx_lock)->rlock){..-.}, at: "
             "spin_lock_irq include/linux/spinlock.h:363 [inline]\n",
             "the dependencies between SOFTIRQ-irq-safe lock and the holding lock:\n"
             "-> (&(&ctx->ctx_lock)->rlock){..-.} {\n   IN-SOFTIRQ-W at:\n"
             "                    lock_acquire+0x19b/0x420 kernel/locking/lockdep.c:4484\n",
             "   INITIAL USE at:\n                   lock_acquire",
             "the dependencies between the lock to be acquired\n and SOFTIRQ-irq-unsafe lock:\n"
             "-> (&pid->wait_pidfd){+.+.} {\n   HARDIRQ-ON-W at:\n",
             " ... acquired at:\n   lock_acquire+0x19b/0x420 kernel/locking/lockdep.c:4484\n",
             "observed by lockwatch, not lockdep",
         }) {
        EXPECT_NE(text.find(line), std::string::npos) << "missing: " << line;
    }
    EXPECT_EQ(text.find("ffff"), std::string::npos);
    EXPECT_EQ(text.find("inferred"), std::string::npos);
}

TEST(SeedReplay, Seed001IrqInversion) {
    auto findings = replay_trace_file("seed_001_irq_inversion.jsonl");
    ASSERT_EQ(findings.size(), 1u);
    const Finding &f = findings[0];
    const std::string text = output::render_text(f);
    EXPECT_EQ(f.kind, FindingKind::IrqInversion);
    EXPECT_EQ(f.irq, IrqClass::Softirq);
    EXPECT_EQ(f.title, "possible deadlock in free_ioctx_users");
    EXPECT_EQ(f.acquiring.name, "&ctx->ctx_lock");
    EXPECT_EQ(f.acquiring.usage, "..-.");
    EXPECT_EQ(f.unsafe_lock->name, "&pid->wait_pidfd");
    EXPECT_EQ(f.unsafe_lock->usage, "+.+.");
    EXPECT_EQ(f.context, Context::Softirq);
    for (const char *line : {
             "WARNING: possible irq lock inversion dependency detected\n",
             "swapper/1/0 just changed the state of lock:\n"
             " (&ctx->ctx_lock){..-.}, at: spin_lock_irq include/linux/spinlock.h:378 [inline]\n"
             " (&ctx->ctx_lock){..-.}, at: free_ioctx_users+0x2b/0x450 fs/aio.c:618\n"
             "but this lock took another, SOFTIRQ-unsafe lock in the past:\n"
             " (&pid->wait_pidfd){+.+.}\n\n\nand interrupts could create inverse lock ordering "
             "between them.\n",
             "  lock(&pid->wait_pidfd);\n"
             "                               local_irq_disable();\n"
             "                               lock(&ctx->ctx_lock);\n"
             "                               lock(&pid->wait_pidfd);\n"
             "  <Interrupt>\n"
             "    lock(&ctx->ctx_lock);\n",
             "the shortest dependencies between 2nd lock and 1st lock:\n"
             " -> (&pid->wait_pidfd){+.+.} {\n    HARDIRQ-ON-W at:\n"
             "                      lock_acquire+0x1f2/0x8f0 kernel/locking/lockdep.c:4923\n",
             "    INITIAL USE at:\n                     lock_acquire+0x1f2/0x8f0",
             "  ... acquired at:\n   __raw_spin_lock include/linux/spinlock_api_smp.h:142 "
             "[inline]\n",
             "-> (&ctx->ctx_lock){..-.} {\n   IN-SOFTIRQ-W at:\n",
         }) {
        EXPECT_NE(text.find(line), std::string::npos) << "missing: " << line;
    }
}

TEST(SeedReplay, Seed000AsJson) {
    auto findings = replay_trace_file("seed_000_softirq_safe_to_unsafe.jsonl");
    ASSERT_EQ(findings.size(), 1u);
    std::ostringstream out;
    output::JsonLinesSink sink(out);
    ASSERT_TRUE(sink.write(findings[0]));
    auto j = nlohmann::json::parse(out.str());
    EXPECT_EQ(j["kind"], "irq_safe_to_unsafe");
    EXPECT_EQ(j["irq"], "softirq");
    EXPECT_EQ(j["title"], "possible deadlock in io_submit_one");
    EXPECT_EQ(j["signature"], findings[0].signature);
    ASSERT_EQ(j["locks"].size(), 2u);
    EXPECT_EQ(j["locks"][0]["name"], "&(&ctx->ctx_lock)->rlock");
    EXPECT_EQ(j["locks"][0]["usage"], "..-.");
    EXPECT_EQ(j["locks"][1]["name"], "&pid->wait_pidfd");
    EXPECT_EQ(j["locks"][1]["usage"], "+.+.");
    EXPECT_EQ(j["chain"], nlohmann::json({"&(&ctx->ctx_lock)->rlock", "&pid->wait_pidfd"}));
    EXPECT_EQ(j["task"]["pid"], 23827);
    EXPECT_EQ(j["cpu"], 1);
    EXPECT_EQ(j["stacks"]["safe_usage"]["bit"], "USED_IN_SOFTIRQ");
    EXPECT_EQ(j["stacks"]["unsafe_usage"]["stack"][4]["symbol"], "proc_pid_make_inode");
    EXPECT_EQ(j["text"], output::render_text(findings[0]));
    const std::string text = out.str();
    EXPECT_EQ(text.back(), '\n');
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
}

// lockwatch run --json-line-prefix: the prefix, then the same line.
TEST(SeedReplay, Seed000AsJsonWithALinePrefix) {
    auto findings = replay_trace_file("seed_000_softirq_safe_to_unsafe.jsonl");
    ASSERT_EQ(findings.size(), 1u);
    std::ostringstream plain, marked;
    output::JsonLinesSink plain_sink(plain);
    output::JsonLinesSink marked_sink(marked);
    marked_sink.set_line_prefix("0123456789abcdef0123456789abcdef ");
    ASSERT_TRUE(plain_sink.write(findings[0]));
    ASSERT_TRUE(marked_sink.write(findings[0]));
    const std::string prefix = "0123456789abcdef0123456789abcdef ";
    ASSERT_EQ(marked.str().substr(0, prefix.size()), prefix);
    // The same line but for the time of writing.
    auto without_time = [](const std::string &line) {
        auto j = nlohmann::json::parse(line);
        j.erase("wall_time");
        return j;
    };
    EXPECT_EQ(without_time(marked.str().substr(prefix.size())), without_time(plain.str()));
}

// Who wrote a line and when; --json-brief leaves out the text and the paths.
TEST(SeedReplay, Seed000AsJsonSaysWhoAndWhenAndHasABriefForm) {
    auto findings = replay_trace_file("seed_000_softirq_safe_to_unsafe.jsonl");
    ASSERT_EQ(findings.size(), 1u);
    std::ostringstream full, brief;
    output::JsonLinesSink full_sink(full, output::host_fields());
    output::JsonLinesSink brief_sink(brief, output::host_fields(), true);
    ASSERT_TRUE(full_sink.write(findings[0]));
    ASSERT_TRUE(brief_sink.write(findings[0]));
    auto j = nlohmann::json::parse(full.str());
    EXPECT_TRUE(std::regex_match(j["wall_time"].get<std::string>(),
                                 std::regex(R"(20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d\d\dZ)")))
        << j["wall_time"];
    EXPECT_EQ(j["hostname"], output::host_info().hostname);
    EXPECT_TRUE(std::regex_match(j["boot_id"].get<std::string>(), std::regex("[0-9a-f]{32}")))
        << j["boot_id"];
    EXPECT_EQ(j["kernel_release"], output::host_info().kernel_release);
    EXPECT_EQ(j["lockwatch_version"], output::host_info().version);
    auto b = nlohmann::json::parse(brief.str());
    EXPECT_FALSE(b.contains("text"));
    EXPECT_FALSE(b.contains("paths"));
    EXPECT_EQ(b["signature"], j["signature"]);
    EXPECT_LT(brief.str().size() * 2, full.str().size()) << "brief is not much smaller";
    timespec epoch_plus{86400 + 3661, 5000000};
    EXPECT_EQ(output::format_wall_time(epoch_plus), "1970-01-02T01:01:01.005Z");
}

}  // namespace
}  // namespace lockwatch::engine
