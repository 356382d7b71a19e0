// The analysis engine: lockdep's classes, usage bits, dependency graph and
// checks, in user space. Feed it Events (raw lock operations or facts) and it
// calls the finding handler once per distinct bug.
//
//   lockwatch::engine::Engine eng;
//   eng.on_finding([](const Finding &f) { ... });
//   eng.process(ClassFact{1, "kioctx.ctx_lock"});
//   eng.process(AcquireEvent{...});
//
// Semantics follow kernel/locking/lockdep.c (v6.1): mark_usage()/mark_lock()
// for usage bits, check_deadlock() for recursion, check_prevs_add() for
// which edges an acquisition creates, check_noncircular() and
// check_irq_usage() on a new edge, mark_lock_irq() on a new usage bit, and
// __bfs()'s strong-path rule for read locks.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/events.h"
#include "engine/finding.h"
#include "engine/graph_view.h"
#include "engine/index_map.h"
#include "engine/stack_table.h"

namespace lockwatch::engine {

struct EngineOptions {
    // Every finding's kernel_ident: what its text prints where lockdep
    // prints the kernel ident ("5.6.0-rc2 #0 Not tainted").
    std::string kernel_ident;
    // lockdep's MAX_LOCK_DEPTH: deeper held stacks mean lost releases; the
    // oldest entry is dropped and counted.
    std::size_t max_held_depth = 48;
    // Largest CPU number accepted.
    std::uint32_t max_cpus = 8192;
    // lockdep keeps NMI acquisitions out of its graph and only checks that an
    // NMI's lock was never used outside NMI. true: track NMI held locks,
    // usage and edges like any other context (stricter than lockdep).
    bool nmi_graph = false;
    // Bounds on what hostile or runaway input can make the engine keep.
    // lockdep's own are MAX_LOCKDEP_KEYS 8192 classes and
    // MAX_LOCKDEP_ENTRIES 32768 list entries (16384 dependencies); lockwatch
    // splits some of lockdep's classes (allocation sites, first acquirers),
    // so it allows twice and four times that. What is over a bound is
    // dropped and counted in EngineStats, never half-kept. With them, one
    // graph walk is at most O(max_classes + max_edges) steps.
    std::size_t max_classes = 16384;
    std::size_t max_edges = 65536;
    // Stacks kept: the BPF stack map holds 16384 (bpf/lockwatch.bpf.c); a
    // trace may hold more, and a stack has at most 256 frames.
    std::size_t max_stacks = 65536;
    // Distinct findings kept (and their signatures, for deduplication).
    std::size_t max_findings = 4096;
};

struct EngineStats {
    std::uint64_t events = 0;
    std::uint64_t acquires = 0;
    std::uint64_t releases = 0;
    std::uint64_t unmatched_releases = 0;  // release of a lock not on any held stack
    std::uint64_t held_overflows = 0;      // held stack deeper than max_held_depth
    std::uint64_t unknown_classes = 0;     // acquires/facts naming an undeclared class
    std::uint64_t usages = 0;              // usage bits set
    std::uint64_t edges = 0;               // distinct prev -> next class pairs
    std::uint64_t bfs_runs = 0;            // full graph searches (the slow path)
    std::uint64_t findings = 0;
    std::uint64_t duplicate_findings = 0;  // same signature seen again, not reported
    std::uint64_t reported_before = 0;     // findings an earlier run reported (add_reported)
    // Over EngineOptions' bounds: dropped, with the facts that needed them.
    std::uint64_t classes_over_limit = 0;   // new classes refused (their events dropped)
    std::uint64_t edges_over_limit = 0;     // new dependencies not added
    std::uint64_t stacks_over_limit = 0;    // new stacks not kept
    std::uint64_t findings_over_limit = 0;  // new findings not reported
    std::uint64_t path_entries_elided = 0;  // path entries left out of reports
    std::uint64_t stacks_elided = 0;        // path stacks left out (kMaxReportStackBytes)
};

// "over the engine's bounds: 0 classes, 0 dependencies, 0 stacks, 0
// findings dropped; 0 path entries left out of reports"
std::string format_bounds(const EngineStats &stats);
bool any_over_bounds(const EngineStats &stats);

class Engine {
  public:
    using FindingHandler = std::function<void(const Finding &)>;

    explicit Engine(EngineOptions options = {});
    ~Engine();
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;

    // Called once per distinct finding, after the finding is stored.
    void on_finding(FindingHandler handler) { handler_ = std::move(handler); }

    void process(const Event &event);
    void add_class(const ClassFact &fact);
    void add_stack(const StackFact &fact);
    void acquire(const AcquireEvent &event);
    void release(const ReleaseEvent &event);
    void irqs_enabled(const IrqsEnabledEvent &event);
    void add_usage(const UsageFact &fact);
    void add_edge(const EdgeFact &fact);

