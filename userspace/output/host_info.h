// Who wrote a finding, for outputs read far from the host (a log shipper,
// a findings file copied elsewhere): host name, boot id, kernel release,
// lockwatch's version, and the wall-clock time of writing.
#pragma once

#include <ctime>
#include <string>

#include <nlohmann/json.hpp>

namespace lockwatch::output {

struct HostInfo {
    std::string hostname;        // gethostname()
    std::string boot_id;         // /proc/sys/kernel/random/boot_id, 32 hex digits; "" if unreadable
    std::string kernel_release;  // uname -r
    std::string version;         // lockwatch's
};

// This host's, read once.
const HostInfo &host_info();
// {"hostname", "boot_id", "kernel_release", "lockwatch_version"} of host_info().
nlohmann::json host_fields();
// RFC 3339 in UTC with milliseconds: "2024-05-01T12:34:56.789Z".
std::string format_wall_time(const timespec &ts);
std::string wall_time_now();

}  // namespace lockwatch::output
