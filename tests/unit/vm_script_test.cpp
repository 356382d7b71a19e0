#include "vm/vm_script.h"

#include <gtest/gtest.h>

#include "output/json.h"

namespace lockwatch {
namespace {

TEST(VmScript, QuotesEveryArgument) {
    EXPECT_EQ(shell_quote("a b"), "'a b'");
    EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
    std::string script = guest_script({"seed-repro", "edge-last", "x y"}, "kprobe", 2.5);
    EXPECT_NE(script.find("'seed-repro' 'edge-last' 'x y'"), std::string::npos) << script;
    EXPECT_NE(script.find("--backend 'kprobe'"), std::string::npos) << script;
    EXPECT_NE(script.find("sleep 2.5"), std::string::npos) << script;
    EXPECT_NE(script.find("--ready-file"), std::string::npos) << script;
}

TEST(VmScript, FocusIsPassedToTheGuestLockwatch) {
    std::string script = guest_script({"true"}, "auto", 1, {"io_submit_one", "proc_pid_lookup"});
    EXPECT_NE(script.find("--focus 'io_submit_one,proc_pid_lookup'"), std::string::npos) << script;
    EXPECT_EQ(guest_script({"true"}, "auto", 1).find("--focus"), std::string::npos);
}

TEST(VmScript, RunArgumentsArePassedToTheGuestLockwatch) {
    std::string script = guest_script({"true"}, "auto", 1, {}, {"--no-alloc-sites", "--classes"});
    EXPECT_NE(script.find("--backend 'auto' '--no-alloc-sites' '--classes' --ready-file"),
              std::string::npos)
        << script;
}

TEST(VmScript, MarkersAreParsedAndHidden) {
    GuestOutcome outcome;
    GuestLine line = parse_guest_line("LOCKWATCH-VM-COMMAND-EXIT 3\r\n", &outcome);
    EXPECT_TRUE(line.marker);
    EXPECT_EQ(outcome.command_exit, 3);
    line = parse_guest_line("LOCKWATCH-VM-TRACER-EXIT 0\n", &outcome);
    EXPECT_TRUE(line.marker);
    EXPECT_EQ(outcome.tracer_exit, 0);
    line = parse_guest_line("seed-repro edge-last: forked child 65\n", &outcome);
    EXPECT_FALSE(line.marker);
    EXPECT_FALSE(line.finding);
}

TEST(VmScript, FindingJsonComesBackAsAFinding) {
    engine::Finding f;
    f.kind = engine::FindingKind::IrqSafeToUnsafe;
    f.irq = engine::IrqClass::Softirq;
    f.title = "possible deadlock in io_submit_one";
    f.signature = "0123456789abcdef";
    f.locks = {{"kioctx.ctx_lock", "..-.", nullptr, 0},
               {"pid.wait_pidfd.lock", "+.+.", nullptr, 0}};
    f.chain = {"kioctx.ctx_lock", "pid.wait_pidfd.lock"};
    f.task.pid = 65;
    f.task.set_comm("seed-repro");
    std::string line = output::finding_to_json(f).dump() + "\n";

    GuestOutcome outcome;
    GuestLine parsed = parse_guest_line(line, &outcome);
    ASSERT_TRUE(parsed.finding);
    EXPECT_EQ(outcome.findings, 1);
    EXPECT_EQ(parsed.finding->kind, engine::FindingKind::IrqSafeToUnsafe);
    EXPECT_EQ(parsed.finding->irq, engine::IrqClass::Softirq);
    EXPECT_EQ(parsed.finding->title, f.title);
    ASSERT_EQ(parsed.finding->locks.size(), 2u);
    EXPECT_EQ(parsed.finding->locks[1].name, "pid.wait_pidfd.lock");
    EXPECT_EQ(parsed.finding->locks[1].usage, "+.+.");
    EXPECT_EQ(parsed.finding->task.comm_view(), "seed-repro");
    EXPECT_TRUE(*parsed.finding == f) << "the finding did not come back whole";

    // After an unfinished line of the command's own output.
    EXPECT_TRUE(parse_guest_line("progress: 50%" + line, &outcome).finding);
    EXPECT_EQ(outcome.findings, 2);

    // Broken or foreign JSON is passed through as guest output.
    EXPECT_FALSE(parse_guest_line("{\"kind\": \"nonsense\", \"text\": \"x\"}\n", &outcome).finding);
    EXPECT_FALSE(parse_guest_line("{truncated\n", &outcome).finding);
    EXPECT_EQ(outcome.findings, 2);
}

TEST(VmScript, ExitStatusSaysWhatHappened) {
    GuestOutcome clean{.command_exit = 0, .tracer_exit = 0, .findings = 0};
    EXPECT_EQ(vm_exit_status(0, clean), kVmExitNoFinding);
    GuestOutcome found{.command_exit = 0, .tracer_exit = 0, .findings = 2};
    EXPECT_EQ(vm_exit_status(0, found), kVmExitFindings);
    GuestOutcome failed_cmd{.command_exit = 7, .tracer_exit = 0, .findings = 0};
    EXPECT_EQ(vm_exit_status(0, failed_cmd), kVmExitCommandFailed);
    GuestOutcome no_tracer{.command_exit = std::nullopt, .tracer_exit = 1, .findings = 0};
    EXPECT_EQ(vm_exit_status(0, no_tracer), kVmExitTracerFailed);
    EXPECT_EQ(vm_exit_status(245, clean), kVmExitVmFailed) << "run-vm.sh time-out";
    EXPECT_EQ(vm_exit_status(244, found), kVmExitVmFailed) << "a panic outranks findings";
}

}  // namespace
}  // namespace lockwatch
