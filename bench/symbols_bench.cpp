// Reading the kernel's symbol table: Kallsyms::parse() on a table the size
// of Debian 6.1's /proc/kallsyms (120,000 lines, the kernel image's in
// address order, then modules' and [bpf]'s out of order). lockwatch reads it
// at start, and again mid-run when a new module's address needs a name,
// while the traced host keeps running: its cost is lockwatch's own.
//
//   BM_KallsymsParse: symbols per second and instructions are what matter;
//     the text is built once, outside the timing.
#include <cstdint>
#include <sstream>
#include <string>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "capture/kallsyms.h"

namespace lockwatch {
namespace {

constexpr int kImageSymbols = 110000;
constexpr int kModuleSymbols = 10000;

std::string kallsyms_text() {
    std::string text;
    uint64_t address = 0xffffffff81000000ULL;
    text += fmt::format("{:016x} T _stext\n", address);
    for (int i = 0; i < kImageSymbols; ++i) {
        address += 0x40 + (i % 7) * 0x10;
        text += fmt::format("{:016x} {} {}_function_name_{}\n", address, "tTdDbBrR"[i % 8],
                            i % 3 ? "subsystem" : "a_rather_long_subsystem_prefix", i);
    }
    text += fmt::format("{:016x} B _end\n", address + 0x1000);
    for (int i = 0; i < kModuleSymbols; ++i) {
        // Modules load where the allocator finds room: out of order.
        uint64_t module_address = 0xffffffffc0000000ULL + ((i * 7919) % kModuleSymbols) * 0x100;
        text +=
            fmt::format("{:016x} t module_symbol_{}\t[module_{}]\n", module_address, i, i / 500);
    }
    return text;
}

void BM_KallsymsParse(benchmark::State &state) {
    const std::string text = kallsyms_text();
    size_t symbols = 0;
    for (auto _ : state) {
        std::istringstream in(text);
        Kallsyms table = Kallsyms::parse(in);
        symbols = table.size();
        benchmark::DoNotOptimize(symbols);
    }
    state.counters["symbols"] = static_cast<double>(symbols);
    state.counters["symbols_per_s"] =
        benchmark::Counter(static_cast<double>(symbols) * static_cast<double>(state.iterations()),
                           benchmark::Counter::kIsRate);
}
BENCHMARK(BM_KallsymsParse)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lockwatch

BENCHMARK_MAIN();
