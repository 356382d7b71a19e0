#include "output/text.h"

#include <fmt/format.h>

#include "engine/finding_names.h"

namespace lockwatch::output {
namespace {

using engine::Context;
using engine::Finding;
using engine::Frame;
using engine::IrqFlagsState;
using engine::LockRef;
using engine::PathEntry;
using engine::Stack;
using engine::StackRef;
using engine::usage_bit_str;
using engine::UsageTrace;

// A finding read back from JSON may lack a part its kind always has: the
// text then shows a placeholder where it would be.
const LockRef &known(const std::optional<LockRef> &lock) {
    static const LockRef kUnknown{"unknown", "....", nullptr, 0};
    return lock ? *lock : kUnknown;
}

const StackRef &stack_of(const std::optional<UsageTrace> &usage) {
    static const StackRef kNone;
    return usage ? usage->stack : kNone;
}

std::string_view bit_str(const std::optional<engine::UsageBit> &bit) {
    return bit ? usage_bit_str(*bit) : std::string_view("?");
}

// The lock's printable form in the report: " (name){usage}".
std::string lock_name(const LockRef &l) {
    return fmt::format(" ({}){{{}}}", l.name, l.usage);
}

// The frames that stand for lockdep's acquire_ip: after the lock internals,
// through the first real (non-inline) frame, as syzbot expands an address
// into its inline chain.
std::vector<const Frame *> acquire_site(const Stack *stack) {
    std::vector<const Frame *> out;
    if (!stack) {
        return out;
    }
    std::size_t i = 0;
    while (i < stack->size() && engine::is_lock_internal((*stack)[i].symbol)) {
        ++i;
    }
    for (; i < stack->size(); ++i) {
        out.push_back(&(*stack)[i]);
        if (!(*stack)[i].inlined) {
            break;
        }
    }
    return out;
}

// print_lock(): one line per frame of the acquire site.
void print_lock(std::string &out, const LockRef &l, std::string_view prefix = "") {
    auto site = acquire_site(l.at.get());
    if (site.empty()) {
        out += fmt::format("{}{}\n", prefix, lock_name(l));
        return;
    }
    for (const Frame *fr : site) {
        out += fmt::format("{}{}, at: {}\n", prefix, lock_name(l), format_frame(*fr));
    }
}

// stack_trace_print(entries, nr, spaces): each frame indented spaces + 1.
void print_trace(std::string &out, const StackRef &stack, int spaces) {
    if (!stack || stack->empty()) {
        out += fmt::format("{:{}}<no stack recorded>\n", "", spaces + 1);
        return;
    }
    for (const Frame &fr : *stack) {
        out += fmt::format("{:{}}{}\n", "", spaces + 1, format_frame(fr));
    }
}

std::string task_str(const Finding &f) {
    return fmt::format("{}/{}", f.task.comm_view(), f.task.pid);
}

std::string irq_flags_str(const IrqFlagsState &s) {
    return fmt::format("[HC{0}[{0}]:SC{1}[{1}]:HE{2}:SE{3}]", s.in_hardirq ? 1 : 0,
                       s.in_softirq ? 1 : 0, s.hardirqs_enabled ? 1 : 0,
                       s.softirqs_enabled ? 1 : 0);
}

void header(std::string &out, const Finding &f, std::string_view warning, std::size_t rule) {
    out += std::string(rule, '=') + "\n";
    out += fmt::format("WARNING: {}\n", warning);
    out += f.kernel_ident.empty() ? std::string("lockwatch") : f.kernel_ident;
    out += " (observed by lockwatch, not lockdep)\n";
    if (f.hardirq_state_inferred) {
        out +=
            "note: the hardirq-enabled state was inferred from held locks and context, not "
            "read from EFLAGS\n";
    }
    out += std::string(rule, '-') + "\n";
}

void held_locks(std::string &out, const Finding &f) {
    if (f.held.empty()) {
        out += fmt::format("no locks held by {}.\n", task_str(f));
        return;
    }
    out += fmt::format("{} lock{} held by {}:\n", f.held.size(), f.held.size() > 1 ? "s" : "",
                       task_str(f));
    for (std::size_t i = 0; i < f.held.size(); ++i) {
        print_lock(out, f.held[i], fmt::format(" #{}:", i));
    }
}

void backtrace(std::string &out, const Finding &f) {
    out += "\nstack backtrace:\n";
    out += fmt::format("CPU: {} PID: {} Comm: {}\n", f.cpu, f.task.pid, f.task.comm_view());
    out += "Call Trace:\n";
    if (f.context != Context::Task) {
        out += f.context == Context::Softirq ? " <SOFTIRQ>\n" : " <IRQ>\n";
    }
    print_trace(out, f.stack, 0);
    if (f.context != Context::Task) {
        out += f.context == Context::Softirq ? " </SOFTIRQ>\n" : " </IRQ>\n";
    }
}

// The depth of a path's first entry: entries left out count too.
int path_depth(const std::vector<PathEntry> &entries) {
    int depth = -1;
    for (const PathEntry &e : entries) {
        depth += 1 + static_cast<int>(e.elided_before);
    }
    return depth;
}

// Where the engine left entries out of a long path (kMaxPathEntries).
void elided(std::string &out, const PathEntry &e, std::string_view pad) {
    if (e.elided_before) {
        out += fmt::format("{}... {} more dependencies ...\n\n", pad, e.elided_before);
    }
}

// print_lock_class_header() + "... acquired at:" (print_shortest_lock_dependencies).
// lockdep indents by depth; capped, so a report stays linear in its length.
void path(std::string &out, const std::vector<PathEntry> &entries) {
    constexpr int kMaxIndent = 2 * static_cast<int>(engine::kMaxPathEntries);
    int depth = path_depth(entries);
    for (const PathEntry &e : entries) {
        depth -= static_cast<int>(e.elided_before);
        std::string pad(std::min(depth, kMaxIndent), ' ');
        elided(out, e, pad);
        out += fmt::format("{}-> ({}){{{}}} {{\n", pad, e.name, e.usage);
        for (const UsageTrace &u : e.usages) {
            std::string line = fmt::format("{}   {} at:", pad, usage_bit_str(u.bit));
            out += line + "\n";
            // lockdep's len counts the depth twice: depth + what it printed.
            print_trace(out, u.stack, static_cast<int>(pad.size() + line.size()));
        }
        out += fmt::format("{} }}\n", pad);
        out += fmt::format("{} ... acquired at:\n", pad);
        print_trace(out, e.acquired_at, 2);
        out += "\n";
        --depth;
    }
}

// print_irq_lock_scenario()
void irq_scenario(std::string &out, const Finding &f) {
    const std::string &safe = known(f.safe_lock).name;
    const std::string &unsafe = known(f.unsafe_lock).name;
    std::string middle = f.middle_lock ? f.middle_lock->name : unsafe;
    if (middle != unsafe) {
        out += fmt::format("Chain exists of:\n  {} --> {} --> {}\n\n", safe, middle, unsafe);
    }
    out += " Possible interrupt unsafe locking scenario:\n\n";
    out += "       CPU0                    CPU1\n";
    out += "       ----                    ----\n";
    out += fmt::format("  lock({});\n", unsafe);
    out += "                               local_irq_disable();\n";
    out += fmt::format("                               lock({});\n", safe);
    out += fmt::format("                               lock({});\n", middle);
    out += "  <Interrupt>\n";
    out += fmt::format("    lock({});\n", safe);
    out += "\n *** DEADLOCK ***\n\n";
}

void render_irq_safe_to_unsafe(std::string &out, const Finding &f) {
    const std::string &irq = f.irq_state;
    header(out, f, fmt::format("{0}-safe -> {0}-unsafe lock order detected", irq), 53);
    out += fmt::format("{} {} is trying to acquire:\n", task_str(f), irq_flags_str(f.irq_flags));
    print_lock(out, f.acquiring);
    out += "\nand this task is already holding:\n";
    print_lock(out, known(f.holding));
    out += "which would create a new lock dependency:\n";
    out += fmt::format("{} ->{}\n", lock_name(known(f.holding)), lock_name(f.acquiring));
    out += fmt::format("\nbut this new dependency connects a {}-irq-safe lock:\n", irq);
    out += lock_name(known(f.safe_lock)) + "\n";
    out += fmt::format("\n... which became {}-irq-safe at:\n", irq);
    print_trace(out, stack_of(f.safe_usage), 1);
    out += fmt::format("\nto a {}-irq-unsafe lock:\n", irq);
    out += lock_name(known(f.unsafe_lock)) + "\n";
    out += fmt::format("\n... which became {}-irq-unsafe at:\n...\n", irq);
    print_trace(out, stack_of(f.unsafe_usage), 1);
    out += "\nother info that might help us debug this:\n\n";
    irq_scenario(out, f);
    held_locks(out, f);
    out += fmt::format("\nthe dependencies between {}-irq-safe lock and the holding lock:\n", irq);
    path(out, f.safe_path);
    out += "\nthe dependencies between the lock to be acquired";
    out += fmt::format("\n and {}-irq-unsafe lock:\n", irq);
    path(out, f.unsafe_path);
    backtrace(out, f);
}

void render_irq_inversion(std::string &out, const Finding &f) {
    header(out, f, "possible irq lock inversion dependency detected", 56);
    out += fmt::format("{} just changed the state of lock:\n", task_str(f));
    print_lock(out, f.acquiring);
    const bool forwards = known(f.safe_lock).name == f.acquiring.name;
    if (forwards) {
        out +=
            fmt::format("but this lock took another, {}-unsafe lock in the past:\n", f.irq_state);
        out += lock_name(known(f.unsafe_lock)) + "\n";
    } else {
        out += fmt::format("but this lock was taken by another, {}-safe lock in the past:\n",
                           f.irq_state);
        out += lock_name(known(f.safe_lock)) + "\n";
    }
    out += "\n\nand interrupts could create inverse lock ordering between them.\n\n";
    out += "\nother info that might help us debug this:\n";
    irq_scenario(out, f);
    held_locks(out, f);
    out += "\nthe shortest dependencies between 2nd lock and 1st lock:\n";
    path(out, f.path);
    backtrace(out, f);
}

void render_inconsistent(std::string &out, const Finding &f) {
    header(out, f, "inconsistent lock state", 32);
    out += fmt::format("inconsistent {{{}}} -> {{{}}} usage.\n", bit_str(f.prev_bit),
                       bit_str(f.new_bit));
    out += fmt::format("{} {} takes:\n", task_str(f), irq_flags_str(f.irq_flags));
    print_lock(out, f.acquiring);
    out += fmt::format("{{{}}} state was registered at:\n", bit_str(f.prev_bit));
    print_trace(out, stack_of(f.prev_usage), 1);
    out += "\nother info that might help us debug this:\n";
    out += " Possible unsafe locking scenario:\n\n";
    out += "       CPU0\n";
    out += "       ----\n";
    out += fmt::format("  lock({});\n", f.acquiring.name);
    out += "  <Interrupt>\n";
    out += fmt::format("    lock({});\n", f.acquiring.name);
    out += "\n *** DEADLOCK ***\n\n";
    held_locks(out, f);
    backtrace(out, f);
}

void render_circular(std::string &out, const Finding &f) {
    header(out, f, "possible circular locking dependency detected", 54);
    out += fmt::format("{} is trying to acquire lock:\n", task_str(f));
    print_lock(out, f.acquiring);
    out += "\nbut task is already holding lock:\n";
    print_lock(out, known(f.holding));
    out += "\nwhich lock already depends on the new lock.\n\n";
    out += "\nthe existing dependency chain (in reverse order) is:\n";
    int depth = path_depth(f.path);
    for (const PathEntry &e : f.path) {
        depth -= static_cast<int>(e.elided_before);
        if (e.elided_before) {
            out += fmt::format("\n... {} more dependencies ...\n", e.elided_before);
        }
        out += fmt::format("\n-> #{} ({}){{{}}}:\n", depth--, e.name, e.usage);
        print_trace(out, e.acquired_at, 6);
    }
    out += "\nother info that might help us debug this:\n\n";
    // print_circular_lock_scenario(src = next, tgt = prev, parent)
    const std::string &src = f.acquiring.name;
    const std::string &tgt = known(f.holding).name;
    std::string parent = f.middle_lock ? f.middle_lock->name : src;
    if (parent != src) {
        out += fmt::format("Chain exists of:\n  {} --> {} --> {}\n\n", src, parent, tgt);
    }
    out += " Possible unsafe locking scenario:\n\n";
    out += "       CPU0                    CPU1\n";
    out += "       ----                    ----\n";
    out += fmt::format("  {}({});\n", known(f.holding).read ? "rlock" : "lock", tgt);
    out += fmt::format("                               lock({});\n", parent);
    out += fmt::format("                               lock({});\n", tgt);
    out += fmt::format("  {}({});\n", f.acquiring.read ? "rlock" : "lock", src);
    out += "\n *** DEADLOCK ***\n\n";
    held_locks(out, f);
    backtrace(out, f);
}

void render_recursive(std::string &out, const Finding &f) {
    header(out, f, "possible recursive locking detected", 44);
    out += fmt::format("{} is trying to acquire lock:\n", task_str(f));
    print_lock(out, f.acquiring);
    out += "\nbut task is already holding lock:\n";
    print_lock(out, known(f.holding));
    out += "\nother info that might help us debug this:\n";
    out += " Possible unsafe locking scenario:\n\n";
    out += "       CPU0\n";
    out += "       ----\n";
    out += fmt::format("  lock({});\n", known(f.holding).name);
    out += fmt::format("  lock({});\n", f.acquiring.name);
    out += "\n *** DEADLOCK ***\n\n";
    out += " May be due to missing lock nesting notation\n\n";
    held_locks(out, f);
    backtrace(out, f);
}

}  // namespace

std::string format_frame(const Frame &fr) {
    std::string out;
    if (fr.symbol.empty()) {
        // Unnamed: an offset in its region, never the address.
        out = fr.module == engine::kElsewhereRegion ? "(unknown)"
                                                    : fmt::format("{:#x} (unknown)", fr.offset);
    } else {
        out = fr.symbol;
        if (!fr.inlined) {
            out += fmt::format("+{:#x}", fr.offset);
            if (fr.size) {
                out += fmt::format("/{:#x}", fr.size);
            }
        }
    }
    if (!fr.module.empty()) {
        out += fmt::format(" [{}]", fr.module);  // as the kernel prints module frames
    }
    if (!fr.file.empty()) {
        out += " " + fr.file;
        if (fr.line) {
            out += fmt::format(":{}", fr.line);
        }
    }
    if (fr.inlined) {
        out += " [inline]";
    }
    return out;
}

std::string render_text(const Finding &f) {
    std::string out;
    switch (f.kind) {
        case engine::FindingKind::IrqSafeToUnsafe:
            render_irq_safe_to_unsafe(out, f);
            break;
        case engine::FindingKind::IrqInversion:
            render_irq_inversion(out, f);
            break;
        case engine::FindingKind::InconsistentState:
            render_inconsistent(out, f);
            break;
        case engine::FindingKind::Circular:
            render_circular(out, f);
            break;
        case engine::FindingKind::Recursive:
            render_recursive(out, f);
            break;
    }
    return out;
}

bool TextSink::write(const Finding &f) {
    return put(fmt::format("lockwatch: {}\n{}\n", f.title, render_text(f)));
}

}  // namespace lockwatch::output
