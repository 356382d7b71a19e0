// Turns the BPF side's ring-buffer records into the analysis engine's
// events: names classes, interns symbolized stacks, maps flags.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "class_names.h"
#include "engine/events.h"
#include "lockwatch.h"

namespace lockwatch {

class Kallsyms;

// Kernel stack (innermost first) as symbolized frames, starting at the lock
// function: BPF programs and trampolines above it are dropped. Frames that
// no symbol covers are dropped too; addresses never leave this function.
engine::Stack symbolize_kernel_stack(const std::vector<uint64_t> &ips, const Kallsyms &kallsyms);

class KernelDebugInfo;

class FactDecoder {
  public:
    using StackReader = std::function<std::vector<uint64_t>(int32_t stack_id)>;

    FactDecoder(const ClassNamer &namer, const Kallsyms &kallsyms, StackReader read_stack);

    // Appends the engine events one record stands for (none for records the
    // engine does not need, such as LW_RECORD_FIRST_CALL).
    void decode(const lw_record &record, std::vector<engine::Event> &out);

    // Adds file:line and inlined functions to every stack from here on.
    void set_debuginfo(const KernelDebugInfo *debuginfo) { debuginfo_ = debuginfo; }

    // The printable name given to a class, if it was announced.
    const std::string *class_name(uint64_t class_id) const;
    const std::unordered_map<uint64_t, std::string> &class_names() const { return class_names_; }

  private:
    engine::StackId intern_stack(int32_t bpf_stack_id, std::vector<engine::Event> &out);
    // Where a held lock was taken (its lock call's return address), as a
    // one-frame stack: the "at:" of "already holding".
    engine::StackId intern_site(uint64_t site, std::vector<engine::Event> &out);
    // Symbolizes (and, with debug info, places) the frames as stack `id`.
    void announce_stack(engine::StackId id, const std::vector<uint64_t> &ips,
                        std::vector<engine::Event> &out) const;
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
};

}  // namespace lockwatch
