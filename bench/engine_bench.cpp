// Replay throughput and memory of the analysis engine on a generated
// workload: 50,000 classes, 10 million acquire/release events, nested up to
// three deep, on 8 CPUs, in task, softirq and hardirq context, with
// lockdep-consistent irq usage (so the run measures the steady state, not
// report rendering).
//
//   BM_EngineReplay: events handed to the engine as structs (the live path:
//     BPF records decoded into events).
//   BM_StateAndMerge: the graph that workload builds, as the facts the
//     kernel side sends, kept by `run --state` (bytes per class and per
//     edge), loaded back, and merged as two hosts' (`replay A B`).
//   BM_TraceReplay: the same workload as JSON-lines trace text, parsed and
//     replayed (the `lockwatch replay` path), streamed so the text is never
//     held in memory. Writing the text is not timed: the writer builds a
//     nlohmann::json DOM per record and costs more than reading it.
// Counters: events per second, bytes per class and bytes per edge measured
// from the allocator (mallinfo2) around the phases that add classes and edges,
// and the process's peak resident set so far (peak_rss_mb).
#include <malloc.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <istream>
#include <streambuf>
#include <string>

#include <benchmark/benchmark.h>

#include "engine/engine.h"
#include "engine/trace.h"
#include "engine/trace_merge.h"
#include "state/fact_store.h"

namespace lockwatch::engine {
namespace {

constexpr std::uint32_t kClasses = 50000;
constexpr std::uint64_t kEvents = 10'000'000;
constexpr std::uint32_t kCpus = 8;
constexpr std::uint32_t kStacks = 1024;

// The workload has more classes than the engine keeps by default (16384,
// twice lockdep's MAX_LOCKDEP_KEYS): it measures the engine at that scale.
EngineOptions bench_options() {
    EngineOptions o;
    o.max_classes = kClasses;
    return o;
}

// Every 16th class is an "irq" lock: always taken with irqs off, also from
// interrupts, and only other irq locks are taken under it.
bool is_irq_class(std::uint32_t c) {
    return c % 16 == 0;
}

class Workload {
  public:
    // The next event; false after kEvents.
    bool next(Event *out) {
        if (emitted_ >= kEvents) {
            return false;
        }
        if (pending_release_ == 0 && pending_acquire_ == chain_len_) {
            plan_chain();
        }
        const std::uint64_t t = ++emitted_;
        if (pending_acquire_ < chain_len_) {
            std::uint32_t c = chain_[pending_acquire_++];
            AcquireEvent a;
            a.time_ns = t;
            a.cpu = cpu_;
            a.task.pid = ctx_ == Context::Task ? static_cast<std::int32_t>(1000 + cpu_) : 0;
            a.context = ctx_;
            a.lock = (static_cast<std::uint64_t>(c) << 4) | (rand() & 3);
            lock_[pending_acquire_ - 1] = a.lock;
            a.cls = c + 1;
            a.flags = is_irq_class(c) ? acquire_flags::kIrqsOff : 0;
            bool irq_held = false;
            for (std::uint32_t i = 0; i + 1 < pending_acquire_; ++i) {
                irq_held = irq_held || is_irq_class(chain_[i]);
            }
            a.hardirqs_enabled = ctx_ != Context::Hardirq && !irq_held;
            a.softirqs_enabled = ctx_ == Context::Task;
            a.stack = 1 + c % kStacks;
            if (pending_acquire_ == chain_len_) {
                pending_release_ = chain_len_;
            }
            *out = a;
            return true;
        }
        ReleaseEvent r;
        r.time_ns = t;
        r.cpu = cpu_;
        r.context = ctx_;
        r.lock = lock_[--pending_release_];
        *out = r;
        return true;
    }

