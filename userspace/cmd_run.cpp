// `lockwatch run`: attach to the live kernel, report what the lock hooks see.
#include <signal.h>

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>

#include <fmt/format.h>

#include "commands.h"
#include "exit_status.h"
#include "live/live_run.h"
#include "output/dot.h"
#include "live/service_notify.h"

namespace lockwatch {

namespace {

std::atomic<bool> g_stop{false};
// SIGUSR1: report as at the end, then stay attached until killed (a test VM
// that powers off next has no use for the detach).
std::atomic<bool> g_stay_attached{false};
// SIGHUP: reopen --json FILE (logrotate moved it), keep tracing.
std::atomic<bool> g_reopen{false};

void request_stop(int sig) {
    if (sig == SIGUSR1) {
        g_stay_attached = true;
    }
    g_stop = true;
}

void request_reopen(int) {
    g_reopen = true;
}

void install_stop_handlers() {
    struct sigaction action {};
    action.sa_handler = request_stop;
    sigemptyset(&action.sa_mask);
    // No SA_RESTART: a signal must interrupt the ring-buffer poll at once.
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGUSR1, &action, nullptr);
    action.sa_handler = request_reopen;
    sigaction(SIGHUP, &action, nullptr);
}

// --json-line-prefix: a control character would split or garble the lines.
std::string printable_text(const std::string &text) {
    for (unsigned char c : text) {
        if (c < 0x20 || c == 0x7f) {
            return "must be printable: no control characters";
        }
    }
    return "";
}

// Attach, report findings as they come, summarize, then detach (or, after
// SIGUSR1, stay attached for a VM that powers off next). Under systemd:
// READY=1 once attached, STOPPING=1 when the stop begins.
int run(const RunOptions &options) {
    install_stop_handlers();
    std::optional<LiveRun> live;
    try {
        live.emplace(options);
    } catch (const std::exception &e) {
        fmt::print(stderr, "lockwatch: {}\n", e.what());
        notify_status(fmt::format("cannot trace: {}", e.what()));
        return kExitCannotTrace;
    }
    if (!live->open_outputs()) {
        return kExitUsage;
    }
    live->announce();
    notify_ready("tracing");
    live->trace(g_stop, &g_reopen);
    notify_stopping(fmt::format("stopping after {} findings", live->findings()));
    live->print_summary();
    const bool graph_written = live->write_graph();
    const bool record_written = live->finish_record();
    const bool state_written = live->finish_state();
    if (g_stay_attached) {
        live->stay_attached();
    }
    int status = live->detach(g_stop);
    if (status != 0 || live->sink_failures() || !graph_written || !record_written ||
        !state_written) {
        return kExitCannotTrace;  // a finding that reached no output is not a clean run
    }
    return live->findings() ? kExitFindings : kExitNoFinding;
}

}  // namespace

// What a run leaves behind besides its reports: a recorded trace, the
// state the next run starts from, a picture of the graph.
void add_file_options(CLI::App *cmd, RunOptions *options) {
    CLI::Option *record =
        cmd->add_option("--record", options->record_out,
                        "Also write every fact the kernel side sends (classes, stacks, usage "
                        "bits, dependencies) to FILE in the trace format (docs/trace-format.md), "
                        "a new file in its place: lockwatch replay FILE [--vmlinux VMLINUX] "
                        "makes the same findings off the host");
    cmd->add_flag("--record-ops", options->record_ops,
                  "With --record: also every acquire, release and irqs-on as it happened (locks "
                  "as opaque ids), so that `lockwatch replay FILE --from-ops` can derive the "
                  "graph by itself. A record and a stack walk per lock operation: for a short "
                  "window or a --focus, not for a busy host (what the ring buffer drops is "
                  "counted)")
        ->needs(record);
    cmd->add_option("--state", options->state_dir,
                    "Keep what this run learns (lock classes by name, usage bits, dependencies, "
                    "their stacks) and the findings it reports in DIR (made 0700), and start from "
                    "what earlier runs kept there: a usage bit seen in one run and an order seen "
                    "in the next make their finding, and a finding is reported once, not once a "
                    "run. Crash-safe (appended, synced each interval); facts of another kernel "
                    "build are set aside. The unit uses /var/lib/lockwatch");
    cmd->add_option("--state-limit", options->state_limit_mib,
                    "Keep no new facts in --state's DIR past MIB mebibytes (counted in the "
                    "summary); a state found over it at start is set aside as facts.trace.old "
                    "and begun anew")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 20))
        ->capture_default_str();
    cmd->add_option("--graph", options->graph_out, output::kGraphOptionHelp);
}

