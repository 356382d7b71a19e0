// The event model the analysis engine consumes.
//
// Two producers feed the same engine:
//  (a) raw lock operations (AcquireEvent / ReleaseEvent): the engine keeps
//      per-CPU, per-context held-lock stacks and derives usages and
//      dependency edges itself, exactly as lockdep's __lock_acquire() does;
//  (b) facts already deduplicated in the kernel by the BPF programs
//      (ClassFact, UsageFact, EdgeFact): the engine applies them to the graph
//      and runs the same checks.
// Stacks are interned (StackFact / StackTable) and referenced by StackId, the
// way the BPF side refers to a stack-map entry: a stack is sent once and the
// steady state costs an integer per event.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

// The contexts, acquire flags and read-level rule the BPF programs use too.
#include "acquire_flags.h"

namespace lockwatch::engine {

// Opaque identifiers chosen by the producer. A ClassId names a lock class
// (derived by the BPF side from slab cache + offset, symbol, ...); a LockId
// names one lock instance and is only compared for equality, never printed
// (it may be a kernel address, and reports must not leak addresses: KASLR).
using ClassId = std::uint64_t;
using LockId = std::uint64_t;
using StackId = std::uint32_t;
inline constexpr StackId kNoStack = 0;

// lockdep's irq_context: task, softirq, hardirq and NMI each have their own
// held-lock stack and dependencies never cross from one to another.
enum class Context : std::uint8_t {
    Task = LW_CTX_TASK,
    Softirq = LW_CTX_SOFTIRQ,
    Hardirq = LW_CTX_HARDIRQ,
    Nmi = LW_CTX_NMI,
};
inline constexpr int kNumContexts = LW_CTX_COUNT;
std::string_view context_name(Context c);
bool parse_context_name(std::string_view name, Context *out);

// lockdep's enum lock_usage_bit (lockdep_internals.h), same numbering:
//  bit0: read, bit1: direction (0 used in irq, 1 irq enabled), bit2: state.
enum class UsageBit : std::uint8_t {
    UsedInHardirq = 0,       // LOCK_USED_IN_HARDIRQ
    UsedInHardirqRead = 1,   // LOCK_USED_IN_HARDIRQ_READ
    EnabledHardirq = 2,      // LOCK_ENABLED_HARDIRQ
    EnabledHardirqRead = 3,  // LOCK_ENABLED_HARDIRQ_READ
    UsedInSoftirq = 4,       // LOCK_USED_IN_SOFTIRQ
    UsedInSoftirqRead = 5,   // LOCK_USED_IN_SOFTIRQ_READ
    EnabledSoftirq = 6,      // LOCK_ENABLED_SOFTIRQ
    EnabledSoftirqRead = 7,  // LOCK_ENABLED_SOFTIRQ_READ
    Used = 8,                // LOCK_USED ("INITIAL USE")
    UsedRead = 9,            // LOCK_USED_READ ("INITIAL READ USE")
    // usage_str[LOCK_USAGE_STATES], "IN-NMI": never a class's usage bit, only
    // the new state of verify_lock_unused()'s report.
    InNmi = 10,
};
inline constexpr int kNumUsageBits = 10;  // the bits a class can have
static_assert(kNumUsageBits == LW_USAGE_BITS &&
                  static_cast<int>(UsageBit::UsedInHardirq) == LW_USED_IN_HARDIRQ &&
                  static_cast<int>(UsageBit::EnabledHardirqRead) == LW_ENABLED_HARDIRQ_READ &&
                  static_cast<int>(UsageBit::UsedInSoftirq) == LW_USED_IN_SOFTIRQ &&
                  static_cast<int>(UsageBit::EnabledSoftirqRead) == LW_ENABLED_SOFTIRQ_READ &&
                  static_cast<int>(UsageBit::Used) == LW_USED &&
                  static_cast<int>(UsageBit::UsedRead) == LW_USED_READ,
              "UsageBit is lockdep's numbering, as the BPF programs send it");
inline constexpr int kNumUsageNames = 11;   // with InNmi
inline constexpr int kNumIrqUsageBits = 8;  // LOCK_TRACE_STATES minus the two USED bits
// lockdep's usage_str[]: "IN-SOFTIRQ-W", "HARDIRQ-ON-R", "INITIAL USE", ...
std::string_view usage_bit_str(UsageBit bit);
// The enum name as used in traces and JSON: "USED_IN_SOFTIRQ", "ENABLED_HARDIRQ_READ", ...
std::string_view usage_bit_name(UsageBit bit);
bool parse_usage_bit_name(std::string_view name, UsageBit *out);

// One frame of a symbolized kernel stack. Never a raw address: the producer
// resolves addresses to symbol+offset (and optionally file:line) first.
//
// A frame no symbol names has an empty symbol; its offset counts from the
// start of the region it lies in and `module` names that region: empty for
// the kernel image's text ("0x1c40 (unknown)"), kModuleAreaRegion for the
// module area ("0x3a1c40 (unknown) [module area]"), kElsewhereRegion, with
// no offset, for anywhere else ("(unknown) [elsewhere]").
struct Frame {
    std::string symbol;        // "io_submit_one"
    std::uint64_t offset = 0;  // offset of the return address in the symbol
    std::uint64_t size = 0;    // symbol size, 0 if unknown (printed as "+0x97f/0x2b00")
    std::string file;          // "fs/aio.c", optional
    std::uint32_t line = 0;    // 0 if unknown
    bool inlined = false;      // an inline frame expanded from the next real frame
    std::string module{};      // "lockwatch_scenarios" for module code, empty for the kernel
    bool operator==(const Frame &) const = default;
};
using Stack = std::vector<Frame>;
inline constexpr std::string_view kModuleAreaRegion = "module area";
inline constexpr std::string_view kElsewhereRegion = "elsewhere";

// A stack shared by the stack table and every finding that shows it. Two
// StackRefs are equal when their frames are, wherever the frames are stored
// (a finding read back from JSON has stacks of its own); null is no frames.
class StackRef {
  public:
    StackRef() = default;
    StackRef(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): "no stack"
    explicit StackRef(Stack frames) : frames_(std::make_shared<const Stack>(std::move(frames))) {}