    StackTable &stacks() { return stacks_; }
    const StackTable &stacks() const { return stacks_; }

    const std::vector<Finding> &findings() const { return findings_; }
    // A finding an earlier run reported (lockwatch run --state): one with
    // this signature is counted in reported_before, not reported again.
    // False when max_findings signatures are known already (not kept).
    bool add_reported(const std::string &signature);
    const EngineStats &stats() const { return stats_; }

    // Queries, mostly for tests and status output.
    std::size_t class_count() const { return classes_.size(); }
    std::size_t edge_count() const { return edges_.size(); }
    std::optional<std::string> class_name(ClassId id) const;
    // lockdep's get_usage_chars(): "{..-.}" without the braces; "" if unknown.
    std::string usage_string(ClassId id) const;
    bool has_usage(ClassId id, UsageBit bit) const;
    bool has_edge(ClassId prev, ClassId next) const;
    std::size_t held_depth(std::uint32_t cpu, Context ctx) const;
    // Bytes the graph holds (classes, edges, usage records, indexes), by
    // container capacity; stacks are counted separately by StackTable.
    std::size_t graph_bytes() const;
    // Every class and dependency, copied for a renderer: O(classes + edges).
    GraphView graph_view() const;

  private:
    struct UsageRecord {
        StackId stack = kNoStack;
        Task task;
        std::uint32_t cpu = 0;
        std::uint64_t time_ns = 0;
        bool inferred = false;
    };
    struct LockClass {
        ClassId id = 0;
        std::string name;
        // OR of the 8 irq usage bits of every class reachable forwards /
        // backwards (self included), ignoring the read-path rule: a superset
        // of what __bfs() can find, so an empty intersection proves that no
        // search is needed. Kept exact incrementally; each mask only grows.
        std::uint8_t fwd_mask = 0;
        std::uint8_t bwd_mask = 0;
        std::uint32_t topo = 0;  // position in a topological order of the graph
        std::array<std::uint32_t, kNumUsageBits> usage_rec{};  // index + 1 into usage_records_
        std::vector<std::uint32_t> after;   // edges this -> x (lockdep's locks_after)
        std::vector<std::uint32_t> before;  // edges x -> this (locks_before)
    };
    struct Edge {
        std::uint32_t prev = 0;
        std::uint32_t next = 0;
        bool inferred = false;
        StackId stack = kNoStack;       // where next was acquired with prev held
        StackId prev_stack = kNoStack;  // where prev was acquired
        std::uint32_t cpu = 0;
        std::uint64_t time_ns = 0;
        std::uint32_t reports = 1;  // facts that named it (GraphView::Dependency)
        Task task;
    };
    struct HeldLock {
        LockId lock = 0;
        std::uint32_t cls = 0;
        std::uint8_t read = 0;  // 0 write, 1 read, 2 recursive read
        bool trylock = false;
        bool irqs_off = false;  // this acquire disabled hardirqs (_irq/_irqsave)
        bool inferred = false;
        StackId stack = kNoStack;
    };
    struct CpuState {
        std::array<std::vector<HeldLock>, kNumContexts> held;
    };
    // A node of a breadth-first search, lockdep's struct lock_list.
    struct BfsEntry {
        std::uint32_t cls = 0;
        std::int32_t parent = -1;
        std::uint32_t edge = UINT32_MAX;  // edge that reached cls; none at the root
        std::uint8_t dep = 0;
        bool only_xr = false;
    };
    // What the current operation is, for the report.
    struct Origin {
        Task task;
        std::uint32_t cpu = 0;
        std::uint64_t time_ns = 0;
        Context context = Context::Task;
        IrqFlagsState flags;
        bool inferred = false;
        StackId stack = kNoStack;
        std::vector<HeldLock> held;  // the held locks at the time
    };
    // An acquire under check: its Origin, whose held locks are copied in only
    // when a check is about to report (the fast path copies nothing).
    struct AcquireCheck {
        Origin origin;
        const CpuState *cpu = nullptr;
        bool held_taken = false;
        // What lockdep_print_held_locks() shows: everything this CPU holds in
        // this context and the contexts it interrupted (not the new lock yet).
        const Origin &with_held();
    };
    HeldLock held_lock_of(const AcquireEvent &ev, std::uint32_t cls) const;
    // The irq state lockdep samples for this acquire, and who/where it is.
    Origin acquire_origin(const AcquireEvent &ev, const std::vector<HeldLock> &held) const;
    // mark_usage(): the usage bits this acquire sets on its class.
    void mark_usage(const HeldLock &next, const AcquireEvent &ev, AcquireCheck &check);
    // validate_chain() for a non-trylock: recursion, else the new edges.
    void validate_chain(const HeldLock &next, const AcquireEvent &ev, AcquireCheck &check);

