// Findings as JSON (docs/json-schema.md), both ways. finding_from_json()
// reads back every field finding_to_json() writes: from_json(to_json(f)) == f.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/finding.h"

namespace lockwatch::engine {

inline constexpr int kJsonSchemaVersion = 1;

// One JSON object per finding; the schema is docs/json-schema.md.
nlohmann::json finding_to_json(const Finding &finding);
// One frame of a finding's stacks, as finding_to_json() writes it.
nlohmann::json frame_to_json(const Frame &frame);

// The finding `j` holds; nullopt when it holds none (not an object, another
// schema version, a field missing or of the wrong type), and then *error, if
// given, says why in one line that names the field. Fields derived from
// others ("text", a frame's "text", "usage_str", "safe_lock") are not read.
// Never throws.
std::optional<Finding> finding_from_json(const nlohmann::json &j, std::string *error = nullptr);

}  // namespace lockwatch::engine