CommandRunner add_run_command(CLI::App &app) {
    auto options = std::make_shared<RunOptions>();
    CLI::App *cmd = app.add_subcommand(
        "run",
        "Trace the live kernel this host runs: hook every out-of-line spinlock and rwlock\n"
        "function, keep lockdep's classes, usage bits and dependency graph, and report what\n"
        "lockdep would (irq-safe -> irq-unsafe, irq inversion, inconsistent state, circular,\n"
        "recursive) in lockdep's format as it happens; a summary and every loss at the end.\n"
        "Needs CAP_SYS_ADMIN and CAP_SYSLOG (root has them) and a kernel with BTF,\n"
        "CONFIG_KALLSYMS_ALL and kprobes or BPF trampolines; 'lockwatch check' says whether\n"
        "this host has them. Where not, trace a test VM instead (lockwatch vm).");
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
                    "Also write findings as JSON lines (docs/json-schema.md) to FILE, appended; "
                    "SIGHUP reopens it (logrotate). '-' puts them on standard output and "
                    "everything else lockwatch prints on standard error");
    add_file_options(cmd, options.get());
    cmd->add_flag("--json-brief", options->json_brief,
                  "JSON lines without the report's text and its dependency paths (a few KB "
                  "instead of tens)");
    cmd->add_flag("--no-text{false}", options->text,
                  "No lockdep-format text of each finding on standard output (a service that "
                  "sends them to --journal and --json already)");
    cmd->add_option("--json-line-prefix", options->json_line_prefix,
                    "Start every JSON line with TEXT (printable characters; lockwatch vm's "
                    "guest marks its own lines with the boot's token). Best given in the "
                    "environment, which ps does not show")
        ->envname("LOCKWATCH_JSON_LINE_PREFIX")
        ->check(printable_text);
    cmd->add_option("--focus", options->focus,
                    "Only track acquires made inside these kernel functions (and their "
                    "compiler copies, name.constprop.0 ...), e.g. "
                    "io_submit_one,proc_pid_lookup,free_ioctx_users. Cheaper, but blind to "
                    "anything outside: an edge needs both locks taken in scope, and a usage "
                    "bit set elsewhere is not seen")
        ->delimiter(',');
    cmd->add_flag("--no-alloc-sites{false}", options->alloc_sites,
                  "Class generic kmalloc objects by the call site of their first acquire "
                  "instead of their allocation site (no kmem:kmalloc program): to compare");
    cmd->add_flag("--nmi-graph", options->nmi_graph,
                  "Track lock operations in NMI like any other context's: held locks, usage "
                  "bits and dependencies. Stricter than lockdep, which only reports a lock "
                  "taken in NMI that was used outside NMI (the default). Not with "
                  "--record-ops, whose traces tell an NMI check from an operation by this")
        ->excludes("--record-ops");
    cmd->add_flag("--profile-phases", options->profile_phases,
                  "Print at the end what each step of the kernel side's lock operations cost "
                  "(call site, class, usage bits, dependencies, ...): bpf_ktime_get_ns() "
                  "deltas, exact instruction counts in a qemu -icount guest "
                  "(bench/vm/cost.sh --profile). Adds about two clock reads a step; off, the "
                  "verifier drops it");
    cmd->add_option("--ready-file", options->ready_file,
                    "Create FILE once tracing has started, remove it once the final report is "
                    "out (for scripts that must wait for either). SIGUSR1 ends tracing like "
                    "SIGINT but stays attached afterwards, for a VM about to power off");
    cmd->add_flag("--journal,--journald", options->journal,
                  "Also send each finding to the systemd journal (MESSAGE one line, the "
                  "report in LOCKWATCH_REPORT, a MESSAGE_ID per kind, LOCKWATCH_* fields; "
                  "journalctl LOCKWATCH_KIND=irq_safe_to_unsafe)");
    cmd->add_option("--vmlinux", options->vmlinux,
                    "The running kernel's vmlinux with debug info (checked by build id): stacks "
                    "get file:line and the functions inlined at each place")
        ->check(CLI::ExistingFile);
    cmd->add_option("--backend", options->backend_name,
                    "How to hook the lock functions: " + backend_choices_help())
        ->check(CLI::IsMember(backend_names()))
        ->default_val("auto");
    return [options] {
        options->backend = backend_named(options->backend_name).value();  // CLI checked it
        return run(*options);
    };
}

}  // namespace lockwatch