    // The class's index, created on first sight; kNoClass (counted) when
    // max_classes are already known.
    static constexpr std::uint32_t kNoClass = IndexMap::kNone;
    std::uint32_t class_index(ClassId id, bool *created = nullptr);
    std::uint32_t find_class_index(ClassId id) const;  // kNoClass if unknown
    bool mark_lock(std::uint32_t cls, UsageBit bit, std::uint8_t read, const UsageRecord &rec,
                   const Origin &origin, const HeldLock *this_lock);
    void mark_lock_irq(std::uint32_t cls, UsageBit bit, std::uint8_t read, const Origin &origin,
                       const HeldLock *this_lock);
    // A new dependency (found: the pair's edge, or IndexMap::kNone) past
    // max_edges: counted, and the caller neither keeps nor checks it.
    bool refuse_new_edge(std::uint32_t found);
    // Adds prev -> next (found is kNone) or extends its edge `found`; runs
    // the checks when something is new. The caller looked the pair up.
    void check_prev_add(const HeldLock &prev, const HeldLock &next, std::uint32_t found,
                        const Origin &origin, std::uint32_t edge_task_cpu, std::uint64_t time_ns);
    bool check_noncircular(const HeldLock &prev, const HeldLock &next, const Origin &origin);
    bool check_irq_usage(const HeldLock &prev, const HeldLock &next, const Origin &origin);
    void check_deadlock(const HeldLock &next, const Origin &origin);
    void verify_lock_unused(std::uint32_t cls, const AcquireEvent &ev);
    // Who, where and in which context an operation ran; irq state left off.
    static Origin origin_at(const Task &task, std::uint32_t cpu, std::uint64_t time_ns,
                            Context context);

    // lockdep's __bfs(): forwards over `after` or backwards over `before`.
    // match returns true to stop; accumulate-only searches never match.
    template <typename Match>
    std::int32_t bfs(std::uint32_t root, bool root_only_xr, bool forwards, Match &&match);
    std::vector<std::uint32_t> bfs_path(std::int32_t leaf) const;  // leaf .. root

    void propagate_fwd(std::uint32_t cls, std::uint8_t bits);
    void propagate_bwd(std::uint32_t cls, std::uint8_t bits);
    bool topo_insert(std::uint32_t prev, std::uint32_t next);

    // Report building.
    LockRef lock_ref(std::uint32_t cls, StackId at, std::uint8_t read = 0) const;
    UsageTrace usage_trace(std::uint32_t cls, UsageBit bit) const;
    PathEntry path_entry(std::uint32_t cls, StackId acquired_at) const;
    std::vector<PathEntry> print_path(std::int32_t leaf, StackId root_trace) const;
    void fill_common(Finding &f, const Origin &origin) const;
    void emit(Finding &&f);

    EngineOptions options_;
    FindingHandler handler_;
    StackTable stacks_;
    std::vector<LockClass> classes_;
    // Per class, its usage bits; per edge, its DEP_{SR,ER,SN,EN}_MASK bits
    // (calc_dep()). Apart from the rest because every acquire reads them: in
    // LockClass and Edge they were a cache miss each (50,000 classes of 136
    // bytes do not stay in cache); here 2 bytes a class and 1 an edge do.
    std::vector<std::uint16_t> usage_;
    std::vector<std::uint8_t> edge_dep_;
    IndexMap class_by_id_;
    std::vector<Edge> edges_;
    IndexMap edge_by_pair_;  // edge_key(prev, next) -> edge
    std::vector<UsageRecord> usage_records_;
    std::vector<CpuState> cpus_;
    std::vector<Finding> findings_;
    std::unordered_map<std::string, std::size_t> finding_by_signature_;
    // Signature -> made again by this run (counted once in reported_before).
    std::unordered_map<std::string, bool> reported_before_;
    EngineStats stats_;

    // BFS scratch, reused: lockdep's circular queue and dep_gen_id.
    std::vector<BfsEntry> bfs_nodes_;
    void order_by_topo(std::vector<std::uint32_t> &list, std::uint32_t lb, std::uint32_t ub);
    std::vector<std::uint32_t> visited_gen_;
    std::uint32_t gen_ = 0;
    std::vector<std::uint32_t> scratch_;
    // Once an edge closes a cycle the topological order cannot hold; the
    // circular check then always searches.
    bool graph_cyclic_ = false;
    std::vector<std::uint32_t> topo_order_;  // topo position -> class index
};

// lockdep's get_usage_chars() on a usage mask.
std::string usage_chars(std::uint16_t usage_mask);

}  // namespace lockwatch::engine
