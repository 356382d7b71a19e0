#include "capture/backends.h"

#include <fmt/format.h>

namespace lockwatch {

namespace {

HookFlavor fentry_everywhere(const LockFunction &) {
    return HookFlavor::Fentry;
}

HookFlavor kprobe_everywhere(const LockFunction &) {
    return HookFlavor::Kprobe;
}

HookFlavor fentry_where_irqs_are_known_off(const LockFunction &fn) {
    // fentry only where hardirqs are off, or are known to be, at entry: the
    // _irq/_irqsave acquires (the variant implies the state) and releases
    // (they run with the lock, and so irqs off, still held). The rest go
    // through kprobes, which read EFLAGS; a plain release shares its
    // acquire's mechanism so that an interrupt that re-enters a running
    // program loses both halves of a lock pair, never just the release
    // (a lost release would leave a held lock behind and make up edges).
    bool irqs_off_at_entry = fn.variant == LockVariant::Irq || fn.variant == LockVariant::Irqsave;
    return irqs_off_at_entry ? HookFlavor::Fentry : HookFlavor::Kprobe;
}

// Release first: LockCapture attaches releases before acquires, and why.
constexpr std::array<TracepointHook, 2> kLockdepTracepoints = {{
    {"lock", "lock_release"},
    {"lock", "lock_acquire"},
}};

constexpr std::array<BackendEntry, kBackendCount> kBackends = {{
    {
        .backend = Backend::Auto,
        .name = "auto",
        .help = "lockdep where the kernel has it, else kprobes on plain and _bh locks and "
                "unlocks, fentry on _irq/_irqsave ones",
        .chosen = "kprobes on plain, _bh and trylock locks and unlocks (exact hardirq "
                  "state from EFLAGS), fentry on the _irq and _irqsave ones",
        .chosen_by_auto = "",
        .flavor = fentry_where_irqs_are_known_off,
        .tracepoints = {},
        .tracepoint_program = nullptr,
        .needs_lockdep = "",
    },
    {
        .backend = Backend::Fentry,
        .name = "fentry",
        .help = "fastest; hardirq state inferred",
        .chosen = "fentry everywhere: hardirq state of plain acquires is inferred from held "
                  "_irq/_irqsave locks",
        .chosen_by_auto = "",
        .flavor = fentry_everywhere,
        .tracepoints = {},
        .tracepoint_program = nullptr,
        .needs_lockdep = "",
    },
    {
        .backend = Backend::Kprobe,
        .name = "kprobe",
        .help = "exact everywhere",
        .chosen = "kprobes everywhere: exact hardirq state",
        .chosen_by_auto = "",
        .flavor = kprobe_everywhere,
        .tracepoints = {},
        .tracepoint_program = nullptr,
        .needs_lockdep = "",
    },
    {
        .backend = Backend::Lockdep,
        .name = "lockdep",
        .help = "lockdep's tracepoints and classes; kernels built with lockdep only",
        .chosen = "lockdep's lock:lock_acquire and lock:lock_release tracepoints",
        .chosen_by_auto = "this kernel has lockdep's lock:lock_acquire tracepoint: lockdep's own "
                          "classes, names and hardirq state, for every lock operation",
        .flavor = nullptr,  // the tracepoints see every lock function
        .tracepoints = kLockdepTracepoints,
        .tracepoint_program = "lockdep_lock_op",
        .needs_lockdep =
            "--backend lockdep needs a kernel built with lockdep (CONFIG_LOCKDEP, which has the "
            "lock:lock_acquire tracepoint); this one is not: use --backend auto",
    },
}};

}  // namespace

const std::array<BackendEntry, kBackendCount> &backends() {
    return kBackends;
}

const BackendEntry &backend_entry(Backend backend) {
    return kBackends[static_cast<size_t>(backend)];
}

std::optional<Backend> backend_named(std::string_view name) {
    for (const BackendEntry &entry : kBackends) {
        if (entry.name == name) {
            return entry.backend;
        }
    }
    return std::nullopt;
}

std::vector<std::string> backend_names() {
    std::vector<std::string> names;
    for (const BackendEntry &entry : kBackends) {
        names.emplace_back(entry.name);
    }
    return names;
}

std::string backend_choices_help() {
    std::string text;
    for (const BackendEntry &entry : kBackends) {
        text += fmt::format("{}{} ({})", text.empty() ? "" : ", ", entry.name, entry.help);
    }
    return text;
}

const BackendEntry *resolve_backend(Backend requested, bool kernel_has_lockdep_tracepoints) {
    const BackendEntry &entry = backend_entry(requested);
    if (!entry.needs_lockdep.empty() && !kernel_has_lockdep_tracepoints) {
        return nullptr;
    }
    if (requested == Backend::Auto && kernel_has_lockdep_tracepoints) {
        return &backend_entry(Backend::Lockdep);
    }
    return &entry;
}

std::string_view to_string(Backend backend) {
    return backend_entry(backend).name;
}

std::string_view to_string(HookFlavor flavor) {
    return flavor == HookFlavor::Fentry ? "fentry" : "kprobe";
}

std::optional<HookFlavor> choose_flavor(Backend backend, const LockFunction &fn) {
    const BackendEntry &entry = backend_entry(backend);
    if (!entry.flavor) {
        return std::nullopt;
    }
    return entry.flavor(fn);
}

std::string_view backend_reason(Backend requested, Backend used) {
    const BackendEntry &entry = backend_entry(used);
    bool picked_by_auto = requested == Backend::Auto && used != Backend::Auto;
    return picked_by_auto && !entry.chosen_by_auto.empty() ? entry.chosen_by_auto : entry.chosen;
}

std::vector<HookStatus> plan_lock_hooks(Backend backend,
                                        const std::array<Availability, LW_FN_COUNT> &availability) {
    std::vector<HookStatus> hooks;
    for (const LockFunction &fn : lock_functions()) {
        std::optional<HookFlavor> flavor = choose_flavor(backend, fn);
        if (!flavor) {
            break;  // the backend's tracepoints see every lock function
        }
        // kprobes attach through kallsyms, fentry needs BTF as well.
        bool available =
            availability[fn.id] == Availability::OutOfLine ||
            (flavor == HookFlavor::Kprobe && availability[fn.id] == Availability::NoBtf);
        hooks.push_back({&fn, available ? HookState::Planned : HookState::Unavailable,
                         availability[fn.id], *flavor,
                         available ? "" : std::string(to_string(availability[fn.id]))});
    }
    return hooks;
}

std::vector<std::string> hook_program_names(const HookStatus &hook) {
    const LockFunction &fn = *hook.function;
    auto name = [&](std::string_view prefix) { return fmt::format("{}_{}", prefix, fn.symbol); };
    bool trylock = fn.op == LockOp::Trylock;
    if (hook.flavor == HookFlavor::Fentry) {
        return {name(trylock ? "fexit" : "fentry")};
    }
    if (trylock) {
        return {name("kprobe"), name("kretprobe")};
    }
    return {name("kprobe")};
}

}  // namespace lockwatch
