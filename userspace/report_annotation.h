// file:line for findings that arrive already rendered, as lockdep-format
// text and JSON lines (the findings a test VM sends back): every frame
// "symbol+0xoff/0xsize" gains its source place, and the functions inlined
// there become lines of their own, as in syzbot's reports.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace lockwatch {

class KernelDebugInfo;

std::string annotate_report_text(const std::string &text, const KernelDebugInfo &debuginfo);

// Annotates the frames under "stacks" and "paths", and the "text".
void annotate_finding_json(nlohmann::json &finding, const KernelDebugInfo &debuginfo);

}  // namespace lockwatch
