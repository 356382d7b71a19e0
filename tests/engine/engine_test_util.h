// Helpers that drive the engine with raw lock operations the way the BPF
// capture will: one call per acquire/release, with context and irq state.
#pragma once

#include <cstdlib>
#include <fstream>
#include <initializer_list>
#include <map>
#include <utility>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "engine/engine.h"
#include "engine/finding_names.h"
#include "engine/trace.h"
#include "fact_emulator.h"

namespace lockwatch::engine::testing {

namespace af = acquire_flags;

// LOCKWATCH_ENGINE_PATH=facts runs every Sim through the facts the BPF
// programs would send for its operations (fact_emulator.h) instead of
// giving the engine the raw operations: the check suite, both ways.
inline bool sim_feeds_facts() {
    const char *path = std::getenv("LOCKWATCH_ENGINE_PATH");
    return path && std::string_view(path) == "facts";
}

// A check that only the raw path makes (the reason says why the facts the
// BPF programs send cannot show it).
#define LOCKWATCH_RAW_PATH_ONLY(reason)                      \
    do {                                                     \
        if (sim_feeds_facts()) {                             \
            GTEST_SKIP() << "raw events only: " << (reason); \
        }                                                    \
    } while (0)

class Sim {
  public:
    explicit Sim(EngineOptions options = {})
        : nmi_graph_(options.nmi_graph), eng(std::move(options)) {}

  private:
    bool nmi_graph_;

  public:
    Engine eng;
    // A raw lock operation, to the engine as it is, or as BPF facts.
    void feed(const Event &e) {
        if (as_facts_) {
            facts_.process(e);
        } else {
            eng.process(e);
        }
    }
    std::uint64_t now = 1000;

    ClassId cls(const std::string &name) {
        ClassId id = next_class_++;
        eng.process(ClassFact{id, name});
        return id;
    }
    // A stack from "symbol" or "symbol+0x10/0x40" strings, innermost first;
    // a trailing " [inline]" marks an inline frame.
    StackId stack(std::initializer_list<std::string> frames) {
        Stack s;
        for (const std::string &text : frames) {
            Frame f;
            std::string t = text;
            const std::string inl = " [inline]";
            if (t.size() > inl.size() && t.compare(t.size() - inl.size(), inl.size(), inl) == 0) {
                f.inlined = true;
                t.resize(t.size() - inl.size());
            }
            auto plus = t.find('+');
            f.symbol = t.substr(0, plus);
            if (plus != std::string::npos) {
                auto slash = t.find('/', plus);
                f.offset = std::stoull(t.substr(plus + 1, slash - plus - 1), nullptr, 16);
                if (slash != std::string::npos) {
                    f.size = std::stoull(t.substr(slash + 1), nullptr, 16);
                }
            }
            s.push_back(f);
        }
        return eng.stacks().intern(std::move(s));
    }
    // Acquire `lock` of class `c`. hardirqs/softirqs: the state at the call
    // site, before the lock function's own disabling.
    void acq(ClassId c, LockId lock, std::uint32_t flags = 0, Context ctx = Context::Task,
             std::uint32_t cpu = 0, bool hardirqs = true, bool softirqs = true,
             StackId st = kNoStack, bool inferred = false) {
        AcquireEvent e;
        e.time_ns = now++;
        e.cpu = cpu;
        e.task.pid = ctx == Context::Task ? 100 + static_cast<int>(cpu) : 0;
        e.task.set_comm(ctx == Context::Task ? "worker" : "swapper/0");
        e.context = ctx;
        e.lock = lock;
        e.cls = c;
        e.flags = flags;
        // Like the kernel: a held _irq/_bh lock keeps irqs/softirqs off.
        auto &held = held_[{cpu, static_cast<int>(ctx)}];
        for (const auto &[l, f] : held) {
            hardirqs = hardirqs && !(f & af::kIrqsOff);
            softirqs = softirqs && !(f & af::kBhOff);
        }
        held.emplace_back(lock, flags);
        e.hardirqs_enabled = hardirqs && ctx != Context::Hardirq;
        e.softirqs_enabled = softirqs && ctx == Context::Task;
        e.hardirq_state_inferred = inferred;
        e.stack = st;
        feed(e);
    }
    void rel(LockId lock, Context ctx = Context::Task, std::uint32_t cpu = 0) {
        ReleaseEvent e;
        e.time_ns = now++;
        e.cpu = cpu;
        e.context = ctx;
        e.lock = lock;
        auto &held = held_[{cpu, static_cast<int>(ctx)}];
        for (auto it = held.begin(); it != held.end(); ++it) {
            if (it->first == lock) {
                held.erase(it);
                break;
            }
        }
        feed(e);
    }
    // Interrupts back on in `ctx` with its locks still held (the unlock of
    // an outer _irqsave lock, a _bh unlock).
    void irqs_on(bool softirqs, Context ctx = Context::Task, std::uint32_t cpu = 0,
                 StackId st = kNoStack) {
        IrqsEnabledEvent e;
        e.time_ns = now++;
        e.cpu = cpu;
        e.context = ctx;
        e.hardirqs_enabled = true;
        e.softirqs_enabled = softirqs;
        e.stack = st;
        feed(e);
    }
    // Take and release in one go.
    void once(ClassId c, LockId lock, std::uint32_t flags = 0, Context ctx = Context::Task,
              std::uint32_t cpu = 0) {
        acq(c, lock, flags, ctx, cpu);
        rel(lock, ctx, cpu);
    }
    std::size_t count(FindingKind k) const {
        std::size_t n = 0;
        for (const auto &f : eng.findings()) {
            n += f.kind == k;
        }
        return n;
    }
    const Finding *first(FindingKind k) const {
        for (const auto &f : eng.findings()) {
            if (f.kind == k) {
                return &f;
            }
        }
        return nullptr;
    }

  private:
    bool as_facts_ = sim_feeds_facts();
    FactEmulator facts_{eng, nmi_graph_};
    ClassId next_class_ = 1;
    std::map<std::pair<std::uint32_t, int>, std::vector<std::pair<LockId, std::uint32_t>>> held_;
};

// The findings of a recorded trace in tests/traces/, replayed through a
// fresh engine; a trace that does not read cleanly fails the test.
inline std::vector<Finding> replay_trace_file(const std::string &name) {
    std::ifstream in(std::string(LOCKWATCH_TRACES_DIR) + "/" + name);
    EXPECT_TRUE(in) << name;
    Engine eng;
    TraceReader reader(in);
    while (auto ev = reader.next()) {
        eng.process(*ev);
    }
    EXPECT_FALSE(reader.error()) << reader.error()->format(name);
    return eng.findings();
}

}  // namespace lockwatch::engine::testing
