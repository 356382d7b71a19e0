#include "engine/finding_names.h"

#include <array>
#include <cstdint>

#include <fmt/format.h>

#include "engine/kernel_frames.h"

namespace lockwatch::engine {
namespace {

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}

}  // namespace

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
            if (!fr.inlined && !fr.symbol.empty() && !is_lock_primitive(fr.symbol)) {
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

}  // namespace lockwatch::engine
