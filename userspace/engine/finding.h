// A finding: one lockdep-class bug, reported once. Plain data and
// self-contained (stacks are shared pointers into the engine's stack table):
// the renderers in output/ need nothing else to print it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/events.h"

namespace lockwatch::engine {

enum class FindingKind : std::uint8_t {
    IrqSafeToUnsafe,    // "HARDIRQ-safe -> HARDIRQ-unsafe lock order detected" (new edge)
    IrqInversion,       // "possible irq lock inversion dependency detected" (new usage)
    InconsistentState,  // "inconsistent lock state" (new usage)
    Circular,           // "possible circular locking dependency detected" (new edge)
    Recursive,          // "possible recursive locking detected" (acquire)
};
// "irq_safe_to_unsafe", "irq_inversion", "inconsistent_state", "circular", "recursive"
std::string_view finding_kind_name(FindingKind k);
bool parse_finding_kind_name(std::string_view name, FindingKind *out);

enum class IrqClass : std::uint8_t { None, Hardirq, Softirq };
// "hardirq", "softirq", or "" for None
std::string_view irq_class_name(IrqClass c);
bool parse_irq_class_name(std::string_view name, IrqClass *out);

// A lock as the report names it: class name + usage string {+.-.} and, for a
// held or acquired lock, the stack of that acquisition.
struct LockRef {
    std::string name;
    std::string usage;  // the 4 usage characters, at the time of the finding
    StackRef at;        // may be null
    std::uint8_t read = 0;
    bool operator==(const LockRef &) const = default;
};

struct UsageTrace {
    UsageBit bit = UsageBit::Used;
    StackRef stack;
    Task task;
    std::uint32_t cpu = 0;
    std::uint64_t time_ns = 0;
    bool hardirq_state_inferred = false;
    bool operator==(const UsageTrace &) const = default;
};

// A finding's dependency paths and chain keep their first and last
// kMaxPathEntries / 2 entries; what is between is counted, not kept, so a
// report's size does not grow with the path (a 20000-class chain once made a
// 602 MB report).
inline constexpr std::size_t kMaxPathEntries = 64;
// The frame text of a finding's path stacks, at most: a report stays under
// about twice this.
inline constexpr std::size_t kMaxReportStackBytes = 256 * 1024;

// One class in a printed dependency path: the "-> (name){usage} { ... }"
// block with every usage bit's first trace, and the stack of the dependency
// that led to it in the path ("... acquired at:").
struct PathEntry {
    std::string name;
    std::string usage;
    std::vector<UsageTrace> usages;  // in lockdep's bit order
    StackRef acquired_at;
    // Path entries left out just before this one: a report keeps the first
    // and last kMaxPathEntries / 2 entries of a longer path.
    std::uint32_t elided_before = 0;
    bool operator==(const PathEntry &) const = default;
};

// lockdep's [HC%u[%lu]:SC%u[%lu]:HE%u:SE%u] for the current task.
struct IrqFlagsState {
    bool in_hardirq = false;
    bool in_softirq = false;
    bool hardirqs_enabled = false;
    bool softirqs_enabled = false;
    bool operator==(const IrqFlagsState &) const = default;
};

struct Finding {
    FindingKind kind = FindingKind::Circular;
    IrqClass irq = IrqClass::None;
    // lockdep's irqclass / state_name(): "SOFTIRQ" or "SOFTIRQ-READ" etc.
    std::string irq_state;
    std::string title;          // syzbot style: "possible deadlock in io_submit_one"
    std::string signature;      // stable: kind + class names, hashed to 16 hex digits
    std::string signature_key;  // the unhashed signature text
    // The traced kernel as the report's first line names it, where lockdep
    // prints "5.6.0-rc2 #0 Not tainted" (EngineOptions::kernel_ident).
    std::string kernel_ident;

    Task task;
    std::uint32_t cpu = 0;
    std::uint64_t time_ns = 0;
    Context context = Context::Task;
    IrqFlagsState irq_flags;
    bool hardirq_state_inferred = false;

    // Every lock class involved, each once, in report order.
    std::vector<LockRef> locks;

    // Edge findings (irq_safe_to_unsafe, circular) and recursive: the lock
    // being acquired and the held one it conflicts with. For the usage
    // findings (irq_inversion, inconsistent_state) `acquiring` is the lock
    // whose state just changed.
    LockRef acquiring;
    std::optional<LockRef> holding;
    std::vector<LockRef> held;  // all locks held on this CPU, outermost first

    // irq_safe_to_unsafe / irq_inversion: the safe and unsafe classes and
    // the usage bits that make them so, with the traces that set them.
    std::optional<LockRef> safe_lock;
    std::optional<LockRef> unsafe_lock;
    std::optional<UsageTrace> safe_usage;
    std::optional<UsageTrace> unsafe_usage;
    std::optional<LockRef> middle_lock;  // the scenario's chain middle, if different

    // inconsistent_state: {prev_bit} -> {new_bit}
    std::optional<UsageBit> prev_bit;
    std::optional<UsageBit> new_bit;
    std::optional<UsageTrace> prev_usage;

    // Dependency paths as lockdep prints them, leaf first (deepest first).
    // irq_safe_to_unsafe: safe_path (safe lock ... prev), unsafe_path
    // (unsafe lock ... next); irq_inversion: path (other ... this);
    // circular: path (#N ... #0).
    std::vector<PathEntry> safe_path;
    std::vector<PathEntry> unsafe_path;
    std::vector<PathEntry> path;

    // The class names of the dependency chain in lock order (A -> B -> C).
    std::vector<std::string> chain;

    StackRef stack;  // the triggering stack ("stack backtrace:")

    // Field by field; stacks by their frames.
    bool operator==(const Finding &) const = default;
};

// Calls visit on every stack the finding holds (null ones too), to rewrite
// them in place: the host annotates the stacks of a finding a VM sent.
void for_each_stack(Finding &finding, const std::function<void(StackRef &)> &visit);

}  // namespace lockwatch::engine
