// `lockwatch check`: whether this host can be traced, and why not, before
// anything is loaded: the kernel's options (from /proc/config.gz or
// /boot/config-RELEASE), lockdown, the process's capabilities (capget, not
// the uid), and, from those, which backends will work. `lockwatch run`
// refuses with the first failing row of the backend it was asked for.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "capture/backends.h"

namespace lockwatch {

// What the checks read; read_preflight_inputs() fills it from this host.
struct PreflightInputs {
    // CONFIG_* -> value ("y", "m", a number); nullopt when no config was found.
    std::optional<std::map<std::string, std::string>> config;
    std::string config_source;            // "/proc/config.gz", "/boot/config-6.1.0-9-amd64", ""
    std::optional<std::string> lockdown;  // /sys/kernel/security/lockdown
    std::uint64_t effective_caps = 0;     // capget(): bit N = capability N
    int kptr_restrict = -1;               // /proc/sys/kernel/kptr_restrict; -1 unknown
    bool has_vmlinux_btf = false;         // /sys/kernel/btf/vmlinux
};

PreflightInputs read_preflight_inputs();
// capget(2)'s effective set of this process.
std::uint64_t effective_capabilities();
// CAP_SYS_ADMIN in `caps`: measured, lockwatch's programs do not load
// without it (CAP_BPF and CAP_PERFMON are not enough: libbpf walks the
// kernel's BTF objects with BPF_BTF_GET_NEXT_ID, which needs CAP_SYS_ADMIN).
bool can_load_bpf(std::uint64_t caps);
// The lines of a kernel config file ("CONFIG_X=y", "# CONFIG_Y is not set").
std::map<std::string, std::string> parse_kernel_config(const std::string &text);

enum class CheckState { Pass, Fail, Unknown, Info };

struct CheckRow {
    std::string name;  // "CONFIG_KPROBES", "lockdown", "capabilities", "backend kprobe"
    CheckState state = CheckState::Unknown;
    std::string detail;  // why, and what to do when it fails
    // The backends that need this row to pass (none: informational).
    std::vector<Backend> needed_by;
};

// Every row, requirements first, then one row per backend.
std::vector<CheckRow> preflight_rows(const PreflightInputs &in);
// The first requirement `backend` has that fails; for auto, none when any
// backend works, else the first failure of kprobe (the rows every backend
// needs come first).
std::optional<CheckRow> first_failure(const std::vector<CheckRow> &rows, Backend backend);
// The table `lockwatch check` prints, one row a line.
std::string format_preflight(const std::vector<CheckRow> &rows);

}  // namespace lockwatch
