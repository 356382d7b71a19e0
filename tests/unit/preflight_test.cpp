// `lockwatch check`'s rows from given inputs: a kernel config, lockdown,
// capabilities, kptr_restrict; and run's refusal, the first failing row of
// the backend asked for.
#include "capture/preflight.h"

#include <gtest/gtest.h>

namespace lockwatch {
namespace {

constexpr std::uint64_t kRootCaps = ~0ull;
constexpr std::uint64_t kCapBpf = 1ull << 39, kCapPerfmon = 1ull << 38, kCapSyslog = 1ull << 34,
                        kCapSysAdmin = 1ull << 21;

// A config that every backend but lockdep works with (Debian's cloud kernel).
const char *kGoodConfig =
    "CONFIG_BPF_SYSCALL=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_KALLSYMS_ALL=y\nCONFIG_KPROBES=y\n"
    "CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS=y\n# CONFIG_LOCKDEP is not set\n"
    "CONFIG_FPROBE=y\n# CONFIG_PREEMPT_RT is not set\n";

PreflightInputs inputs(const std::string &config) {
    PreflightInputs in;
    in.config = parse_kernel_config(config);
    in.config_source = "/proc/config.gz";
    in.effective_caps = kRootCaps;
    in.kptr_restrict = 1;
    in.has_vmlinux_btf = true;
    return in;
}

const CheckRow &row(const std::vector<CheckRow> &rows, const std::string &name) {
    for (const CheckRow &r : rows) {
        if (r.name == name) {
            return r;
        }
    }
    static const CheckRow none{"(no such row)", CheckState::Unknown, "", {}};
    return none;
}

TEST(Preflight, ParsesSetAndUnsetOptions) {
    auto config = parse_kernel_config(
        "# comment\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\n"
        "CONFIG_D=\"text\"\n");
    EXPECT_EQ(config["CONFIG_A"], "y");
    EXPECT_EQ(config["CONFIG_B"], "m");
    EXPECT_EQ(config["CONFIG_C"], "n");
    EXPECT_EQ(config["CONFIG_D"], "\"text\"");
    EXPECT_EQ(config.count("comment"), 0u);
}

TEST(Preflight, AGoodKernelPassesEveryBackendButLockdep) {
    auto rows = preflight_rows(inputs(kGoodConfig));
    EXPECT_FALSE(first_failure(rows, Backend::Auto));
    EXPECT_FALSE(first_failure(rows, Backend::Kprobe));
    EXPECT_FALSE(first_failure(rows, Backend::Fentry));
    auto lockdep = first_failure(rows, Backend::Lockdep);
    ASSERT_TRUE(lockdep);
    EXPECT_EQ(lockdep->name, "CONFIG_LOCKDEP");
    EXPECT_EQ(row(rows, "backend auto").state, CheckState::Pass);
    EXPECT_EQ(row(rows, "backend lockdep").state, CheckState::Fail);
    EXPECT_EQ(row(rows, "CONFIG_FPROBE").state, CheckState::Info) << "not needed";
}

// The host of the issue: no KALLSYMS_ALL, no KPROBES. run names the first.
TEST(Preflight, NoKallsymsAllNorKprobesNamesKallsymsAllFirst) {
    std::string config = kGoodConfig;
    config.replace(config.find("CONFIG_KALLSYMS_ALL=y"), 21, "# CONFIG_KALLSYMS_ALL is not set");
    config.replace(config.find("CONFIG_KPROBES=y"), 16, "# CONFIG_KPROBES is not set");
    auto rows = preflight_rows(inputs(config));
    auto failed = first_failure(rows, Backend::Auto);
    ASSERT_TRUE(failed);
    EXPECT_EQ(failed->name, "CONFIG_KALLSYMS_ALL");
    EXPECT_NE(failed->detail.find("preempt_count"), std::string::npos) << failed->detail;
    EXPECT_EQ(row(rows, "CONFIG_KPROBES").state, CheckState::Fail);
    EXPECT_NE(format_preflight(rows).find("FAIL  CONFIG_KALLSYMS_ALL"), std::string::npos);
}

TEST(Preflight, AutoTakesWhicheverBackendWorks) {
    std::string config = kGoodConfig;
    config.replace(config.find("CONFIG_KPROBES=y"), 16, "# CONFIG_KPROBES is not set");
    auto rows = preflight_rows(inputs(config));
    EXPECT_FALSE(first_failure(rows, Backend::Auto)) << "fentry still works";
    ASSERT_TRUE(first_failure(rows, Backend::Kprobe));
    EXPECT_EQ(first_failure(rows, Backend::Kprobe)->name, "CONFIG_KPROBES");
}

TEST(Preflight, NoConfigIsUnknownAndTriedAnyway) {
    PreflightInputs in = inputs("");
    in.config.reset();
    auto rows = preflight_rows(in);
    EXPECT_EQ(row(rows, "kernel config").state, CheckState::Unknown);
    EXPECT_EQ(row(rows, "CONFIG_KPROBES").state, CheckState::Unknown);
    EXPECT_FALSE(first_failure(rows, Backend::Auto));
}

TEST(Preflight, ConfidentialityLockdownFails) {
    PreflightInputs in = inputs(kGoodConfig);
    in.lockdown = "none integrity [confidentiality]\n";
    auto failed = first_failure(preflight_rows(in), Backend::Auto);
    ASSERT_TRUE(failed);
    EXPECT_EQ(failed->name, "lockdown");
    in.lockdown = "none [integrity] confidentiality\n";
    EXPECT_FALSE(first_failure(preflight_rows(in), Backend::Auto)) << "integrity allows tracing";
}

TEST(Preflight, CapabilitiesNotTheUid) {
    PreflightInputs in = inputs(kGoodConfig);
    // The two the unit gives it, measured: no root needed.
    in.effective_caps = kCapSysAdmin | kCapSyslog;
    EXPECT_FALSE(first_failure(preflight_rows(in), Backend::Auto));
    // CAP_BPF and CAP_PERFMON do not load lockwatch's programs.
    in.effective_caps = kCapBpf | kCapPerfmon | kCapSyslog;
    auto failed = first_failure(preflight_rows(in), Backend::Auto);
    ASSERT_TRUE(failed);
    EXPECT_EQ(failed->name, "CAP_SYS_ADMIN");
    in.effective_caps = kCapSysAdmin;
    ASSERT_TRUE(first_failure(preflight_rows(in), Backend::Auto));
    EXPECT_EQ(first_failure(preflight_rows(in), Backend::Auto)->name, "CAP_SYSLOG");
    in.kptr_restrict = 0;
    EXPECT_FALSE(first_failure(preflight_rows(in), Backend::Auto)) << "addresses for all";
    in.effective_caps = kRootCaps;
    in.kptr_restrict = 2;
    ASSERT_TRUE(first_failure(preflight_rows(in), Backend::Auto));
    EXPECT_NE(first_failure(preflight_rows(in), Backend::Auto)->detail.find("kptr_restrict=1"),
              std::string::npos);
}

TEST(Preflight, PreemptRtFails) {
    auto rows = preflight_rows(inputs(std::string(kGoodConfig) + "CONFIG_PREEMPT_RT=y\n"));
    ASSERT_TRUE(first_failure(rows, Backend::Auto));
    EXPECT_EQ(first_failure(rows, Backend::Auto)->name, "CONFIG_PREEMPT_RT");
}

}  // namespace
}  // namespace lockwatch