  private:
    std::uint32_t rand() {
        // xorshift32: cheap and deterministic.
        state_ ^= state_ << 13;
        state_ ^= state_ >> 17;
        state_ ^= state_ << 5;
        return state_;
    }
    void plan_chain() {
        cpu_ = rand() % kCpus;
        std::uint32_t r = rand() % 100;
        ctx_ = r < 90 ? Context::Task : (r < 98 ? Context::Softirq : Context::Hardirq);
        std::uint32_t depth = 1 + rand() % 3;
        std::uint32_t c;
        if (ctx_ == Context::Task) {
            c = rand() % kClasses;
        } else {
            c = (rand() % (kClasses / 16)) * 16;
        }
        chain_len_ = 0;
        chain_[chain_len_++] = c;
        for (std::uint32_t i = 1; i < depth; ++i) {
            // Strictly increasing classes: the order is consistent.
            std::uint32_t n;
            if (is_irq_class(c)) {
                n = (c / 16 + 1 + rand() % 2) * 16;
            } else {
                n = c + 1 + rand() % 16;
            }
            if (n >= kClasses) {
                break;
            }
            chain_[chain_len_++] = c = n;
        }
        pending_acquire_ = 0;
    }

    std::uint32_t state_ = 2463534242u;
    std::uint64_t emitted_ = 0;
    std::uint32_t cpu_ = 0;
    Context ctx_ = Context::Task;
    std::uint32_t chain_[3] = {};
    LockId lock_[3] = {};
    std::uint32_t chain_len_ = 0;
    std::uint32_t pending_acquire_ = 0;
    std::uint32_t pending_release_ = 0;
};

double peak_rss_mb() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB
}

// Small blocks (uordblks) and mmapped large ones (hblkhd, e.g. the edge vector).
std::size_t heap_in_use() {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

void add_classes_and_stacks(Engine &eng) {
    for (std::uint32_t c = 0; c < kClasses; ++c) {
        eng.process(ClassFact{
            c + 1, "bench_struct_" + std::to_string(c / 16) + ".lock_" + std::to_string(c % 16)});
    }
    for (std::uint32_t s = 1; s <= kStacks; ++s) {
        StackFact sf;
        sf.id = s;
        sf.frames = {{"_raw_spin_lock", 0x2a, 0x40, "", 0, false},
                     {"bench_fn_" + std::to_string(s), 0x10 + s, 0x400, "bench/bench.c", s, false},
                     {"do_syscall_64", 0x3b, 0xc0, "", 0, false}};
        eng.process(sf);
    }
}

// Sets each class's usage bits once, without nesting: what a class costs
// before any dependency.
void touch_every_class(Engine &eng) {
    for (std::uint32_t c = 0; c < kClasses; ++c) {
        AcquireEvent a;
        a.cls = c + 1;
        a.lock = 1;
        a.context = is_irq_class(c) ? Context::Softirq : Context::Task;
        a.flags = is_irq_class(c) ? acquire_flags::kIrqsOff : 0;
        a.softirqs_enabled = a.context == Context::Task;
        eng.process(a);
        eng.process(ReleaseEvent{0, 0, {}, a.context, 1});
    }
}

void report(benchmark::State &state, const Engine &eng, std::size_t class_bytes,
            std::size_t edge_bytes, std::uint64_t events) {
    state.counters["events"] = static_cast<double>(events);
    state.counters["events_per_s"] =
        benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
    state.counters["classes"] = static_cast<double>(eng.class_count());
    state.counters["edges"] = static_cast<double>(eng.edge_count());
    state.counters["findings"] = static_cast<double>(eng.findings().size());
    state.counters["bytes_per_class"] = static_cast<double>(class_bytes) / eng.class_count();
    state.counters["bytes_per_edge"] =
        eng.edge_count() ? static_cast<double>(edge_bytes) / eng.edge_count() : 0.0;
    state.counters["graph_bytes_accounted"] = static_cast<double>(eng.graph_bytes());
    state.counters["peak_rss_mb"] = peak_rss_mb();
}

void BM_EngineReplay(benchmark::State &state) {
    for (auto _ : state) {
        state.PauseTiming();
        std::size_t h0 = heap_in_use();
        auto eng = std::make_unique<Engine>(bench_options());
        std::size_t h_stacks0 = heap_in_use();
        add_classes_and_stacks(*eng);
        touch_every_class(*eng);
        std::size_t h1 = heap_in_use();
        std::size_t stack_bytes = eng->stacks().bytes();
        Workload w;
        Event ev;
        std::uint64_t n = 0;
        state.ResumeTiming();
        while (w.next(&ev)) {
            eng->process(ev);
            ++n;
        }
        state.PauseTiming();
        std::size_t h2 = heap_in_use();
        (void)h_stacks0;
        report(state, *eng, h1 - h0 - stack_bytes, h2 - h1, n);
        eng.reset();
        state.ResumeTiming();
    }
}
BENCHMARK(BM_EngineReplay)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

// Streams the workload as trace text: header, classes, stacks, events.
class TraceStreamBuf : public std::streambuf {
  public:
    explicit TraceStreamBuf(benchmark::State &state) : state_(state) {
        pending_ = trace_header_line() + "\n";
        for (std::uint32_t c = 0; c < kClasses; ++c) {
            pending_ +=
                trace_record_line(ClassFact{c + 1, "bench_struct_" + std::to_string(c / 16) +
                                                       ".lock_" + std::to_string(c % 16)}) +
                "\n";
        }
        for (std::uint32_t s = 1; s <= kStacks; ++s) {
            StackFact sf;
            sf.id = s;
            sf.frames = {{"_raw_spin_lock", 0x2a, 0x40, "", 0, false},
                         {"bench_fn_" + std::to_string(s), 0x10, 0x400, "bench/bench.c", s, false}};
            pending_ += trace_record_line(sf) + "\n";
        }
        setg(pending_.data(), pending_.data(), pending_.data() + pending_.size());
    }
    std::uint64_t events() const { return events_; }
    std::uint64_t bytes() const { return bytes_; }

  protected:
    int_type underflow() override {
        if (gptr() < egptr()) {
            return traits_type::to_int_type(*gptr());
        }
        state_.PauseTiming();
        pending_.clear();
        Event ev;
        while (pending_.size() < 64 * 1024 && w_.next(&ev)) {
            pending_ += trace_record_line(ev);
            pending_ += '\n';
            ++events_;
        }
        state_.ResumeTiming();
        if (pending_.empty()) {
            return traits_type::eof();
        }
        bytes_ += pending_.size();
        setg(pending_.data(), pending_.data(), pending_.data() + pending_.size());
        return traits_type::to_int_type(*gptr());
    }

  private:
    benchmark::State &state_;
    Workload w_;
    std::string pending_;
    std::uint64_t events_ = 0;
    std::uint64_t bytes_ = 0;
};

void BM_TraceReplay(benchmark::State &state) {
    for (auto _ : state) {
        state.PauseTiming();
        TraceStreamBuf buf(state);  // the header, classes and stacks
        state.ResumeTiming();
        std::istream in(&buf);
        Engine eng(bench_options());
        TraceReader reader(in);
        while (auto ev = reader.next()) {
            eng.process(*ev);
        }
        if (reader.error()) {
            state.SkipWithError(reader.error()->format("generated").c_str());
            return;
        }
        state.counters["events"] = static_cast<double>(buf.events());
        state.counters["events_per_s"] =
            benchmark::Counter(static_cast<double>(buf.events()), benchmark::Counter::kIsRate);
        state.counters["trace_bytes"] = static_cast<double>(buf.bytes());
        state.counters["findings"] = static_cast<double>(eng.findings().size());
        state.counters["peak_rss_mb"] = peak_rss_mb();
    }
}
BENCHMARK(BM_TraceReplay)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The workload's graph, built by the engine from its 10 M events.
GraphView workload_graph() {
    Engine eng(bench_options());
    add_classes_and_stacks(eng);
    Workload w;
    Event ev;
    while (w.next(&ev)) {
        eng.process(ev);
    }
    return eng.graph_view();
}

struct StateSizes {
    std::uint64_t header = 0, classes = 0, usages = 0, edges = 0, records = 0;
};

// `run --state` fed the graph as facts: a class record each, a usage fact
// per usage bit, an edge fact per dependency, each fact with one of
// kStacks stacks. The file's size after each kind.
StateSizes write_state(const GraphView &graph, const std::string &dir) {
    Engine source(bench_options());
    add_classes_and_stacks(source);  // the stacks to copy
    Engine eng(bench_options());
    TraceMerge merge({"state", "run"}, false);
    state::FactStore store(dir, {"bench", "", "bench-host"}, {.max_bytes = 1ULL << 32});
    store.load(eng, merge, 0);
    std::string error;
    auto feed = [&](Event e) {
        merge.translate(1, e);
        eng.process(e);
        store.keep(e);
    };
    StateSizes sizes{.header = store.bytes()};
    for (const GraphView::Class &c : graph.classes) {
        feed(ClassFact{c.id, c.name});
    }
    for (std::uint32_t s = 1; s <= kStacks; ++s) {
        feed(StackFact{s, *source.stacks().get(s)});
    }
    sizes.classes = store.bytes();
    for (std::size_t i = 0; i < graph.classes.size(); ++i) {
        for (int bit = 0; bit < kNumUsageBits; ++bit) {
            if (graph.classes[i].usage & (1u << bit)) {
                UsageFact u;
                u.cls = graph.classes[i].id;
                u.bit = static_cast<UsageBit>(bit);
                u.stack = static_cast<StackId>(1 + i % kStacks);
                feed(u);
            }
        }
    }
    sizes.usages = store.bytes();
    for (std::size_t i = 0; i < graph.dependencies.size(); ++i) {
        EdgeFact e;
        e.prev = graph.classes[graph.dependencies[i].prev].id;
        e.next = graph.classes[graph.dependencies[i].next].id;
        e.next_stack = static_cast<StackId>(1 + i % kStacks);
        e.hardirqs_enabled = e.softirqs_enabled = true;
        feed(e);
    }
    store.flush(&error);
    sizes.edges = store.bytes();
    sizes.records = store.stats().written;
    return sizes;
}

// `replay A B`: the traces through one TraceMerge into one engine.
std::uint64_t merge_traces(const std::vector<std::string> &files) {
    Engine eng(bench_options());
    TraceMerge merge(files);
    std::uint64_t records = 0;
    for (std::size_t i = 0; i < files.size(); ++i) {
        std::ifstream in(files[i]);
        TraceReader reader(in);
        while (auto ev = reader.next()) {
            merge.translate(i, *ev);
            eng.process(*ev);
            ++records;
        }
    }
    return records;
}

void BM_StateAndMerge(benchmark::State &state) {
    for (auto _ : state) {
        GraphView graph = workload_graph();
        std::string dir = std::filesystem::temp_directory_path() / "lockwatch-state-bench";
        std::filesystem::remove_all(dir);
        auto start = std::chrono::steady_clock::now();
        StateSizes sizes = write_state(graph, dir);
        state.counters["write_s"] = seconds_since(start);
        start = std::chrono::steady_clock::now();
        {
            Engine eng(bench_options());
            TraceMerge merge({"state", "run"}, false);
            state::FactStore store(dir, {"bench", "", "bench-host"}, {.max_bytes = 1ULL << 32});
            store.load(eng, merge, 0);
        }
        state.counters["load_records_per_s"] = sizes.records / seconds_since(start);
        std::filesystem::copy_file(dir + "/facts.trace", dir + "/second-host.trace");
        start = std::chrono::steady_clock::now();
        std::uint64_t merged = merge_traces({dir + "/facts.trace", dir + "/second-host.trace"});
        state.counters["merge_records_per_s"] = merged / seconds_since(start);
        state.counters["merge_s"] = seconds_since(start);
        state.counters["classes"] = static_cast<double>(graph.classes.size());
        state.counters["edges"] = static_cast<double>(graph.dependencies.size());
        state.counters["state_mb"] = sizes.edges / 1048576.0;
        // A class: its record, its share of the stacks, its usage facts.
        state.counters["state_bytes_per_class"] =
            static_cast<double>(sizes.usages - sizes.header) / graph.classes.size();
        state.counters["state_bytes_per_edge"] =
            static_cast<double>(sizes.edges - sizes.usages) / graph.dependencies.size();
        std::filesystem::remove_all(dir);
    }
}
BENCHMARK(BM_StateAndMerge)->Unit(benchmark::kSecond)->Iterations(1)->UseRealTime();

}  // namespace
}  // namespace lockwatch::engine

BENCHMARK_MAIN();
