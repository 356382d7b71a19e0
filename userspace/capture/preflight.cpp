#include "capture/preflight.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace lockwatch {

namespace {

constexpr int kCapSysAdmin = 21, kCapSyslog = 34;
constexpr Backend kAllTracing[] = {Backend::Fentry, Backend::Kprobe, Backend::Lockdep};

std::string read_small_file(const std::string &path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return in ? text.str() : std::string();
}

std::string read_gzip_file(const std::string &path) {
    std::string out;
    gzFile gz = gzopen(path.c_str(), "rb");
    if (!gz) {
        return out;
    }
    char buf[65536];
    int n;
    while ((n = gzread(gz, buf, sizeof(buf))) > 0) {
        out.append(buf, n);
    }
    gzclose(gz);
    return out;
}

bool has_cap(const PreflightInputs &in, int cap) {
    return (in.effective_caps >> cap) & 1;
}

// A CONFIG_ row: set (y or m) passes, anything else fails; unknown without
// a config. `good` is what the option gives, `bad` what its absence costs.
CheckRow config_row(const PreflightInputs &in, const std::string &option, const std::string &good,
                    const std::string &bad, std::vector<Backend> needed_by) {
    CheckRow row{option, CheckState::Unknown, "", std::move(needed_by)};
    if (!in.config) {
        row.detail = "no kernel config to read (/proc/config.gz, /boot/config-RELEASE)";
        return row;
    }
    auto it = in.config->find(option);
    bool set = it != in.config->end() && (it->second == "y" || it->second == "m");
    row.state = set ? CheckState::Pass : CheckState::Fail;
    row.detail = set ? good : "not set: " + bad;
    return row;
}

std::vector<CheckRow> kernel_option_rows(const PreflightInputs &in) {
    std::vector<Backend> all(std::begin(kAllTracing), std::end(kAllTracing));
    std::vector<CheckRow> rows;
    rows.push_back(config_row(in, "CONFIG_BPF_SYSCALL", "BPF programs can be loaded",
                              "the kernel cannot load BPF programs", all));
    CheckRow btf = config_row(in, "CONFIG_DEBUG_INFO_BTF", "BTF for CO-RE and lock names",
                              "no BTF, which lockwatch's programs are built on", all);
    if (!in.has_vmlinux_btf) {
        btf.state = CheckState::Fail;
        btf.detail = "no /sys/kernel/btf/vmlinux: lockwatch's programs are built on BTF";
    }
    rows.push_back(btf);
    rows.push_back(config_row(
        in, "CONFIG_KALLSYMS_ALL", "per-CPU symbols (preempt_count) have addresses",
        "the per-CPU preempt_count has no address, so no interrupt context can be told", all));
    rows.push_back(config_row(in, "CONFIG_KPROBES", "kprobes, which read the exact irq state",
                              "no kprobes (backend kprobe, and auto without lockdep)",
                              {Backend::Kprobe}));
    rows.push_back(config_row(
        in, "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS", "BPF trampolines (fentry/fexit)",
        "no BPF trampolines (backend fentry, and auto without lockdep)", {Backend::Fentry}));
    rows.push_back(config_row(in, "CONFIG_LOCKDEP", "lockdep's own tracepoints (backend lockdep)",
                              "no lockdep tracepoints (backend lockdep; auto uses the others)",
                              {Backend::Lockdep}));
    CheckRow fprobe = config_row(in, "CONFIG_FPROBE", "fprobes (not used by lockwatch)",
                                 "no fprobes (not used by lockwatch)", {});
    fprobe.state = fprobe.state == CheckState::Unknown ? fprobe.state : CheckState::Info;
    rows.push_back(fprobe);
    if (in.config) {
        bool rt =
            in.config->count("CONFIG_PREEMPT_RT") && in.config->at("CONFIG_PREEMPT_RT") == "y";
        rows.push_back({"CONFIG_PREEMPT_RT", rt ? CheckState::Fail : CheckState::Pass,
                        rt ? "set: spinlocks are sleeping locks here, not what lockwatch hooks"
                           : "not set: spinlocks spin",
                        all});
    }
    return rows;
}

CheckRow lockdown_row(const PreflightInputs &in) {
    std::vector<Backend> all(std::begin(kAllTracing), std::end(kAllTracing));
    if (!in.lockdown) {
        return {"lockdown", CheckState::Pass, "no lockdown LSM", all};
    }
    auto open = in.lockdown->find('['), close = in.lockdown->find(']');
    std::string mode = open != std::string::npos && close != std::string::npos
                           ? in.lockdown->substr(open + 1, close - open - 1)
                           : "?";
    if (mode == "confidentiality") {
        return {"lockdown", CheckState::Fail,
                "confidentiality: kprobes and BPF reads of kernel memory are forbidden "
                "(boot with lockdown=integrity or none, or trace a test VM)",
                all};
    }
    return {"lockdown", CheckState::Pass, mode + ": tracing allowed", all};
}

std::vector<CheckRow> capability_rows(const PreflightInputs &in) {
    std::vector<Backend> all(std::begin(kAllTracing), std::end(kAllTracing));
    std::vector<CheckRow> rows;
    bool bpf = can_load_bpf(in.effective_caps);
    rows.push_back({"CAP_SYS_ADMIN", bpf ? CheckState::Pass : CheckState::Fail,
                    bpf ? "load and attach BPF programs"
                        : "missing: libbpf cannot walk the kernel's BTF objects, so the "
                          "programs do not load; run as root or with CAP_SYS_ADMIN",
                    all});
    bool syslog = has_cap(in, kCapSyslog) && in.kptr_restrict < 2;
    std::string why = in.kptr_restrict >= 2
                          ? "kernel.kptr_restrict=2 hides /proc/kallsyms' addresses from "
                            "everyone: sysctl kernel.kptr_restrict=1"
                          : "missing: /proc/kallsyms shows no addresses; run as root or add "
                            "CAP_SYSLOG";
    if (in.kptr_restrict == 0) {
        syslog = true;  // addresses for all
    }
    rows.push_back({"CAP_SYSLOG", syslog ? CheckState::Pass : CheckState::Fail,
                    syslog ? "kernel addresses in /proc/kallsyms" : why, all});
    return rows;
}

}  // namespace

