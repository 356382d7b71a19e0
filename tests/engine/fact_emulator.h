// The facts the BPF programs would send for a stream of raw lock operations,
// so that the engine's check suite can run a second way: raw events -> these
// facts -> engine, as on a live kernel, against raw events -> engine.
//
// The usage rule and the read level are the very functions the BPF programs
// call (acquire_flags.h). The rest follows bpf/lockwatch.bpf.c's
// on_acquire(), step by step, and must be kept in step with it: the
// irq flags (set_irq_flags()), recursion on the same instance
// (report_recursion()), an edge from the newest held lock and from the one
// below a trylock on top (report_edges()), the edges map's key (classes,
// read levels, context), NMI (report_nmi_acquire()) and interrupts back on
// with locks held (mark_held_locks()).
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace lockwatch::engine::testing {

class FactEmulator {
  public:
    // nmi_graph: as lockwatch run --nmi-graph, NMI like any other context.
    FactEmulator(Engine &eng, bool nmi_graph) : eng_(eng), nmi_graph_(nmi_graph) {}

    void process(const Event &event) {
        if (const auto *a = std::get_if<AcquireEvent>(&event)) {
            acquire(*a);
        } else if (const auto *r = std::get_if<ReleaseEvent>(&event)) {
            release(*r);
        } else if (const auto *on = std::get_if<IrqsEnabledEvent>(&event)) {
            irqs_on(*on);
        } else {
            eng_.process(event);  // classes, stacks and facts pass through
        }
    }

  private:
    struct Held {
        LockId lock;
        ClassId cls;
        std::uint32_t flags;
        StackId stack;
    };
    using Key = std::pair<std::uint32_t, int>;  // cpu, context

    static unsigned ctx_of(Context c) { return static_cast<unsigned>(c); }

    void acquire(const AcquireEvent &ev) {
        if (ev.context == Context::Nmi && !nmi_graph_) {
            return nmi_acquire(ev);
        }
        auto &held = held_[{ev.cpu, static_cast<int>(ev.context)}];
        std::uint32_t flags = ev.flags;
        // set_irq_flags()
        bool hardirqs_on;
        if ((flags & acquire_flags::kIrqsOff) || ev.context >= Context::Hardirq) {
            hardirqs_on = false;
        } else if (ev.hardirq_state_inferred) {
            hardirqs_on = std::none_of(held.begin(), held.end(), [](const Held &h) {
                return h.flags & acquire_flags::kIrqsOff;
            });
        } else {
            hardirqs_on = ev.hardirqs_enabled;
        }
        bool softirqs_on = false;
        if (!ev.softirqs_enabled) {
            flags |= acquire_flags::kSoftirqsOff;
        } else if (!(flags & acquire_flags::kBhOff)) {
            softirqs_on = true;
        }
        report_usage(ev.cls, lw_usage_mask(flags, ctx_of(ev.context), hardirqs_on, softirqs_on),
                     flags, ev.context, ev.stack, ev);
        if (!(flags & acquire_flags::kTrylock)) {
            report_recursion(ev, flags, hardirqs_on, softirqs_on);
            report_edges(held, ev, flags, hardirqs_on, softirqs_on);
        }
        held.push_back({ev.lock, ev.cls, flags, ev.stack});
    }

    // report_nmi_acquire(): once per class, when it was used outside NMI.
    void nmi_acquire(const AcquireEvent &ev) {
        unsigned conflict = 1u << LW_USED;
        if (!lw_read_level(ev.flags, LW_CTX_NMI)) {
            conflict |= 1u << LW_USED_READ;
        }
        if ((ev.flags & acquire_flags::kTrylock) || !(usage_[ev.cls] & conflict) ||
            !nmi_sent_.insert(ev.cls).second) {
            return;
        }
        AcquireEvent sent = ev;  // as the decoder makes it of the record
        sent.hardirqs_enabled = false;
        sent.softirqs_enabled = false;
        eng_.process(sent);
    }

    void report_usage(ClassId cls, unsigned mask, std::uint32_t flags, Context ctx, StackId stack,
                      const AcquireEvent &ev) {
        const unsigned fresh = mask & ~usage_[cls];
        usage_[cls] |= mask;
        for (unsigned i = 0; i < LW_USAGE_BITS; ++i) {
            const unsigned bit = lw_usage_bit_at(i);
            if (!(fresh & (1u << bit))) {
                continue;
            }
            UsageFact u;
            u.cls = cls;
            u.bit = static_cast<UsageBit>(bit);
            u.stack = stack;
            u.task = ev.task;
            u.cpu = ev.cpu;
            u.time_ns = ev.time_ns;
            u.hardirq_state_inferred = ev.hardirq_state_inferred;
            u.read = static_cast<std::uint8_t>(lw_read_level(flags, ctx_of(ctx)));
            eng_.process(u);
        }
    }

    EdgeFact edge(const Held &prev, const AcquireEvent &ev, std::uint32_t flags, bool hard,
                  bool soft) const {
        EdgeFact e;
        e.prev = prev.cls;
        e.next = ev.cls;
        e.context = ev.context;
        e.prev_read = static_cast<std::uint8_t>(lw_read_level(prev.flags, ctx_of(ev.context)));
        e.next_read = static_cast<std::uint8_t>(lw_read_level(flags, ctx_of(ev.context)));
        e.next_stack = ev.stack;
        e.prev_stack = prev.stack;
        e.hardirqs_enabled = hard;
        e.softirqs_enabled = soft;
        e.task = ev.task;
        e.cpu = ev.cpu;
        e.time_ns = ev.time_ns;
        e.hardirq_state_inferred = ev.hardirq_state_inferred;
        return e;
    }

    // The same instance held in this context or one it interrupted, unless
    // a recursive reader follows a reader: a self-dependency.
    void report_recursion(const AcquireEvent &ev, std::uint32_t flags, bool hard, bool soft) {
        const unsigned ctx = ctx_of(ev.context);
        // This context, then the task and softirq ones it may have interrupted.
        const int contexts[] = {static_cast<int>(ctx), ctx > LW_CTX_TASK ? LW_CTX_TASK : -1,
                                ctx > LW_CTX_SOFTIRQ ? LW_CTX_SOFTIRQ : -1};
        for (int c : contexts) {
            if (c < 0) {
                continue;
            }
            for (const Held &h : held_[{ev.cpu, c}]) {
                if (h.lock != ev.lock) {
                    continue;
                }
                if (!(lw_read_level(flags, ctx) == 2 && lw_read_level(h.flags, ctx))) {
                    Held self = h;
                    self.cls = ev.cls;
                    eng_.process(edge(self, ev, flags, hard, soft));
                }
                return;
            }
        }
    }

    void report_edges(const std::vector<Held> &held, const AcquireEvent &ev, std::uint32_t flags,
                      bool hard, bool soft) {
        if (held.empty()) {
            return;
        }
        const Held &top = held.back();
        report_edge(top, ev, flags, hard, soft);
        if ((top.flags & acquire_flags::kTrylock) && held.size() >= 2) {
            report_edge(held[held.size() - 2], ev, flags, hard, soft);
        }
    }

    void report_edge(const Held &prev, const AcquireEvent &ev, std::uint32_t flags, bool hard,
                     bool soft) {
        if (prev.cls == ev.cls) {
            return;
        }
        const unsigned ctx = ctx_of(ev.context);
        const unsigned read_bits = lw_read_level(prev.flags, ctx) | lw_read_level(flags, ctx) << 2;
        if (edges_.insert({prev.cls, ev.cls, read_bits, static_cast<int>(ctx)}).second) {
            eng_.process(edge(prev, ev, flags, hard, soft));
        }
    }

    void release(const ReleaseEvent &ev) {
        auto &held = held_[{ev.cpu, static_cast<int>(ev.context)}];
        for (auto it = held.rbegin(); it != held.rend(); ++it) {
            if (it->lock == ev.lock) {
                held.erase(std::next(it).base());
                return;
            }
        }
    }

    // mark_held_locks(): the locks still held in that context, HARDIRQ-ON
    // (and SOFTIRQ-ON in task context with softirqs on).
    void irqs_on(const IrqsEnabledEvent &ev) {
        if (!ev.hardirqs_enabled) {
            return;
        }
        const bool soft = ev.softirqs_enabled && ev.context == Context::Task;
        AcquireEvent as{};
        as.task = ev.task;
        as.cpu = ev.cpu;
        as.time_ns = ev.time_ns;
        for (const Held &h : held_[{ev.cpu, static_cast<int>(ev.context)}]) {
            const unsigned read = lw_read_level(h.flags, ctx_of(ev.context)) != 0;
            unsigned mask = 1u << (LW_ENABLED_HARDIRQ + read);
            if (soft) {
                mask |= 1u << (LW_ENABLED_SOFTIRQ + read);
            }
            report_usage(h.cls, mask, h.flags, ev.context, ev.stack, as);
        }
    }

    Engine &eng_;
    bool nmi_graph_;
    std::map<Key, std::vector<Held>> held_;
    std::map<ClassId, unsigned> usage_;                            // the class_usage map
    std::set<std::tuple<ClassId, ClassId, unsigned, int>> edges_;  // the edges map
    std::set<ClassId> nmi_sent_;
};

}  // namespace lockwatch::engine::testing
