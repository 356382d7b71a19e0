// Findings to the systemd journal, one entry each.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "engine/finding.h"
#include "output/sink.h"

namespace lockwatch::output {

// The longest MESSAGE: one line that journalctl's views show whole.
inline constexpr std::size_t kMaxJournalMessageBytes = 512;

// The MESSAGE_ID of a kind's entries (32 hex digits), each explained in
// packaging/lockwatch.catalog.
std::string_view journal_message_id(engine::FindingKind kind);
// MESSAGE: one line, the title, the kind and the locks, e.g.
// "possible deadlock in io_submit_one: SOFTIRQ-safe -> SOFTIRQ-unsafe
// (kioctx.ctx_lock -> pid.wait_pidfd.lock)", at most kMaxJournalMessageBytes.
std::string journal_message(const engine::Finding &finding);

// The MESSAGE_ID of the entry that says lockdep turned itself off.
inline constexpr std::string_view kLockdepOffMessageId = "5d1e0c2b7a9f4e36b8c41f0a6e2d9b73";

// One journal entry that is not a finding: MESSAGE, MESSAGE_ID, PRIORITY
// notice (5), SYSLOG_IDENTIFIER, LOCKWATCH_VERSION and `extra_fields`
// ("KEY=value"). False, with the error in *error, when the journal refused
// it.
bool journal_notice(std::string_view message_id, std::string_view message, std::string *error,
                    const std::vector<std::string> &extra_fields = {});

// One journal entry per finding: MESSAGE (journal_message()), MESSAGE_ID,
// PRIORITY warning (4), the whole report (text.h) in LOCKWATCH_REPORT,
// LOCKWATCH_VERSION, and structured fields LOCKWATCH_KIND, LOCKWATCH_IRQ,
// LOCKWATCH_TITLE, LOCKWATCH_SIGNATURE, LOCKWATCH_LOCKS, LOCKWATCH_CHAIN,
// LOCKWATCH_TASK, LOCKWATCH_PID, LOCKWATCH_CPU, LOCKWATCH_TIME_NS,
// LOCKWATCH_HARDIRQ_STATE_INFERRED, so that
// `journalctl LOCKWATCH_KIND=irq_safe_to_unsafe` finds them. No CODE_FILE,
// CODE_LINE or CODE_FUNC.
class JournaldSink : public Sink {
  public:
    // extra_fields: more "KEY=value" fields for every entry.
    explicit JournaldSink(std::vector<std::string> extra_fields = {});
    bool write(const engine::Finding &finding) override;
    // The fields write() sends, in order (exposed for tests and docs).
    std::vector<std::string> fields(const engine::Finding &finding) const;

  private:
    std::vector<std::string> extra_;
};

}  // namespace lockwatch::output
