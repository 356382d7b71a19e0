// Turns the kernel's refusal to load or attach a tracing program into one
// line that says what was refused and the likely reason.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace lockwatch {

struct TracingEnvironment {
    // CAP_SYS_ADMIN in the effective set (can_load_bpf(); the name is older
    // than the capability check).
    bool is_root = false;
    // Contents of /sys/kernel/security/lockdown, e.g. "none [integrity] confidentiality";
    // nullopt when the file does not exist.
    std::optional<std::string> lockdown;
    bool has_vmlinux_btf = true;
};

TracingEnvironment read_tracing_environment();

// The active lockdown mode ("integrity", "confidentiality"), or nullopt when
// lockdown is off or unknown.
std::optional<std::string> active_lockdown_mode(const TracingEnvironment &env);

// `what` names the operation ("attach fentry program to _raw_spin_lock"),
// `error` is a positive errno value.
std::string explain_tracing_failure(std::string_view what, int error,
                                    const TracingEnvironment &env);

}  // namespace lockwatch
