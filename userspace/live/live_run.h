// `lockwatch run`'s session: the capture, the decoder and the engine wired
// together, the findings' sinks, the periodic lines and the final report.
// run() in cmd_run.cpp calls its steps in order.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "capture/capture.h"
#include "capture/kallsyms.h"
#include "live/class_names.h"
#include "engine/engine.h"
#include "engine/trace_merge.h"
#include "state/fact_store.h"
#include "output/output_file.h"
#include "output/json.h"
#include "output/sink.h"
#include "live/fact_decoder.h"
#include "debuginfo/kernel_debuginfo.h"
#include "live/run_summary.h"

struct btf;

namespace lockwatch {

struct RunOptions {
    double duration_s = 0;
    double interval_s = 1;
    bool verbose = false;
    bool stats = false;
    bool rates = false;
    std::string backend_name = "auto";
    std::string json_out;         // "-" for standard output
    std::string graph_out;        // --graph FILE: the lock graph as dot, written at the end
    std::string record_out;       // --record FILE: every fact, in the trace format
    bool record_ops = false;      // --record-ops: and every lock operation
    bool profile_phases = false;  // --profile-phases: what each step costs
    std::string state_dir;        // --state DIR: facts and reported findings across runs
    std::uint64_t state_limit_mib = state::StateLimits{}.max_bytes >> 20;
    // Starts every JSON line (lockwatch vm: the boot's token, tools/vm/README.md).
    std::string json_line_prefix;
    bool journal = false;
    bool text = true;         // findings as lockdep's text (--no-text: JSON and journal only)
    bool json_brief = false;  // --json-brief: JSON lines without "text" and "paths"
    bool list_classes = false;
    bool alloc_sites = true;  // see CaptureOptions
    std::string ready_file;   // created once every hook is attached
    std::vector<std::string> focus;
    bool nmi_graph = false;  // NMI acquisitions in the graph (stricter than lockdep)
    Backend backend = Backend::Auto;
    std::string vmlinux;  // debug info for file:line
};

class LiveRun {
  public:
    // Checks the debug info, attaches to the kernel. Throws std::exception
    // with one line that says why tracing cannot start.
    explicit LiveRun(const RunOptions &options);
    ~LiveRun();
    LiveRun(const LiveRun &) = delete;
    LiveRun &operator=(const LiveRun &) = delete;

    // Where findings go: text, --json, --journal. False (and a printed
    // error) when an output cannot be opened.
    bool open_outputs();
    // The kernel, backend, coverage and focus lines; creates --ready-file.
    void announce() const;
    // Reads records until --duration, SIGINT/SIGTERM or SIGUSR1 (`stop`);
    // reopens --json FILE whenever `reopen` is set (SIGHUP), and clears it.
    void trace(const std::atomic<bool> &stop, std::atomic<bool> *reopen = nullptr);
    // --json FILE closed and opened again (appending): after logrotate moved
    // it. False, said on stderr, when it cannot be; findings keep going to
    // the other outputs then.
    bool reopen_json();
    // The per-function table, losses, costs and graph size (and --classes).
    void print_summary() const;
    // --graph FILE: the lock graph as Graphviz dot. False (and a printed
    // error) when the file cannot be written; true without --graph.
    bool write_graph() const;
    // Detaches and prints how long it took; returns the exit status.
    int detach(bool stopped_by_signal);
    // Findings a sink could not write (each said so on stderr), and a
    // --record file or --state directory that could not be written whole.
    std::uint64_t sink_failures() const {
        return sinks_.failures() + (record_failed_ ? 1 : 0) + (state_failed_ ? 1 : 0);
    }
    // Flushes --record FILE and says how many records it holds; false (and
    // said on stderr) when a write failed. True without --record.
    bool finish_record();
    // --state DIR: writes what is pending and says what the state holds;
    // false (and said on stderr) when a write failed. True without --state.
    bool finish_state();
    // Findings reported so far.
    std::uint64_t findings() const { return findings_; }
    // Leaves every program attached until killed (a VM powering off next).
    [[noreturn]] void stay_attached();

  private:
    void on_record(const lw_record &record);
    void process(const engine::Event &event);
    void on_finding(const engine::Finding &finding);
    void on_lockdep_off(const LockdepOff &off);
    bool open_record();
    bool open_state();
    void print_state_load() const;
    void flush_state();
    // The engine's id of a class the decoder named (--state merges by name).
    engine::ClassId engine_class(engine::ClassId decoded) const;
    void record_fact(const engine::Event &event);
    void print_interval(std::array<uint64_t, LW_FN_COUNT> &previous);
    void print_classes() const;
    void print_costs() const;
    void print_phase_costs() const;
    void print_address_class_findings() const;
    CaptureLosses read_losses() const;
    double seconds_since_start() const;

    const RunOptions &options_;
    std::unique_ptr<KernelDebugInfo> debuginfo_;
    std::optional<Kallsyms> kallsyms_;
    std::optional<KallsymsRefresher> refresher_;
    std::optional<LockCapture> capture_;
    btf *vmlinux_btf_ = nullptr;
    std::optional<ClassNamer> namer_;
    std::optional<FactDecoder> decoder_;
    engine::Engine engine_;

    // Everything but the JSON lines: stdout, or stderr when they take stdout,
    // which then carries nothing else (lockwatch vm reads it as its channel).
    std::FILE *text_out_ = stdout;
    output::MultiSink sinks_;
    output::OutputFile json_file_;
    output::JsonLinesSink *json_sink_ = nullptr;  // in sinks_, for reopen_json()
    output::OutputFile record_file_;              // --record
    std::uint64_t records_written_ = 0;
    std::uint64_t operations_written_ = 0;  // of which raw operations (--record-ops)
    bool record_failed_ = false;
    // --state: the state's facts (input 0) and this run's (input 1) in one
    // id space, classes by name; the store that keeps them.
    std::optional<engine::TraceMerge> merge_;
    std::unique_ptr<state::FactStore> state_;
    bool state_failed_ = false;  // a write failed (said once)

    std::vector<DecodedRecord> decoded_;
    std::vector<engine::EdgeFact> edges_seen_;  // for --classes
    // lockdep backend: every usage bit and edge, replayed at the end with
    // lockwatch's address classes in place of lockdep's.
    std::vector<engine::Event> lockdep_facts_;
    ClassAgreement agreement_;
    uint64_t findings_ = 0;
    uint64_t losses_at_last_finding_ = 0;
    std::optional<LockdepOff> lockdep_off_;  // lockdep backend, once lockdep turned off
    std::chrono::steady_clock::time_point start_;
};

}  // namespace lockwatch
