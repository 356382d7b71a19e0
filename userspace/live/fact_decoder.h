// The one place where a ring-buffer record becomes something user space
// acts on: engine events (classes, stacks, usages, edges, recursion) for the
// analysis, and the two records the engine has no use for (a lock function's
// first call, the lockdep backend's class pairs) for the run's own report.
// Every record type is handled in one switch without a default, compiled
// with -Wswitch-enum: a new record type cannot be dropped unnoticed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "live/class_names.h"
#include "engine/events.h"
#include "lockwatch.h"

namespace lockwatch {

class Kallsyms;
class KallsymsRefresher;

// One return address as a frame: "func+0x1c/0x90", "func+0x1c/0x90 [mod]",
// or, when no symbol covers it, its offset in its region (engine::Frame).
// The address itself never leaves this function.
engine::Frame symbolize_frame(uint64_t ip, const Kallsyms &kallsyms);

// Kernel stack read inside a lockwatch program (innermost first) as frames,
// starting at the lock function: the BPF program and trampoline above it
// are dropped, named or not (unnamed ones lie in the module area before the
// first named frame that is not BPF's). Every other frame is kept, named or
// not. With a refresher, an unnamed module address may re-read kallsyms.
engine::Stack symbolize_kernel_stack(const std::vector<uint64_t> &ips, const Kallsyms &kallsyms,
                                     KallsymsRefresher *refresher = nullptr);

// The class id of a module's static lock: a hash of its name ("circ_a
// [lockwatch_scenarios]"), so that the lock keeps its class when the module
// is reloaded at another address within one run.
uint64_t module_class_id(const std::string &name);

class KernelDebugInfo;

// LW_RECORD_FIRST_CALL: a lock function ran for the first time since attach.
struct FirstCall {
    uint32_t function = 0;  // enum lw_lock_function_id, < LW_FN_COUNT
    uint32_t cpu = 0;
    uint32_t pid = 0;
    std::string comm;
    lw_context context = LW_CTX_TASK;
    std::string caller;  // "symbol+0xoff/0xsize" of its caller, never an address
};

// LW_RECORD_CLASS_PAIR (lockdep backend): a lockdep class met a lock that
// lockwatch's address rules put in `derived_class`, for the first time.
struct ClassPair {
    uint64_t lockdep_class = 0;
    uint64_t derived_class = 0;
    uint32_t derived_type = 0;  // enum lw_class_type
    std::string derived_name;   // as a class of that type would be named
};

// LW_RECORD_LOCKDEP_OFF (lockdep backend): lockdep turned itself off after
// its first report; from here on the hardirq state comes from the irq
// tracer's flag, or (tracer_flag false) is inferred from the held locks.
struct LockdepOff {
    uint64_t time_ns = 0;  // since boot
    uint32_t cpu = 0;
    bool tracer_flag = true;
};

// LW_RECORD_OP_* (--record-ops): an acquire, release or irqs-on as it
// happened, for the --record trace only: the engine takes the kernel side's
// facts, which already derive from these. Locks are numbered in the order
// they were taken (see op_lock()): no address, nor a function of one.
struct RawOperation {
    engine::Event event;  // AcquireEvent, ReleaseEvent or IrqsEnabledEvent
};

using DecodedRecord = std::variant<engine::Event, FirstCall, ClassPair, LockdepOff, RawOperation>;

class FactDecoder {
  public:
    using StackReader = std::function<std::vector<uint64_t>(int32_t stack_id)>;

    FactDecoder(const ClassNamer &namer, const Kallsyms &kallsyms, StackReader read_stack);

    // Appends what one record stands for: engine events in the order the
    // engine needs them (a stack before the fact that names it), or a first
    // call, or a class pair. A record that is not understood (an unknown
    // type, a field out of range) appends nothing and is counted.
    void decode(const lw_record &record, std::vector<DecodedRecord> &out);
    // Records decode() could not understand: a counted loss.
    uint64_t malformed_records() const { return malformed_records_; }

    // Adds file:line and inlined functions to every stack from here on.
    void set_debuginfo(const KernelDebugInfo *debuginfo) { debuginfo_ = debuginfo; }
    // Lets addresses in the module area that no symbol names re-read the
    // symbol table (a module loaded since).
    void set_refresher(KallsymsRefresher *refresher) { refresher_ = refresher; }

    // The printable name given to a class, if it was announced.
    const std::string *class_name(uint64_t class_id) const;
    const std::unordered_map<uint64_t, std::string> &class_names() const { return class_names_; }
    // Classes announced with this enum lw_class_type.
    size_t classes_of_type(uint32_t type) const {
        auto at = classes_by_type_.find(type);
        return at == classes_by_type_.end() ? 0 : at->second;
    }

  private:
    void decode_class(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_usage(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_edge(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_recursion(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_nmi_acquire(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_held_irqs_on(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_first_call(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_operation(const lw_record &record, std::vector<DecodedRecord> &out);
    // The number a held lock goes by in the trace: given at its acquire,
    // kept while anyone holds it (readers may be several), then forgotten,
    // so the table holds the locks held now. O(1).
    engine::LockId op_lock(uint64_t address, bool acquire);

    engine::StackId intern_stack(int32_t bpf_stack_id, std::vector<DecodedRecord> &out);
    // Where a held lock was taken (its lock call's return address), as a
    // one-frame stack: the "at:" of "already holding".
    engine::StackId intern_site(uint64_t site, std::vector<DecodedRecord> &out);
    // Symbolizes (and, with debug info, places) the frames as stack `id`.
    void announce_stack(engine::StackId id, const std::vector<uint64_t> &ips,
                        std::vector<DecodedRecord> &out) const;
    std::string name_class(const lw_record &record);
    // The id the engine knows a class by: a module static's canonical id
    // (module_class_id()) once its class record was decoded, else the BPF id.
    uint64_t class_of(uint64_t bpf_class_id) const;
    void before_naming(uint64_t address);

    const ClassNamer &namer_;
    const Kallsyms &kallsyms_;
    StackReader read_stack_;
    const KernelDebugInfo *debuginfo_ = nullptr;
    KallsymsRefresher *refresher_ = nullptr;
    std::unordered_map<uint64_t, uint64_t> canonical_;  // BPF class id -> module class id
    std::unordered_map<int32_t, engine::StackId> stacks_;
    static constexpr engine::StackId kFirstSiteStackId = 0x80000000u;
    std::unordered_map<uint64_t, engine::StackId> sites_;
    std::unordered_map<uint64_t, std::string> class_names_;
    std::unordered_map<uint32_t, size_t> classes_by_type_;
    // lockdep backend: the keys met under each lockdep name, in order.
    std::unordered_map<std::string, std::vector<uint64_t>> lockdep_keys_by_name_;
    uint64_t malformed_records_ = 0;
    struct OpLock {
        engine::LockId id = 0;
        uint32_t holders = 0;
    };
    // Locks held now; more than kMaxOpLocks (lost releases) and new ones
    // go untracked: their release gets a number of its own.
    static constexpr size_t kMaxOpLocks = 65536;
    std::unordered_map<uint64_t, OpLock> op_locks_;
    engine::LockId next_op_lock_ = 1;
};

}  // namespace lockwatch
