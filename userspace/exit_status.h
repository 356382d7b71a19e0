// One exit-status contract for every lockwatch command (run, replay, vm,
// check), stated once here and in `lockwatch --help`.
#pragma once

namespace lockwatch {

inline constexpr int kExitNoFinding = 0;      // ran to its end, nothing found (check: all passed)
inline constexpr int kExitFindings = 1;       // findings were reported
inline constexpr int kExitUsage = 2;          // usage error, CLI11's parse errors included
inline constexpr int kExitCannotTrace = 3;    // refusal, missing privilege or tools, I/O failure
inline constexpr int kExitCommandFailed = 4;  // vm: the guest command failed
inline constexpr int kExitVmFailed = 5;       // vm: kernel build or download, boot, panic, time-out

inline constexpr const char *kExitStatusHelp =
    "Exit status, for every command: 0 no finding (check: every row passed); 1 findings\n"
    "were reported; 2 usage error; 3 lockwatch cannot trace (the kernel refused, missing\n"
    "privilege, options or tools: 'lockwatch check' says which; an input or output failed);\n"
    "4 the guest command failed (vm); 5 the VM failed (vm: kernel build or download, boot,\n"
    "panic, time-out). Reports and messages go to standard error whenever JSON lines take\n"
    "standard output (--json -).";

}  // namespace lockwatch
