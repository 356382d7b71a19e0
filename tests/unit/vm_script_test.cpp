#include "vm/vm_script.h"

#include <algorithm>
#include <iterator>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "output/journald.h"
#include "output/json.h"
#include "output/text.h"
#include "sample_finding.h"

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

TEST(VmScript, TheCommandGetsNeitherTheControlPortNorTheToken) {
    std::string script = guest_script({"sh", "-c", "echo hi"}, "auto", 1);
    // lockwatch's JSON lines go to the control port, each marked with the token.
    EXPECT_NE(script.find("LOCKWATCH_JSON_LINE_PREFIX=\"$tok \" lockwatch run --json -"),
              std::string::npos)
        << script;
    EXPECT_NE(script.find("--ready-file $ready >&9 &"), std::string::npos) << script;
    std::size_t unset = script.find("unset LOCKWATCH_VM_TOKEN");
    std::size_t command = script.find("'sh' '-c' 'echo hi' 9>&-\n");
    ASSERT_NE(command, std::string::npos) << script;
    EXPECT_LT(unset, command) << script;
    EXPECT_NE(script.find("say \"LOCKWATCH-VM-COMMAND-EXIT $?\""), std::string::npos) << script;
    EXPECT_NE(script.find("say() { echo \"$tok $*\" >&9; }"), std::string::npos) << script;
}

TEST(VmScript, MarkersAreParsed) {
    GuestOutcome outcome;
    ControlLine line = parse_control_line("LOCKWATCH-VM-COMMAND-EXIT 3", &outcome);
    EXPECT_FALSE(line.finding);
    EXPECT_TRUE(line.rejected.empty()) << line.rejected;
    EXPECT_EQ(outcome.command_exit, 3);
    line = parse_control_line("LOCKWATCH-VM-TRACER-EXIT 0", &outcome);
    EXPECT_TRUE(line.rejected.empty()) << line.rejected;
    EXPECT_EQ(outcome.tracer_exit, 0);
    EXPECT_EQ(outcome.rejected, 0);
}

TEST(VmScript, MarkersWithoutAnExitStatusAreRejected) {
    GuestOutcome outcome;
    for (const char *bad : {"LOCKWATCH-VM-COMMAND-EXIT ", "LOCKWATCH-VM-COMMAND-EXIT 3x",
                            "LOCKWATCH-VM-COMMAND-EXIT -1", "LOCKWATCH-VM-COMMAND-EXIT 256",
                            "LOCKWATCH-VM-TRACER-EXIT 99999999999999999999999999",
                            "LOCKWATCH-VM-EXIT 0", "seed-repro: forked child 65"}) {
        ControlLine line = parse_control_line(bad, &outcome);
        EXPECT_FALSE(line.rejected.empty()) << bad;
    }
    EXPECT_EQ(outcome.rejected, 7);
    EXPECT_FALSE(outcome.command_exit);
    EXPECT_FALSE(outcome.tracer_exit);
}

// The sample finding's JSON line with the value at `pointer` replaced.
std::string sample_with(const char *pointer, const nlohmann::json &value) {
    nlohmann::json j = output::finding_to_json(sample_finding());
    j[nlohmann::json::json_pointer(pointer)] = value;
    return j.dump();
}

TEST(VmScript, FindingJsonComesBackAsAFinding) {
    engine::Finding f = sample_finding();
    GuestOutcome outcome;
    ControlLine parsed = parse_control_line(output::finding_to_json(f).dump(), &outcome);
    ASSERT_TRUE(parsed.finding) << parsed.rejected;
    EXPECT_EQ(outcome.findings, 1);
    EXPECT_EQ(parsed.finding->kind, engine::FindingKind::IrqSafeToUnsafe);
    EXPECT_EQ(parsed.finding->irq, engine::IrqClass::Softirq);
    EXPECT_EQ(parsed.finding->title, f.title);
    ASSERT_EQ(parsed.finding->locks.size(), 2u);
    EXPECT_EQ(parsed.finding->locks[1].name, "pid.wait_pidfd.lock");
    EXPECT_EQ(parsed.finding->locks[1].usage, "+.+.");
    EXPECT_EQ(parsed.finding->task.comm_view(), "seed-repro");
    EXPECT_TRUE(*parsed.finding == f) << "the finding did not come back whole";

    // Broken or foreign JSON is a rejection, counted.
    EXPECT_FALSE(parse_control_line("{\"kind\": \"nonsense\", \"text\": \"x\"}", &outcome).finding);
    EXPECT_FALSE(parse_control_line("{truncated", &outcome).finding);
    EXPECT_EQ(outcome.findings, 1);
    EXPECT_EQ(outcome.rejected, 2);
}

