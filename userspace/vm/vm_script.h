// The guest side of `lockwatch vm`: the shell script that runs lockwatch and
// the command inside the VM, and the parsing of what comes back over the
// results port. Pure functions, so that they can be tested without a VM.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/finding.h"

namespace lockwatch {

inline constexpr int kVmExitNoFinding = 0;
inline constexpr int kVmExitFindings = 1;
inline constexpr int kVmExitUsage = 2;
inline constexpr int kVmExitTracerFailed = 3;
inline constexpr int kVmExitCommandFailed = 4;
inline constexpr int kVmExitVmFailed = 5;

std::string shell_quote(const std::string &s);

// Starts `lockwatch run --json -` in the guest, waits until it is attached,
// runs `command`, keeps tracing `linger_s` seconds, stops lockwatch, and
// reports both exit statuses on marker lines.
std::string guest_script(const std::vector<std::string> &command, const std::string &backend,
                         double linger_s, const std::vector<std::string> &focus = {},
                         const std::vector<std::string> &run_args = {});

struct GuestOutcome {
    std::optional<int> command_exit;
    std::optional<int> tracer_exit;
    int findings = 0;
};

struct GuestLine {
    bool marker = false;                     // one of our marker lines: not shown
    std::optional<engine::Finding> finding;  // a finding in JSON, as the guest sent it
};

GuestLine parse_guest_line(const std::string &line, GuestOutcome *outcome);

// run-vm.sh's own failures are 240-246 (tools/vm/README.md).
int vm_exit_status(int harness_status, const GuestOutcome &outcome);

}  // namespace lockwatch
