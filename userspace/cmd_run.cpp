// `lockwatch run`: attach to the live kernel, report what the lock hooks see.
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <stdexcept>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <bpf/btf.h>

#include "capture/capture.h"
#include "capture/kallsyms.h"
#include "class_names.h"
#include "commands.h"
#include "engine/engine.h"
#include "fact_decoder.h"
#include "kernel_debuginfo.h"
#include "output/journald.h"
#include "output/json.h"
#include "output/output_file.h"
#include "output/text.h"
#include "run_report.h"

namespace lockwatch {

namespace {

std::atomic<bool> g_stop{false};
// SIGUSR1: report as at the end, then stay attached until killed (a test VM
// that powers off next has no use for the detach).
std::atomic<bool> g_stay_attached{false};

void request_stop(int sig) {
    if (sig == SIGUSR1) {
        g_stay_attached = true;
    }
    g_stop = true;
}

void install_stop_handlers() {
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    // No SA_RESTART: a signal must interrupt the ring-buffer poll at once.
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGUSR1, &action, nullptr);
}

struct RunOptions {
    double duration_s = 0;
    double interval_s = 1;
    bool verbose = false;
    bool stats = false;
    bool rates = false;
    std::string backend_name = "auto";
    std::string json_out;  // "-" for standard output
    bool journal = false;
    bool list_classes = false;
    std::string ready_file;  // created once every hook is attached
    std::vector<std::string> focus;
    Backend backend = Backend::Auto;
    std::string vmlinux;  // debug info for file:line
};

std::string backend_reason(Backend requested, Backend used) {
    switch (used) {
        case Backend::Lockdep:
            return requested == Backend::Auto
                       ? "this kernel has lockdep's lock:lock_acquire tracepoint: lockdep's own "
                         "classes, names and hardirq state, for every lock operation"
                       : "lockdep's lock:lock_acquire and lock:lock_release tracepoints";
        case Backend::Auto:
            return "kprobes on plain, _bh and trylock locks and unlocks (exact hardirq "
                   "state from EFLAGS), fentry on the _irq and _irqsave ones";
        case Backend::Fentry:
            return "fentry everywhere: hardirq state of plain acquires is inferred from held "
                   "_irq/_irqsave locks";
        case Backend::Kprobe:
            return "kprobes everywhere: exact hardirq state";
    }
    return "";
}

std::string kernel_release() {
    utsname u{};
    return uname(&u) == 0 ? u.release : "unknown";
}

int run(const RunOptions &options) {
    install_stop_handlers();
    std::optional<LockCapture> capture;
    std::optional<Kallsyms> kallsyms;
    std::unique_ptr<KernelDebugInfo> debuginfo;
    try {
        if (!options.vmlinux.empty()) {
            debuginfo = KernelDebugInfo::open(options.vmlinux);
            std::string running = running_kernel_build_id();
            if (!running.empty() && !debuginfo->build_id().empty() &&
                running != debuginfo->build_id()) {
                throw std::runtime_error(fmt::format(
                    "{} is not the running kernel's vmlinux (build id {}, running kernel {})",
                    options.vmlinux, debuginfo->build_id(), running));
            }
        }
        kallsyms.emplace(Kallsyms::load());
        capture.emplace(CaptureOptions{
            .backend = options.backend, .focus = options.focus, .verbose = options.verbose});
    } catch (const std::exception &e) {
        fmt::print(stderr, "lockwatch: {}\n", e.what());
        return 1;
    }

    fmt::print(
        "lockwatch: kernel {}, backend {}{}: {}\n", kernel_release(), to_string(capture->backend()),
        options.backend == Backend::Auto && capture->backend() == Backend::Lockdep ? " (auto)" : "",
        backend_reason(options.backend, capture->backend()));

    btf *vmlinux_btf = btf__load_vmlinux_btf();
    ClassNamer namer(vmlinux_btf, &*kallsyms, read_slab_aliases());
    FactDecoder decoder(namer, *kallsyms, [&](int32_t id) { return capture->stack(id); });
    if (debuginfo) {
        decoder.set_debuginfo(debuginfo.get());
    }
    engine::Engine engine(engine::EngineOptions{.kernel_ident = kernel_release()});

    // Findings: lockdep-format text on stdout (stderr when JSON takes
    // stdout), JSON lines, journald.
    output::MultiSink sinks;
    FILE *text_out = options.json_out == "-" ? stderr : stdout;
    sinks.add(std::make_unique<output::TextSink>(text_out));
    output::OutputFile json_file;
    if (!options.json_out.empty()) {
        std::string error;
        json_file = output::open_output_file(options.json_out, &error);
        if (!json_file) {
            fmt::print(stderr, "lockwatch: {}\n", error);
            return 1;
        }
        if (json_file.get() == stdout) {
            // Unbuffered: each JSON line leaves in one write(), which a tty or
            // a pipe does not interleave with other writers (lockwatch vm
            // shares the guest's results port with the traced command).
            std::setvbuf(stdout, nullptr, _IONBF, 0);
        }
        sinks.add(std::make_unique<output::JsonLinesSink>(json_file.get()));
    }
    if (options.journal) {
        sinks.add(std::make_unique<output::JournaldSink>(
            std::vector<std::string>{"LOCKWATCH_KERNEL=" + kernel_release()}));
    }

    uint64_t findings = 0;
    uint64_t losses_at_last_finding = 0;
    engine.on_finding([&](const engine::Finding &finding) {
        ++findings;
        CaptureLosses losses = capture->read_losses();
        if (!sinks.write(finding)) {
            fmt::print(stderr, "lockwatch: a finding sink failed: {}\n", sinks.last_error());
        }
        // A finding made while facts were being lost may miss context (or,
        // with a lost release, be wrong): say so next to it.
        if (losses.total() != losses_at_last_finding) {
            fmt::print(text_out, "lockwatch: {} events were lost before this finding ({})\n",
                       losses.total(), format_losses(losses));
            losses_at_last_finding = losses.total();
        }
        sinks.flush();
        std::fflush(text_out);
    });
    std::vector<engine::Event> events;
    std::vector<engine::EdgeFact> edges_seen;
    if (capture->backend() == Backend::Lockdep) {
        fmt::print(
            "lock operations: every spin and rw lock, inlined or not, through "
            "lock:lock_acquire and lock:lock_release\n");
    } else {
        fmt::print("{}", format_coverage(capture->hooks()));
    }
    ClassAgreement agreement;
    if (!capture->focus_functions().empty()) {
        fmt::print("focus: only acquires inside {}\n", fmt::join(capture->focus_functions(), ", "));
    }
    if (!options.ready_file.empty()) {
        if (FILE *ready = std::fopen(options.ready_file.c_str(), "w")) {
            std::fclose(ready);
        }
    }
    if (options.duration_s > 0) {
        fmt::print("lockwatch: tracing for {:g} s (Ctrl-C stops)\n", options.duration_s);
    } else {
        fmt::print("lockwatch: tracing until Ctrl-C or SIGTERM\n");
    }
    std::fflush(stdout);

    auto on_record = [&](const lw_record &rec) {
        if (rec.type == LW_RECORD_CLASS_PAIR) {
            agreement.add(rec.class_id, rec.prev_class_id, rec.class_type);
            return;
        }
        if (rec.type != LW_RECORD_FIRST_CALL) {
            events.clear();
            decoder.decode(rec, events);
            for (const auto &event : events) {
                if (const auto *edge = std::get_if<engine::EdgeFact>(&event)) {
                    edges_seen.push_back(*edge);
                }
                engine.process(event);
            }
            return;
        }
        if (rec.function >= LW_FN_COUNT) {
            return;
        }
        std::string comm(rec.comm, strnlen(rec.comm, sizeof(rec.comm)));
        fmt::print("first {}: cpu {} pid {} ({}) in {} context, called from {}\n",
                   lock_functions()[rec.function].symbol, rec.cpu, rec.pid, comm,
                   to_string(static_cast<lw_context>(rec.context)),
                   caller_of(capture->stack(rec.stack_id), *kallsyms));
    };

    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    auto next_tick = start + std::chrono::duration<double>(options.interval_s);
    auto previous = capture->read_calls();
    auto seconds_since_start = [&] {
        return std::chrono::duration<double>(clock::now() - start).count();
    };

    while (!g_stop) {
        double elapsed = seconds_since_start();
        if (options.duration_s > 0 && elapsed >= options.duration_s) {
            break;
        }
        auto until_tick =
            std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - clock::now());
        int timeout_ms = static_cast<int>(std::clamp<int64_t>(until_tick.count(), 0, 100));
        if (capture->poll(timeout_ms, on_record) < 0) {
            fmt::print(stderr, "lockwatch: reading the ring buffer failed\n");
            break;
        }
        if (clock::now() >= next_tick) {
            auto now_calls = capture->read_calls();
            std::array<uint64_t, LW_FN_COUNT> delta{};
            for (size_t i = 0; i < delta.size(); ++i) {
                delta[i] = now_calls[i] - previous[i];
            }
            previous = now_calls;
            if (options.rates) {
                fmt::print("{}", format_interval(seconds_since_start(), options.interval_s, delta));
            }
            if (options.stats) {
                const auto &st = engine.stats();
                fmt::print("[{:7.1f}s] classes {}, usages {}, edges {}, findings {}; {}\n",
                           seconds_since_start(), engine.class_count(), st.usages, st.edges,
                           findings, format_losses(capture->read_losses()));
            }
            std::fflush(stdout);
            next_tick += std::chrono::duration<double>(options.interval_s);
        }
    }
    capture->poll(0, on_record);

