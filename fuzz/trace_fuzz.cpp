// libFuzzer target: arbitrary bytes as a trace. The reader must stop with an
// error or reach the end, never crash; whatever parses runs through the
// engine and every sink format that does not need the system, and every
// finding must come back whole from its JSON. Each line must read the same
// through the record reader as through the nlohmann::json DOM alone: the
// same event, or the same error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

#include "engine/engine.h"
#include "engine/trace.h"
#include "output/json.h"
#include "output/text.h"

namespace {

void check_against_reference(std::string_view text) {
    using lockwatch::engine::TraceError;
    for (std::size_t line = 1; !text.empty(); ++line) {
        const std::size_t nl = text.find('\n');
        const std::string_view record = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        std::optional<TraceError> error;
        std::optional<TraceError> reference_error;
        const auto ev = lockwatch::engine::parse_trace_record(record, line, &error);
        const auto reference =
            lockwatch::engine::parse_trace_record_reference(record, line, &reference_error);
        if (ev != reference || error.has_value() != reference_error.has_value() ||
            (error && (error->column != reference_error->column ||
                       error->message != reference_error->message))) {
            std::abort();  // the record reader and the DOM disagree
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    check_against_reference(std::string_view(reinterpret_cast<const char *>(data), size));
    std::istringstream in(std::string(reinterpret_cast<const char *>(data), size));
    lockwatch::engine::EngineOptions options;
    options.max_cpus = 64;  // keeps per-CPU state small for arbitrary cpu numbers
    lockwatch::engine::Engine eng(options);
    std::ostringstream sink_out;
    lockwatch::output::JsonLinesSink json(sink_out);
    lockwatch::output::TextSink text(sink_out);
    eng.on_finding([&](const lockwatch::engine::Finding &f) {
        json.write(f);
        text.write(f);
        auto back = lockwatch::output::finding_from_json(lockwatch::output::finding_to_json(f));
        if (!back || !(*back == f)) {
            std::abort();  // the JSON lost something
        }
    });
    lockwatch::engine::TraceReader reader(in);
    std::size_t n = 0;
    while (auto ev = reader.next()) {
        eng.process(*ev);
        if (++n > 100000) {
            break;
        }
    }
    if (reader.error()) {
        // Formatting the error must work for any input too.
        (void)reader.error()->format("fuzz");
    }
    return 0;
}
