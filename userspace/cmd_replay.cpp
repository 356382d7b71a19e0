// lockwatch replay FILE: run the analysis engine over a recorded trace and
// emit the findings through the same sinks as the live daemon.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "commands.h"
#include "exit_status.h"
#include "engine/engine.h"
#include "engine/trace_merge.h"
#include "engine/trace.h"
#include "debuginfo/kernel_debuginfo.h"
#include "output/host_info.h"
#include "output/journald.h"
#include "output/dot.h"
#include "output/json.h"
#include "output/output_file.h"
#include "output/text.h"

namespace lockwatch {

namespace {

struct ReplayOptions {
    std::vector<std::string> files;
    std::string format = "text";
    std::string json_out;
    std::string graph_out;
    bool journald = false;
    bool stats = false;
    bool exit_code = false;
    bool json_brief = false;
    std::string ident;
    std::string vmlinux;
    bool nmi_graph = false;
    bool from_ops = false;
};

// Standard output in --format, --json FILE, --journald. False (and a printed
// error) when the JSON file cannot be written.
bool open_sinks(const ReplayOptions &opts, output::MultiSink &sinks,
                output::OutputFile &json_file) {
    if (opts.format == "text") {
        // JSON lines on standard output (--json -) leave it to them alone.
        sinks.add(std::make_unique<output::TextSink>(opts.json_out == "-" ? stderr : stdout));
    } else if (opts.format == "json") {
        sinks.add(std::make_unique<output::JsonLinesSink>(stdout, output::host_fields(),
                                                          opts.json_brief));
    }
    if (!opts.json_out.empty()) {
        std::string error;
        json_file = output::open_output_file(opts.json_out, &error);
        if (!json_file) {
            std::fprintf(stderr, "lockwatch replay: %s\n", error.c_str());
            return false;
        }
        sinks.add(std::make_unique<output::JsonLinesSink>(json_file.get(), output::host_fields(),
                                                          opts.json_brief));
    }
    if (opts.journald) {
        sinks.add(std::make_unique<output::JournaldSink>());
    }
    return true;
}

void print_stats(const engine::Engine &eng, std::size_t lines) {
    const auto &s = eng.stats();
    std::fprintf(stderr,
                 "lockwatch replay: %zu lines, %llu events, %zu classes, %zu edges, %llu "
                 "usages, %llu findings, %llu unmatched releases\n",
                 lines, static_cast<unsigned long long>(s.events), eng.class_count(),
                 eng.edge_count(), static_cast<unsigned long long>(s.usages),
                 static_cast<unsigned long long>(s.findings),
                 static_cast<unsigned long long>(s.unmatched_releases));
    if (engine::any_over_bounds(s)) {
        std::fprintf(stderr, "lockwatch replay: %s\n", engine::format_bounds(s).c_str());
    }
}

// One trace file, or standard input for "-". The trace reader takes what the
// stream has buffered. Standard input kept in step with stdio has no buffer
// of its own and gave one byte a call: ten times the CPU time of the same
// trace from a file. A file's default 8 KiB buffer meant 27,000 read()
// calls for a 220 MB trace.
struct TraceInput {
    std::ifstream file;
    std::vector<char> buffer;
    std::istream *in = nullptr;

