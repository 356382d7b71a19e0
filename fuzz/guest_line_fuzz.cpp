// libFuzzer target: arbitrary bytes as what a guest sends back to
// `lockwatch vm` on either channel. The line splitter must hold no line past
// its limit and account for every byte; every line must come out of
// escape_guest_text() printable and be taken or rejected by
// parse_control_line() without a crash or an exception; what it rejects
// must say why in printable text; a finding it takes must render as
// printable text and go to JSON and back whole.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "output/json.h"
#include "output/text.h"
#include "vm/vm_script.h"

namespace {

using lockwatch::escape_guest_text;

// Printable: escaping it again changes nothing; text may have newlines.
void require_printable(std::string_view text, bool multiline = false) {
    while (!text.empty()) {
        std::size_t end = multiline ? text.find('\n') : std::string_view::npos;
        std::string_view line = text.substr(0, end);
        if (escape_guest_text(line) != line) {
            std::abort();
        }
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    }
}

void check_line(std::string_view line, lockwatch::GuestOutcome &outcome) {
    require_printable(escape_guest_text(line));
    lockwatch::ControlLine parsed = lockwatch::parse_control_line(line, &outcome);
    require_printable(parsed.rejected);
    if (!parsed.finding) {
        return;
    }
    require_printable(lockwatch::output::render_text(*parsed.finding), /*multiline=*/true);
    nlohmann::json j = lockwatch::output::finding_to_json(*parsed.finding);
    (void)j.dump();  // throws on a string that is not UTF-8
    auto back = lockwatch::output::finding_from_json(j);
    if (!back || !(*back == *parsed.finding)) {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    // The first byte sets the line limit (up to 128 KiB, above a real
    // finding's 75 KiB) and the size of each read, so that the limit is
    // reached at fuzzing sizes and lines straddle reads.
    const std::size_t max_line = 1 + data[0] * 512u;
    const std::size_t read_size = 1 + data[0] % 61u;
    std::string_view input(reinterpret_cast<const char *>(data) + 1, size - 1);

    lockwatch::GuestLineSplitter splitter(max_line);
    lockwatch::GuestOutcome outcome;
    std::uint64_t accounted = 0;
    auto on_line = [&](std::string_view line, std::uint64_t dropped) {
        if (line.size() > max_line || (dropped > 0 && line.size() != max_line)) {
            std::abort();
        }
        accounted += line.size() + dropped;
        check_line(line, outcome);
    };
    for (std::size_t at = 0; at < input.size(); at += read_size) {
        splitter.feed(input.substr(at, read_size), on_line);
    }
    splitter.finish(on_line);
    std::uint64_t newlines = 0;
    for (char c : input) {
        newlines += c == '\n';
    }
    if (accounted + newlines != input.size()) {
        std::abort();  // a byte was lost without being counted
    }
    return 0;
}
