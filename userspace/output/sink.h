// Where findings go. The same sinks serve `lockwatch run`, `vm` and
// `replay`: each command hands every finding to write(). A sink renders the
// plain Finding itself (text.h, json.h, journald.h).
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "engine/finding.h"

namespace lockwatch::output {

class Sink {
  public:
    virtual ~Sink() = default;
    // Returns false when the finding could not be written (the sink says
    // why through last_error()); the caller decides whether that is fatal.
    virtual bool write(const engine::Finding &finding) = 0;
    // false, with last_error() set, when what was buffered could not be
    // written.
    virtual bool flush() { return true; }
    const std::string &last_error() const { return error_; }
    // The last failure was EPIPE: whoever read the output is gone (`| head`),
    // which ends a command quietly rather than as an error.
    bool reader_gone() const { return reader_gone_; }
    // Findings (or flushes) that failed so far.
    std::uint64_t failures() const { return failures_; }

  protected:
    bool fail(std::string error, int err);
    std::string error_;
    bool reader_gone_ = false;
    std::uint64_t failures_ = 0;
};

// A sink that writes what it renders to a stream or a FILE.
class StreamSink : public Sink {
  public:
    bool flush() override;
    // From now on, write to `file` (a FILE sink's output reopened: SIGHUP).
    void set_file(std::FILE *file) { file_ = file; }

  protected:
    explicit StreamSink(std::ostream &out) : out_(&out) {}
    explicit StreamSink(std::FILE *file) : file_(file) {}
    // Writes `rendered` whole; false, with last_error() set, when it fails.
    bool put(const std::string &rendered);

  private:
    std::ostream *out_ = nullptr;
    std::FILE *file_ = nullptr;
};

// Fans out to several sinks; a failing sink does not stop the others.
class MultiSink : public Sink {
  public:
    void add(std::unique_ptr<Sink> sink) { sinks_.push_back(std::move(sink)); }
    bool write(const engine::Finding &finding) override;
    bool flush() override;

  private:
    bool take_failure(const Sink &sink);
    std::vector<std::unique_ptr<Sink>> sinks_;
};

}  // namespace lockwatch::output
