// Where findings go. The same sinks serve `lockwatch replay` and the live
// `lockwatch run`: the engine's finding handler calls write() on each.
#pragma once

#include <cstdio>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/finding.h"

namespace lockwatch::engine {

class Sink {
  public:
    virtual ~Sink() = default;
    // Returns false when the finding could not be written (the sink says
    // why through last_error()); the caller decides whether that is fatal.
    virtual bool write(const Finding &finding) = 0;
    virtual void flush() {}
    const std::string &last_error() const { return error_; }

  protected:
    std::string error_;
};

// The lockdep-format text, each report preceded by its title line
// ("lockwatch: possible deadlock in io_submit_one") and followed by a blank line.
class TextSink : public Sink {
  public:
    explicit TextSink(std::ostream &out) : out_(&out) {}
    explicit TextSink(std::FILE *file) : file_(file) {}
    bool write(const Finding &finding) override;
    void flush() override;

  private:
    std::ostream *out_ = nullptr;
    std::FILE *file_ = nullptr;
};

// One JSON object per line; the schema is docs/json-schema.md.
nlohmann::json finding_to_json(const Finding &finding);
// One frame of a finding's stacks, as finding_to_json() writes it.
nlohmann::json finding_frame_to_json(const Frame &frame);
inline constexpr int kJsonSchemaVersion = 1;

// The inverse of finding_to_json() for what the text and journald sinks
// need (kind, irq, title, signature, locks, chain, task, cpu, time, text):
// findings that crossed a VM's serial port come back through it. Stacks
// and paths are not rebuilt. nullopt when `j` is not a finding.
std::optional<Finding> finding_from_json(const nlohmann::json &j);

class JsonLinesSink : public Sink {
  public:
    explicit JsonLinesSink(std::ostream &out) : out_(&out) {}
    explicit JsonLinesSink(std::FILE *file) : file_(file) {}
    bool write(const Finding &finding) override;
    void flush() override;

  private:
    std::ostream *out_ = nullptr;
    std::FILE *file_ = nullptr;
};

// One journal entry per finding: MESSAGE is the text, PRIORITY warning (4),
// and structured fields LOCKWATCH_KIND, LOCKWATCH_IRQ, LOCKWATCH_TITLE,
// LOCKWATCH_SIGNATURE, LOCKWATCH_LOCKS, LOCKWATCH_CHAIN, LOCKWATCH_TASK,
// LOCKWATCH_PID, LOCKWATCH_CPU, LOCKWATCH_TIME_NS,
// LOCKWATCH_HARDIRQ_STATE_INFERRED, so that
// `journalctl LOCKWATCH_KIND=irq_safe_to_unsafe` finds them.
class JournaldSink : public Sink {
  public:
    // extra_fields: more "KEY=value" fields for every entry.
    explicit JournaldSink(std::vector<std::string> extra_fields = {});
    bool write(const Finding &finding) override;
    // The fields write() sends, in order (exposed for tests and docs).
    std::vector<std::string> fields(const Finding &finding) const;

  private:
    std::vector<std::string> extra_;
};

// Fans out to several sinks; a failing sink does not stop the others.
class MultiSink : public Sink {
  public:
    void add(std::unique_ptr<Sink> sink) { sinks_.push_back(std::move(sink)); }
    bool write(const Finding &finding) override;
    void flush() override;

  private:
    std::vector<std::unique_ptr<Sink>> sinks_;
};

}  // namespace lockwatch::engine
