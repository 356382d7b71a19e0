// The engine's worst cases: inputs of about a megabyte that once cost
// minutes or gigabytes (issue sizes), each fed as facts and its findings
// rendered as text and JSON. Run: build/bench/engine_worst_cases
//
//   BM_IrqChain/16000        HARDIRQ-safe -> 16000-class chain -> unsafe; at
//                            20000 the chain is past the class bound
//                            (was 602 MB of text and 1.8 GB RSS: lockdep's
//                            indentation by depth)
//   BM_BigStackCycle/100     a 256-frame stack of 512-character symbols
//                            (the trace format's limits) along a 100-class
//                            cycle (was bad_alloc with a 1 MiB stack)
//   BM_Cycle/16000, /100000  one long cycle (a 100000-class one was 673 s in the
//                            signature loop: quadratic)
//   BM_ReverseChain/40000    a chain whose edges arrive against the order
//                            its classes were met (was 33 s: every insertion
//                            reorders the whole chain)
// Counters: report bytes (text + JSON), path entries elided, classes and
// dependencies over the engine's bounds, peak RSS of the process.
#include <sys/resource.h>

#include <benchmark/benchmark.h>

#include "engine/engine.h"
#include "output/json.h"
#include "output/text.h"
#include "worst_cases.h"

namespace lockwatch::engine {
namespace {

double peak_rss_bytes() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_maxrss) * 1024.0;
}

template <typename Feed>
void run(benchmark::State &state, Feed &&feed) {
    for (auto _ : state) {
        Engine eng;
        feed(eng, static_cast<std::uint32_t>(state.range(0)));
        double report_bytes = 0;
        for (const Finding &f : eng.findings()) {
            report_bytes += static_cast<double>(output::render_text(f).size());
            report_bytes += static_cast<double>(output::finding_to_json(f).dump().size());
        }
        const EngineStats &s = eng.stats();
        state.counters["findings"] = static_cast<double>(eng.findings().size());
        state.counters["report_bytes"] = report_bytes;
        state.counters["elided"] = static_cast<double>(s.path_entries_elided);
        state.counters["over_bounds"] =
            static_cast<double>(s.classes_over_limit + s.edges_over_limit);
        state.counters["peak_rss"] = peak_rss_bytes();
    }
}

void BM_IrqChain(benchmark::State &state) {
    run(state, [](Engine &eng, std::uint32_t n) { worst::irq_chain(eng, n); });
}
BENCHMARK(BM_IrqChain)->Arg(16000)->Arg(20000)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_BigStackCycle(benchmark::State &state) {
    run(state, [](Engine &eng, std::uint32_t n) {
        worst::big_stack(eng, 1, 256, 512);
        worst::cycle(eng, n, 1);
    });
}
BENCHMARK(BM_BigStackCycle)->Arg(100)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_Cycle(benchmark::State &state) {
    run(state, [](Engine &eng, std::uint32_t n) { worst::cycle(eng, n); });
}
BENCHMARK(BM_Cycle)->Arg(16000)->Arg(100000)->Unit(benchmark::kMillisecond)->Iterations(1);

void BM_ReverseChain(benchmark::State &state) {
    run(state, [](Engine &eng, std::uint32_t n) { worst::reverse_chain(eng, n); });
}
BENCHMARK(BM_ReverseChain)->Arg(16384)->Arg(40000)->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace
}  // namespace lockwatch::engine

BENCHMARK_MAIN();
