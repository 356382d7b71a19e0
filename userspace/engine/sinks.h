// Where findings go. The same sinks serve `lockwatch replay` and the live
// `lockwatch run`: the engine's finding handler calls write() on each.
#pragma once

#include <cstdio>
#include <memory>
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

// One JSON object per line (finding_json.h); the schema is docs/json-schema.md.
class JsonLinesSink : public Sink {
  public:
    // extra: more fields for every line (`lockwatch vm` adds "vm_kernel").
    explicit JsonLinesSink(std::ostream &out, nlohmann::json extra = nlohmann::json::object())
        : out_(&out), extra_(std::move(extra)) {}
    explicit JsonLinesSink(std::FILE *file, nlohmann::json extra = nlohmann::json::object())
        : file_(file), extra_(std::move(extra)) {}
    bool write(const Finding &finding) override;
    void flush() override;

  private:
    std::ostream *out_ = nullptr;
    std::FILE *file_ = nullptr;
    nlohmann::json extra_;
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
