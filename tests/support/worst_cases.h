// Inputs that once made the engine's cost or its reports grow without
// bound, built as facts (what a trace or the BPF programs send). Shared by
// the unit tests (small sizes) and bench/engine_worst_cases (the sizes the
// problems were found at).
#pragma once

#include <cstdint>
#include <string>

#include "engine/engine.h"

namespace lockwatch::engine::worst {

inline void edge(Engine &eng, ClassId prev, ClassId next, StackId stack = kNoStack) {
    EdgeFact e;
    e.prev = prev;
    e.next = next;
    e.next_stack = stack;
    e.prev_stack = stack;
    eng.process(e);
}

inline void classes(Engine &eng, ClassId first, ClassId last) {
    for (ClassId c = first; c <= last; ++c) {
        eng.process(ClassFact{c, "class_" + std::to_string(c)});
    }
}

// A HARDIRQ-safe lock, n locks in a chain, then a HARDIRQ-unsafe one: the
// last edge makes one finding whose safe path is n + 1 classes long.
inline void irq_chain(Engine &eng, std::uint32_t n) {
    const ClassId safe = 1, unsafe = n + 2;
    classes(eng, safe, unsafe);
    UsageFact used_in;
    used_in.cls = safe;
    used_in.bit = UsageBit::UsedInHardirq;
    eng.process(used_in);
    UsageFact enabled;
    enabled.cls = unsafe;
    enabled.bit = UsageBit::EnabledHardirq;
    eng.process(enabled);
    for (ClassId c = 2; c <= n; ++c) {
        edge(eng, c, c + 1);
    }
    edge(eng, safe, 2);
    edge(eng, n + 1, unsafe);
}

// A cycle of n classes, every dependency acquired at `stack`: one circular
// finding whose path is n long.
inline void cycle(Engine &eng, std::uint32_t n, StackId stack = kNoStack) {
    classes(eng, 1, n);
    for (ClassId c = 1; c < n; ++c) {
        edge(eng, c, c + 1, stack);
    }
    edge(eng, n, 1, stack);
}

// A stack of `frames` frames, each naming a `symbol_len`-character symbol.
inline void big_stack(Engine &eng, StackId id, std::uint32_t frames, std::uint32_t symbol_len) {
    StackFact s;
    s.id = id;
    for (std::uint32_t i = 0; i < frames; ++i) {
        Frame f;
        f.symbol = std::string(symbol_len - 4, 'f') + std::to_string(1000 + i % 1000);
        f.offset = 0x10;
        f.size = 0x100;
        s.frames.push_back(std::move(f));
    }
    eng.process(s);
}

// The chain cn -> ... -> c2 -> c1 against the order its classes were met
// in (c1 first), its edges added from cn on: each new edge puts the whole
// chain built so far behind the next class in the topological order.
inline void reverse_chain(Engine &eng, std::uint32_t n) {
    classes(eng, 1, n);
    for (ClassId c = n - 1; c >= 1; --c) {
        edge(eng, c + 1, c);
    }
}

}  // namespace lockwatch::engine::worst
