#include "live/live_run.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

#include <bpf/btf.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "capture/preflight.h"
#include "debuginfo/kernel_debuginfo.h"
#include "engine/finding_names.h"
#include "engine/trace.h"
#include "output/dot.h"
#include "output/host_info.h"
#include "output/journald.h"
#include "output/json.h"
#include "output/output_file.h"
#include "output/text.h"

namespace lockwatch {

namespace {

std::string kernel_release() {
    utsname u{};
    return uname(&u) == 0 ? u.release : "unknown";
}

// The vmlinux --vmlinux names, refused when it is not the running kernel's.
std::unique_ptr<KernelDebugInfo> open_running_kernel_debuginfo(const std::string &path) {
    auto debuginfo = KernelDebugInfo::open(path);
    std::string running = running_kernel_build_id();
    if (!running.empty() && !debuginfo->build_id().empty() && running != debuginfo->build_id()) {
        throw std::runtime_error(
            fmt::format("{} is not the running kernel's vmlinux (build id {}, running kernel {})",
                        path, debuginfo->build_id(), running));
    }
    return debuginfo;
}

}  // namespace

LiveRun::LiveRun(const RunOptions &options)
    : options_(options),
      engine_(
          engine::EngineOptions{.kernel_ident = kernel_release(), .nmi_graph = options.nmi_graph}) {
    // What is known to fail is said before anything is loaded, by name.
    if (auto failed = first_failure(preflight_rows(read_preflight_inputs()), options.backend)) {
        throw std::runtime_error(fmt::format(
            "cannot trace this kernel: {}: {}. 'lockwatch check' lists every requirement; "
            "trace a test VM instead: lockwatch vm --kernel debian -- COMMAND",
            failed->name, failed->detail));
    }
    if (!options.vmlinux.empty()) {
        debuginfo_ = open_running_kernel_debuginfo(options.vmlinux);
    }
    capture_.emplace(CaptureOptions{.backend = options.backend,
                                    .focus = options.focus,
                                    .nmi_graph = options.nmi_graph,
                                    .record_ops = options.record_ops,
                                    .profile_phases = options.profile_phases,
                                    .verbose = options.verbose,
                                    .alloc_sites = options.alloc_sites});
    // Read once attached, so that it has the programs' and their
    // trampolines' own symbols ([bpf] bpf_prog_*, bpf_trampoline_*), which
    // begin every stack read in a program. Read before, the first such
    // stack made the refresher read it again mid-run (the one re-read of a
    // bench/vm/cost.sh run, in its first workload run).
    std::optional<std::string> modules = read_proc_modules();
    kallsyms_.emplace(Kallsyms::load());
    refresher_.emplace(
        *kallsyms_, [] { return Kallsyms::load(); }, std::chrono::seconds(1),
        std::chrono::steady_clock::now, [] { return read_proc_modules(); }, std::move(modules));
    vmlinux_btf_ = btf__load_vmlinux_btf();
    namer_.emplace(vmlinux_btf_, &*kallsyms_, read_slab_aliases());
    namer_->use_module_btf("/sys/kernel/btf");
    decoder_.emplace(*namer_, *kallsyms_, [this](int32_t id) { return capture_->stack(id); });
    decoder_->set_debuginfo(debuginfo_.get());
    decoder_->set_refresher(&*refresher_);
    engine_.on_finding([this](const engine::Finding &finding) { on_finding(finding); });
}

LiveRun::~LiveRun() {
    btf__free(vmlinux_btf_);
}

bool LiveRun::open_outputs() {
    // Lockdep-format text and every other report on stdout (stderr when JSON
    // takes stdout), JSON lines, journald.
    text_out_ = options_.json_out == "-" ? stderr : stdout;
    if (options_.text) {
        sinks_.add(std::make_unique<output::TextSink>(text_out_));
    }
    if (!options_.json_out.empty()) {
        std::string error;
        json_file_ = output::open_output_file(options_.json_out, &error);
        if (!json_file_) {
            fmt::print(stderr, "lockwatch: {}\n", error);
            return false;
        }
        if (json_file_.get() == stdout) {
            // Unbuffered: each JSON line leaves in one write(), which a tty or
            // a pipe does not interleave with other writers (lockwatch vm
            // shares the guest's results port with the traced command).
            std::setvbuf(stdout, nullptr, _IONBF, 0);
        }
        auto json = std::make_unique<output::JsonLinesSink>(json_file_.get(), output::host_fields(),
                                                            options_.json_brief);
        json->set_line_prefix(options_.json_line_prefix);
        json_sink_ = json.get();
        sinks_.add(std::move(json));
    }
    if (options_.journal) {
        sinks_.add(std::make_unique<output::JournaldSink>(
            std::vector<std::string>{"LOCKWATCH_KERNEL=" + kernel_release()}));
    }
    return open_record() && open_state();
}

// --state DIR: the facts of earlier runs loaded before the first record of
// this one, so that this run's facts join them (a finding they make
// together is reported as this run's).
bool LiveRun::open_state() {
    if (options_.state_dir.empty()) {
        return true;
    }
    try {
        state_ = std::make_unique<state::FactStore>(
            options_.state_dir,
            state::KernelIdentity{kernel_release(), running_kernel_build_id(),
                                  output::host_info().hostname},
            state::StateLimits{options_.state_limit_mib << 20});
        merge_.emplace(std::vector<std::string>{"state", "this run"}, false);
        state_->load(engine_, *merge_, 0);
    } catch (const std::exception &e) {
        fmt::print(stderr, "lockwatch: {}\n", e.what());
        return false;
    }
    print_state_load();
    return true;
}

void LiveRun::print_state_load() const {
    const state::StateLoad &load = state_->loaded();
    if (!load.set_aside.empty()) {
        fmt::print(text_out_, "lockwatch: state: {}\n", load.set_aside);
    }
    if (load.cut_bytes) {
        fmt::print(text_out_, "lockwatch: state: cut {} bytes off the end of {}/facts.trace: {}\n",
                   load.cut_bytes, options_.state_dir, load.cut_reason);
    }
    if (load.damaged) {
        fmt::print(text_out_, "lockwatch: state: skipped {} damaged lines of {}/facts.trace: {}\n",
                   load.damaged, options_.state_dir, load.first_damage);
    }
    fmt::print(text_out_,
               "lockwatch: state {}: {} records ({} bytes) and {} reported findings from earlier "
               "runs; graph {} classes, {} edges\n",
               options_.state_dir, load.records, load.bytes, load.reported, engine_.class_count(),
               engine_.edge_count());
    std::fflush(text_out_);
}

engine::ClassId LiveRun::engine_class(engine::ClassId decoded) const {
    return merge_ ? merge_->class_of(1, decoded) : decoded;
}

// Each interval and at the end: a crash loses at most an interval's facts.
void LiveRun::flush_state() {
    std::string error;
    if (state_ && !state_->flush(&error) && !state_failed_) {
        state_failed_ = true;
        fmt::print(stderr, "lockwatch: --state: {}; facts are kept in memory and tried again\n",
                   error);
    }
}

bool LiveRun::finish_state() {
    if (!state_) {
        return true;
    }
    flush_state();
    const state::StateStats &st = state_->stats();
    fmt::print(
        text_out_,
        "lockwatch: state {}: {} new records kept ({} bytes in all); facts not kept: {} "
        "over the {} MiB limit or a count bound, {} of classes with no lasting name{}{}\n",
        options_.state_dir, st.written, state_->bytes(), st.over_limit, options_.state_limit_mib,
        st.unnamed, st.write_errors ? fmt::format(", {} failed writes", st.write_errors) : "",
        st.reported_over
            ? fmt::format("; {} findings not kept as reported (the file is full)", st.reported_over)
            : "");
    std::fflush(text_out_);
    return !state_failed_;
}

// --record FILE: the trace format's header, with the kernel and host the
// facts came from (readers ignore keys they do not know), then each fact as
// the engine gets it.
bool LiveRun::open_record() {
    if (options_.record_out.empty()) {
        return true;
    }
    std::string error;
    record_file_ = output::create_output_file(options_.record_out, &error);
    if (!record_file_) {
        fmt::print(stderr, "lockwatch: --record: {}\n", error);
        return false;
    }
    nlohmann::json header = nlohmann::json::parse(engine::trace_header_line());
    header.update(output::host_fields());
    header["recorded_by"] = "lockwatch run";
    header["backend"] = to_string(capture_->backend());
    if (options_.record_ops) {
        header[engine::kTraceOperationsKey] = engine::kTraceOperationsWithFacts;
    }
    std::fprintf(record_file_.get(), "%s\n",
                 header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return true;
}

void LiveRun::record_fact(const engine::Event &event) {
    if (!record_file_ || record_failed_) {
        return;
    }
    std::string line = engine::trace_record_line(event);
    line += '\n';
    if (std::fwrite(line.data(), 1, line.size(), record_file_.get()) != line.size()) {
        record_failed_ = true;
        fmt::print(stderr, "lockwatch: --record {}: {}; no more facts go there\n",
                   options_.record_out, std::strerror(errno));
        return;
    }
    ++records_written_;
    operations_written_ += std::holds_alternative<engine::AcquireEvent>(event) ||
                           std::holds_alternative<engine::ReleaseEvent>(event) ||
                           std::holds_alternative<engine::IrqsEnabledEvent>(event);
}

bool LiveRun::finish_record() {
    if (!record_file_) {
        return true;
    }
    if (std::fflush(record_file_.get()) != 0 && !record_failed_) {
        record_failed_ = true;
        fmt::print(stderr, "lockwatch: --record {}: {}\n", options_.record_out,
                   std::strerror(errno));
    }
    fmt::print(text_out_, "lockwatch: {} {} records{} to {}{}\n",
               record_failed_ ? "could not write all of" : "recorded", records_written_,
               options_.record_ops ? fmt::format(" ({} operations)", operations_written_) : "",
               options_.record_out, record_failed_ ? " (the file is incomplete)" : "");
    // A lost release leaves its lock held in a replay from the operations.
    if (std::uint64_t lost = options_.record_ops ? read_losses().total() : 0) {
        fmt::print(text_out_,
                   "lockwatch: --record-ops: {} records were lost while recording (see the "
                   "losses line): a replay --from-ops may miss dependencies or hold a lock "
                   "whose release was lost; narrow it with --focus\n",
                   lost);
    }
    std::fflush(text_out_);
    return !record_failed_;
}

void LiveRun::announce() const {
    Backend used = capture_->backend();
    fmt::print(text_out_, "lockwatch: kernel {}, backend {}{}: {}\n", kernel_release(),
               to_string(used), used != options_.backend ? " (auto)" : "",
               backend_reason(options_.backend, used));
    if (!backend_entry(used).flavor) {  // tracepoints, no lock function hooked
        fmt::print(text_out_,
                   "lock operations: every spin and rw lock, inlined or not, through "
                   "lock:lock_acquire and lock:lock_release\n");
    } else {
        fmt::print(text_out_, "{}", format_coverage(capture_->hooks()));
    }
    if (!capture_->focus_functions().empty()) {
        fmt::print(text_out_, "focus: only acquires inside {}\n",
                   fmt::join(capture_->focus_functions(), ", "));
    }
    if (!options_.ready_file.empty()) {
        std::string error;  // never through a planted symlink, like --json
        if (!output::open_output_file(options_.ready_file, &error)) {
            fmt::print(stderr, "lockwatch: --ready-file: {}\n", error);
        }
    }
    if (options_.duration_s > 0) {
        fmt::print(text_out_, "lockwatch: tracing for {:g} s (Ctrl-C stops)\n",
                   options_.duration_s);
    } else {
        fmt::print(text_out_, "lockwatch: tracing until Ctrl-C or SIGTERM\n");
    }
    std::fflush(text_out_);
}

CaptureLosses LiveRun::read_losses() const {
    CaptureLosses losses = capture_->read_losses();
    losses.malformed_records = decoder_->malformed_records();
    return losses;
}

double LiveRun::seconds_since_start() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void LiveRun::on_finding(const engine::Finding &finding) {
    ++findings_;
    CaptureLosses losses = read_losses();
    if (!sinks_.write(finding)) {
        fmt::print(stderr, "lockwatch: a finding sink failed: {}\n", sinks_.last_error());
    }
    // A finding made while facts were being lost may miss context (or, with
    // a lost release, be wrong): say so next to it.
    if (losses.total() != losses_at_last_finding_) {
        fmt::print(text_out_, "lockwatch: {} events were lost before this finding ({})\n",
                   losses.total(), format_losses(losses));
        losses_at_last_finding_ = losses.total();
    }
    sinks_.flush();
    std::fflush(text_out_);
    std::string error;
    if (state_ && !state_->keep_reported(finding, &error)) {
        state_failed_ = true;
        fmt::print(stderr, "lockwatch: --state: {}; this finding may be reported again\n", error);
    }
}

// Where each decoded record goes: engine events to the engine, the rest to
// this run's own report.
void LiveRun::on_record(const lw_record &record) {
    decoded_.clear();
    decoder_->decode(record, decoded_);
    for (const DecodedRecord &item : decoded_) {
        if (const auto *event = std::get_if<engine::Event>(&item)) {
            if (const auto *edge = std::get_if<engine::EdgeFact>(event)) {
                // For --classes only, and no more than the engine keeps.
                if (options_.list_classes &&
                    edges_seen_.size() < engine::EngineOptions{}.max_edges) {
                    edges_seen_.push_back(*edge);
                }
                agreement_.add_edge(edge->prev, edge->next);
            }
            if (!backend_entry(capture_->backend()).flavor &&
                (std::holds_alternative<engine::EdgeFact>(*event) ||
                 std::holds_alternative<engine::UsageFact>(*event))) {
                lockdep_facts_.push_back(*event);
            }
            record_fact(*event);
            process(*event);
        } else if (const auto *pair = std::get_if<ClassPair>(&item)) {
            agreement_.add(pair->lockdep_class, pair->derived_class, pair->derived_type,
                           pair->derived_name);
        } else if (const auto *op = std::get_if<RawOperation>(&item)) {
            record_fact(op->event);  // the trace's only: the facts above derive from it
        } else if (const auto *off = std::get_if<LockdepOff>(&item)) {
            on_lockdep_off(*off);
        } else if (const auto *first = std::get_if<FirstCall>(&item)) {
            fmt::print(text_out_, "first {}: cpu {} pid {} ({}) in {} context, called from {}\n",
                       lock_functions()[first->function].symbol, first->cpu, first->pid,
                       first->comm, to_string(first->context), first->caller);
        }
    }
}

// With --state, in the state's id space (classes by name), and kept there
// when new, before the engine sees it.
void LiveRun::process(const engine::Event &event) {
    if (state_) {
        state::keep_then_process(*state_, *merge_, 1, engine_, event);
    } else {
        engine_.process(event);
    }
}

// Said once, where a reader of each output looks: the live output, the
// journal (with --journal) and the summary.
void LiveRun::on_lockdep_off(const LockdepOff &off) {
    if (lockdep_off_) {
        return;
    }
    lockdep_off_ = off;
    std::string line = format_lockdep_off(off.time_ns / 1e9, off.tracer_flag);
    fmt::print(text_out_, "lockwatch: {}\n", line);
    std::fflush(text_out_);
    std::string error;
    if (options_.journal && !output::journal_notice(output::kLockdepOffMessageId, line, &error,
                                                    {"LOCKWATCH_KERNEL=" + kernel_release()})) {
        fmt::print(stderr, "lockwatch: the journal refused a notice: {}\n", error);
    }
}

bool LiveRun::reopen_json() {
    if (!json_sink_ || json_file_.get() == stdout) {
        return true;
    }
    json_sink_->flush();
    std::string error;
    output::OutputFile reopened = output::open_output_file(options_.json_out, &error);
    if (!reopened) {
        fmt::print(stderr,
                   "lockwatch: reopening --json after SIGHUP: {}; findings still go to "
                   "the old file\n",
                   error);
        return false;
    }
    json_sink_->set_file(reopened.get());
    json_file_ = std::move(reopened);  // closes the old one
    fmt::print(text_out_, "lockwatch: reopened {} (SIGHUP)\n", options_.json_out);
    std::fflush(text_out_);
    return true;
}

void LiveRun::trace(const std::atomic<bool> &stop, std::atomic<bool> *reopen) {
    using clock = std::chrono::steady_clock;
    start_ = clock::now();
    auto next_tick = start_ + std::chrono::duration<double>(options_.interval_s);
    auto previous = capture_->read_calls();
    auto handler = [this](const lw_record &record) { on_record(record); };
    while (!stop) {
        if (options_.duration_s > 0 && seconds_since_start() >= options_.duration_s) {
            break;
        }
        if (reopen && reopen->exchange(false)) {
            reopen_json();
        }
        auto until_tick =
            std::chrono::duration_cast<std::chrono::milliseconds>(next_tick - clock::now());
        int timeout_ms = static_cast<int>(std::clamp<int64_t>(until_tick.count(), 0, 100));
        if (capture_->poll(timeout_ms, handler) < 0) {
            fmt::print(stderr, "lockwatch: reading the ring buffer failed\n");
            break;
        }
        if (clock::now() >= next_tick) {
            flush_state();
            print_interval(previous);
            next_tick += std::chrono::duration<double>(options_.interval_s);
        }
    }
    // What is left in the ring, for at most a second: the programs keep
    // sending until detached, and a stop must not wait on them.
    auto drain_end = clock::now() + std::chrono::seconds(1);
    while (capture_->poll(0, handler) > 0 && capture_->records_left() && clock::now() < drain_end) {
    }
    if (capture_->records_left()) {
        uint64_t unread = capture_->count_unread(100);
        fmt::print(text_out_,
                   "lockwatch: stopped reading with records still arriving (the kernel sent facts "
                   "faster than they were handled): {} records left in the ring buffer are not in "
                   "this report (counted as losses)\n",
                   unread);
    }
}

void LiveRun::print_interval(std::array<uint64_t, LW_FN_COUNT> &previous) {
    auto now_calls = capture_->read_calls();
    std::array<uint64_t, LW_FN_COUNT> delta{};
    for (size_t i = 0; i < delta.size(); ++i) {
        delta[i] = now_calls[i] - previous[i];
    }
    previous = now_calls;
    if (options_.rates) {
        fmt::print(text_out_, "{}",
                   format_interval(seconds_since_start(), options_.interval_s, delta));
    }
    if (options_.stats) {
        const auto &st = engine_.stats();
        fmt::print(text_out_, "[{:7.1f}s] classes {}, usages {}, edges {}, findings {}; {}{}\n",
                   seconds_since_start(), engine_.class_count(), st.usages, st.edges, findings_,
                   format_losses(read_losses()),
                   engine::any_over_bounds(st) ? "; " + engine::format_bounds(st) : "");
    }
    std::fflush(text_out_);
}

void LiveRun::print_summary() const {
    double elapsed = seconds_since_start();
    CaptureLosses losses = read_losses();
    if (!backend_entry(capture_->backend()).flavor) {
        uint64_t ops = capture_->read_lockdep_calls();
        fmt::print(text_out_,
                   "summary after {:.1f} s:\n  lockdep tracepoints: {} lock operations, {:.0f}/s\n",
                   elapsed, ops, elapsed > 0 ? ops / elapsed : 0.0);
        fmt::print(text_out_, "  {}\n", agreement_.format());
        fmt::print(text_out_, "{}", agreement_.table([this](uint64_t id) {
            const std::string *name = decoder_->class_name(id);
            return name ? *name : std::string("?");
        }));
        print_address_class_findings();
        fmt::print(text_out_, "  lockdep: {}\n",
                   lockdep_off_
                       ? format_lockdep_off(lockdep_off_->time_ns / 1e9, lockdep_off_->tracer_flag)
                       : "on throughout (debug_locks never read as 0)");
    } else {
        fmt::print(text_out_, "{}",
                   format_summary(elapsed, capture_->hooks(), capture_->read_calls()));
    }
    fmt::print(text_out_,
               "  kmalloc classes: {} by allocation site, {} by first acquirer (allocated before "
               "attach{})\n",
               decoder_->classes_of_type(LW_CLASS_KMALLOC_ALLOC),
               decoder_->classes_of_type(LW_CLASS_KMALLOC),
               capture_->alloc_sites_attached() ? ""
               : options_.alloc_sites           ? "; no kmalloc tracepoint"
                                                : "; --no-alloc-sites");
    if (options_.list_classes) {
        print_classes();
    }
    fmt::print(text_out_, "  {}\n", format_losses(losses));
    fmt::print(text_out_, "  {}\n",
               format_symbol_rereads(refresher_->reloads(), refresher_->deferred(),
                                     refresher_->failed_reloads()));
    print_costs();
    print_phase_costs();
    const auto &st = engine_.stats();
    fmt::print(text_out_, "  graph: {} classes, {} usage bits, {} edges; {} findings{}\n",
               engine_.class_count(), st.usages, st.edges, findings_,
               state_ ? fmt::format(" ({} more reported by earlier runs, not repeated)",
                                    st.reported_before)
                      : "");
    fmt::print(text_out_, "  {}\n", engine::format_bounds(st));
    // Out now, not with the detach's first line: a script watching a log
    // file tells the report's time from the detach's.
    std::fflush(text_out_);
}

bool LiveRun::write_graph() const {
    if (options_.graph_out.empty()) {
        return true;
    }
    engine::GraphView graph = engine_.graph_view();
    std::string error;
    if (!output::replace_file(options_.graph_out, output::render_dot(graph, engine_.findings()),
                              &error)) {
        fmt::print(stderr, "lockwatch: --graph: {}\n", error);
        return false;
    }
    fmt::print(text_out_, "lockwatch: lock graph ({} classes, {} dependencies) written to {}\n",
               graph.classes.size(), graph.dependencies.size(), options_.graph_out);
    std::fflush(text_out_);
    return true;
}

void LiveRun::print_classes() const {
    fmt::print(text_out_, "lock classes seen (usage as lockdep prints it):\n");
    std::vector<std::pair<std::string, std::string>> classes;
    for (const auto &[id, name] : decoder_->class_names()) {
        classes.emplace_back(name, engine_.usage_string(engine_class(id)));
    }
    std::sort(classes.begin(), classes.end());
    for (const auto &[name, usage] : classes) {
        fmt::print(text_out_, "  {:<48} {}\n", name, usage);
    }
    fmt::print(text_out_, "lock dependencies seen (held -> acquired, context):\n");
    std::vector<std::string> deps;
    for (const auto &edge : edges_seen_) {
        const std::string *prev = decoder_->class_name(edge.prev);
        const std::string *next = decoder_->class_name(edge.next);
        deps.push_back(fmt::format("  {} -> {} ({})", prev ? *prev : "?", next ? *next : "?",
                                   engine::context_name(edge.context)));
    }
    std::sort(deps.begin(), deps.end());
    deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
    for (const auto &dep : deps) {
        fmt::print(text_out_, "{}\n", dep);
    }
}

// What lockwatch's own classes would have found in this run: lockdep's
// facts again, each class replaced by its address class where it has one.
// A merge that makes a false finding shows here, a split hides nothing new
// (its parts keep lockdep's class).
void LiveRun::print_address_class_findings() const {
    engine::Engine replay;
    std::vector<std::string> found;
    replay.on_finding([&found](const engine::Finding &f) {
        std::string names;
        for (const auto &lock : f.locks) {
            names += (names.empty() ? "" : ", ") + lock.name;
        }
        found.push_back(fmt::format("{}: {}", engine::finding_kind_name(f.kind), names));
    });
    std::set<uint64_t> announced;
    auto map = [&](uint64_t lockdep) {
        auto [derived, name] = agreement_.address_class_of(lockdep);
        uint64_t id = derived ? derived : lockdep;
        if (announced.insert(id).second) {
            const std::string *own = decoder_->class_name(lockdep);
            replay.process(engine::ClassFact{id, name ? *name : own ? *own : "?"});
        }
        return id;
    };
    for (engine::Event event : lockdep_facts_) {
        if (auto *edge = std::get_if<engine::EdgeFact>(&event)) {
            // Two classes merged into one nest as one class: no edge, as the
            // kernel side never makes a self-edge (a recursion record is
            // the same instance, and stays).
            if (edge->prev != edge->next && map(edge->prev) == map(edge->next)) {
                continue;
            }
            edge->prev = map(edge->prev);
            edge->next = map(edge->next);
            edge->prev_stack = edge->next_stack = engine::kNoStack;
        } else if (auto *usage = std::get_if<engine::UsageFact>(&event)) {
            usage->cls = map(usage->cls);
            usage->stack = engine::kNoStack;
        }
        replay.process(event);
    }
    fmt::print(text_out_, "  findings with lockwatch's address classes in place of lockdep's: {}\n",
               found.size());
    for (const std::string &f : found) {
        fmt::print(text_out_, "    {}\n", f);
    }
}

void LiveRun::print_costs() const {
    auto costs = capture_->read_costs();
    if (costs.empty()) {
        return;
    }
    uint64_t runs = 0, ns = 0;
    fmt::print(text_out_, "  cost per call (kernel.bpf_stats_enabled):\n");
    for (const auto &cost : costs) {
        runs += cost.run_count;
        ns += cost.run_time_ns;
        fmt::print(text_out_, "    {:<40} {:>10} calls {:>8.0f} ns\n", cost.program, cost.run_count,
                   static_cast<double>(cost.run_time_ns) / cost.run_count);
    }
    fmt::print(text_out_, "    {:<40} {:>10} calls {:>8.0f} ns\n", "all programs", runs,
               runs ? static_cast<double>(ns) / runs : 0.0);
}

// Each step's figure includes one stamp's own cost (LW_PHASE_STAMP, two
// stamps with nothing between), taken off here.
void LiveRun::print_phase_costs() const {
    static constexpr std::array<const char *, LW_PHASE_COUNT> kNames = {
        "stamp (taken off the others)",
        "entry: contexts, counts, focus",
        "call site",
        "stale held locks (the top's lock word)",
        "irq state, class kept for the address",
        "irq state, class read from the address",
        "class: allocation/first site",
        "class and usage bits",
        "recursion check",
        "dependencies",
        "push held",
        "release",
        "irqs on: held locks marked"};
    if (!options_.profile_phases) {
        return;
    }
    auto costs = capture_->read_phase_costs();
    double stamp = costs[LW_PHASE_STAMP].count
                       ? static_cast<double>(costs[LW_PHASE_STAMP].ns) / costs[LW_PHASE_STAMP].count
                       : 0.0;
    fmt::print(text_out_, "  cost per phase (--profile-phases; ns, instructions under icount):\n");
    for (size_t phase = 0; phase < LW_PHASE_COUNT; ++phase) {
        const lw_phase_cost &c = costs[phase];
        double mean = c.count ? static_cast<double>(c.ns) / c.count : 0.0;
        if (phase != LW_PHASE_STAMP) {
            mean = std::max(0.0, mean - stamp);
        }
        fmt::print(text_out_, "    {:<40} {:>10} times {:>8.0f} ns {:>12.0f} ns in all\n",
                   kNames[phase], c.count, mean, mean * static_cast<double>(c.count));
    }
}

void LiveRun::stay_attached() {
    fmt::print(text_out_, "lockwatch: report done, staying attached ({} programs) until killed\n",
               capture_->attached_count());
    std::fflush(text_out_);
    if (!options_.ready_file.empty()) {
        std::remove(options_.ready_file.c_str());
    }
    for (;;) {
        pause();
    }
}

int LiveRun::detach(bool stopped_by_signal) {
    // The final report is out: --ready-file goes, as after SIGUSR1.
    if (!options_.ready_file.empty()) {
        std::remove(options_.ready_file.c_str());
    }
    size_t attached = capture_->attached_count();
    fmt::print(text_out_, "lockwatch: detaching {} programs\n", attached);
    std::fflush(text_out_);
    auto detach_start = std::chrono::steady_clock::now();
    capture_.reset();
    fmt::print(
        text_out_, "lockwatch: detached {} programs in {:.1f} s{}\n", attached,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - detach_start).count(),
        stopped_by_signal ? " (stopped by signal)" : "");
    return 0;
}

}  // namespace lockwatch
