// The kernel's out-of-line lock API as user space sees it: the table shared
// with the BPF programs (bpf/lock_functions.h), and which of those functions
// the running kernel really has.
#pragma once

#include <array>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "lockwatch.h"

namespace lockwatch {

enum class LockKind { Spin, Read, Write };
enum class LockOp { Acquire, Trylock, Release };
enum class LockVariant { Plain, Bh, Irq, Irqsave };

struct LockFunction {
    lw_lock_function_id id;
    std::string_view symbol;
    LockKind kind;
    LockOp op;
    LockVariant variant;
};

// Every function of bpf/lock_functions.h, indexed by lw_lock_function_id.
const std::array<LockFunction, LW_FN_COUNT> &lock_functions();

std::string_view to_string(LockKind kind);
std::string_view to_string(LockOp op);
std::string_view to_string(LockVariant variant);

// True when `symbol` is one of the lock functions of the table.
bool is_lock_function(std::string_view symbol);

// Why a lock function can or cannot be traced on this kernel.
enum class Availability {
    OutOfLine,    // a real function with BTF: fentry can attach
    NotInKernel,  // inlined by the kernel's config, or not built (lockdep-only)
    NoBtf,        // in kallsyms but not in BTF: fentry cannot attach to it
};

std::string_view to_string(Availability availability);

struct KernelFunctionLookup {
    std::function<bool(std::string_view)> has_btf_function;
    std::function<bool(std::string_view)> has_text_symbol;
};

// Classifies every lock function of the table for one kernel.
std::array<Availability, LW_FN_COUNT> discover_lock_functions(const KernelFunctionLookup &kernel);

}  // namespace lockwatch
