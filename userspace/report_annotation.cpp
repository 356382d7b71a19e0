#include "report_annotation.h"

#include <regex>
#include <sstream>

#include "engine/report.h"
#include "engine/sinks.h"
#include "kernel_debuginfo.h"

namespace lockwatch {

namespace {

// A frame at the end of a report line: "  io_submit_one+0x3c2/0x700" or
// " (lock){..-.}, at: io_submit_one+0x3c2/0x700". Class names such as
// "(TCP+0x98){+.-.}" never end a line.
const std::regex &frame_at_line_end() {
    static const std::regex re(
        R"(^(.*?(?:^|[\s:]))([A-Za-z_][A-Za-z0-9_.$]*)\+0x([0-9a-f]+)(?:/0x([0-9a-f]+))?$)");
    return re;
}

engine::Stack annotate_one(const std::string &symbol, uint64_t offset, uint64_t size,
                           const KernelDebugInfo &debuginfo) {
    engine::Frame frame;
    frame.symbol = symbol;
    frame.offset = offset;
    frame.size = size;
    return debuginfo.annotate({frame});
}

void annotate_frames(nlohmann::json &frames, const KernelDebugInfo &debuginfo) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto &f : frames) {
        if (!f.is_object() || !f.contains("symbol") || !f["symbol"].is_string() ||
            !f.contains("offset") || !f["offset"].is_number_integer() ||
            f["offset"].get<int64_t>() < 0 || f.contains("file")) {
            out.push_back(f);
            continue;
        }
        engine::Stack annotated =
            annotate_one(f["symbol"].get<std::string>(), f["offset"].get<uint64_t>(),
                         f.value("size", uint64_t{0}), debuginfo);
        for (const engine::Frame &a : annotated) {
            out.push_back(engine::finding_frame_to_json(a));
        }
    }
    frames = std::move(out);
}

// Every array of frame objects anywhere below `node`.
void annotate_tree(nlohmann::json &node, const KernelDebugInfo &debuginfo) {
    if (node.is_array()) {
        bool frames = !node.empty() && node[0].is_object() && node[0].contains("symbol") &&
                      node[0].contains("text");
        if (frames) {
            annotate_frames(node, debuginfo);
            return;
        }
        for (auto &child : node) {
            annotate_tree(child, debuginfo);
        }
    } else if (node.is_object()) {
        for (auto &[key, child] : node.items()) {
            annotate_tree(child, debuginfo);
        }
    }
}

}  // namespace

std::string annotate_report_text(const std::string &text, const KernelDebugInfo &debuginfo) {
    std::istringstream in(text);
    std::string out, line;
    std::smatch m;
    while (std::getline(in, line)) {
        if (!std::regex_match(line, m, frame_at_line_end())) {
            out += line + "\n";
            continue;
        }
        std::string prefix = m[1].str();
        uint64_t offset = std::stoull(m[3].str(), nullptr, 16);
        uint64_t size = m[4].matched ? std::stoull(m[4].str(), nullptr, 16) : 0;
        for (const engine::Frame &f : annotate_one(m[2].str(), offset, size, debuginfo)) {
            out += prefix + engine::format_frame(f) + "\n";
        }
    }
    if (!text.empty() && text.back() != '\n' && !out.empty()) {
        out.pop_back();
    }
    return out;
}

void annotate_finding_json(nlohmann::json &finding, const KernelDebugInfo &debuginfo) {
    for (const char *key : {"stacks", "paths", "acquiring", "holding", "held"}) {
        if (finding.contains(key)) {
            annotate_tree(finding[key], debuginfo);
        }
    }
    if (finding.contains("text") && finding["text"].is_string()) {
        finding["text"] = annotate_report_text(finding["text"].get<std::string>(), debuginfo);
    }
}

}  // namespace lockwatch