    const Stack *get() const { return frames_.get(); }
    const Stack &operator*() const { return *frames_; }
    const Stack *operator->() const { return frames_.get(); }
    explicit operator bool() const { return frames_ != nullptr; }
    bool operator==(const StackRef &other) const {
        const std::size_t n = frames_ ? frames_->size() : 0;
        const std::size_t m = other.frames_ ? other.frames_->size() : 0;
        return n == m && (n == 0 || *frames_ == *other.frames_);
    }

  private:
    std::shared_ptr<const Stack> frames_;
};

// The task as the kernel names it in reports: comm/pid.
struct Task {
    std::int32_t pid = 0;
    std::array<char, 16> comm{};  // TASK_COMM_LEN, NUL padded, as BPF copies it
    void set_comm(std::string_view s);
    std::string_view comm_view() const;
    bool operator==(const Task &) const = default;
};

// Acquire flags, as the BPF side learns them from which lock function ran
// (acquire_flags.h's LW_ACQ_*, the bits the BPF programs send).
namespace acquire_flags {
inline constexpr std::uint32_t kRead = LW_ACQ_READ;                           // shared
inline constexpr std::uint32_t kTrylock = LW_ACQ_TRYLOCK;                     // succeeded
inline constexpr std::uint32_t kIrqsOff = LW_ACQ_IRQS_OFF;                    // _irq, _irqsave
inline constexpr std::uint32_t kBhOff = LW_ACQ_BH;                            // _bh
inline constexpr std::uint32_t kRecursiveRead = LW_ACQ_RECURSIVE_READ;        // read == 2
inline constexpr std::uint32_t kNonRecursiveRead = LW_ACQ_NONRECURSIVE_READ;  // read == 1
// Softirqs were disabled before this acquire: set from
// AcquireEvent::softirqs_enabled, or by the BPF programs.
inline constexpr std::uint32_t kSoftirqsOff = LW_ACQ_SOFTIRQS_OFF;
inline constexpr std::uint32_t kAll =
    kRead | kTrylock | kIrqsOff | kBhOff | kRecursiveRead | kNonRecursiveRead | kSoftirqsOff;
}  // namespace acquire_flags

// lockdep's held_lock->read of an acquire: 0 write, 1 read, 2 recursive
// read (lw_read_level()'s rule, shared with the BPF programs).
inline std::uint8_t read_level(std::uint32_t flags, Context context) {
    return static_cast<std::uint8_t>(lw_read_level(flags, static_cast<unsigned>(context)));
}

// (b) A new lock class and its printable name ("kioctx.ctx_lock").
struct ClassFact {
    ClassId id = 0;
    std::string name;
    bool operator==(const ClassFact &) const = default;
};

// A stack, sent once, referenced by id afterwards. Id 0 means "no stack".
struct StackFact {
    StackId id = kNoStack;
    Stack frames;
    bool operator==(const StackFact &) const = default;
};

// (a) A lock acquisition (after it succeeded, for trylocks).
struct AcquireEvent {
    std::uint64_t time_ns = 0;
    std::uint32_t cpu = 0;
    Task task;
    Context context = Context::Task;
    LockId lock = 0;
    ClassId cls = 0;
    std::uint32_t flags = 0;  // acquire_flags::*
    // The irq state at the call site, before this acquire disabled anything.
    bool hardirqs_enabled = true;
    bool softirqs_enabled = true;
    // hardirqs_enabled was inferred (held _irq locks, context) rather than
    // read from EFLAGS: findings that depend on it say so.
    bool hardirq_state_inferred = false;
    StackId stack = kNoStack;
    bool operator==(const AcquireEvent &) const = default;
};

// (a) A lock release. Matched to the acquire by (cpu, context, lock).
struct ReleaseEvent {
    std::uint64_t time_ns = 0;
    std::uint32_t cpu = 0;
    Task task;
    Context context = Context::Task;
    LockId lock = 0;
    bool operator==(const ReleaseEvent &) const = default;
};

// (b) A class gained a usage bit (first time only; BPF deduplicates).
struct UsageFact {
    ClassId cls = 0;
    UsageBit bit = UsageBit::Used;
    StackId stack = kNoStack;
    Task task;
    std::uint32_t cpu = 0;
    std::uint64_t time_ns = 0;
    bool hardirq_state_inferred = false;
    // lockdep's held_lock->read of the acquisition that set the bit:
    // 0 write, 1 read, 2 recursive read.
    std::uint8_t read = 0;
    bool operator==(const UsageFact &) const = default;
};

// (b) A new dependency prev -> next: next was acquired (not a trylock) while
// prev was held in the same context.
struct EdgeFact {
    ClassId prev = 0;
    ClassId next = 0;
    Context context = Context::Task;
    std::uint8_t prev_read = 0;  // 0 write, 1 read, 2 recursive read
    std::uint8_t next_read = 0;
    StackId next_stack = kNoStack;  // where next was acquired
    StackId prev_stack = kNoStack;  // where prev was acquired, if known
    // The irq state where next was acquired, as lockdep's HE/SE flags show it.
    bool hardirqs_enabled = false;
    bool softirqs_enabled = false;
    Task task;
    std::uint32_t cpu = 0;
    std::uint64_t time_ns = 0;
    bool hardirq_state_inferred = false;
    bool operator==(const EdgeFact &) const = default;
};

// (a) Interrupts came back on while this CPU's context still holds locks:
// an outer spin_unlock_irqrestore() with its inner lock still held, a
// spin_unlock_bh(). lockdep's lockdep_hardirqs_on() / lockdep_softirqs_on()
// then run mark_held_locks(): every held lock becomes HARDIRQ-ON (and
// SOFTIRQ-ON), with this stack as its usage trace. The state after the
// change; softirqs count only with hardirqs on, as in lockdep_softirqs_on().
struct IrqsEnabledEvent {
    std::uint64_t time_ns = 0;
    std::uint32_t cpu = 0;
    Task task;
    Context context = Context::Task;
    bool hardirqs_enabled = true;
    bool softirqs_enabled = false;
    StackId stack = kNoStack;
    bool operator==(const IrqsEnabledEvent &) const = default;
};

using Event = std::variant<ClassFact, StackFact, AcquireEvent, ReleaseEvent, UsageFact, EdgeFact,
                           IrqsEnabledEvent>;

}  // namespace lockwatch::engine
