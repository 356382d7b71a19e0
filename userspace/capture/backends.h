// The ways lockwatch can hook the kernel's lock operations, one table entry
// each: the name `--backend` takes, its help, what it does once chosen,
// which mechanism hooks each lock function, and the tracepoints it attaches
// instead. Adding a backend is one entry in backends.cpp plus its BPF
// programs. Pure data and pure functions: no libbpf, testable without a
// kernel.
#pragma once

#include <array>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "capture/lock_functions.h"

namespace lockwatch {

// How the programs hook the lock functions.
//   fentry:  fentry/fexit everywhere; cheapest, but cannot read EFLAGS, so the
//            hardirq state of plain acquires is inferred from held locks.
//   kprobe:  kprobe/kretprobe everywhere; hardirq state read from pt_regs.
//   lockdep: only on kernels built with lockdep: the lock:lock_acquire and
//            lock:lock_release tracepoints, with lockdep's own classes, names
//            and hardirq state, for every lock operation, inlined or not.
//   auto:    lockdep where the kernel has it; else kprobes on plain and _bh
//            locks and unlocks and trylocks (EFLAGS), fentry on the _irq and
//            _irqsave ones (the variant implies the state): exact, and cheap.
enum class Backend { Auto, Fentry, Kprobe, Lockdep };
enum class HookFlavor { Fentry, Kprobe };

// Planned: the kernel has the function and the backend hooks it; Attached
// once every program of the hook is linked to it.
enum class HookState { Planned, Attached, Unavailable, AttachFailed };

struct HookStatus {
    const LockFunction *function;
    HookState state;
    Availability availability;
    HookFlavor flavor;
    std::string reason;  // why it is not attached; empty when planned or attached
};

// A tracepoint that one BPF program serves, e.g. lock:lock_acquire.
struct TracepointHook {
    const char *category;
    const char *name;
};

struct BackendEntry {
    Backend backend;
    std::string_view name;  // what --backend takes
    std::string_view help;  // --help, after the name
    // What it does, printed once tracing starts; `chosen_by_auto` when auto
    // picked it and that says more (empty: `chosen`).
    std::string_view chosen;
    std::string_view chosen_by_auto;
    // The mechanism for each lock function; nullptr: no lock function is
    // hooked, the tracepoints below see every lock operation.
    HookFlavor (*flavor)(const LockFunction &fn);
    // Attached in this order, all to `tracepoint_program`; empty: none.
    std::span<const TracepointHook> tracepoints;
    const char *tracepoint_program;
    // What a kernel without lockdep's tracepoints answers; empty: any
    // kernel can run it.
    std::string_view needs_lockdep;
};

inline constexpr size_t kBackendCount = 4;

// Every backend, indexed by Backend, in the order --help lists them.
const std::array<BackendEntry, kBackendCount> &backends();
const BackendEntry &backend_entry(Backend backend);
std::optional<Backend> backend_named(std::string_view name);
// The names --backend accepts, in table order.
std::vector<std::string> backend_names();
// "auto (...), fentry (...), ...": every name with its help.
std::string backend_choices_help();

// The entry that runs when `requested` is asked for: auto takes lockdep's
// tracepoints where the kernel has them, else stays the mixed kprobe/fentry
// plan. nullptr when this kernel cannot run `requested` (its entry's
// `needs_lockdep` says why).
const BackendEntry *resolve_backend(Backend requested, bool kernel_has_lockdep_tracepoints);

std::string_view to_string(Backend backend);
std::string_view to_string(HookFlavor flavor);
// nullopt for a backend that hooks no lock function (lockdep).
std::optional<HookFlavor> choose_flavor(Backend backend, const LockFunction &fn);
// What `used` does, as lockwatch run says when tracing starts.
std::string_view backend_reason(Backend requested, Backend used);

// The hooks `backend` wants on a kernel whose lock functions are as
// `availability` says: Planned with their flavor, or Unavailable with the
// reason. Empty for a backend that hooks no lock function.
std::vector<HookStatus> plan_lock_hooks(Backend backend,
                                        const std::array<Availability, LW_FN_COUNT> &availability);

// The names of the BPF programs one hook needs, in attach order.
std::vector<std::string> hook_program_names(const HookStatus &hook);

}  // namespace lockwatch
