// `lockwatch check`: can this host be traced, and with which backends? A
// table of what lockwatch needs (capture/preflight.h), each row passed or
// failed with the reason and what to do.
#include <cstdio>

#include <fmt/format.h>

#include "capture/preflight.h"
#include "commands.h"
#include "exit_status.h"

namespace lockwatch {

CommandRunner add_check_command(CLI::App &app) {
    app.add_subcommand(
        "check",
        "Check, without loading anything, whether lockwatch run can trace this host: the\n"
        "kernel's options (from /proc/config.gz or /boot/config-RELEASE), lockdown, this\n"
        "process's capabilities, and which backends will work. Exit status 0 when the\n"
        "default backend (auto) will work, 3 when it will not (trace a test VM instead:\n"
        "lockwatch vm).");
    return [] {
        std::vector<CheckRow> rows = preflight_rows(read_preflight_inputs());
        fmt::print("{}", format_preflight(rows));
        if (auto failed = first_failure(rows, Backend::Auto)) {
            fmt::print(
                "lockwatch run cannot trace this host: {}: {}. Trace a test VM instead: "
                "lockwatch vm --kernel debian -- COMMAND\n",
                failed->name, failed->detail);
            return kExitCannotTrace;
        }
        fmt::print("lockwatch run can trace this host\n");
        return kExitNoFinding;
    };
}

}  // namespace lockwatch
