// Findings as JSON lines (docs/json-schema.md), both ways.
// finding_from_json() reads back every field finding_to_json() writes:
// finding_from_json(finding_to_json(f)) == f.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/finding.h"
#include "output/sink.h"

namespace lockwatch::output {

inline constexpr int kJsonSchemaVersion = 1;

// One JSON object per finding; "text" is render_text() (text.h).
nlohmann::json finding_to_json(const engine::Finding &finding);
// One frame of a finding's stacks, as finding_to_json() writes it.
nlohmann::json finding_frame_to_json(const engine::Frame &frame);

// How large a string or an array finding_from_json() takes. Unlimited by
// default: a trace's own names may be of any length.
struct JsonReadLimits {
    std::size_t max_string_bytes = SIZE_MAX;
    std::size_t max_array_items = SIZE_MAX;
};

// The finding `j` holds; nullopt when it holds none (not an object, another
// schema version, a field missing, of the wrong type or over `limits`), and
// then *error, if given, says why in one line that names the field. Fields
// derived from others ("text", a frame's "text", "usage_str", "safe_lock")
// are not read. Never throws.
std::optional<engine::Finding> finding_from_json(const nlohmann::json &j,
                                                 std::string *error = nullptr,
                                                 const JsonReadLimits &limits = {});

// The brief form (--json-brief): the finding without "text" and "paths",
// the two parts that make a line tens of KB.
nlohmann::json brief_json(nlohmann::json full);

// One JSON object per line, each with "wall_time" (when it was written,
// host_info.h) and the fields of `extra`.
class JsonLinesSink : public StreamSink {
  public:
    // extra: more fields for every line (host_fields(); `lockwatch vm` adds
    // "vm_kernel"). brief: brief_json() lines.
    explicit JsonLinesSink(std::ostream &out, nlohmann::json extra = nlohmann::json::object(),
                           bool brief = false)
        : StreamSink(out), extra_(std::move(extra)), brief_(brief) {}
    explicit JsonLinesSink(std::FILE *file, nlohmann::json extra = nlohmann::json::object(),
                           bool brief = false)
        : StreamSink(file), extra_(std::move(extra)), brief_(brief) {}
    bool write(const engine::Finding &finding) override;
    // Written before every line's JSON: `lockwatch vm` marks its guest's
    // own lines with the boot's token this way.
    void set_line_prefix(std::string prefix) { prefix_ = std::move(prefix); }

  private:
    nlohmann::json extra_;
    bool brief_ = false;
    std::string prefix_;
};

}  // namespace lockwatch::output