// The reported repros: each once aborted the host (nlohmann type_error.302)
// or was meant to. Every one must be a counted rejection that names why.
TEST(GuestRepros, WronglyTypedFieldsAreCountedRejections) {
    struct Case {
        std::string line, why;
    } cases[] = {
        {R"({"kind":"circular","text":"x","cpu":"a"})", "field \"schema\": missing"},
        {sample_with("/cpu", "a"), "field \"cpu\": expected an integer"},
        {sample_with("/task", {{"pid", "1"}, {"comm", "x"}}),
         "field \"task.pid\": expected an integer"},
        {sample_with("/title", 5), "field \"title\": expected a string"},
        {sample_with("/locks/1/name", nlohmann::json::array()),
         "field \"locks[1].name\": expected a string"},
        {sample_with("/stacks/backtrace", "x"), "field \"stacks.backtrace\": expected an array"},
        {sample_with("/time_ns", -1), "field \"time_ns\": -1 is out of range"},
        {sample_with("/irq_flags/hardirq_context", 1),
         "field \"irq_flags.hardirq_context\": expected true or false"},
        {sample_with("/kind", "circular\u001b[2J"), "unknown kind \"circular\\x1b[2J\""},
    };
    GuestOutcome outcome;
    for (const Case &c : cases) {
        ControlLine parsed;
        EXPECT_NO_THROW(parsed = parse_control_line(c.line, &outcome)) << c.line;
        EXPECT_FALSE(parsed.finding) << c.line;
        EXPECT_NE(parsed.rejected.find(c.why), std::string::npos)
            << "got: " << parsed.rejected << "\nwanted: " << c.why;
    }
    EXPECT_EQ(outcome.rejected, static_cast<int>(std::size(cases)));
    EXPECT_EQ(outcome.findings, 0);
}

std::string replace_first(std::string s, const std::string &from, const std::string &to) {
    return s.replace(s.find(from), from.size(), to);
}

TEST(GuestRepros, LongHexOffsetsAreRejectedNotThrown) {
    GuestOutcome outcome;
    std::string hex = "0x" + std::string(40, 'f');
    for (const std::string &line : {sample_with("/stacks/backtrace/0/offset", hex),
                                    sample_with("/stacks/backtrace/0/offset", 1e30),
                                    // Past 2^64: nlohmann reads it as a double.
                                    replace_first(sample_with("/stacks/backtrace/0/offset", 987654),
                                                  "987654", "18446744073709551616"),
                                    sample_with("/stacks/backtrace/0/offset", -1)}) {
        ControlLine parsed;
        EXPECT_NO_THROW(parsed = parse_control_line(line, &outcome)) << line;
        EXPECT_FALSE(parsed.finding) << line;
        EXPECT_FALSE(parsed.rejected.empty()) << line;
    }
    EXPECT_EQ(outcome.rejected, 4);
}

TEST(GuestRepros, OversizedFieldsAreRejected) {
    GuestOutcome outcome;
    ControlLine parsed =
        parse_control_line(sample_with("/title", std::string(9000, 't')), &outcome);
    EXPECT_FALSE(parsed.finding);
    EXPECT_NE(
        parsed.rejected.find("field \"title\": a string of 9000 bytes, over the limit of 8192"),
        std::string::npos)
        << parsed.rejected;
    nlohmann::json frames = nlohmann::json::array();
    for (int i = 0; i < 2000; ++i) {
        frames.push_back({{"symbol", "f"}, {"offset", i}});
    }
    parsed = parse_control_line(sample_with("/stacks/backtrace", frames), &outcome);
    EXPECT_FALSE(parsed.finding);
    EXPECT_NE(parsed.rejected.find(
                  "field \"stacks.backtrace\": an array of 2000 items, over the limit of 1024"),
              std::string::npos)
        << parsed.rejected;
    EXPECT_EQ(outcome.rejected, 2);
}

TEST(GuestRepros, HundredKilobyteLinesDoNotCrash) {
    GuestOutcome outcome;
    std::string a(100000, 'a');
    for (const std::string &line :
         {a, "{\"" + a, std::string(100000, '['), "{\"a\":" + std::string(100000, '{'),
          // Deep but valid: parsed, walked and freed without recursion.
          "{\"a\":" + std::string(50000, '[') + std::string(50000, ']') + "}",
          sample_with("/title", a)}) {
        ControlLine parsed;
        EXPECT_NO_THROW(parsed = parse_control_line(line, &outcome));
        EXPECT_FALSE(parsed.finding);
        EXPECT_FALSE(parsed.rejected.empty());
        EXPECT_LT(parsed.rejected.size(), 300u) << "a rejection is one short line";
    }
    EXPECT_EQ(escape_guest_text(a), a);
}

TEST(GuestLineSplitter, CapsLinesAndCountsWhatItDrops) {
    GuestLineSplitter splitter(8);
    std::vector<std::pair<std::string, std::uint64_t>> lines;
    auto take = [&](std::string_view line, std::uint64_t dropped) {
        lines.emplace_back(std::string(line), dropped);
    };
    splitter.feed("0123", take);
    splitter.feed("456789abc\nok\n\nlast", take);
    splitter.finish(take);
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_EQ(lines[0], std::make_pair(std::string("01234567"), std::uint64_t{5}));
    EXPECT_EQ(lines[1], std::make_pair(std::string("ok"), std::uint64_t{0}));
    EXPECT_EQ(lines[2], std::make_pair(std::string(""), std::uint64_t{0}));
    EXPECT_EQ(lines[3], std::make_pair(std::string("last"), std::uint64_t{0}));
}

