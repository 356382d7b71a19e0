#include "engine/finding.h"

namespace lockwatch::engine {

std::string_view finding_kind_name(FindingKind k) {
    switch (k) {
        case FindingKind::IrqSafeToUnsafe:
            return "irq_safe_to_unsafe";
        case FindingKind::IrqInversion:
            return "irq_inversion";
        case FindingKind::InconsistentState:
            return "inconsistent_state";
        case FindingKind::Circular:
            return "circular";
        case FindingKind::Recursive:
            return "recursive";
    }
    return "circular";
}

bool parse_finding_kind_name(std::string_view name, FindingKind *out) {
    for (FindingKind k :
         {FindingKind::IrqSafeToUnsafe, FindingKind::IrqInversion, FindingKind::InconsistentState,
          FindingKind::Circular, FindingKind::Recursive}) {
        if (finding_kind_name(k) == name) {
            *out = k;
            return true;
        }
    }
    return false;
}

std::string_view irq_class_name(IrqClass c) {
    switch (c) {
        case IrqClass::Hardirq:
            return "hardirq";
        case IrqClass::Softirq:
            return "softirq";
        case IrqClass::None:
            break;
    }
    return "";
}

bool parse_irq_class_name(std::string_view name, IrqClass *out) {
    for (IrqClass c : {IrqClass::None, IrqClass::Hardirq, IrqClass::Softirq}) {
        if (irq_class_name(c) == name) {
            *out = c;
            return true;
        }
    }
    return false;
}

void for_each_stack(Finding &f, const std::function<void(StackRef &)> &visit) {
    auto lock = [&](LockRef &l) { visit(l.at); };
    auto optional_lock = [&](std::optional<LockRef> &l) {
        if (l) {
            lock(*l);
        }
    };
    auto usage = [&](std::optional<UsageTrace> &u) {
        if (u) {
            visit(u->stack);
        }
    };
    visit(f.stack);
    for (LockRef &l : f.locks) {
        lock(l);
    }
    lock(f.acquiring);
    optional_lock(f.holding);
    for (LockRef &l : f.held) {
        lock(l);
    }
    optional_lock(f.safe_lock);
    optional_lock(f.unsafe_lock);
    optional_lock(f.middle_lock);
    usage(f.safe_usage);
    usage(f.unsafe_usage);
    usage(f.prev_usage);
    for (std::vector<PathEntry> *path : {&f.safe_path, &f.unsafe_path, &f.path}) {
        for (PathEntry &e : *path) {
            for (UsageTrace &u : e.usages) {
                visit(u.stack);
            }
            visit(e.acquired_at);
        }
    }
}

}  // namespace lockwatch::engine
