// `lockwatch run`: attach to the live kernel, report what the lock hooks see.
#include <signal.h>
#include <sys/utsname.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "capture/capture.h"
#include "capture/kallsyms.h"
#include "commands.h"
#include "run_report.h"

namespace lockwatch {

namespace {

std::atomic<bool> g_stop{false};

void request_stop(int) {
    g_stop = true;
}

void install_stop_handlers() {
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    // No SA_RESTART: a signal must interrupt the ring-buffer poll at once.
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
}

struct RunOptions {
    double duration_s = 0;
    double interval_s = 1;
    bool verbose = false;
};

std::string kernel_release() {
    utsname u{};
    return uname(&u) == 0 ? u.release : "unknown";
}

int run(const RunOptions &options) {
    install_stop_handlers();
    std::optional<LockCapture> capture;
    std::optional<Kallsyms> kallsyms;
    try {
        kallsyms.emplace(Kallsyms::load());
        capture.emplace(CaptureOptions{.verbose = options.verbose});
    } catch (const std::exception &e) {
        fmt::print(stderr, "lockwatch: {}\n", e.what());
        return 1;
    }

    fmt::print("lockwatch: kernel {}, backend fentry\n", kernel_release());
    fmt::print("{}", format_coverage(capture->hooks()));
    if (options.duration_s > 0) {
        fmt::print("lockwatch: tracing for {:g} s (Ctrl-C stops)\n", options.duration_s);
    } else {
        fmt::print("lockwatch: tracing until Ctrl-C or SIGTERM\n");
    }
    std::fflush(stdout);

    auto on_record = [&](const lw_record &rec) {
        if (rec.type != LW_RECORD_FIRST_CALL || rec.function >= LW_FN_COUNT) {
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
            fmt::print("{}", format_interval(seconds_since_start(), options.interval_s, delta));
            std::fflush(stdout);
            next_tick += std::chrono::duration<double>(options.interval_s);
        }
    }
    capture->poll(0, on_record);

    double elapsed = seconds_since_start();
    fmt::print("{}", format_summary(elapsed, capture->hooks(), capture->read_calls(),
                                    capture->read_losses()));
    size_t attached = capture->attached_count();
    capture.reset();
    fmt::print("lockwatch: detached {} programs{}\n", attached,
               g_stop ? " (stopped by signal)" : "");
    return 0;
}

}  // namespace

CommandRunner add_run_command(CLI::App &app) {
    auto options = std::make_shared<RunOptions>();
    CLI::App *cmd = app.add_subcommand(
        "run",
        "Trace the live kernel this host runs: attach to every out-of-line spinlock and rwlock\n"
        "function, print per-function call rates every interval and a summary at the end.\n"
        "Needs root and a kernel with BTF; kernels in lockdown refuse the attach, trace a\n"
        "test VM instead (tools/vm/run-vm.sh).");
    cmd->add_option("-d,--duration", options->duration_s,
                    "Stop after SECONDS (default: run until SIGINT or SIGTERM)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("-i,--interval", options->interval_s, "Print per-function rates every SECONDS")
        ->check(CLI::PositiveNumber)
        ->default_val(1.0);
    cmd->add_flag("-v,--verbose", options->verbose, "Show libbpf's own log (verifier output)");
    return [options] { return run(*options); };
}

}  // namespace lockwatch