TEST(GuestLineSplitter, ALineWithoutNewlineIsHeldToTheLimit) {
    GuestLineSplitter splitter;
    std::string chunk(1 << 16, 'x');
    std::uint64_t fed = 0;
    std::size_t longest = 0;
    std::uint64_t dropped = 0;
    auto take = [&](std::string_view line, std::uint64_t d) {
        longest = std::max(longest, line.size());
        dropped += d;
    };
    for (int i = 0; i < 48; ++i) {  // 3 MiB, no newline
        splitter.feed(chunk, take);
        fed += chunk.size();
    }
    EXPECT_EQ(longest, 0u) << "nothing is a line before its newline";
    splitter.finish(take);
    EXPECT_EQ(longest, kMaxGuestLineBytes);
    EXPECT_EQ(dropped, fed - kMaxGuestLineBytes);
}

TEST(GuestText, WhatATerminalActsOnIsEscaped) {
    EXPECT_EQ(escape_guest_text("\x1b]0;pwned\x07\x1b[2J"), "\\x1b]0;pwned\\x07\\x1b[2J");
    EXPECT_EQ(escape_guest_text("a\rb\nc\x7f"), "a\\x0db\\x0ac\\x7f");
    EXPECT_EQ(escape_guest_text("tab\there"), "tab\there");
    EXPECT_EQ(escape_guest_text("csi \xc2\x9b"
                                "2J"),
              "csi \\xc2\\x9b2J")
        << "C1 CSI";
    EXPECT_EQ(escape_guest_text("rlo \xe2\x80\xae"), "rlo \\xe2\\x80\\xae") << "bidi override";
    EXPECT_EQ(escape_guest_text("bad \xff\xc0\x80 \xed\xa0\x80"),
              "bad \\xff\\xc0\\x80 \\xed\\xa0\\x80")
        << "not UTF-8, overlong, surrogate";
    EXPECT_EQ(escape_guest_text("\xc2"), "\\xc2") << "cut short";
    EXPECT_EQ(escape_guest_text(std::string("nul\0x", 5)), "nul\\x00x");
    const char *plain = "5 \xc2\xb5s, \xc3\xbc, \xe6\x97\xa5\xe6\x9c\xac, \xf0\x9f\x94\x92";
    EXPECT_EQ(escape_guest_text(plain), plain) << "printable UTF-8 passes";
}

TEST(GuestRepros, EscapeSequencesInAFindingReachNoSink) {
    engine::Finding f = sample_finding();
    f.title = "possible deadlock in \x1b]0;pwned\x07io_submit_one";
    f.locks[0].name = "kioctx.ctx_lock\x1b[2J";
    f.chain[0] = f.locks[0].name;
    f.task.set_comm("a\rb");
    engine::Frame top = f.stack->front();
    top.symbol =
        "io_submit\xc2\x9b"
        "one";  // a C1 control, U+009B (CSI)
    f.stack = engine::StackRef(engine::Stack{top});
    GuestOutcome outcome;
    ControlLine parsed = parse_control_line(output::finding_to_json(f).dump(), &outcome);
    ASSERT_TRUE(parsed.finding) << parsed.rejected;
    EXPECT_EQ(parsed.finding->title, "possible deadlock in \\x1b]0;pwned\\x07io_submit_one");
    EXPECT_EQ(parsed.finding->locks[0].name, "kioctx.ctx_lock\\x1b[2J");
    // A task name is made printable where it enters (Task::set_comm()).
    EXPECT_EQ(parsed.finding->task.comm_view(), "a?b");
    std::string text = output::render_text(*parsed.finding);
    std::string journal;
    for (const std::string &field : output::JournaldSink().fields(*parsed.finding)) {
        journal += field + "\n";
    }
    for (const std::string &out : {text, journal}) {
        EXPECT_EQ(out.find('\x1b'), std::string::npos) << out;
        EXPECT_EQ(out.find('\r'), std::string::npos) << out;
        EXPECT_EQ(out.find("\xc2\x9b"), std::string::npos) << out;
    }
    EXPECT_NE(text.find("io_submit\\xc2\\x9bone"), std::string::npos) << text;
}

TEST(GuestRepros, ALongTaskNameIsCutBetweenCharacters) {
    // 14 bytes and a 2-byte character: Task keeps 15 bytes, which would end
    // inside the character, and JSON output would throw on it.
    GuestOutcome outcome;
    ControlLine parsed =
        parse_control_line(sample_with("/task/comm", "aaaaaaaaaaaaaa\xc3\xbc"), &outcome);
    ASSERT_TRUE(parsed.finding) << parsed.rejected;
    EXPECT_EQ(parsed.finding->task.comm_view(), "aaaaaaaaaaaaaa");
    EXPECT_NO_THROW((void)output::finding_to_json(*parsed.finding).dump());
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
