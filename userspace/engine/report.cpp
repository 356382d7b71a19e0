#include "engine/report.h"

#include <array>
#include <cstdint>

#include <fmt/format.h>

#include "engine/kernel_frames.h"

namespace lockwatch::engine {
namespace {

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
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
    while (i < stack->size() && is_lock_internal((*stack)[i].symbol)) {
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

void header(std::string &out, const Finding &f, const std::string &ident, std::string_view warning,
            std::size_t rule) {
    out += std::string(rule, '=') + "\n";
    out += fmt::format("WARNING: {}\n", warning);
    out += ident.empty() ? std::string("lockwatch") : ident;
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

// print_lock_class_header() + "... acquired at:" (print_shortest_lock_dependencies).
void path(std::string &out, const std::vector<PathEntry> &entries) {
    int depth = static_cast<int>(entries.size()) - 1;
    for (const PathEntry &e : entries) {
        std::string pad(depth, ' ');
        out += fmt::format("{}-> ({}){{{}}} {{\n", pad, e.name, e.usage);
        for (const UsageTrace &u : e.usages) {
            std::string line = fmt::format("{}   {} at:", pad, usage_bit_str(u.bit));
            out += line + "\n";
            print_trace(out, u.stack, depth + static_cast<int>(line.size()));
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
    const std::string &safe = f.safe_lock->name;
    const std::string &unsafe = f.unsafe_lock->name;
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

void render_irq_safe_to_unsafe(std::string &out, const Finding &f, const std::string &ident) {
    const std::string &irq = f.irq_state;
    header(out, f, ident, fmt::format("{0}-safe -> {0}-unsafe lock order detected", irq), 53);
    out += fmt::format("{} {} is trying to acquire:\n", task_str(f), irq_flags_str(f.irq_flags));
    print_lock(out, f.acquiring);
    out += "\nand this task is already holding:\n";
    print_lock(out, *f.holding);
    out += "which would create a new lock dependency:\n";
    out += fmt::format("{} ->{}\n", lock_name(*f.holding), lock_name(f.acquiring));
    out += fmt::format("\nbut this new dependency connects a {}-irq-safe lock:\n", irq);
    out += lock_name(*f.safe_lock) + "\n";
    out += fmt::format("\n... which became {}-irq-safe at:\n", irq);
    print_trace(out, f.safe_usage->stack, 1);
    out += fmt::format("\nto a {}-irq-unsafe lock:\n", irq);
    out += lock_name(*f.unsafe_lock) + "\n";
    out += fmt::format("\n... which became {}-irq-unsafe at:\n...\n", irq);
    print_trace(out, f.unsafe_usage->stack, 1);
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

void render_irq_inversion(std::string &out, const Finding &f, const std::string &ident) {
    header(out, f, ident, "possible irq lock inversion dependency detected", 56);
    out += fmt::format("{} just changed the state of lock:\n", task_str(f));
    print_lock(out, f.acquiring);
    const bool forwards = f.safe_lock->name == f.acquiring.name;
    if (forwards) {
        out +=
            fmt::format("but this lock took another, {}-unsafe lock in the past:\n", f.irq_state);
        out += lock_name(*f.unsafe_lock) + "\n";
    } else {
        out += fmt::format("but this lock was taken by another, {}-safe lock in the past:\n",
                           f.irq_state);
        out += lock_name(*f.safe_lock) + "\n";
    }
    out += "\n\nand interrupts could create inverse lock ordering between them.\n\n";
    out += "\nother info that might help us debug this:\n";
    irq_scenario(out, f);
    held_locks(out, f);
    out += "\nthe shortest dependencies between 2nd lock and 1st lock:\n";
    path(out, f.path);
    backtrace(out, f);
}

void render_inconsistent(std::string &out, const Finding &f, const std::string &ident) {
    header(out, f, ident, "inconsistent lock state", 32);
    out += fmt::format("inconsistent {{{}}} -> {{{}}} usage.\n", usage_bit_str(*f.prev_bit),
                       usage_bit_str(*f.new_bit));
    out += fmt::format("{} {} takes:\n", task_str(f), irq_flags_str(f.irq_flags));
    print_lock(out, f.acquiring);
    out += fmt::format("{{{}}} state was registered at:\n", usage_bit_str(*f.prev_bit));
    print_trace(out, f.prev_usage->stack, 1);
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

void render_circular(std::string &out, const Finding &f, const std::string &ident) {
    header(out, f, ident, "possible circular locking dependency detected", 54);
    out += fmt::format("{} is trying to acquire lock:\n", task_str(f));
    print_lock(out, f.acquiring);
    out += "\nbut task is already holding lock:\n";
    print_lock(out, *f.holding);
    out += "\nwhich lock already depends on the new lock.\n\n";
    out += "\nthe existing dependency chain (in reverse order) is:\n";
    int depth = static_cast<int>(f.path.size()) - 1;
    for (const PathEntry &e : f.path) {
        out += fmt::format("\n-> #{} ({}){{{}}}:\n", depth--, e.name, e.usage);
        print_trace(out, e.acquired_at, 6);
    }
    out += "\nother info that might help us debug this:\n\n";
    // print_circular_lock_scenario(src = next, tgt = prev, parent)
    const std::string &src = f.acquiring.name;
    const std::string &tgt = f.holding->name;
    std::string parent = f.middle_lock ? f.middle_lock->name : src;
    if (parent != src) {
        out += fmt::format("Chain exists of:\n  {} --> {} --> {}\n\n", src, parent, tgt);
    }
    out += " Possible unsafe locking scenario:\n\n";
    out += "       CPU0                    CPU1\n";
    out += "       ----                    ----\n";
    out += fmt::format("  {}({});\n", f.holding->read ? "rlock" : "lock", tgt);
    out += fmt::format("                               lock({});\n", parent);
    out += fmt::format("                               lock({});\n", tgt);
    out += fmt::format("  {}({});\n", f.acquiring.read ? "rlock" : "lock", src);
    out += "\n *** DEADLOCK ***\n\n";
    held_locks(out, f);
    backtrace(out, f);
}

void render_recursive(std::string &out, const Finding &f, const std::string &ident) {
    header(out, f, ident, "possible recursive locking detected", 44);
    out += fmt::format("{} is trying to acquire lock:\n", task_str(f));
    print_lock(out, f.acquiring);
    out += "\nbut task is already holding lock:\n";
    print_lock(out, *f.holding);
    out += "\nother info that might help us debug this:\n";
    out += " Possible unsafe locking scenario:\n\n";
    out += "       CPU0\n";
    out += "       ----\n";
    out += fmt::format("  lock({});\n", f.holding->name);
    out += fmt::format("  lock({});\n", f.acquiring.name);
    out += "\n *** DEADLOCK ***\n\n";
    out += " May be due to missing lock nesting notation\n\n";
    held_locks(out, f);
    backtrace(out, f);
}

}  // namespace

std::string format_frame(const Frame &fr) {
    std::string out = fr.symbol.empty() ? std::string("??") : fr.symbol;
    if (!fr.inlined) {
        out += fmt::format("+{:#x}", fr.offset);
        if (fr.size) {
            out += fmt::format("/{:#x}", fr.size);
        }
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

bool is_lock_internal(std::string_view s) {
    static constexpr std::array<std::string_view, 16> kPrefixes = {
        "lock_acquire", "__lock_acquire", "lock_acquired",  "lock_contended",
        "_raw_spin_",   "_raw_read_",     "_raw_write_",    "__raw_spin_",
        "__raw_read_",  "__raw_write_",   "do_raw_",        "queued_spin_",
        "queued_read_", "queued_write_",  "native_queued_", "__pv_queued_",
    };
    for (auto p : kPrefixes) {
        if (starts_with(s, p)) {
            return true;
        }
    }
    return is_bpf_machinery(s) || starts_with(s, "lockwatch");
}

bool is_lock_primitive(std::string_view s) {
    if (is_lock_internal(s)) {
        return true;
    }
    static constexpr std::array<std::string_view, 8> kWrappers = {
        "spin_lock",    "spin_trylock",  "read_lock",     "write_lock",
        "read_trylock", "write_trylock", "raw_spin_lock", "raw_spin_trylock",
    };
    for (auto p : kWrappers) {
        if (starts_with(s, p)) {
            return true;
        }
    }
    return false;
}

std::string make_title(FindingKind kind, const Stack *stack) {
    std::string prefix = kind == FindingKind::InconsistentState ? "inconsistent lock state in "
                                                                : "possible deadlock in ";
    if (stack) {
        for (const Frame &fr : *stack) {
            if (!fr.inlined && !is_lock_primitive(fr.symbol)) {
                return prefix + fr.symbol;
            }
        }
        if (!stack->empty()) {
            return prefix + stack->back().symbol;
        }
    }
    return prefix + "unknown";
}

std::string signature_hash(std::string_view key) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned char c : key) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return fmt::format("{:016x}", h);
}

std::string report_class_name(const std::string &name, ClassId id) {
    if (!name.empty()) {
        return name;
    }
    return "unnamed-" + signature_hash(fmt::format("{}", id)).substr(0, 8);
}

std::string render_text(const Finding &f, const std::string &kernel_ident) {
    std::string out;
    switch (f.kind) {
        case FindingKind::IrqSafeToUnsafe:
            render_irq_safe_to_unsafe(out, f, kernel_ident);
            break;
        case FindingKind::IrqInversion:
            render_irq_inversion(out, f, kernel_ident);
            break;
        case FindingKind::InconsistentState:
            render_inconsistent(out, f, kernel_ident);
            break;
        case FindingKind::Circular:
            render_circular(out, f, kernel_ident);
            break;
        case FindingKind::Recursive:
            render_recursive(out, f, kernel_ident);
            break;
    }
    return out;
}

}  // namespace lockwatch::engine