    double elapsed = seconds_since_start();
    CaptureLosses losses = capture->read_losses();
    if (capture->backend() == Backend::Lockdep) {
        uint64_t ops = capture->read_lockdep_calls();
        fmt::print("summary after {:.1f} s:\n  lockdep tracepoints: {} lock operations, {:.0f}/s\n",
                   elapsed, ops, elapsed > 0 ? ops / elapsed : 0.0);
        fmt::print("  {}\n", agreement.format());
    } else {
        fmt::print("{}", format_summary(elapsed, capture->hooks(), capture->read_calls()));
    }
    const auto &st = engine.stats();
    if (options.list_classes) {
        fmt::print("lock classes seen (usage as lockdep prints it):\n");
        std::vector<std::pair<std::string, std::string>> classes;
        for (const auto &[id, name] : decoder.class_names()) {
            classes.emplace_back(name, engine.usage_string(id));
        }
        std::sort(classes.begin(), classes.end());
        for (const auto &[name, usage] : classes) {
            fmt::print("  {:<48} {}\n", name, usage);
        }
        fmt::print("lock dependencies seen (held -> acquired, context):\n");
        std::vector<std::string> deps;
        for (const auto &edge : edges_seen) {
            const std::string *prev = decoder.class_name(edge.prev);
            const std::string *next = decoder.class_name(edge.next);
            deps.push_back(fmt::format("  {} -> {} ({})", prev ? *prev : "?", next ? *next : "?",
                                       engine::context_name(edge.context)));
        }
        std::sort(deps.begin(), deps.end());
        deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
        for (const auto &dep : deps) {
            fmt::print("{}\n", dep);
        }
    }
    fmt::print("  {}\n", format_losses(losses));
    if (auto costs = capture->read_costs(); !costs.empty()) {
        uint64_t runs = 0, ns = 0;
        fmt::print("  cost per call (kernel.bpf_stats_enabled):\n");
        for (const auto &cost : costs) {
            runs += cost.run_count;
            ns += cost.run_time_ns;
            fmt::print("    {:<40} {:>10} calls {:>8.0f} ns\n", cost.program, cost.run_count,
                       static_cast<double>(cost.run_time_ns) / cost.run_count);
        }
        fmt::print("    {:<40} {:>10} calls {:>8.0f} ns\n", "all programs", runs,
                   runs ? static_cast<double>(ns) / runs : 0.0);
    }
    fmt::print("  graph: {} classes, {} usage bits, {} edges; {} findings\n", engine.class_count(),
               st.usages, st.edges, findings);
    btf__free(vmlinux_btf);
    size_t attached = capture->attached_count();
    if (g_stay_attached) {
        fmt::print("lockwatch: report done, staying attached ({} programs) until killed\n",
                   attached);
        std::fflush(stdout);
        if (!options.ready_file.empty()) {
            std::remove(options.ready_file.c_str());
        }
        for (;;) {
            pause();
        }
    }
    fmt::print("lockwatch: detaching {} programs\n", attached);
    std::fflush(stdout);
    auto detach_start = clock::now();
    capture.reset();
    fmt::print("lockwatch: detached {} programs in {:.1f} s{}\n", attached,
               std::chrono::duration<double>(clock::now() - detach_start).count(),
               g_stop ? " (stopped by signal)" : "");
    return 0;
}

}  // namespace

