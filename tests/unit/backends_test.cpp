#include "capture/backends.h"

#include <bpf/libbpf.h>

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "lockwatch.skel.h"

namespace lockwatch {
namespace {

TEST(Backends, TableIsIndexedByBackend) {
    const auto &table = backends();
    for (size_t i = 0; i < table.size(); ++i) {
        EXPECT_EQ(static_cast<size_t>(table[i].backend), i) << table[i].name;
        EXPECT_EQ(&backend_entry(table[i].backend), &table[i]) << table[i].name;
    }
}

TEST(Backends, EveryEntryHasUniqueNameHelpAndWhatItDoes) {
    std::set<std::string_view> names;
    for (const BackendEntry &entry : backends()) {
        EXPECT_FALSE(entry.name.empty());
        EXPECT_TRUE(names.insert(entry.name).second) << entry.name;
        EXPECT_FALSE(entry.help.empty()) << entry.name;
        EXPECT_EQ(entry.help.find('\n'), std::string_view::npos) << entry.name;
        EXPECT_FALSE(entry.chosen.empty()) << entry.name;
        EXPECT_EQ(to_string(entry.backend), entry.name);
    }
}

// Every backend hooks something: lock functions, or tracepoints that see
// every lock operation (and then it needs the kernel that has them).
TEST(Backends, EveryEntryHooksLockFunctionsOrTracepoints) {
    for (const BackendEntry &entry : backends()) {
        EXPECT_NE(entry.flavor == nullptr, entry.tracepoints.empty()) << entry.name;
        EXPECT_EQ(entry.tracepoints.empty(), entry.tracepoint_program == nullptr) << entry.name;
        EXPECT_EQ(entry.tracepoints.empty(), entry.needs_lockdep.empty()) << entry.name;
    }
}

TEST(Backends, CliChoicesAreTheTableNames) {
    std::vector<std::string> expected;
    for (const BackendEntry &entry : backends()) {
        expected.emplace_back(entry.name);
    }
    EXPECT_EQ(backend_names(), expected);
    EXPECT_EQ(backend_names(), (std::vector<std::string>{"auto", "fentry", "kprobe", "lockdep"}));
    for (const BackendEntry &entry : backends()) {
        EXPECT_EQ(backend_named(entry.name), entry.backend) << entry.name;
    }
    EXPECT_EQ(backend_named("ftrace"), std::nullopt);
    EXPECT_EQ(backend_named(""), std::nullopt);
}

TEST(Backends, ChoicesHelpListsEveryBackendWithItsHelp) {
    EXPECT_EQ(backend_choices_help(),
              "auto (lockdep where the kernel has it, else kprobes on plain and _bh locks and "
              "unlocks, fentry on _irq/_irqsave ones), fentry (fastest; hardirq state inferred), "
              "kprobe (exact everywhere), lockdep (lockdep's tracepoints and classes; kernels "
              "built with lockdep only)");
}

TEST(Backends, AutoTakesLockdepWhereTheKernelHasIt) {
    EXPECT_EQ(resolve_backend(Backend::Auto, true)->backend, Backend::Lockdep);
    EXPECT_EQ(resolve_backend(Backend::Auto, false)->backend, Backend::Auto);
    EXPECT_EQ(resolve_backend(Backend::Lockdep, true)->backend, Backend::Lockdep);
    EXPECT_EQ(resolve_backend(Backend::Lockdep, false), nullptr);
    for (Backend chosen : {Backend::Fentry, Backend::Kprobe}) {
        for (bool has_lockdep : {false, true}) {
            EXPECT_EQ(resolve_backend(chosen, has_lockdep)->backend, chosen);
        }
    }
}

TEST(Backends, ReasonSaysWhatTheBackendInUseDoes) {
    EXPECT_EQ(backend_reason(Backend::Auto, Backend::Lockdep),
              "this kernel has lockdep's lock:lock_acquire tracepoint: lockdep's own classes, "
              "names and hardirq state, for every lock operation");
    EXPECT_EQ(backend_reason(Backend::Lockdep, Backend::Lockdep),
              "lockdep's lock:lock_acquire and lock:lock_release tracepoints");
    EXPECT_EQ(backend_reason(Backend::Auto, Backend::Auto),
              "kprobes on plain, _bh and trylock locks and unlocks (exact hardirq state from "
              "EFLAGS), fentry on the _irq and _irqsave ones");
    EXPECT_EQ(backend_reason(Backend::Fentry, Backend::Fentry),
              "fentry everywhere: hardirq state of plain acquires is inferred from held "
              "_irq/_irqsave locks");
    EXPECT_EQ(backend_reason(Backend::Kprobe, Backend::Kprobe),
              "kprobes everywhere: exact hardirq state");
}

// The rule each backend had before the table, for every lock function.
TEST(Backends, FlavorPerBackendForEveryLockFunction) {
    for (const LockFunction &fn : lock_functions()) {
        bool irqs_off_at_entry =
            fn.variant == LockVariant::Irq || fn.variant == LockVariant::Irqsave;
        EXPECT_EQ(choose_flavor(Backend::Auto, fn),
                  irqs_off_at_entry ? HookFlavor::Fentry : HookFlavor::Kprobe)
            << fn.symbol;
        EXPECT_EQ(choose_flavor(Backend::Fentry, fn), HookFlavor::Fentry) << fn.symbol;
        EXPECT_EQ(choose_flavor(Backend::Kprobe, fn), HookFlavor::Kprobe) << fn.symbol;
        EXPECT_EQ(choose_flavor(Backend::Lockdep, fn), std::nullopt) << fn.symbol;
    }
    const auto &fns = lock_functions();
    EXPECT_EQ(choose_flavor(Backend::Auto, fns[LW_FN__raw_spin_lock]), HookFlavor::Kprobe);
    EXPECT_EQ(choose_flavor(Backend::Auto, fns[LW_FN__raw_spin_unlock]), HookFlavor::Kprobe);
    EXPECT_EQ(choose_flavor(Backend::Auto, fns[LW_FN__raw_spin_trylock]), HookFlavor::Kprobe);
    EXPECT_EQ(choose_flavor(Backend::Auto, fns[LW_FN__raw_read_unlock_bh]), HookFlavor::Kprobe);
    EXPECT_EQ(choose_flavor(Backend::Auto, fns[LW_FN__raw_spin_lock_irq]), HookFlavor::Fentry);
    EXPECT_EQ(choose_flavor(Backend::Auto, fns[LW_FN__raw_spin_unlock_irqrestore]),
              HookFlavor::Fentry);
    EXPECT_EQ(choose_flavor(Backend::Auto, fns[LW_FN__raw_write_lock_irqsave]), HookFlavor::Fentry);
}

std::array<Availability, LW_FN_COUNT> all(Availability availability) {
    std::array<Availability, LW_FN_COUNT> result;
    result.fill(availability);
    return result;
}

TEST(HookPlan, EveryOutOfLineFunctionIsPlannedWithItsBackendsFlavor) {
    for (Backend backend : {Backend::Auto, Backend::Fentry, Backend::Kprobe}) {
        auto hooks = plan_lock_hooks(backend, all(Availability::OutOfLine));
        ASSERT_EQ(hooks.size(), lock_functions().size()) << to_string(backend);
        for (size_t i = 0; i < hooks.size(); ++i) {
            const HookStatus &hook = hooks[i];
            EXPECT_EQ(hook.function, &lock_functions()[i]);
            EXPECT_EQ(hook.state, HookState::Planned) << hook.function->symbol;
            EXPECT_EQ(hook.flavor, choose_flavor(backend, *hook.function)) << hook.function->symbol;
            EXPECT_EQ(hook.availability, Availability::OutOfLine);
            EXPECT_EQ(hook.reason, "") << hook.function->symbol;
        }
    }
}

TEST(HookPlan, LockdepHooksNoLockFunction) {
    EXPECT_TRUE(plan_lock_hooks(Backend::Lockdep, all(Availability::OutOfLine)).empty());
    EXPECT_TRUE(plan_lock_hooks(Backend::Lockdep, all(Availability::NotInKernel)).empty());
}

TEST(HookPlan, AFunctionNotInTheKernelIsUnavailableForEveryBackend) {
    for (Backend backend : {Backend::Auto, Backend::Fentry, Backend::Kprobe}) {
        for (const HookStatus &hook : plan_lock_hooks(backend, all(Availability::NotInKernel))) {
            EXPECT_EQ(hook.state, HookState::Unavailable) << hook.function->symbol;
            EXPECT_EQ(hook.reason, "inlined or not built on this kernel");
        }
    }
}

// kprobes attach through kallsyms, fentry needs BTF as well.
TEST(HookPlan, WithoutBtfOnlyKprobesArePlanned) {
    for (Backend backend : {Backend::Auto, Backend::Fentry, Backend::Kprobe}) {
        for (const HookStatus &hook : plan_lock_hooks(backend, all(Availability::NoBtf))) {
            if (hook.flavor == HookFlavor::Kprobe) {
                EXPECT_EQ(hook.state, HookState::Planned) << hook.function->symbol;
                EXPECT_EQ(hook.reason, "");
            } else {
                EXPECT_EQ(hook.state, HookState::Unavailable) << hook.function->symbol;
                EXPECT_EQ(hook.reason, "no BTF for it, fentry cannot attach");
            }
        }
    }
}

TEST(HookPlan, AutoOnAMixedKernel) {
    auto availability = all(Availability::OutOfLine);
    availability[LW_FN__raw_spin_unlock_irq] = Availability::NotInKernel;
    availability[LW_FN__raw_spin_lock_irqsave_nested] = Availability::NoBtf;
    availability[LW_FN__raw_write_lock_nested] = Availability::NoBtf;
    auto hooks = plan_lock_hooks(Backend::Auto, availability);
    auto hook = [&](lw_lock_function_id id) { return hooks[id]; };
    EXPECT_EQ(hook(LW_FN__raw_spin_lock).state, HookState::Planned);
    EXPECT_EQ(hook(LW_FN__raw_spin_lock).flavor, HookFlavor::Kprobe);
    EXPECT_EQ(hook(LW_FN__raw_spin_lock_irqsave).state, HookState::Planned);
    EXPECT_EQ(hook(LW_FN__raw_spin_lock_irqsave).flavor, HookFlavor::Fentry);
    EXPECT_EQ(hook(LW_FN__raw_spin_unlock_irq).state, HookState::Unavailable);
    EXPECT_EQ(hook(LW_FN__raw_spin_lock_irqsave_nested).state, HookState::Unavailable);
    EXPECT_EQ(hook(LW_FN__raw_spin_lock_irqsave_nested).reason,
              "no BTF for it, fentry cannot attach");
    EXPECT_EQ(hook(LW_FN__raw_write_lock_nested).state, HookState::Planned);
    EXPECT_EQ(hook(LW_FN__raw_write_lock_nested).flavor, HookFlavor::Kprobe);
}

TEST(HookPlan, ProgramsPerHookInAttachOrder) {
    const auto &fns = lock_functions();
    auto names = [&](lw_lock_function_id id, HookFlavor flavor) {
        return hook_program_names(
            {&fns[id], HookState::Planned, Availability::OutOfLine, flavor, ""});
    };
    using Names = std::vector<std::string>;
    EXPECT_EQ(names(LW_FN__raw_spin_lock, HookFlavor::Kprobe), Names{"kprobe__raw_spin_lock"});
    EXPECT_EQ(names(LW_FN__raw_spin_lock, HookFlavor::Fentry), Names{"fentry__raw_spin_lock"});
    EXPECT_EQ(names(LW_FN__raw_spin_trylock, HookFlavor::Kprobe),
              (Names{"kprobe__raw_spin_trylock", "kretprobe__raw_spin_trylock"}));
    EXPECT_EQ(names(LW_FN__raw_spin_trylock, HookFlavor::Fentry), Names{"fexit__raw_spin_trylock"});
}

// The BPF object has every program the table and the hooks name.
TEST(HookPlan, EveryNamedProgramIsInTheBpfObject) {
    lockwatch_bpf *skel = lockwatch_bpf__open();
    if (!skel) {
        GTEST_SKIP() << "cannot open the BPF object here";
    }
    auto has = [&](const std::string &name) {
        return bpf_object__find_program_by_name(skel->obj, name.c_str()) != nullptr;
    };
    for (const LockFunction &fn : lock_functions()) {
        for (HookFlavor flavor : {HookFlavor::Kprobe, HookFlavor::Fentry}) {
            for (const std::string &name : hook_program_names(
                     {&fn, HookState::Planned, Availability::OutOfLine, flavor, ""})) {
                EXPECT_TRUE(has(name)) << name;
            }
        }
    }
    for (const BackendEntry &entry : backends()) {
        if (entry.tracepoint_program) {
            EXPECT_TRUE(has(entry.tracepoint_program)) << entry.name;
        }
    }
    lockwatch_bpf__destroy(skel);
}

}  // namespace
}  // namespace lockwatch
