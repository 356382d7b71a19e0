// Findings survive JSON: finding_from_json(finding_to_json(f)) == f for
// findings of every kind, and input that is not a finding is refused with
// a reason, never an exception.
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/trace.h"
#include "engine_test_util.h"
#include "output/json.h"
#include "output/text.h"

namespace lockwatch::engine::testing {
namespace {

using json = nlohmann::json;
using output::finding_from_json;
using output::finding_to_json;

void expect_round_trip(const Finding &f) {
    json j = finding_to_json(f);
    std::string error;
    std::optional<Finding> back = finding_from_json(json::parse(j.dump()), &error);
    ASSERT_TRUE(back) << error << "\n" << j.dump(2);
    EXPECT_TRUE(*back == f) << "written: " << j.dump()
                            << "\nread back as: " << finding_to_json(*back).dump();
    EXPECT_EQ(finding_to_json(*back), j);
}

// Stacks with everything a frame can carry: sizes, places, inline frames.
struct Stacks {
    StackId lock_a, lock_b, irq;
    explicit Stacks(Sim &s)
        : lock_a(s.stack({"_raw_spin_lock+0x2a/0x40", "spin_lock [inline]", "do_a+0x10/0x80"})),
          lock_b(s.stack({"_raw_read_lock+0x1c/0x30", "do_b+0x3c2/0x700"})),
          irq(s.stack({"_raw_spin_lock_irq+0x2f/0x50", "run_timer_softirq+0x8/0x40",
                       "__do_softirq+0x80/0x2b0"})) {}
};

// One scenario per check, each ending in findings with stacks.
std::vector<Finding> findings_of_every_kind() {
    std::vector<Finding> all;
    auto collect = [&](Sim &s) {
        all.insert(all.end(), s.eng.findings().begin(), s.eng.findings().end());
    };
    const EngineOptions ident{.kernel_ident = "6.1.0-18-cloud-amd64 #1 Debian"};
    {  // irq_safe_to_unsafe through a chain, then irq_inversion
        Sim s(ident);
        Stacks st(s);
        ClassId a = s.cls("a"), m = s.cls("m"), b = s.cls("b");
        s.acq(a, 1, af::kIrqsOff, Context::Softirq, 1, false, false, st.irq);
        s.rel(1, Context::Softirq, 1);
        s.acq(b, 3, af::kRead, Context::Task, 0, true, true, st.lock_b);
        s.rel(3);
        s.acq(a, 1, af::kIrqsOff, Context::Task, 0, true, true, st.lock_a);
        s.acq(m, 2, 0, Context::Task, 0, true, true, st.lock_a);
        s.rel(2);
        s.rel(1);
        s.acq(m, 2, af::kIrqsOff, Context::Task, 0, true, true, st.lock_a);
        s.acq(b, 3, af::kRead, Context::Task, 0, true, true, st.lock_b);
        collect(s);
    }
    {  // irq_inversion both ways, one on an inferred state
        Sim s(ident);
        Stacks st(s);
        ClassId a = s.cls("a"), b = s.cls("b"), c = s.cls("c");
        s.acq(a, 1, af::kIrqsOff, Context::Task, 0, true, true, st.lock_a);
        s.acq(b, 2, 0, Context::Task, 0, true, true, st.lock_b);
        s.rel(2);
        s.acq(c, 4, 0, Context::Task, 0, true, true, st.lock_b);
        s.rel(4);
        s.rel(1);
        s.acq(b, 2, 0, Context::Task, 0, true, true, st.lock_b, /*inferred=*/true);
        s.rel(2);
        s.acq(a, 1, af::kIrqsOff, Context::Softirq, 2, false, false, st.irq);
        s.rel(1, Context::Softirq, 2);
        s.acq(c, 4, 0, Context::Task, 0, true, true, st.lock_b);
        collect(s);
    }
    {  // inconsistent_state, hardirq context on the way
        Sim s(ident);
        Stacks st(s);
        ClassId a = s.cls("a");
        s.acq(a, 1, af::kRead, Context::Hardirq, 3, false, false, st.irq);
        s.rel(1, Context::Hardirq, 3);
        s.acq(a, 1, af::kBhOff, Context::Task, 0, true, true, st.lock_a);
        collect(s);
    }
    {  // circular with non-recursive readers, and recursive
        Sim s;
        Stacks st(s);
        ClassId a = s.cls("a"), b = s.cls("b"), r = s.cls("");
        s.acq(a, 1, af::kRead, Context::Task, 0, true, true, st.lock_b);
        s.acq(b, 2, 0, Context::Task, 0, true, true, st.lock_a);
        s.rel(2);
        s.rel(1);
        s.acq(b, 2, 0, Context::Task, 0, true, true, st.lock_a);
        s.acq(a, 1, af::kRead, Context::Task, 0, true, true, st.lock_b);
        s.rel(1);
        s.rel(2);
        s.acq(r, 7);
        s.acq(r, 8, af::kRead | af::kNonRecursiveRead);
        collect(s);
    }
    return all;
}

TEST(JsonRoundTrip, FindingsOfEveryKind) {
    std::vector<Finding> findings = findings_of_every_kind();
    std::set<FindingKind> kinds;
    bool read_lock = false, paths = false, usage_change = false, roles = false, inferred = false;
    for (const Finding &f : findings) {
        SCOPED_TRACE(f.signature_key);
        expect_round_trip(f);
        kinds.insert(f.kind);
        for (const LockRef &l : f.locks) {
            read_lock = read_lock || l.read != 0;
        }
        paths = paths || (!f.safe_path.empty() && !f.unsafe_path.empty());
        usage_change = usage_change || (f.prev_bit && f.prev_usage);
        roles = roles || (f.safe_lock && f.unsafe_lock && f.middle_lock);
        inferred = inferred || f.hardirq_state_inferred;
    }
    // The scenarios do reach every kind and every optional part.
    EXPECT_EQ(kinds.size(), 5u);
    EXPECT_TRUE(read_lock && paths && usage_change && roles && inferred);
}

TEST(JsonRoundTrip, SeedReplays) {
    for (const char *trace :
         {"seed_000_softirq_safe_to_unsafe.jsonl", "seed_001_irq_inversion.jsonl"}) {
        SCOPED_TRACE(trace);
        std::vector<Finding> findings = replay_trace_file(trace);
        ASSERT_FALSE(findings.empty());
        for (const Finding &f : findings) {
            expect_round_trip(f);
        }
    }
}

TEST(JsonRoundTrip, EveryFieldByHand) {
    // Values the engine does not make but a Finding can hold.
    Frame placed{"fixture", 4, 0, "", 7, false};  // a line without a file
    Frame inl{"inner", 0, 0, "include/x.h", 3, true};
    StackRef stack(Stack{inl, placed});
    Finding f;
    f.kind = FindingKind::InconsistentState;
    f.irq = IrqClass::Hardirq;
    f.irq_state = "HARDIRQ-READ";
    f.title = "t";
    f.signature = "0123456789abcdef";
    f.signature_key = "k";
    f.kernel_ident = "ident";
    f.task.pid = 2147483647;
    f.task.set_comm("fifteen-chars-x");
    f.cpu = 4294967295u;
    f.time_ns = 18446744073709551615ull;
    f.context = Context::Nmi;
    f.irq_flags = {true, false, true, false};
    f.locks = {{"a", "?.+.", stack, 2}, {"", "....", StackRef(Stack{}), 0}};
    f.acquiring = {"a", "?.+.", nullptr, 1};
    f.holding = LockRef{"b", "-...", stack, 0};
    f.safe_lock = f.acquiring;
    f.middle_lock = LockRef{"m", "....", nullptr, 0};
    f.prev_bit = UsageBit::UsedRead;  // without new_bit or prev_usage
    f.unsafe_usage = UsageTrace{UsageBit::EnabledSoftirqRead, stack, f.task, 1, 2, true};
    f.path = {PathEntry{"p", "+...", {*f.unsafe_usage}, stack}, PathEntry{"q", "....", {}, {}}};
    f.chain = {"a", "b", "a"};
    f.stack = stack;
    expect_round_trip(f);
    expect_round_trip(Finding{});
}

TEST(JsonRoundTrip, BareFindingsOfEveryKind) {
    // The schema lets a kind's locks, usages and bits be absent (JSON from
    // elsewhere than this engine): they round-trip, and the text shows
    // placeholders instead of failing.
    for (FindingKind kind :
         {FindingKind::IrqSafeToUnsafe, FindingKind::IrqInversion, FindingKind::InconsistentState,
          FindingKind::Circular, FindingKind::Recursive}) {
        Finding f;
        f.kind = kind;
        expect_round_trip(f);
        EXPECT_NE(output::render_text(f).find("WARNING: "), std::string::npos);
    }
}

// ---------------------------------------------------------------- refusals

json seed_000_json() {
    std::vector<Finding> findings = replay_trace_file("seed_000_softirq_safe_to_unsafe.jsonl");
    return findings.empty() ? json::object() : finding_to_json(findings[0]);
}

std::string refusal(const json &j) {
    std::string error;
    std::optional<Finding> f = finding_from_json(j, &error);
    EXPECT_FALSE(f) << j.dump();
    EXPECT_FALSE(error.empty());
    return error;
}

TEST(JsonRefusal, NotAFinding) {
    EXPECT_NE(refusal(json::array()).find("JSON object"), std::string::npos);
    EXPECT_NE(refusal("text").find("JSON object"), std::string::npos);
    EXPECT_NE(refusal(json::object()).find("\"schema\""), std::string::npos);
    EXPECT_FALSE(finding_from_json(json()));  // no error pointer: still fine
}

TEST(JsonRefusal, NamesTheFieldThatIsWrong) {
    json j = seed_000_json();
    ASSERT_TRUE(finding_from_json(j));

    json bad = j;
    bad.erase("kind");
    EXPECT_EQ(refusal(bad), "field \"kind\": missing");
    bad = j;
    bad["kind"] = "deadlock";
    EXPECT_EQ(refusal(bad), "field \"kind\": unknown kind \"deadlock\"");
    bad = j;
    bad["schema"] = 2;
    EXPECT_EQ(refusal(bad), "field \"schema\": version 2 is not 1");
    bad = j;
    bad["cpu"] = "1";
    EXPECT_EQ(refusal(bad), "field \"cpu\": expected an integer");
    bad = j;
    bad["time_ns"] = 1.5;
    EXPECT_EQ(refusal(bad), "field \"time_ns\": expected an integer");
    bad = j;
    bad["task"]["pid"] = 1ll << 40;
    EXPECT_EQ(refusal(bad), "field \"task.pid\": 1099511627776 is out of range");
    bad = j;
    bad["held"][0]["stack"][0]["offset"] = -1;
    EXPECT_EQ(refusal(bad), "field \"held[0].stack[0].offset\": -1 is out of range");
    bad = j;
    bad["paths"]["safe"][0]["usages"][0]["bit"] = "USED_SOMEWHERE";
    EXPECT_EQ(refusal(bad),
              "field \"paths.safe[0].usages[0].bit\": unknown usage bit \"USED_SOMEWHERE\"");
    bad = j;
    bad["context"] = "interrupt";
    EXPECT_EQ(refusal(bad), "field \"context\": unknown context \"interrupt\"");
}

TEST(JsonRefusal, LimitsNameTheValueThatIsTooLarge) {
    json j = seed_000_json();
    std::string error;
    ASSERT_FALSE(finding_from_json(j, &error, {.max_array_items = 40}))
        << "its stacks are 58 frames deep";
    EXPECT_EQ(error,
              "field \"stacks.safe_usage.stack\": an array of 58 items, over the limit of 40");
    json bad = j;
    bad["title"] = std::string(101, 't');
    EXPECT_FALSE(finding_from_json(bad, &error, {.max_string_bytes = 100}));
    EXPECT_EQ(error, "field \"title\": a string of 101 bytes, over the limit of 100");
    bad = j;
    bad["chain"][1] = std::string(101, 'c');
    EXPECT_FALSE(finding_from_json(bad, &error, {.max_string_bytes = 100}));
    EXPECT_EQ(error, "field \"chain[1]\": a string of 101 bytes, over the limit of 100");
    EXPECT_TRUE(finding_from_json(j, &error, {.max_string_bytes = 100, .max_array_items = 58}))
        << error;
}

// Calls visit(v) for every value below `node`, with a way to put it back.
void for_each_value(json &node, const std::function<void(json &)> &visit) {
    if (node.is_object()) {
        for (auto &[key, child] : node.items()) {
            visit(child);
            for_each_value(child, visit);
        }
    } else if (node.is_array()) {
        for (json &child : node) {
            visit(child);
            for_each_value(child, visit);
        }
    }
}

TEST(JsonRefusal, NoValueOfTheWrongTypeThrows) {
    // Every value in turn replaced by one of each other type: the reader
    // answers (a finding or a refusal), it never throws.
    json j = seed_000_json();
    const std::vector<json> replacements = {json(nullptr), json(true),    json(-3),      json(2.5),
                                            json("x"),     json::array(), json::object()};
    int refused = 0, accepted = 0;
    for_each_value(j, [&](json &value) {
        json saved = value;
        for (const json &r : replacements) {
            if (r.type() == saved.type()) {
                continue;
            }
            value = r;
            std::optional<Finding> f;
            std::string error;
            EXPECT_NO_THROW(f = finding_from_json(j, &error)) << j.dump();
            (f ? accepted : refused)++;
        }
        value = saved;
    });
    EXPECT_GT(refused, 0);
    // Accepted: derived fields that are not read ("text", "usage_str", a
    // frame's "text", "safe_lock"), and null for optional ones.
    EXPECT_GT(accepted, 0);
}

// Module frames and frames no symbol names keep their module or region.
TEST(JsonRoundTrip, ModuleAndUnnamedFramesSurvive) {
    std::vector<Finding> all = findings_of_every_kind();
    ASSERT_FALSE(all.empty());
    Stack frames;
    for (const char *text :
         {"_raw_spin_lock+0x2a/0x40", "circ_thread+0x1c/0x90 [lockwatch_scenarios]",
          "0x3a1c40 (unknown) [module area]", "0x1c40 (unknown)", "(unknown) [elsewhere]"}) {
        Frame f;
        std::string err;
        ASSERT_TRUE(parse_frame_text(text, &f, &err)) << err;
        EXPECT_EQ(output::format_frame(f), text);
        frames.push_back(f);
    }
    Finding f = all[0];
    for_each_stack(f, [&](StackRef &stack) {
        if (stack) {
            stack = StackRef(frames);
        }
    });
    expect_round_trip(f);
    EXPECT_NE(finding_to_json(f).dump().find("\"module\":\"lockwatch_scenarios\""),
              std::string::npos);
}

}  // namespace
}  // namespace lockwatch::engine::testing