    bool open(const std::string &path) {
        if (path == "-") {
            std::ios::sync_with_stdio(false);  // nothing here uses C++ streams for output
            in = &std::cin;
            return true;
        }
        buffer.resize(std::size_t{1} << 20);
        file.rdbuf()->pubsetbuf(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        file.open(path, std::ios::binary);
        if (!file) {
            std::fprintf(stderr, "lockwatch replay: cannot open %s: %s\n", path.c_str(),
                         std::strerror(errno));
            return false;
        }
        in = &file;
        return true;
    }
};

// Several inputs: after each finding's report, which input (host) reported
// each fact it rests on: its chain's dependencies and its irq usages.
void print_origins(const engine::Finding &f, const engine::TraceMerge &merge) {
    auto line = [](const std::string &what, const std::vector<std::string> &from) {
        std::string hosts;
        for (const std::string &h : from) {
            hosts += (hosts.empty() ? "" : ", ") + h;
        }
        std::printf("  %s: from %s\n", what.c_str(), hosts.empty() ? "(derived)" : hosts.c_str());
    };
    std::printf("facts of \"%s\" by origin:\n", f.title.c_str());
    for (std::size_t i = 1; i < f.chain.size(); ++i) {
        line(f.chain[i - 1] + " -> " + f.chain[i],
             merge.dependency_origins(f.chain[i - 1], f.chain[i]));
    }
    for (const auto &[lock, usage] :
         {std::pair{f.safe_lock, f.safe_usage}, std::pair{f.unsafe_lock, f.unsafe_usage}}) {
        if (lock && usage) {
            line(lock->name + " " + std::string(engine::usage_bit_name(usage->bit)),
                 merge.usage_origins(lock->name, usage->bit));
        }
    }
    std::printf("\n");
}

// A trace with both facts and the operations they came from (run
// --record-ops) gives the engine one of the two: the facts, or, with
// --from-ops, the operations, for the engine to derive the graph itself.
// Classes and stacks go either way. An acquire in NMI is a fact there (the
// kernel side's verify_lock_unused() check): --record-ops excludes
// --nmi-graph, the only way an NMI acquire is an operation.
bool replayed(const engine::TraceReader &reader, const engine::Event &ev, bool from_ops) {
    if (!reader.operations_with_facts()) {
        return true;
    }
    const auto *acquire = std::get_if<engine::AcquireEvent>(&ev);
    bool nmi_check = acquire && acquire->context == engine::Context::Nmi;
    bool operation = (acquire && !nmi_check) || std::holds_alternative<engine::ReleaseEvent>(ev) ||
                     std::holds_alternative<engine::IrqsEnabledEvent>(ev);
    bool fact = nmi_check || std::holds_alternative<engine::UsageFact>(ev) ||
                std::holds_alternative<engine::EdgeFact>(ev);
    return from_ops ? !fact : !operation;
}

// Every event of each trace through one engine, stacks placed with debug
// info; with several traces, their classes merged by name. Returns the
// lines read; false in *ok on a bad line.
std::size_t feed_traces(const ReplayOptions &opts, engine::Engine &eng, engine::TraceMerge *merge,
                        const KernelDebugInfo *debuginfo, const bool &reader_gone, bool *ok) {
    std::size_t lines = 0;
    for (std::size_t i = 0; i < opts.files.size() && !reader_gone; ++i) {
        TraceInput input;  // one open file (and buffer) at a time
        if (!input.open(opts.files[i])) {
            *ok = false;
            return lines;
        }
        engine::TraceReader reader(*input.in);
        for (std::optional<engine::Event> ev; !reader_gone && (ev = reader.next());) {
            if (opts.from_ops && !reader.operations_with_facts()) {
                std::fprintf(stderr,
                             "lockwatch replay: --from-ops: %s was not recorded with run "
                             "--record-ops; replay it without --from-ops\n",
                             opts.files[i].c_str());
                *ok = false;
                return lines;
            }
            if (!replayed(reader, *ev, opts.from_ops)) {
                continue;
            }
            if (merge) {
                merge->translate(i, *ev);
            }
            if (auto *stack = std::get_if<engine::StackFact>(&*ev); stack && debuginfo) {
                stack->frames = debuginfo->annotate(stack->frames);
            }
            eng.process(*ev);
        }
        lines += reader.line();
        if (merge) {
            merge->set_origin(i, reader.hostname());
        }
        if (reader.error()) {
            const std::string source = opts.files[i] == "-" ? "<stdin>" : opts.files[i];
            std::fprintf(stderr, "lockwatch replay: %s\n", reader.error()->format(source).c_str());
            *ok = false;
            return lines;
        }
    }
    return lines;
}

int replay(const ReplayOptions &opts) {
    // Every input readable before anything is reported: a wrong name is a
    // usage error, not half a merge.
    for (const std::string &path : opts.files) {
        if (path != "-" && ::access(path.c_str(), R_OK) != 0) {
            std::fprintf(stderr, "lockwatch replay: cannot open %s: %s\n", path.c_str(),
                         std::strerror(errno));
            return kExitUsage;
        }
    }
    output::MultiSink sinks;
    output::OutputFile json_file;
    if (!open_sinks(opts, sinks, json_file)) {
        return kExitUsage;
    }
    std::unique_ptr<KernelDebugInfo> debuginfo;
    if (!opts.vmlinux.empty()) {
        try {
            debuginfo = KernelDebugInfo::open(opts.vmlinux);
        } catch (const std::exception &e) {
            std::fprintf(stderr, "lockwatch replay: %s\n", e.what());
            return kExitUsage;
        }
    }
    std::optional<engine::TraceMerge> merge;
    if (opts.files.size() > 1) {
        merge.emplace(opts.files);
    }
    engine::Engine eng(
        engine::EngineOptions{.kernel_ident = opts.ident, .nmi_graph = opts.nmi_graph});
    bool reader_gone = false;
    eng.on_finding([&](const engine::Finding &f) {
        if (!sinks.write(f) && !sinks.reader_gone() && sinks.failures() == 1) {
            std::fprintf(stderr, "lockwatch replay: %s\n", sinks.last_error().c_str());
        }
        reader_gone = reader_gone || sinks.reader_gone();
    });
    bool ok = true;
    std::size_t lines =
        feed_traces(opts, eng, merge ? &*merge : nullptr, debuginfo.get(), reader_gone, &ok);
    if (merge && opts.format == "text" && opts.json_out != "-") {
        for (const engine::Finding &f : eng.findings()) {
            print_origins(f, *merge);
        }
    }
    if (!reader_gone && !sinks.flush() && !sinks.reader_gone()) {
        std::fprintf(stderr, "lockwatch replay: %s\n", sinks.last_error().c_str());
    }
    const int found = eng.findings().empty() ? kExitNoFinding : kExitFindings;
    if (sinks.reader_gone()) {
        std::clearerr(stdout);
        return found;  // `| head`: the reader has what it wanted
    }
    if (opts.stats) {
        print_stats(eng, lines);
    }
    std::string graph_error;
    if (!opts.graph_out.empty() &&
        !output::replace_file(opts.graph_out, output::render_dot(eng.graph_view(), eng.findings()),
                              &graph_error)) {
        std::fprintf(stderr, "lockwatch replay: %s\n", graph_error.c_str());
        return kExitCannotTrace;
    }
    if (!ok || sinks.failures()) {
        return kExitCannotTrace;  // a bad input, or a finding that was not written
    }
    return found;
}

}  // namespace

CommandRunner add_replay_command(CLI::App &app) {
    auto opts = std::make_shared<ReplayOptions>();
    CLI::App *sub = app.add_subcommand(
        "replay",
        "Run the analysis engine over a recorded trace (docs/trace-format.md) and report "
        "findings in lockdep's format.");
    sub->add_option("FILE", opts->files,
                    "Trace file, '-' for standard input. Several files (hosts, runs of one "
                    "kernel build) make one graph: classes are matched by name, and each "
                    "finding's facts are listed by the file (host) that reported them")
        ->required();
    sub->add_option("--format", opts->format, "Standard output: text, json (JSON lines) or none")
        ->check(CLI::IsMember({"text", "json", "none"}));
    sub->add_option("--json", opts->json_out,
                    "Also write JSON lines (docs/json-schema.md) to FILE, appended ('-': standard "
                    "output, and the text goes to standard error)");
    sub->add_flag("--json-brief", opts->json_brief,
                  "JSON lines (--format json, --json) without the report's text and its "
                  "dependency paths");
    sub->add_option("--graph", opts->graph_out, output::kGraphOptionHelp);
    sub->add_flag("--journald", opts->journald, "Also send each finding to the systemd journal");
    sub->add_flag("--stats", opts->stats, "Print engine statistics to standard error at the end");
    // Findings exit 1 with or without it now (lockwatch --help); kept so
    // that scripts which pass it still run.
    sub->add_flag("--exit-code", opts->exit_code, "Accepted and ignored: findings always exit 1")
        ->group("");
    sub->add_flag("--nmi-graph", opts->nmi_graph,
                  "Treat acquires in NMI like any other context's (stricter than lockdep, "
                  "which only reports an NMI lock that was used outside NMI)");
    sub->add_flag("--from-ops", opts->from_ops,
                  "For traces of run --record-ops: derive the graph from the recorded lock "
                  "operations, not from the facts the kernel side derived (a cross-check of "
                  "the two; without it, the facts are replayed and the operations skipped)");
    sub->add_option("--kernel-ident", opts->ident,
                    "Text for the report's kernel line (default: lockwatch)");
    sub->add_option("--vmlinux", opts->vmlinux,
                    "The traced kernel's vmlinux with debug info: adds file:line and inlined "
                    "functions to every stack");

    return [opts] { return replay(*opts); };
}

}  // namespace lockwatch
