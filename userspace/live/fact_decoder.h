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

// Kernel stack (innermost first) as symbolized frames, starting at the lock
// function: BPF programs and trampolines above it are dropped. Frames that
// no symbol covers are dropped too; addresses never leave this function.
engine::Stack symbolize_kernel_stack(const std::vector<uint64_t> &ips, const Kallsyms &kallsyms);

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
};

using DecodedRecord = std::variant<engine::Event, FirstCall, ClassPair>;

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

    // The printable name given to a class, if it was announced.
    const std::string *class_name(uint64_t class_id) const;
    const std::unordered_map<uint64_t, std::string> &class_names() const { return class_names_; }

  private:
    void decode_class(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_usage(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_edge(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_recursion(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_nmi_acquire(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_held_irqs_on(const lw_record &record, std::vector<DecodedRecord> &out);
    void decode_first_call(const lw_record &record, std::vector<DecodedRecord> &out);

    engine::StackId intern_stack(int32_t bpf_stack_id, std::vector<DecodedRecord> &out);
    // Where a held lock was taken (its lock call's return address), as a
    // one-frame stack: the "at:" of "already holding".
    engine::StackId intern_site(uint64_t site, std::vector<DecodedRecord> &out);
    // Symbolizes (and, with debug info, places) the frames as stack `id`.
    void announce_stack(engine::StackId id, const std::vector<uint64_t> &ips,
                        std::vector<DecodedRecord> &out) const;
    std::string name_class(const lw_record &record);

    const ClassNamer &namer_;
    const Kallsyms &kallsyms_;
    StackReader read_stack_;
    const KernelDebugInfo *debuginfo_ = nullptr;
    std::unordered_map<int32_t, engine::StackId> stacks_;
    static constexpr engine::StackId kFirstSiteStackId = 0x80000000u;
    std::unordered_map<uint64_t, engine::StackId> sites_;
    std::unordered_map<uint64_t, std::string> class_names_;
    // lockdep backend: the keys met under each lockdep name, in order.
    std::unordered_map<std::string, std::vector<uint64_t>> lockdep_keys_by_name_;
    uint64_t malformed_records_ = 0;
};

}  // namespace lockwatch
