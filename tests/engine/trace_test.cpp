// The trace format: round trips, and one clear error with a position for
// every kind of bad input.
#include <sstream>
#include <string_view>

#include <gtest/gtest.h>

#include "engine/trace.h"

namespace lockwatch::engine {
namespace {

std::string read_all_error(const std::string &text) {
    std::istringstream in(text);
    TraceReader r(in);
    while (r.next()) {
    }
    return r.error() ? r.error()->format("t.jsonl") : std::string();
}

const std::string kHeader = "{\"format\":\"lockwatch-trace\",\"version\":1}\n";

TEST(Trace, RoundTripsEveryRecordType) {
    std::vector<Event> events;
    events.push_back(ClassFact{5, "kioctx.ctx_lock"});
    StackFact sf;
    sf.id = 3;
    sf.frames = {{"io_submit_one", 0x97f, 0x2b00, "fs/aio.c", 1878, false},
                 {"aio_poll", 0, 0, "fs/aio.c", 1767, true}};
    events.push_back(sf);
    AcquireEvent a;
    a.time_ns = 77;
    a.cpu = 3;
    a.task.pid = 42;
    a.task.set_comm("syz-executor.1");
    a.context = Context::Softirq;
    a.lock = 0xdeadbeefcafeull;
    a.cls = 5;
    a.flags = acquire_flags::kIrqsOff | acquire_flags::kTrylock;
    a.hardirqs_enabled = false;
    a.softirqs_enabled = true;
    a.hardirq_state_inferred = true;
    a.stack = 3;
    events.push_back(a);
    ReleaseEvent r;
    r.cpu = 3;
    r.context = Context::Softirq;
    r.lock = a.lock;
    events.push_back(r);
    UsageFact u;
    u.cls = 5;
    u.bit = UsageBit::EnabledSoftirqRead;
    u.read = 1;
    u.stack = 3;
    events.push_back(u);
    EdgeFact e;
    e.prev = 5;
    e.next = 6;
    e.context = Context::Hardirq;
    e.next_read = 2;
    e.next_stack = 3;
    events.push_back(e);
    IrqsEnabledEvent on;
    on.cpu = 2;
    on.context = Context::Task;
    on.hardirqs_enabled = true;
    on.softirqs_enabled = true;
    on.stack = 3;
    events.push_back(on);

    std::string text = trace_header_line() + "\n";
    for (const Event &ev : events) {
        text += trace_record_line(ev) + "\n";
    }
    std::istringstream in(text);
    TraceReader reader(in);
    std::vector<Event> back;
    while (auto ev = reader.next()) {
        back.push_back(*ev);
    }
    ASSERT_FALSE(reader.error()) << reader.error()->format("x");
    ASSERT_EQ(back.size(), events.size());
    EXPECT_EQ(std::get<ClassFact>(back[0]).name, "kioctx.ctx_lock");
    EXPECT_EQ(std::get<StackFact>(back[1]).frames, sf.frames);
    const auto &a2 = std::get<AcquireEvent>(back[2]);
    EXPECT_EQ(a2.lock, a.lock);
    EXPECT_EQ(a2.flags, a.flags);
    EXPECT_EQ(a2.task, a.task);
    EXPECT_EQ(a2.context, Context::Softirq);
    EXPECT_FALSE(a2.hardirqs_enabled);
    EXPECT_TRUE(a2.hardirq_state_inferred);
    EXPECT_EQ(std::get<UsageFact>(back[4]).bit, UsageBit::EnabledSoftirqRead);
    EXPECT_EQ(std::get<EdgeFact>(back[5]).next_read, 2);
    EXPECT_EQ(std::get<EdgeFact>(back[5]).context, Context::Hardirq);
    const auto &on2 = std::get<IrqsEnabledEvent>(back[6]);
    EXPECT_EQ(on2.cpu, 2u);
    EXPECT_TRUE(on2.hardirqs_enabled);
    EXPECT_TRUE(on2.softirqs_enabled);
    EXPECT_EQ(on2.stack, 3u);
}

// Traces written before the irqs_on record existed still read.
TEST(Trace, VersionOneTracesStillRead) {
    std::istringstream in(
        "{\"format\":\"lockwatch-trace\",\"version\":1}\n"
        "{\"t\":\"class\",\"id\":1,\"name\":\"a\"}\n");
    TraceReader reader(in);
    auto ev = reader.next();
    ASSERT_TRUE(ev) << reader.error()->format("x");
    EXPECT_EQ(std::get<ClassFact>(*ev).name, "a");
    EXPECT_NE(trace_header_line().find("\"version\":2"), std::string::npos);
}

TEST(Trace, FrameText) {
    Frame f;
    std::string err;
    ASSERT_TRUE(parse_frame_text("io_submit_one+0x97f/0x2b00 fs/aio.c:1878", &f, &err));
    EXPECT_EQ(f.symbol, "io_submit_one");
    EXPECT_EQ(f.offset, 0x97fu);
    EXPECT_EQ(f.size, 0x2b00u);
    EXPECT_EQ(f.file, "fs/aio.c");
    EXPECT_EQ(f.line, 1878u);
    ASSERT_TRUE(parse_frame_text("aio_poll fs/aio.c:1767 [inline]", &f, &err));
    EXPECT_TRUE(f.inlined);
    EXPECT_EQ(f.offset, 0u);
    EXPECT_FALSE(parse_frame_text("+0x10", &f, &err));
    EXPECT_FALSE(parse_frame_text("sym+0xzz", &f, &err));
}

// Module code as the kernel prints it; unnamed frames as an offset in their
// region. Both read back from the text and from a stack record's objects.
TEST(Trace, ModuleAndUnnamedFrames) {
    Frame f;
    std::string err;
    ASSERT_TRUE(parse_frame_text("circ_thread+0x1c/0x90 [lockwatch_scenarios]", &f, &err)) << err;
    EXPECT_EQ(f.symbol, "circ_thread");
    EXPECT_EQ(f.offset, 0x1cu);
    EXPECT_EQ(f.size, 0x90u);
    EXPECT_EQ(f.module, "lockwatch_scenarios");
    ASSERT_TRUE(parse_frame_text("fn+0x4/0x10 [mod] drivers/x.c:12", &f, &err)) << err;
    EXPECT_EQ(f.module, "mod");
    EXPECT_EQ(f.file, "drivers/x.c");
    EXPECT_EQ(f.line, 12u);
    ASSERT_TRUE(parse_frame_text("0x3a1c40 (unknown) [module area]", &f, &err)) << err;
    EXPECT_TRUE(f.symbol.empty());
    EXPECT_EQ(f.offset, 0x3a1c40u);
    EXPECT_EQ(f.module, kModuleAreaRegion);
    ASSERT_TRUE(parse_frame_text("0x1c40 (unknown)", &f, &err)) << err;
    EXPECT_TRUE(f.module.empty());
    ASSERT_TRUE(parse_frame_text("(unknown) [elsewhere]", &f, &err)) << err;
    EXPECT_EQ(f.module, kElsewhereRegion);
    EXPECT_FALSE(parse_frame_text("0xzz (unknown)", &f, &err));
    EXPECT_FALSE(parse_frame_text("fn+0x4 [mod", &f, &err));

    StackFact stack{3, {}};
    for (const char *text :
         {"_raw_spin_lock+0x2a/0x40", "circ_thread+0x1c/0x90 [lockwatch_scenarios]",
          "0x3a1c40 (unknown) [module area]", "0x1c40 (unknown)", "(unknown) [elsewhere]"}) {
        ASSERT_TRUE(parse_frame_text(text, &f, &err)) << err;
        stack.frames.push_back(f);
    }
    std::optional<TraceError> error;
    auto back = parse_trace_record(trace_record_line(Event{stack}), 2, &error);
    ASSERT_TRUE(back) << error->message;
    EXPECT_EQ(std::get<StackFact>(*back).frames, stack.frames);
}

TEST(Trace, ErrorsNameThePosition) {
    EXPECT_EQ(read_all_error(""), "t.jsonl:1: empty trace: no header line");
    EXPECT_NE(read_all_error("{\"format\":\"other\",\"version\":1}\n")
                  .find("t.jsonl:1: not a lockwatch trace"),
              std::string::npos);
    EXPECT_NE(read_all_error("{\"format\":\"lockwatch-trace\",\"version\":9}\n")
                  .find("t.jsonl:1: trace format version 9 is not supported"),
              std::string::npos);
    // A JSON syntax error gets line and column.
    EXPECT_EQ(read_all_error(kHeader + "\n{\"t\":\"class\",\"id\":1,,}\n")
                  .rfind("t.jsonl:3:21: invalid JSON", 0),
              0u);
    EXPECT_EQ(read_all_error(kHeader + "{\"t\":\"class\",\"name\":\"x\"}\n"),
              "t.jsonl:2: missing field \"id\"");
    EXPECT_EQ(read_all_error(kHeader + "{\"t\":\"acquire\",\"cpu\":-1,\"lock\":1,\"class\":1}\n"),
              "t.jsonl:2: field \"cpu\": expected an unsigned integer");
    EXPECT_EQ(
        read_all_error(kHeader +
                       "{\"t\":\"acquire\",\"cpu\":1,\"lock\":1,\"class\":1,\"ctx\":\"irq\"}\n"),
        "t.jsonl:2: field \"ctx\": unknown context \"irq\" (task, softirq, hardirq, nmi)");
    EXPECT_EQ(read_all_error(kHeader + "{\"t\":\"usage\",\"class\":1,\"bit\":\"USED_IN_NMI\"}\n"),
              "t.jsonl:2: field \"bit\": unknown usage bit \"USED_IN_NMI\"");
    EXPECT_EQ(read_all_error(kHeader + "{\"t\":\"edge\",\"prev\":1,\"next\":2,\"next_read\":3}\n"),
              "t.jsonl:2: field \"next_read\": 3 is larger than 2");
    EXPECT_EQ(read_all_error(kHeader + "{\"t\":\"bogus\"}\n"),
              "t.jsonl:2: unknown record type \"bogus\" (class, stack, acquire, release, usage, "
              "edge, irqs_on)");
    EXPECT_EQ(read_all_error(kHeader + "[1,2]\n"), "t.jsonl:2: a record must be a JSON object");
    // Numbers that overflow a double are an error, in the header and after it.
    EXPECT_EQ(read_all_error("44E444\n").rfind("t.jsonl:1: invalid JSON in the header", 0), 0u);
    EXPECT_EQ(read_all_error(kHeader + "{\"t\":\"class\",\"id\":1e999}\n")
                  .rfind("t.jsonl:2: invalid JSON", 0),
              0u);
    // Truncated: the last line stops mid-record.
    std::string err =
        read_all_error(kHeader + "{\"t\":\"class\",\"id\":1,\"name\":\"a\"}\n{\"t\":\"cla");
    EXPECT_EQ(err.rfind("t.jsonl:3:", 0), 0u) << err;
    EXPECT_NE(err.find("truncated"), std::string::npos) << err;
    // A complete file without a final newline is fine.
    EXPECT_EQ(read_all_error(kHeader + "{\"t\":\"class\",\"id\":1,\"name\":\"a\"}"), "");
}

TEST(Trace, OverlongLineIsAnError) {
    std::string big = kHeader + "{\"t\":\"class\",\"id\":1,\"name\":\"" +
                      std::string(kTraceMaxLineBytes + 10, 'a') + "\"}\n";
    std::string err = read_all_error(big);
    EXPECT_NE(err.find("t.jsonl:2:"), std::string::npos);
    EXPECT_NE(err.find("longer than"), std::string::npos);
}

// A line of exactly the bound reads; one byte more is the error, at the
// column past the bound, wherever the stream's chunks end.
TEST(Trace, LineBoundIsExact) {
    const std::string prefix = "{\"t\":\"class\",\"id\":1,\"name\":\"";
    const std::string suffix = "\"}";
    const std::size_t fill = kTraceMaxLineBytes - prefix.size() - suffix.size();
    EXPECT_EQ(read_all_error(kHeader + prefix + std::string(fill, 'a') + suffix + "\n"),
              "t.jsonl:2: field \"name\": longer than 1024 characters");
    EXPECT_EQ(read_all_error(kHeader + prefix + std::string(fill + 1, 'a') + suffix + "\n"),
              "t.jsonl:2:" + std::to_string(kTraceMaxLineBytes + 1) + ": line longer than " +
                  std::to_string(kTraceMaxLineBytes) + " bytes");
}

// Records go through a reader of the flat shape lockwatch writes, and
// through nlohmann::json's DOM when they have anything else. Both must give
// the same event or the same error, for the shapes on either side of the
// line between them.
TEST(Trace, RecordReaderAgreesWithTheDom) {
    constexpr char kNulInside[] = "{\"t\":\"release\",\"cpu\":1,\"lock\":16}\0 x";
    const std::string_view lines[] = {
        R"({"t":"acquire","cpu":1,"lock":16,"class":2,"flags":["irq","read"],"stack":3})",
        R"( { "t" : "release" , "cpu" : 1 , "lock" : "0x10" , "ctx" : "softirq" } )",
        "{\"t\":\"release\",\t\"cpu\":1,\r\"lock\":16}",
        R"({"t":"class","id":18446744073709551615,"name":"a.b"})",
        R"({"t":"class","id":18446744073709551616,"name":"a.b"})",
        R"({"t":"class","id":1,"name":"esc\"aped\u00e9"})",
        "{\"t\":\"class\",\"id\":1,\"name\":\"caf\xc3\xa9\"}",
        "{\"t\":\"class\",\"id\":1,\"name\":\"bad\xc3\"}",
        "{\"t\":\"class\",\"id\":1,\"name\":\"ctl\x01\"}",
        R"({"t":"class","id":1,"name":"del)"
        "\x7f"
        R"("})",
        R"({"t":"class","id":1,"id":2,"name":"dup","name":"last"})",
        R"({"t":"class","id":1,"name":"x","t":"release","cpu":0,"lock":1})",
        R"({"t":"class","id":-0,"name":"x"})",
        R"({"t":"class","id":-1,"name":"x"})",
        R"({"t":"class","id":01,"name":"x"})",
        R"({"t":"class","id":1.0,"name":"x"})",
        R"({"t":"class","id":1e2,"name":"x"})",
        R"({"t":"class","id":1,"name":null})",
        R"({"t":"class","id":1,"name":"x","extra":{"a":[1,{}]}})",
        R"({"t":"acquire","cpu":1,"lock":1,"class":1,"pid":2147483648})",
        R"({"t":"acquire","cpu":1,"lock":1,"class":1,"pid":-5})",
        R"({"t":"acquire","cpu":1,"lock":1,"class":1,"flags":[]})",
        R"({"t":"acquire","cpu":1,"lock":1,"class":1,"flags":["irq",1]})",
        R"({"t":"acquire","cpu":1,"lock":1,"class":1,"flags":[["irq"]]})",
        R"({"t":"acquire","cpu":1,"lock":1,"class":1,"hardirqs_enabled":tru})",
        R"({"t":"acquire","cpu":1,"lock":1,"class":1,"hardirqs_enabled":truex})",
        R"({"t":"acquire","cpu":1,"lock":1,"class":1,"hardirqs_enabled":false,})",
        R"({"t":"stack","id":2,"frames":["f+0x1/0x2 a.c:3",{"sym":"g","off":"0x4"}]})",
        R"({"t":"stack","id":2,"frames":["f+0x1/0x2 a.c:3","(unknown) [elsewhere]"]})",
        R"({"t":"stack","id":2,"frames":[3]})",
        R"({"t":"usage","class":1,"bit":"USED_IN_HARDIRQ","read":2})",
        R"({"t":"edge","prev":1,"next":2,"ctx":"hardirq","next_read":2} x)",
        std::string_view(kNulInside, sizeof kNulInside - 1),
        "{}",
        "[]",
        "{\"t\":\"irqs_on\",\"cpu\":1,\"hardirqs_enabled\":true}",
        "{\"t\":\"irqs_on\",\"cpu\":1,\"hardirqs_enabled\":true",
    };
    for (std::string_view line : lines) {
        std::optional<TraceError> error;
        std::optional<TraceError> reference_error;
        auto ev = parse_trace_record(line, 7, &error);
        auto reference = parse_trace_record_reference(line, 7, &reference_error);
        EXPECT_EQ(ev, reference) << line;
        ASSERT_EQ(error.has_value(), reference_error.has_value()) << line;
        if (error) {
            EXPECT_EQ(error->format("x"), reference_error->format("x")) << line;
        }
    }
}

}  // namespace
}  // namespace lockwatch::engine
