// file:line for kernel stacks, from a vmlinux built with debug info (libdw).
//
// Frames arrive already symbolized ("io_submit_one+0x3c2"), so no address of
// the running kernel is needed: the symbol's link-time address in the
// vmlinux plus the offset is the place in the DWARF line table. That also
// works on the host for the stacks of findings that a test VM sent.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "engine/events.h"
#include "engine/finding.h"

struct Dwfl;
struct Dwfl_Module;

namespace lockwatch {

class KernelDebugInfo {
  public:
    // Throws std::runtime_error with one line: unreadable file, not an ELF,
    // no DWARF line information (a vmlinux built without CONFIG_DEBUG_INFO).
    static std::unique_ptr<KernelDebugInfo> open(const std::string &vmlinux_path);
    ~KernelDebugInfo();
    KernelDebugInfo(const KernelDebugInfo &) = delete;
    KernelDebugInfo &operator=(const KernelDebugInfo &) = delete;

    // The stack with file:line on every frame the vmlinux knows, and the
    // functions inlined at that place as extra frames before it (marked
    // `inlined`, innermost first), as syzbot's reports show them. Frames of
    // symbols the vmlinux lacks (modules, BPF) pass through unchanged.
    engine::Stack annotate(const engine::Stack &stack) const;

    // The GNU build id of the vmlinux, as hex; empty when it has none.
    const std::string &build_id() const { return build_id_; }

  private:
    KernelDebugInfo() = default;
    void append_frame(const engine::Frame &frame, engine::Stack *out) const;
    std::string source_path(const char *path) const;

    Dwfl *dwfl_ = nullptr;
    Dwfl_Module *module_ = nullptr;
    std::unordered_map<std::string, uint64_t> functions_;  // name -> link-time address
    std::string source_root_;  // the kernel tree's path as the DWARF spells it, with '/'
    std::string build_id_;
};

// Every stack of the finding annotated as KernelDebugInfo::annotate() does:
// findings that a test VM sent get their places on the host.
void annotate_stacks(engine::Finding &finding, const KernelDebugInfo &debuginfo);

// The running kernel's build id from /sys/kernel/notes, as hex; empty when
// it cannot be read.
std::string running_kernel_build_id(const std::string &notes_path = "/sys/kernel/notes");

}  // namespace lockwatch
