// A finding as a guest's lockwatch would send it, for the tests of what
// `lockwatch vm` does with what comes back.
#pragma once

#include "engine/finding.h"

namespace lockwatch {

inline engine::Finding sample_finding() {
    engine::Finding f;
    f.kind = engine::FindingKind::IrqSafeToUnsafe;
    f.irq = engine::IrqClass::Softirq;
    f.irq_state = "SOFTIRQ";
    f.title = "possible deadlock in io_submit_one";
    f.signature = "0123456789abcdef";
    f.locks = {{"kioctx.ctx_lock", "..-.", nullptr, 0},
               {"pid.wait_pidfd.lock", "+.+.", nullptr, 0}};
    f.chain = {"kioctx.ctx_lock", "pid.wait_pidfd.lock"};
    f.acquiring = f.locks[1];
    f.holding = f.locks[0];
    f.task.pid = 65;
    f.task.set_comm("seed-repro");
    engine::Frame top;
    top.symbol = "io_submit_one";
    top.offset = 0x3c2;
    top.size = 0x700;
    f.stack = engine::StackRef(engine::Stack{top});
    return f;
}

}  // namespace lockwatch
