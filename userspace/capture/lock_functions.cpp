#include "capture/lock_functions.h"

#include <algorithm>

namespace lockwatch {

namespace {

constexpr LockKind kind_SPIN = LockKind::Spin;
constexpr LockKind kind_READ = LockKind::Read;
constexpr LockKind kind_WRITE = LockKind::Write;
constexpr LockOp op_ACQUIRE = LockOp::Acquire;
constexpr LockOp op_TRYLOCK = LockOp::Trylock;
constexpr LockOp op_RELEASE = LockOp::Release;
constexpr LockVariant variant_PLAIN = LockVariant::Plain;
constexpr LockVariant variant_BH = LockVariant::Bh;
constexpr LockVariant variant_IRQ = LockVariant::Irq;
constexpr LockVariant variant_IRQSAVE = LockVariant::Irqsave;

constexpr std::array<LockFunction, LW_FN_COUNT> kLockFunctions = {{
#define LW_LOCK_FUNCTION(symbol, kind, op, variant) \
    {LW_FN_##symbol, #symbol, kind_##kind, op_##op, variant_##variant},
    LW_LOCK_FUNCTIONS
#undef LW_LOCK_FUNCTION
}};

}  // namespace

const std::array<LockFunction, LW_FN_COUNT> &lock_functions() {
    return kLockFunctions;
}

std::string_view to_string(LockKind kind) {
    switch (kind) {
        case LockKind::Spin:
            return "spin";
        case LockKind::Read:
            return "read";
        case LockKind::Write:
            return "write";
    }
    return "?";
}

std::string_view to_string(LockOp op) {
    switch (op) {
        case LockOp::Acquire:
            return "acquire";
        case LockOp::Trylock:
            return "trylock";
        case LockOp::Release:
            return "release";
    }
    return "?";
}

std::string_view to_string(LockVariant variant) {
    switch (variant) {
        case LockVariant::Plain:
            return "plain";
        case LockVariant::Bh:
            return "bh";
        case LockVariant::Irq:
            return "irq";
        case LockVariant::Irqsave:
            return "irqsave";
    }
    return "?";
}

std::string_view to_string(Availability availability) {
    switch (availability) {
        case Availability::OutOfLine:
            return "out of line";
        case Availability::NotInKernel:
            return "inlined or not built on this kernel";
        case Availability::NoBtf:
            return "no BTF for it, fentry cannot attach";
    }
    return "?";
}

bool is_lock_function(std::string_view symbol) {
    return std::any_of(kLockFunctions.begin(), kLockFunctions.end(),
                       [&](const LockFunction &fn) { return fn.symbol == symbol; });
}

std::array<Availability, LW_FN_COUNT> discover_lock_functions(const KernelFunctionLookup &kernel) {
    std::array<Availability, LW_FN_COUNT> result{};
    for (const LockFunction &fn : kLockFunctions) {
        if (kernel.has_btf_function(fn.symbol)) {
            result[fn.id] = Availability::OutOfLine;
        } else if (kernel.has_text_symbol(fn.symbol)) {
            result[fn.id] = Availability::NoBtf;
        } else {
            result[fn.id] = Availability::NotInKernel;
        }
    }
    return result;
}

}  // namespace lockwatch
