#include "engine/events.h"

#include <algorithm>
#include <cstring>

namespace lockwatch::engine {
namespace {

// Indexed by UsageBit: lockdep's usage_str[] and the enum names.
constexpr std::string_view kUsageStr[kNumUsageNames] = {
    "IN-HARDIRQ-W", "IN-HARDIRQ-R",     "HARDIRQ-ON-W", "HARDIRQ-ON-R",
    "IN-SOFTIRQ-W", "IN-SOFTIRQ-R",     "SOFTIRQ-ON-W", "SOFTIRQ-ON-R",
    "INITIAL USE",  "INITIAL READ USE", "IN-NMI",
};
constexpr std::string_view kUsageName[kNumUsageNames] = {
    "USED_IN_HARDIRQ",
    "USED_IN_HARDIRQ_READ",
    "ENABLED_HARDIRQ",
    "ENABLED_HARDIRQ_READ",
    "USED_IN_SOFTIRQ",
    "USED_IN_SOFTIRQ_READ",
    "ENABLED_SOFTIRQ",
    "ENABLED_SOFTIRQ_READ",
    "USED",
    "USED_READ",
    "IN_NMI",
};

}  // namespace

std::string_view context_name(Context c) {
    switch (c) {
        case Context::Task:
            return "task";
        case Context::Softirq:
            return "softirq";
        case Context::Hardirq:
            return "hardirq";
        case Context::Nmi:
            return "nmi";
    }
    return "task";
}

bool parse_context_name(std::string_view name, Context *out) {
    for (Context c : {Context::Task, Context::Softirq, Context::Hardirq, Context::Nmi}) {
        if (context_name(c) == name) {
            *out = c;
            return true;
        }
    }
    return false;
}

std::string_view usage_bit_str(UsageBit bit) {
    return kUsageStr[static_cast<int>(bit)];
}
std::string_view usage_bit_name(UsageBit bit) {
    return kUsageName[static_cast<int>(bit)];
}

bool parse_usage_bit_name(std::string_view name, UsageBit *out) {
    for (int i = 0; i < kNumUsageNames; ++i) {
        if (kUsageName[i] == name) {
            *out = static_cast<UsageBit>(i);
            return true;
        }
    }
    return false;
}

namespace {

// The length of the UTF-8 sequence that starts at `s[0]`, when it is whole,
// minimal and within `s`; 0 otherwise.
size_t utf8_sequence(std::string_view s) {
    auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    unsigned char lead = byte(0);
    size_t n = lead < 0x80                   ? 1
               : lead >= 0xc2 && lead < 0xe0 ? 2
               : lead >= 0xe0 && lead < 0xf0 ? 3
               : lead >= 0xf0 && lead < 0xf5 ? 4
                                             : 0;
    if (n == 0 || n > s.size()) {
        return 0;
    }
    for (size_t i = 1; i < n; ++i) {
        if ((byte(i) & 0xc0) != 0x80) {
            return 0;
        }
    }
    // Overlong three- and four-byte forms, surrogates, and past U+10FFFF.
    bool bad = (lead == 0xe0 && byte(1) < 0xa0) || (lead == 0xed && byte(1) >= 0xa0) ||
               (lead == 0xf0 && byte(1) < 0x90) || (lead == 0xf4 && byte(1) >= 0x90);
    return bad ? 0 : n;
}

}  // namespace

// A task names itself (prctl(PR_SET_NAME)) with any 15 bytes, and the kernel
// cuts a longer name mid-character: what is not whole UTF-8, and control
// characters (C0 and C1) that would steer a terminal or split a journal line, become
// '?'. O(length), at most 15 bytes.
void Task::set_comm(std::string_view s) {
    s = s.substr(0, s.find('\0'));  // what follows a NUL is not part of the name
    s = s.substr(0, comm.size() - 1);
    comm.fill('\0');
    size_t out = 0;
    while (!s.empty()) {
        size_t n = utf8_sequence(s);
        auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
        bool control = (n == 1 && (byte(0) < 0x20 || byte(0) == 0x7f)) ||
                       (n == 2 && byte(0) == 0xc2 && byte(1) < 0xa0);  // C1: 0x9b is a CSI
        if (n == 0 || control) {
            comm[out++] = '?';
            s.remove_prefix(1);
        } else {
            std::memcpy(comm.data() + out, s.data(), n);
            out += n;
            s.remove_prefix(n);
        }
    }
}

std::string_view Task::comm_view() const {
    return std::string_view(comm.data(), strnlen(comm.data(), comm.size()));
}

}  // namespace lockwatch::engine
