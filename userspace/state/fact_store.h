// lockwatch run --state DIR: the facts a run learned (classes, usage bits,
// dependencies and their stacks) and the findings it reported, kept in DIR
// so that the next run starts from them. A usage bit seen on Monday and an
// ordering seen on Tuesday then make the finding lockdep would have made had
// both happened in one boot, and a finding is reported once, not once a run.
//
// DIR holds two append-only files:
//   facts.trace  the trace format (docs/trace-format.md): a header naming the
//                kernel, then one record per fact, classes by name
//                (TraceMerge::class_id_of_name), stacks numbered by the file,
//                so `lockwatch replay DIR/facts.trace` and a fleet merge read
//                it as they read a --record file;
//   reported     one line per finding reported: "SIGNATURE KIND TITLE", at
//                most EngineOptions::max_findings lines.
// Crash safety: only whole lines are handed to write(2), and the files are
// fdatasync'ed at each flush. A crash can still cut the last write short:
// at load a last line without its newline is cut off (a torn write loses at
// most the facts of the last flush, never the file), and a complete line
// that does not parse is skipped and counted, the lines after it kept.
// Policy at the bounds: past StateLimits::max_bytes no new fact is kept
// (counted); a state found over the limit at start, or of another kernel
// build, is set aside as facts.trace.old (with reported.old; the previous
// .old files are replaced) and a new one begun. Only facts new to the state
// are written, so a restarted daemon that sees the same locks adds nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "engine/engine.h"
#include "engine/trace_merge.h"

namespace lockwatch::state {

// What the facts were learned on: class names (struct member paths, symbols)
// hold for one kernel build; another build's facts are set aside, not mixed.
struct KernelIdentity {
    std::string release;   // uname -r
    std::string build_id;  // the running kernel's GNU build id, "" if unknown
    std::string hostname;  // a merge's origin label
};

struct StateLimits {
    // 64 MiB: a graph of 50,000 classes and 65,536 edges (the engine's
    // bound) with their usage bits and stacks is 27 MiB (bench/engine_bench,
    // BM_StateAndMerge: 353 bytes a class, 158 an edge).
    std::uint64_t max_bytes = std::uint64_t{64} << 20;
};

// What opening the state found, for the run's first lines.
struct StateLoad {
    bool created = false;         // no facts.trace yet (or one set aside)
    std::string set_aside;        // "facts of kernel X set aside as facts.trace.old"
    std::uint64_t records = 0;    // records read back: facts and their stacks
    std::uint64_t reported = 0;   // signatures of findings reported before
    std::uint64_t cut_bytes = 0;  // a torn tail cut off
    std::string cut_reason;       // why ("line 812 is incomplete"), "" if nothing was cut
    std::uint64_t damaged = 0;    // complete lines that did not parse: skipped
    std::string first_damage;     // the first of them, why
    std::uint64_t bytes = 0;      // facts.trace's size after loading
};

struct StateStats {
    std::uint64_t written = 0;        // records appended by this run: facts, stacks
    std::uint64_t over_limit = 0;     // new facts not kept: max_bytes or a count bound reached
    std::uint64_t unnamed = 0;        // facts of a class with no name that holds across
                                      // runs (none, a placeholder, one another lock has)
    std::uint64_t reported_over = 0;  // findings not kept: `reported` is full
    std::uint64_t write_errors = 0;   // flushes that failed (the facts stay pending)
};

class FactStore {
  public:
    // Opens DIR (made 0700 if missing; a symbolic link at DIR or at either
    // file is refused). Throws std::runtime_error with one line that says
    // what to do.
    FactStore(const std::string &dir, const KernelIdentity &kernel, StateLimits limits = {});
    ~FactStore();
    FactStore(const FactStore &) = delete;
    FactStore &operator=(const FactStore &) = delete;

    // Reads the reported signatures into `engine`, then the facts through
    // input `input` of `merge` (findings they make that no earlier run
    // reported are reported now). Facts of another kernel build are set
    // aside as facts.trace.old and a new state begun. Throws as above.
    // O(records in the state).
    void load(engine::Engine &engine, engine::TraceMerge &merge, std::size_t input);

    const StateLoad &loaded() const { return load_; }
    const StateStats &stats() const { return stats_; }
    std::uint64_t bytes() const { return bytes_ + pending_.size(); }

    // An event as the engine got it (merged ids): kept, with its stacks,
    // when it is a class, usage bit or dependency the state lacks. O(1).
    void keep(const engine::Event &event);
    // A finding reported: its signature is written at once (with a flush),
    // so a crash right after the report does not report it again. False,
    // with one line in *error, when the write failed.
    bool keep_reported(const engine::Finding &finding, std::string *error);
    // Writes the pending facts and syncs them. False, with one line in
    // *error, when the write failed; the facts stay pending for the next.
    bool flush(std::string *error);

  private:
    void open_dir(const std::string &dir);
    int open_file(const char *name) const;
    std::size_t read_facts(std::string *text);
    void load_reported(engine::Engine &engine);
    void set_aside(const std::string &why);
    void start_new(const std::string &why);
    void apply_records(const std::string &text, std::size_t body, engine::Engine &engine,
                       engine::TraceMerge &merge, std::size_t input);
    void apply_record(std::string_view line, std::size_t number, engine::Engine &engine,
                      engine::TraceMerge &merge, std::size_t input);
    void cut_at(std::uint64_t offset, std::uint64_t size, std::string reason);
    void sync_dir() const;
    static engine::StackId largest_stack_named(const engine::Event &event);
    // Marks what an event adds as kept; false when the state had it already
    // or cannot keep it (counted).
    bool note_new(const engine::Event &event);
    bool keepable_class(const engine::ClassFact &fact);
    bool insert_bounded(std::unordered_set<std::string> &set, std::string key, std::size_t most);
    void keep_stack(engine::StackId *id);
    void append(const engine::Event &event);
    bool write_reported(const engine::Finding &finding, std::string *error);

    std::string dir_;
    KernelIdentity kernel_;
    int dir_fd_ = -1;
    int facts_fd_ = -1;
    int reported_fd_ = -1;
    StateLimits limits_;
    const engine::Engine *engine_ = nullptr;
    StateLoad load_;
    StateStats stats_;
    std::uint64_t bytes_ = 0;  // written to facts.trace
    std::string pending_;      // whole lines not yet written
    std::unordered_set<engine::ClassId> classes_;
    std::unordered_set<std::string> usages_;  // class id, bit
    std::unordered_set<std::string> edges_;   // prev, next, context, reads
    // Merged stack id -> its id in facts.trace: the file's own numbering,
    // which new stacks continue (merged ids restart at 1 each run).
    std::unordered_map<engine::StackId, engine::StackId> file_stacks_;
    engine::StackId last_file_stack_ = 0;
    std::uint64_t reported_lines_ = 0;
};

// A live event: into the state's ids (input `input` of `merge`), kept when
// new, then to the engine, so that a finding it makes is written to the
// state after the facts that made it.
void keep_then_process(FactStore &state, engine::TraceMerge &merge, std::size_t input,
                       engine::Engine &engine, engine::Event event);

}  // namespace lockwatch::state
