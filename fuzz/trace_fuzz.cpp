// libFuzzer target: arbitrary bytes as a trace. The reader must stop with an
// error or reach the end, never crash; whatever parses runs through the
// engine and every sink format that does not need the system.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "engine/engine.h"
#include "engine/sinks.h"
#include "engine/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
    std::istringstream in(std::string(reinterpret_cast<const char *>(data), size));
    lockwatch::engine::EngineOptions options;
    options.max_cpus = 64;  // keeps per-CPU state small for arbitrary cpu numbers
    lockwatch::engine::Engine eng(options);
    std::ostringstream sink_out;
    lockwatch::engine::JsonLinesSink json(sink_out);
    lockwatch::engine::TextSink text(sink_out);
    eng.on_finding([&](const lockwatch::engine::Finding &f) {
        json.write(f);
        text.write(f);
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
