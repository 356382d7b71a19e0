// Findings to the systemd journal, one entry each.
#pragma once

#include <string>
#include <vector>

#include "engine/finding.h"
#include "output/sink.h"

namespace lockwatch::output {

// One journal entry per finding: MESSAGE is the text (text.h), PRIORITY
// warning (4), and structured fields LOCKWATCH_KIND, LOCKWATCH_IRQ,
// LOCKWATCH_TITLE, LOCKWATCH_SIGNATURE, LOCKWATCH_LOCKS, LOCKWATCH_CHAIN,
// LOCKWATCH_TASK, LOCKWATCH_PID, LOCKWATCH_CPU, LOCKWATCH_TIME_NS,
// LOCKWATCH_HARDIRQ_STATE_INFERRED, so that
// `journalctl LOCKWATCH_KIND=irq_safe_to_unsafe` finds them.
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
