#include "capture/attach_error.h"

#include "capture/preflight.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace lockwatch {

namespace {
// The kernel's internal ENOTSUPP (include/linux/errno.h), which leaks out of
// some BPF attach paths and has no name in user space.
constexpr int kKernelENOTSUPP = 524;
}  // namespace

TracingEnvironment read_tracing_environment() {
    TracingEnvironment env;
    env.is_root = can_load_bpf(effective_capabilities());  // capabilities, not the uid
    std::ifstream lockdown("/sys/kernel/security/lockdown");
    if (lockdown) {
        std::stringstream text;
        text << lockdown.rdbuf();
        env.lockdown = text.str();
    }
    env.has_vmlinux_btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
    return env;
}

std::optional<std::string> active_lockdown_mode(const TracingEnvironment &env) {
    if (!env.lockdown) {
        return std::nullopt;
    }
    auto open = env.lockdown->find('[');
    auto close = env.lockdown->find(']', open);
    if (open == std::string::npos || close == std::string::npos) {
        return std::nullopt;
    }
    std::string mode = env.lockdown->substr(open + 1, close - open - 1);
    if (mode == "none") {
        return std::nullopt;
    }
    return mode;
}

std::string explain_tracing_failure(std::string_view what, int error,
                                    const TracingEnvironment &env) {
    const char *name = error == kKernelENOTSUPP ? "ENOTSUPP" : strerrorname_np(error);
    std::string head =
        fmt::format("cannot {}: {} ({})", what,
                    error == kKernelENOTSUPP ? "Operation not supported" : std::strerror(error),
                    name ? name : "?");
    std::string why;
    if (!env.has_vmlinux_btf) {
        why =
            "this kernel has no BTF (/sys/kernel/btf/vmlinux), which fentry programs need; "
            "it is not supported";
    } else if ((error == EPERM || error == EACCES) && !env.is_root) {
        why =
            "lockwatch lacks CAP_SYS_ADMIN: run it as root or give it CAP_SYS_ADMIN and "
            "CAP_SYSLOG ('lockwatch check' lists what it needs)";
    } else if (error == EPERM || error == EACCES) {
        if (auto mode = active_lockdown_mode(env)) {
            why = fmt::format(
                "kernel lockdown is in '{}' mode, which forbids attaching tracing programs; "
                "trace a test VM instead (lockwatch vm)",
                *mode);
        } else {
            why =
                "running as root, so the kernel's policy refused it: most likely kernel "
                "lockdown or a security module that forbids tracing; trace a test VM instead "
                "(lockwatch vm)";
        }
    } else if (error == ENOTSUP || error == EOPNOTSUPP || error == kKernelENOTSUPP) {
        why = "the kernel does not support this kind of program here";
    } else if (error == ESRCH || error == ENOENT) {
        why = "the kernel does not have the function (inlined, or not built)";
    } else if (error == EBUSY) {
        why = "another tracer holds the function exclusively";
    } else if (error == E2BIG || error == ENOMEM) {
        why = "the kernel ran out of memory for BPF (check ulimit -l and memory)";
    } else if (error == EINVAL) {
        why = "the kernel rejected the program; rerun with --verbose for libbpf's log";
    }
    return why.empty() ? head : fmt::format("{}: {}", head, why);
}

}  // namespace lockwatch
