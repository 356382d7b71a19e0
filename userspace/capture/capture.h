// The BPF boundary: the only code that touches the skeleton, libbpf and the
// kernel's maps. Everything above it sees plain C++ values.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "capture/attach_error.h"
#include "capture/backends.h"
#include "capture/lock_functions.h"
#include "lockwatch.h"

struct lockwatch_bpf;
struct ring_buffer;
struct bpf_program;
struct bpf_link;
struct btf;

namespace lockwatch {

class Kallsyms;

// One clear line that explains why capture cannot start.
class CaptureError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct CaptureOptions {
    Backend backend = Backend::Auto;
    // Only acquires made inside these functions (or their compiler copies)
    // become facts; releases are always tracked. Empty: everything.
    std::vector<std::string> focus;
    // NMI acquisitions become held locks, usage bits and edges; by default
    // only lockdep's verify_lock_unused() check runs on them.
    bool nmi_graph = false;
    // Every acquire, release and irqs-on as a record too (LW_RECORD_OP_*).
    bool record_ops = false;
    // What each step of an operation costs, in phase_costs (enum lw_phase).
    bool profile_phases = false;
    bool verbose = false;  // pass libbpf's own log through to stderr
    // Key generic kmalloc classes by allocation site (the kmem:kmalloc
    // tracepoint); off: by the first acquirer's call site only.
    bool alloc_sites = true;
};

// What the capture could not see, summed over CPUs.
struct CaptureLosses {
    std::array<uint64_t, LW_LOSS_COUNT> bpf{};  // counted by our programs
    std::array<uint64_t, LW_NOTE_COUNT> notes{};
    uint64_t kernel_recursion_misses = 0;  // the kernel skipped a program: it was already running
    // What kernel_recursion_misses leaves out when kprobe programs are
    // attached: a kprobe hit inside another kprobe's handler is dropped
    // before any BPF program is asked (the kprobe's own `nmissed`), and
    // before 6.7 a kprobe program skipped for another BPF program running
    // on its CPU (bpf_prog_active) is not counted either.
    enum class KprobeSkips { None, InsideKprobesUncounted, Uncounted };
    KprobeSkips kprobe_skips = KprobeSkips::None;
    // The lockdep backend's recursion misses: the tracepoints fire for the
    // program's own rcu_read_lock()/unlock() around every run and for the
    // locks of the maps and ring buffer it uses, so nearly all of these are
    // lockwatch's own lock operations, not the kernel's. A note, not a loss;
    // kernel lock operations really missed show up as unmatched releases.
    uint64_t skipped_nested_tracepoints = 0;
    uint64_t short_records = 0;      // ring-buffer records too short to decode
    uint64_t malformed_records = 0;  // records the decoder did not understand
    uint64_t unread_at_stop = 0;     // records still in the ring when reading stopped
    uint64_t total() const;
};

class LockCapture {
  public:
    using RecordHandler = std::function<void(const lw_record &)>;

    // Discovers the lock functions, loads the BPF object and attaches every
    // program it can. Throws CaptureError when nothing could be attached.
    explicit LockCapture(const CaptureOptions &options);
    ~LockCapture();
    LockCapture(const LockCapture &) = delete;
    LockCapture &operator=(const LockCapture &) = delete;

    const std::vector<HookStatus> &hooks() const { return hooks_; }
    // The kernel functions --focus attached to (compiler copies included).
    const std::vector<std::string> &focus_functions() const { return focus_functions_; }
    // Programs attached (lock hooks, or the lockdep tracepoints).
    size_t attached_count() const;

    // Totals since attach, summed over CPUs.
    std::array<uint64_t, LW_FN_COUNT> read_calls() const;
    uint64_t read_lockdep_calls() const;  // lockdep backend: spin/rw lock operations
    CaptureLosses read_losses() const;
    // Whether kmalloc objects are classed by their allocation site.
    bool alloc_sites_attached() const { return alloc_sites_attached_; }
    // The backend in use: auto resolved to the one it picked.
    Backend backend() const { return backend_->backend; }

    // Per-program run time, when the kernel counts it (sysctl
    // kernel.bpf_stats_enabled=1); empty otherwise.
    struct ProgramCost {
        std::string program;  // e.g. "kprobe/_raw_spin_lock"
        uint64_t run_count = 0;
        uint64_t run_time_ns = 0;
    };
    std::vector<ProgramCost> read_costs() const;
    // --profile-phases: each step's total ns and count, summed over CPUs.
    std::array<lw_phase_cost, LW_PHASE_COUNT> read_phase_costs() const;

