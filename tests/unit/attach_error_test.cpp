#include "capture/attach_error.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace lockwatch {
namespace {

TEST(AttachError, LockdownModeIsNamed) {
    TracingEnvironment env{.is_root = true, .lockdown = "none [integrity] confidentiality\n"};
    EXPECT_EQ(active_lockdown_mode(env), "integrity");
    std::string msg =
        explain_tracing_failure("attach fentry program to _raw_spin_lock", EPERM, env);
    EXPECT_NE(msg.find("cannot attach fentry program to _raw_spin_lock"), std::string::npos) << msg;
    EXPECT_NE(msg.find("EPERM"), std::string::npos) << msg;
    EXPECT_NE(msg.find("lockdown is in 'integrity' mode"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(AttachError, LockdownNoneIsNotLockdown) {
    TracingEnvironment env{.is_root = true, .lockdown = "[none] integrity confidentiality"};
    EXPECT_EQ(active_lockdown_mode(env), std::nullopt);
}

TEST(AttachError, RootWithoutLockdownFileBlamesPolicy) {
    TracingEnvironment env{.is_root = true, .lockdown = std::nullopt};
    std::string msg = explain_tracing_failure("attach", EPERM, env);
    EXPECT_NE(msg.find("most likely kernel lockdown"), std::string::npos) << msg;
    EXPECT_NE(msg.find("test VM"), std::string::npos) << msg;
}

TEST(AttachError, NonRootIsToldToBeRoot) {
    TracingEnvironment env{.is_root = false, .lockdown = "none [integrity] confidentiality"};
    std::string msg = explain_tracing_failure("attach", EPERM, env);
    EXPECT_NE(msg.find("lacks CAP_SYS_ADMIN"), std::string::npos) << msg;
}

TEST(AttachError, NoBtfIsUnsupported) {
    TracingEnvironment env{.is_root = true, .lockdown = std::nullopt, .has_vmlinux_btf = false};
    std::string msg = explain_tracing_failure("load", ENOENT, env);
    EXPECT_NE(msg.find("has no BTF"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not supported"), std::string::npos) << msg;
}

TEST(AttachError, KernelInternalEnotsuppHasAName) {
    TracingEnvironment env{.is_root = true, .lockdown = std::nullopt};
    std::string msg = explain_tracing_failure("attach", 524, env);
    EXPECT_NE(msg.find("ENOTSUPP"), std::string::npos) << msg;
}

}  // namespace
}  // namespace lockwatch
