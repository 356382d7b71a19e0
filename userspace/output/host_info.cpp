#include "output/host_info.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>

#include <fmt/format.h>

#include "version.h"

namespace lockwatch::output {

namespace {

HostInfo read_host_info() {
    HostInfo info;
    char name[256] = {};
    if (gethostname(name, sizeof(name) - 1) == 0) {
        info.hostname = name;
    }
    std::ifstream boot_id("/proc/sys/kernel/random/boot_id");
    std::string id;
    if (std::getline(boot_id, id)) {
        for (char c : id) {
            if (c != '-') {
                info.boot_id += c;  // as journald's _BOOT_ID shows it
            }
        }
    }
    utsname u{};
    info.kernel_release = uname(&u) == 0 ? u.release : "";
    info.version = LOCKWATCH_VERSION;
    return info;
}

}  // namespace

const HostInfo &host_info() {
    static const HostInfo info = read_host_info();
    return info;
}

nlohmann::json host_fields() {
    const HostInfo &h = host_info();
    return {{"hostname", h.hostname},
            {"boot_id", h.boot_id},
            {"kernel_release", h.kernel_release},
            {"lockwatch_version", h.version}};
}

std::string format_wall_time(const timespec &ts) {
    std::tm tm{};
    gmtime_r(&ts.tv_sec, &tm);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                       ts.tv_nsec / 1000000);
}

std::string wall_time_now() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return format_wall_time(ts);
}

}  // namespace lockwatch::output
