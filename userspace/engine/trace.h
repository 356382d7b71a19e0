// The lockwatch trace format: JSON lines, one Event per line, after a header
// line {"format":"lockwatch-trace","version":1}. docs/trace-format.md
// describes every record; the reader refuses what it does not understand
// with one error line that names the position.
#pragma once

#include <cstddef>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engine/events.h"

namespace lockwatch::engine {

inline constexpr std::string_view kTraceFormatName = "lockwatch-trace";
// Version 2 added the irqs_on record; version 1 traces are read as before.
inline constexpr int kTraceFormatVersion = 2;
// Bounds that keep a hostile trace from exhausting memory.
inline constexpr std::size_t kTraceMaxLineBytes = 1 << 20;
inline constexpr std::size_t kTraceMaxFrames = 256;
// lockwatch's longest names are struct member paths and allocation sites,
// well under 200 characters.
inline constexpr std::size_t kTraceMaxClassName = 1024;
inline constexpr std::uint32_t kTraceMaxCpu = 8191;
// A header key: "operations":"with facts" says the trace (lockwatch run
// --record --record-ops) holds both the kernel side's facts and the raw
// operations they were derived from. A replay takes one or the other,
// never both: each alone makes the graph.
inline constexpr std::string_view kTraceOperationsKey = "operations";
inline constexpr std::string_view kTraceOperationsWithFacts = "with facts";

// "io_submit_one+0x97f/0x2b00 fs/aio.c:1878", "aio_poll fs/aio.c:1767 [inline]"
// or just "sym+0x10": the form reports print, accepted in traces.
bool parse_frame_text(std::string_view text, Frame *out, std::string *error);

struct TraceError {
    std::size_t line = 0;    // 1-based
    std::size_t column = 0;  // 1-based, 0 when the whole line is meant
    std::string message;
    // "NAME:LINE:COLUMN: message"
    std::string format(std::string_view source) const;
};

class TraceReader {
  public:
    TraceReader(std::istream &in);
    ~TraceReader();
    // The next event; nullopt at the end or on error (then error() is set).
    std::optional<Event> next();
    const std::optional<TraceError> &error() const { return error_; }
    std::size_t line() const { return line_; }
    int version() const { return version_; }
    // The header's "hostname" (lockwatch run --record writes it), once the
    // header has been read; "" when it has none.
    const std::string &hostname() const { return hostname_; }
    // The header says "operations":"with facts" (see kTraceOperationsKey).
    bool operations_with_facts() const { return operations_with_facts_; }

  private:
    struct Input;
    bool refill();
    bool read_line(std::string_view *text, bool *newline);
    bool read_header(std::string_view text);
    std::istream &in_;
    std::unique_ptr<Input> input_;
    std::size_t line_ = 0;
    int version_ = 0;
    std::string hostname_;
    bool operations_with_facts_ = false;
    std::optional<TraceError> error_;
};

// Parses one record line (not the header).
std::optional<Event> parse_trace_record(std::string_view text, std::size_t line,
                                        std::optional<TraceError> *error);
// The same through nlohmann::json's DOM alone: the reference the fast path
// is checked against (fuzz/trace_fuzz.cpp, tests/engine/trace_test.cpp).
std::optional<Event> parse_trace_record_reference(std::string_view text, std::size_t line,
                                                  std::optional<TraceError> *error);

// The header line and one record line, without the trailing newline.
std::string trace_header_line();
std::string trace_record_line(const Event &event);

}  // namespace lockwatch::engine