    // Waits up to timeout_ms for records and hands each to `handler`, for
    // at most kConsumeSliceMs of handling: a caller sees its stop flag in
    // time however fast the kernel sends. Returns the number of records
    // handled (negative: reading the ring buffer failed).
    int poll(int timeout_ms, const RecordHandler &handler);
    // Whether the last poll() stopped at its time slice, with records
    // (most likely) still in the ring.
    bool records_left() const { return slice_spent_; }
    static constexpr int kConsumeSliceMs = 50;
    // At a stop with records_left(): reads what is still in the ring for
    // at most `budget_ms` without handling it, so that it is counted as
    // lost (read_losses().unread_at_stop) instead of left unsaid. Returns
    // how many records that was.
    uint64_t count_unread(int budget_ms);

    // The kernel stack recorded under `stack_id`, innermost frame first.
    std::vector<uint64_t> stack(int32_t stack_id) const;

    // Where the programs that keep the BPF side's class caches true can
    // attach (capture.cpp, class_cache_guards).
    struct ClassCacheGuards {
        bool cache_release = false;     // slab_kmem_cache_release in BTF
        bool kfence = false;            // the kernel has __kfence_alloc
        std::string address_cache_off;  // why lock addresses' classes are not kept, or ""
    };

  private:
    std::array<uint64_t, LW_FN_SLOTS> read_call_slots() const;
    using VmlinuxBtf = std::unique_ptr<btf, void (*)(btf *)>;
    struct KernelCheck {
        VmlinuxBtf vmlinux_btf;
        bool has_lockdep_tracepoints;
    };

    // The constructor's steps, in order.
    KernelCheck check_kernel() const;
    void choose_backend(Backend requested, const KernelCheck &kernel);
    void open_programs();
    void plan_hooks(const std::vector<std::string> &focus, const Kallsyms &kallsyms,
                    const std::array<Availability, LW_FN_COUNT> &availability);
    void load(bool verbose);
    void attach_in_order();
    void open_ring_buffer();

    void plan_focus(const std::vector<std::string> &focus, const Kallsyms &kallsyms);
    // One per probe type; the first two throw, a lock hook that fails to
    // attach is marked AttachFailed with the reason.
    void attach_focus_kprobes();
    void attach_raw_tracepoint(const TracepointHook &tracepoint);
    void attach_alloc_sites();    // the kmem:kmalloc tracepoint; a failure is only noted
    void attach_cache_release();  // slab_kmem_cache_release's fentry; likewise
    void attach_slab_free();      // __free_slab's (and __kfence_alloc's) fentry and fexit
    std::vector<bpf_program *> address_cache_guards() const;
    void attach_lock_hook(HookStatus &hook);  // kprobe/kretprobe or fentry/fexit

    void release();
    static int on_ring_record(void *ctx, void *data, size_t size);

    std::vector<bpf_program *> programs_for(const HookStatus &hook) const;
    bpf_program *tracepoint_program() const;

    TracingEnvironment env_;
    const BackendEntry *backend_ = nullptr;
    lockwatch_bpf *skel_ = nullptr;
    ring_buffer *records_ = nullptr;
    std::vector<bpf_link *> links_;
    size_t tracepoint_links_ = 0;
    bool alloc_sites_wanted_ = true;
    ClassCacheGuards guards_;
    bool kernel_counts_kprobe_skips_ = true;
    bool kprobes_attached_ = false;
    mutable std::array<uint64_t, LW_FN_SLOTS> last_call_slots_{};
    bool alloc_sites_attached_ = false;
    std::vector<HookStatus> hooks_;
    std::vector<std::string> focus_functions_;
    const RecordHandler *handler_ = nullptr;
    std::chrono::steady_clock::time_point slice_end_;
    uint64_t slice_records_ = 0;
    bool slice_spent_ = false;
    uint64_t short_records_ = 0;
    uint64_t unread_at_stop_ = 0;
};

std::string_view to_string(lw_loss loss);
std::string_view to_string(lw_note note);
std::string_view to_string(lw_context context);

}  // namespace lockwatch