std::uint64_t effective_capabilities() {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &header, data) != 0) {
        return 0;
    }
    return data[0].effective | (static_cast<std::uint64_t>(data[1].effective) << 32);
}

bool can_load_bpf(std::uint64_t caps) {
    return (caps >> kCapSysAdmin) & 1;
}

std::map<std::string, std::string> parse_kernel_config(const std::string &text) {
    std::map<std::string, std::string> config;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        auto eq = line.find('=');
        if (line.starts_with("CONFIG_") && eq != std::string::npos) {
            config[line.substr(0, eq)] = line.substr(eq + 1);
        } else if (line.starts_with("# CONFIG_") && line.ends_with(" is not set")) {
            config[line.substr(2, line.size() - 2 - 11)] = "n";
        }
    }
    return config;
}

PreflightInputs read_preflight_inputs() {
    PreflightInputs in;
    std::string text = read_gzip_file("/proc/config.gz");
    in.config_source = "/proc/config.gz";
    if (text.empty()) {
        utsname u{};
        in.config_source = uname(&u) == 0 ? fmt::format("/boot/config-{}", u.release) : "";
        text = in.config_source.empty() ? "" : read_small_file(in.config_source);
    }
    if (!text.empty()) {
        in.config = parse_kernel_config(text);
    } else {
        in.config_source.clear();
    }
    if (std::string lockdown = read_small_file("/sys/kernel/security/lockdown");
        !lockdown.empty()) {
        in.lockdown = lockdown;
    }
    in.effective_caps = effective_capabilities();
    std::string kptr = read_small_file("/proc/sys/kernel/kptr_restrict");
    in.kptr_restrict = kptr.empty() ? -1 : std::atoi(kptr.c_str());
    in.has_vmlinux_btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0;
    return in;
}

std::vector<CheckRow> preflight_rows(const PreflightInputs &in) {
    std::vector<CheckRow> rows;
    rows.push_back({"kernel config",
                    in.config ? CheckState::Info : CheckState::Unknown,
                    in.config ? "read from " + in.config_source
                              : "not found (/proc/config.gz, /boot/config-RELEASE): options "
                                "unknown, tracing is tried anyway",
                    {}});
    for (CheckRow &row : kernel_option_rows(in)) {
        rows.push_back(std::move(row));
    }
    rows.push_back(lockdown_row(in));
    for (CheckRow &row : capability_rows(in)) {
        rows.push_back(std::move(row));
    }
    std::vector<CheckRow> backend_rows;
    for (const BackendEntry &b : backends()) {
        std::optional<CheckRow> failed = first_failure(rows, b.backend);
        backend_rows.push_back(
            {"backend " + std::string(b.name),
             failed ? CheckState::Fail : CheckState::Pass,
             failed ? fmt::format("will not work: {}", failed->name) : "will work",
             {}});
    }
    rows.insert(rows.end(), backend_rows.begin(), backend_rows.end());
    return rows;
}

std::optional<CheckRow> first_failure(const std::vector<CheckRow> &rows, Backend backend) {
    if (backend == Backend::Auto) {
        // auto takes whichever works: lockdep's tracepoints, kprobes, fentry.
        for (Backend b : kAllTracing) {
            if (!first_failure(rows, b)) {
                return std::nullopt;
            }
        }
        backend = Backend::Kprobe;  // its failure names the common rows first
    }
    for (const CheckRow &row : rows) {
        if (row.state == CheckState::Fail &&
            std::find(row.needed_by.begin(), row.needed_by.end(), backend) != row.needed_by.end()) {
            return row;
        }
    }
    return std::nullopt;
}

std::string format_preflight(const std::vector<CheckRow> &rows) {
    std::string out;
    for (const CheckRow &row : rows) {
        const char *state = row.state == CheckState::Pass   ? "ok"
                            : row.state == CheckState::Fail ? "FAIL"
                            : row.state == CheckState::Info ? "info"
                                                            : "?";
        out += fmt::format("{:<4}  {:<40} {}\n", state, row.name, row.detail);
    }
    return out;
}

}  // namespace lockwatch
