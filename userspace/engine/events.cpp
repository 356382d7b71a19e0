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

void Task::set_comm(std::string_view s) {
    s = s.substr(0, s.find('\0'));  // what follows a NUL is not part of the name
    comm.fill('\0');
    std::memcpy(comm.data(), s.data(), std::min(s.size(), comm.size() - 1));
}

std::string_view Task::comm_view() const {
    return std::string_view(comm.data(), strnlen(comm.data(), comm.size()));
}

}  // namespace lockwatch::engine