CommandRunner add_run_command(CLI::App &app) {
    auto options = std::make_shared<RunOptions>();
    CLI::App *cmd = app.add_subcommand(
        "run",
        "Trace the live kernel this host runs: hook every out-of-line spinlock and rwlock\n"
        "function, keep lockdep's classes, usage bits and dependency graph, and report what\n"
        "lockdep would (irq-safe -> irq-unsafe, irq inversion, inconsistent state, circular,\n"
        "recursive) in lockdep's format as it happens; a summary and every loss at the end.\n"
        "Needs root and a kernel with BTF; kernels in lockdown refuse the attach: trace a\n"
        "test VM instead (lockwatch vm).");
    cmd->add_option("-d,--duration", options->duration_s,
                    "Stop after SECONDS (default: run until SIGINT or SIGTERM)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("-i,--interval", options->interval_s, "Print per-function rates every SECONDS")
        ->check(CLI::PositiveNumber)
        ->default_val(1.0);
    cmd->add_flag("-v,--verbose", options->verbose, "Show libbpf's own log (verifier output)");
    cmd->add_flag("--stats", options->stats,
                  "Print the graph size and every loss counter each interval");
    cmd->add_flag("--rates", options->rates, "Print per-function call rates each interval");
    cmd->add_flag("--classes", options->list_classes,
                  "At the end, list every lock class seen with its usage string");
    cmd->add_option("--json", options->json_out,
                    "Also write findings as JSON lines (docs/json-schema.md) to FILE; '-' puts "
                    "them on standard output and moves the text reports to standard error");
    cmd->add_option("--focus", options->focus,
                    "Only track acquires made inside these kernel functions (and their "
                    "compiler copies, name.constprop.0 ...), e.g. "
                    "io_submit_one,proc_pid_lookup,free_ioctx_users. Cheaper, but blind to "
                    "anything outside: an edge needs both locks taken in scope, and a usage "
                    "bit set elsewhere is not seen")
        ->delimiter(',');
    cmd->add_option("--ready-file", options->ready_file,
                    "Create FILE once tracing has started, remove it once the final report is "
                    "out (for scripts that must wait for either). SIGUSR1 ends tracing like "
                    "SIGINT but stays attached afterwards, for a VM about to power off");
    cmd->add_flag("--journal,--journald", options->journal,
                  "Also send each finding to the systemd journal (MESSAGE = the report, "
                  "LOCKWATCH_* fields; journalctl LOCKWATCH_KIND=irq_safe_to_unsafe)");
    cmd->add_option("--vmlinux", options->vmlinux,
                    "The running kernel's vmlinux with debug info (checked by build id): stacks "
                    "get file:line and the functions inlined at each place")
        ->check(CLI::ExistingFile);
    cmd->add_option("--backend", options->backend_name,
                    "How to hook the lock functions: auto (lockdep where the kernel has it, "
                    "else kprobes on plain and _bh locks and unlocks, fentry on _irq/_irqsave "
                    "ones), fentry (fastest; hardirq state inferred), kprobe (exact "
                    "everywhere), lockdep (lockdep's tracepoints and classes; kernels built "
                    "with lockdep only)")
        ->check(CLI::IsMember({"auto", "fentry", "kprobe", "lockdep"}))
        ->default_val("auto");
    return [options] {
        options->backend = options->backend_name == "fentry"    ? Backend::Fentry
                           : options->backend_name == "kprobe"  ? Backend::Kprobe
                           : options->backend_name == "lockdep" ? Backend::Lockdep
                                                                : Backend::Auto;
        return run(*options);
    };
}

}  // namespace lockwatch
