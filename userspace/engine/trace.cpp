#include "engine/trace.h"

#include <charconv>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace lockwatch::engine {
namespace {

using json = nlohmann::json;

// Field errors carry the field name; the reader adds the line.
struct FieldError {
    std::string message;
};

[[noreturn]] void fail(std::string msg) {
    throw FieldError{std::move(msg)};
}

const json *field(const json &obj, const char *name, bool required) {
    auto it = obj.find(name);
    if (it == obj.end() || it->is_null()) {
        if (required) {
            fail(fmt::format("missing field \"{}\"", name));
        }
        return nullptr;
    }
    return &*it;
}

bool parse_hex_or_dec(std::string_view s, std::uint64_t *out) {
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s.remove_prefix(2);
        base = 16;
    }
    if (s.empty()) {
        return false;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, base);
    return ec == std::errc() && p == s.data() + s.size();
}

// Unsigned integers: a JSON number or a "0x..." string (64-bit ids and
// offsets read better in hex and survive tools that use doubles).
std::uint64_t get_u64(const json &obj, const char *name, bool required, std::uint64_t def = 0,
                      std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
    const json *v = field(obj, name, required);
    if (!v) {
        return def;
    }
    std::uint64_t out = 0;
    if (v->is_number_unsigned()) {
        out = v->get<std::uint64_t>();
    } else if (v->is_number_integer() && v->get<std::int64_t>() >= 0) {
        out = static_cast<std::uint64_t>(v->get<std::int64_t>());
    } else if (v->is_string()) {
        if (!parse_hex_or_dec(v->get_ref<const std::string &>(), &out)) {
            fail(fmt::format("field \"{}\": not an unsigned integer", name));
        }
    } else {
        fail(fmt::format("field \"{}\": expected an unsigned integer", name));
    }
    if (out > max) {
        fail(fmt::format("field \"{}\": {} is larger than {}", name, out, max));
    }
    return out;
}

std::int32_t get_pid(const json &obj) {
    const json *v = field(obj, "pid", false);
    if (!v) {
        return 0;
    }
    if (!v->is_number_integer() || v->get<std::int64_t>() < 0 ||
        v->get<std::int64_t>() > std::numeric_limits<std::int32_t>::max()) {
        fail("field \"pid\": expected a pid");
    }
    return static_cast<std::int32_t>(v->get<std::int64_t>());
}

bool get_bool(const json &obj, const char *name, bool def) {
    const json *v = field(obj, name, false);
    if (!v) {
        return def;
    }
    if (!v->is_boolean()) {
        fail(fmt::format("field \"{}\": expected true or false", name));
    }
    return v->get<bool>();
}

std::string get_string(const json &obj, const char *name, bool required) {
    const json *v = field(obj, name, required);
    if (!v) {
        return {};
    }
    if (!v->is_string()) {
        fail(fmt::format("field \"{}\": expected a string", name));
    }
    return v->get<std::string>();
}

Context get_context(const json &obj, const char *name) {
    std::string s = get_string(obj, name, false);
    if (s.empty() || s == "task") {
        return Context::Task;
    }
    if (s == "softirq") {
        return Context::Softirq;
    }
    if (s == "hardirq") {
        return Context::Hardirq;
    }
    if (s == "nmi") {
        return Context::Nmi;
    }
    fail(
        fmt::format("field \"{}\": unknown context \"{}\" (task, softirq, hardirq, nmi)", name, s));
}

Task get_task(const json &obj) {
    Task t;
    t.pid = get_pid(obj);
    t.set_comm(get_string(obj, "comm", false));
    return t;
}

std::uint8_t get_read(const json &obj, const char *name) {
    return static_cast<std::uint8_t>(get_u64(obj, name, false, 0, 2));
}

StackId get_stack(const json &obj, const char *name) {
    return static_cast<StackId>(get_u64(obj, name, false, 0, std::numeric_limits<StackId>::max()));
}

// The kernel's own bounds on what a frame names: KSYM_NAME_LEN for a
// symbol, MODULE_NAME_LEN for a module, PATH_MAX for a source file. Longer
// is not a kernel's frame, and would let one stack weigh megabytes in every
// report that prints it.
void check_frame_sizes(const Frame &f) {
    if (f.symbol.size() > 512 || f.module.size() > 64 || f.file.size() > 4096) {
        fail("frame: a symbol over 512, a module over 64 or a file over 4096 characters");
    }
}

Frame get_frame(const json &v) {
    Frame f;
    if (v.is_string()) {
        std::string err;
        if (!parse_frame_text(v.get_ref<const std::string &>(), &f, &err)) {
            fail("frame: " + err);
        }
        check_frame_sizes(f);
        return f;
    }
    if (!v.is_object()) {
        fail("frame: expected a string or an object");
    }
    f.symbol = get_string(v, "sym", true);
    f.offset = get_u64(v, "off", false);
    f.size = get_u64(v, "size", false);
    f.module = get_string(v, "mod", false);
    f.file = get_string(v, "file", false);
    f.line = static_cast<std::uint32_t>(get_u64(v, "line", false, 0, 0xffffffffu));
    f.inlined = get_bool(v, "inline", false);
    if (f.symbol.empty() && (f.inlined || f.size)) {
        fail("frame: empty \"sym\" (an unnamed frame has an offset and a region only)");
    }
    check_frame_sizes(f);
    return f;
}

std::uint32_t get_flags(const json &obj) {
    const json *v = field(obj, "flags", false);
    if (!v) {
        return 0;
    }
    if (!v->is_array()) {
        fail("field \"flags\": expected an array of strings");
    }
    std::uint32_t flags = 0;
    for (const json &f : *v) {
        if (!f.is_string()) {
            fail("field \"flags\": expected an array of strings");
        }
        const std::string &s = f.get_ref<const std::string &>();
        if (s == "read") {
            flags |= acquire_flags::kRead;
        } else if (s == "trylock") {
            flags |= acquire_flags::kTrylock;
        } else if (s == "irq") {
            flags |= acquire_flags::kIrqsOff;
        } else if (s == "bh") {
            flags |= acquire_flags::kBhOff;
        } else if (s == "recursive") {
            flags |= acquire_flags::kRead | acquire_flags::kRecursiveRead;
        } else if (s == "nonrecursive") {
            flags |= acquire_flags::kRead | acquire_flags::kNonRecursiveRead;
        } else {
            fail(fmt::format("field \"flags\": unknown flag \"{}\"", s));
        }
    }
    return flags;
}

ClassFact parse_class(const json &j) {
    ClassFact c;
    c.id = get_u64(j, "id", true);
    c.name = get_string(j, "name", true);
    if (c.name.size() > kTraceMaxClassName) {
        fail(fmt::format("field \"name\": longer than {} characters", kTraceMaxClassName));
    }
    return c;
}

StackFact parse_stack(const json &j) {
    StackFact s;
    s.id = get_stack(j, "id");
    if (s.id == kNoStack) {
        fail("field \"id\": stack ids start at 1");
    }
    const json *frames = field(j, "frames", true);
    if (!frames->is_array()) {
        fail("field \"frames\": expected an array");
    }
    if (frames->size() > kTraceMaxFrames) {
        fail(fmt::format("field \"frames\": more than {} frames", kTraceMaxFrames));
    }
    for (const json &f : *frames) {
        s.frames.push_back(get_frame(f));
    }
    return s;
}

Event parse_object(const json &j) {
    if (!j.is_object()) {
        fail("a record must be a JSON object");
    }
    const std::string t = get_string(j, "t", true);
    if (t == "class") {
        return parse_class(j);
    }
    if (t == "stack") {
        return parse_stack(j);
    }
    if (t == "acquire") {
        AcquireEvent e;
        e.time_ns = get_u64(j, "time", false);
        e.cpu = static_cast<std::uint32_t>(get_u64(j, "cpu", true, 0, kTraceMaxCpu));
        e.task = get_task(j);
        e.context = get_context(j, "ctx");
        e.lock = get_u64(j, "lock", true);
        e.cls = get_u64(j, "class", true);
        e.flags = get_flags(j);
        e.hardirqs_enabled = get_bool(j, "hardirqs_enabled", true);
        e.softirqs_enabled = get_bool(j, "softirqs_enabled", true);
        e.hardirq_state_inferred = get_bool(j, "inferred", false);
        e.stack = get_stack(j, "stack");
        return e;
    }
    if (t == "release") {
        ReleaseEvent e;
        e.time_ns = get_u64(j, "time", false);
        e.cpu = static_cast<std::uint32_t>(get_u64(j, "cpu", true, 0, kTraceMaxCpu));
        e.task = get_task(j);
        e.context = get_context(j, "ctx");
        e.lock = get_u64(j, "lock", true);
        return e;
    }
    if (t == "usage") {
        UsageFact u;
        u.cls = get_u64(j, "class", true);
        std::string bit = get_string(j, "bit", true);
        if (!parse_usage_bit_name(bit, &u.bit) || u.bit == UsageBit::InNmi) {
            fail(fmt::format("field \"bit\": unknown usage bit \"{}\"", bit));
        }
        u.stack = get_stack(j, "stack");
        u.task = get_task(j);
        u.cpu = static_cast<std::uint32_t>(get_u64(j, "cpu", false, 0, kTraceMaxCpu));
        u.time_ns = get_u64(j, "time", false);
        u.hardirq_state_inferred = get_bool(j, "inferred", false);
        u.read = get_read(j, "read");
        return u;
    }
    if (t == "edge") {
        EdgeFact e;
        e.prev = get_u64(j, "prev", true);
        e.next = get_u64(j, "next", true);
        e.context = get_context(j, "ctx");
        e.prev_read = get_read(j, "prev_read");
        e.next_read = get_read(j, "next_read");
        e.next_stack = get_stack(j, "stack");
        e.prev_stack = get_stack(j, "prev_stack");
        e.task = get_task(j);
        e.cpu = static_cast<std::uint32_t>(get_u64(j, "cpu", false, 0, kTraceMaxCpu));
        e.time_ns = get_u64(j, "time", false);
        e.hardirq_state_inferred = get_bool(j, "inferred", false);
        e.hardirqs_enabled = get_bool(j, "hardirqs_enabled", false);
        e.softirqs_enabled = get_bool(j, "softirqs_enabled", false);
        return e;
    }
    if (t == "irqs_on") {
        IrqsEnabledEvent e;
        e.time_ns = get_u64(j, "time", false);
        e.cpu = static_cast<std::uint32_t>(get_u64(j, "cpu", true, 0, kTraceMaxCpu));
        e.task = get_task(j);
        e.context = get_context(j, "ctx");
        e.hardirqs_enabled = get_bool(j, "hardirqs_enabled", true);
        e.softirqs_enabled = get_bool(j, "softirqs_enabled", false);
        e.stack = get_stack(j, "stack");
        return e;
    }
    fail(fmt::format(
        "unknown record type \"{}\" (class, stack, acquire, release, usage, edge, irqs_on)", t));
}

// One frame of a trace's stack record (docs/trace-format.md: "sym", "off",
// ...); a finding's frames have their own schema (finding_frame_to_json()).
json trace_frame_to_json(const Frame &f) {
    json j = {{"sym", f.symbol}};
    if (f.offset) {
        j["off"] = fmt::format("{:#x}", f.offset);
    }
    if (f.size) {
        j["size"] = fmt::format("{:#x}", f.size);
    }
    if (!f.module.empty()) {
        j["mod"] = f.module;
    }
    if (!f.file.empty()) {
        j["file"] = f.file;
    }
    if (f.line) {
        j["line"] = f.line;
    }
    if (f.inlined) {
        j["inline"] = true;
    }
    return j;
}

void put_task(json &j, const Task &t) {
    if (t.pid) {
        j["pid"] = t.pid;
    }
    if (!t.comm_view().empty()) {
        j["comm"] = std::string(t.comm_view());
    }
}

// " [module]" right after the symbol (or an unnamed frame's region); "module
// area" has a space, so the bracket is matched, not split on spaces.
bool take_module(std::string_view *rest, std::string *module) {
    if (!rest->starts_with("[")) {
        return true;
    }
    auto close = rest->find(']');
    if (close == std::string_view::npos || close == 1) {
        return false;
    }
    *module = std::string(rest->substr(1, close - 1));
    rest->remove_prefix(close + 1);
    if (rest->starts_with(" ")) {
        rest->remove_prefix(1);
    }
    return true;
}

// "0x1c40 (unknown)", "0x3a1c40 (unknown) [module area]", "(unknown) [elsewhere]".
bool parse_unnamed_frame(std::string_view text, Frame *out, std::string *error) {
    constexpr std::string_view kUnknown = "(unknown)";
    Frame f;
    std::string_view s = text;
    if (!s.starts_with(kUnknown)) {
        auto sp = s.find(' ');
        if (sp == std::string_view::npos || !parse_hex_or_dec(s.substr(0, sp), &f.offset)) {
            *error = fmt::format("bad offset in \"{}\"", text);
            return false;
        }
        s.remove_prefix(sp + 1);
    }
    if (!s.starts_with(kUnknown)) {
        *error = fmt::format("no symbol in \"{}\"", text);
        return false;
    }
    s.remove_prefix(kUnknown.size());
    if (s.starts_with(" ")) {
        s.remove_prefix(1);
    }
    if (!take_module(&s, &f.module) || !s.empty()) {
        *error = fmt::format("bad region in \"{}\"", text);
        return false;
    }
    *out = std::move(f);
    return true;
}

}  // namespace

bool parse_frame_text(std::string_view text, Frame *out, std::string *error) {
    if (text.starts_with("0x") || text.starts_with("(unknown)")) {
        return parse_unnamed_frame(text, out, error);
    }
    Frame f;
    std::string_view s = text;
    constexpr std::string_view kInline = " [inline]";
    if (s.size() > kInline.size() && s.substr(s.size() - kInline.size()) == kInline) {
        f.inlined = true;
        s.remove_suffix(kInline.size());
    }
    std::string_view loc;
    if (auto sp = s.find(' '); sp != std::string_view::npos) {
        loc = s.substr(sp + 1);
        s = s.substr(0, sp);
    }
    if (!take_module(&loc, &f.module)) {
        *error = fmt::format("bad module in \"{}\"", text);
        return false;
    }
    if (auto plus = s.find('+'); plus != std::string_view::npos) {
        std::string_view off = s.substr(plus + 1);
        s = s.substr(0, plus);
        std::string_view size;
        if (auto slash = off.find('/'); slash != std::string_view::npos) {
            size = off.substr(slash + 1);
            off = off.substr(0, slash);
        }
        if (!parse_hex_or_dec(off, &f.offset) ||
            (!size.empty() && !parse_hex_or_dec(size, &f.size))) {
            *error = fmt::format("bad offset in \"{}\"", text);
            return false;
        }
    }
    if (s.empty()) {
        *error = fmt::format("no symbol in \"{}\"", text);
        return false;
    }
    f.symbol = std::string(s);
    if (!loc.empty()) {
        auto colon = loc.rfind(':');
        std::uint64_t line = 0;
        if (colon != std::string_view::npos && parse_hex_or_dec(loc.substr(colon + 1), &line) &&
            line <= 0xffffffffu) {
            f.file = std::string(loc.substr(0, colon));
            f.line = static_cast<std::uint32_t>(line);
        } else {
            f.file = std::string(loc);
        }
    }
    *out = std::move(f);
    return true;
}

std::string TraceError::format(std::string_view source) const {
    if (column) {
        return fmt::format("{}:{}:{}: {}", source, line, column, message);
    }
    return fmt::format("{}:{}: {}", source, line, message);
}

std::optional<Event> parse_trace_record(std::string_view text, std::size_t line,
                                        std::optional<TraceError> *error) {
    json j;
    try {
        j = json::parse(text.begin(), text.end());
    } catch (const json::parse_error &e) {
        // e.byte is 1-based; the message names what was expected.
        std::string what = e.what();
        auto pos = what.find("syntax error");
        *error =
            TraceError{line, e.byte ? e.byte : 1,
                       "invalid JSON: " + (pos == std::string::npos ? what : what.substr(pos))};
        return std::nullopt;
    } catch (const json::exception &e) {  // e.g. a number too large for a double
        *error = TraceError{line, 0, std::string("invalid JSON: ") + e.what()};
        return std::nullopt;
    }
    try {
        return parse_object(j);
    } catch (const FieldError &e) {
        *error = TraceError{line, 0, e.message};
    } catch (const json::exception &e) {
        *error = TraceError{line, 0, e.what()};
    }
    return std::nullopt;
}

bool TraceReader::read_header(std::string_view text) {
    std::optional<TraceError> err;
    json j;
    try {
        j = json::parse(text.begin(), text.end());
    } catch (const json::parse_error &e) {
        error_ = TraceError{line_, e.byte ? e.byte : 1,
                            "invalid JSON in the header: expected "
                            "{\"format\":\"lockwatch-trace\",\"version\":2}"};
        return false;
    } catch (const json::exception &e) {
        error_ = TraceError{line_, 0,
                            std::string("invalid JSON in the header (") + e.what() +
                                "): expected {\"format\":\"lockwatch-trace\",\"version\":2}"};
        return false;
    }
    if (!j.is_object() || !j.contains("format") || j["format"] != kTraceFormatName) {
        error_ = TraceError{line_, 0,
                            "not a lockwatch trace: the first line must be "
                            "{\"format\":\"lockwatch-trace\",\"version\":2}"};
        return false;
    }
    if (!j.contains("version") || !j["version"].is_number_integer()) {
        error_ = TraceError{line_, 0, "header: missing integer \"version\""};
        return false;
    }
    int v = j["version"].get<int>();
    if (v < 1 || v > kTraceFormatVersion) {
        error_ = TraceError{line_, 0,
                            fmt::format("trace format version {} is not supported (this lockwatch "
                                        "reads versions 1 to {})",
                                        v, kTraceFormatVersion)};
        return false;
    }
    version_ = v;
    return true;
}

std::optional<Event> TraceReader::next() {
    if (error_) {
        return std::nullopt;
    }
    std::string text;
    while (true) {
        text.clear();
        // Bounded getline: a line longer than the limit is an error, not an
        // allocation the size of the input.
        bool got = false;
        bool newline = false;
        char c;
        while (in_.get(c)) {
            got = true;
            if (c == '\n') {
                newline = true;
                break;
            }
            if (text.size() >= kTraceMaxLineBytes) {
                error_ = TraceError{line_ + 1, text.size() + 1,
                                    fmt::format("line longer than {} bytes", kTraceMaxLineBytes)};
                return std::nullopt;
            }
            text.push_back(c);
        }
        if (!got) {
            if (version_ == 0) {
                error_ = TraceError{line_ + 1, 0, "empty trace: no header line"};
            }
            return std::nullopt;
        }
        ++line_;
        if (!text.empty() && text.back() == '\r') {
            text.pop_back();
        }
        if (text.find_first_not_of(" \t") == std::string::npos) {
            if (!newline) {
                return std::nullopt;
            }
            continue;  // blank lines are allowed
        }
        if (version_ == 0) {
            if (!read_header(text)) {
                return std::nullopt;
            }
            continue;
        }
        std::optional<Event> ev = parse_trace_record(text, line_, &error_);
        if (!ev && error_ && !newline) {
            error_->message += " (the trace looks truncated: its last line has no newline)";
        }
        return ev;
    }
}

std::string trace_header_line() {
    return json{{"format", kTraceFormatName}, {"version", kTraceFormatVersion}}.dump();
}

namespace {

json record_json(const ClassFact &e) {
    return {{"t", "class"}, {"id", e.id}, {"name", e.name}};
}

json record_json(const StackFact &e) {
    json frames = json::array();
    for (const Frame &f : e.frames) {
        frames.push_back(trace_frame_to_json(f));
    }
    return {{"t", "stack"}, {"id", e.id}, {"frames", frames}};
}

json acquire_flag_names(std::uint32_t flags) {
    json names = json::array();
    if (flags & acquire_flags::kRecursiveRead) {
        names.push_back("recursive");
    } else if (flags & acquire_flags::kNonRecursiveRead) {
        names.push_back("nonrecursive");
    } else if (flags & acquire_flags::kRead) {
        names.push_back("read");
    }
    if (flags & acquire_flags::kTrylock) {
        names.push_back("trylock");
    }
    if (flags & acquire_flags::kIrqsOff) {
        names.push_back("irq");
    }
    if (flags & acquire_flags::kBhOff) {
        names.push_back("bh");
    }
    return names;
}

json record_json(const AcquireEvent &e) {
    json j = {{"t", "acquire"}, {"time", e.time_ns},
              {"cpu", e.cpu},   {"ctx", std::string(context_name(e.context))},
              {"lock", e.lock}, {"class", e.cls}};
    put_task(j, e.task);
    if (json flags = acquire_flag_names(e.flags); !flags.empty()) {
        j["flags"] = flags;
    }
    j["hardirqs_enabled"] = e.hardirqs_enabled;
    j["softirqs_enabled"] = e.softirqs_enabled;
    if (e.hardirq_state_inferred) {
        j["inferred"] = true;
    }
    if (e.stack) {
        j["stack"] = e.stack;
    }
    return j;
}

json record_json(const ReleaseEvent &e) {
    json j = {{"t", "release"},
              {"time", e.time_ns},
              {"cpu", e.cpu},
              {"ctx", std::string(context_name(e.context))},
              {"lock", e.lock}};
    put_task(j, e.task);
    return j;
}

json record_json(const UsageFact &e) {
    json j = {{"t", "usage"},
              {"class", e.cls},
              {"bit", std::string(usage_bit_name(e.bit))},
              {"cpu", e.cpu},
              {"time", e.time_ns}};
    put_task(j, e.task);
    if (e.stack) {
        j["stack"] = e.stack;
    }
    if (e.read) {
        j["read"] = e.read;
    }
    if (e.hardirq_state_inferred) {
        j["inferred"] = true;
    }
    return j;
}

json record_json(const EdgeFact &e) {
    json j = {{"t", "edge"},    {"prev", e.prev},
              {"next", e.next}, {"ctx", std::string(context_name(e.context))},
              {"cpu", e.cpu},   {"time", e.time_ns}};
    put_task(j, e.task);
    if (e.prev_read) {
        j["prev_read"] = e.prev_read;
    }
    if (e.next_read) {
        j["next_read"] = e.next_read;
    }
    if (e.next_stack) {
        j["stack"] = e.next_stack;
    }
    if (e.prev_stack) {
        j["prev_stack"] = e.prev_stack;
    }
    if (e.hardirq_state_inferred) {
        j["inferred"] = true;
    }
    if (e.hardirqs_enabled) {
        j["hardirqs_enabled"] = true;
    }
    if (e.softirqs_enabled) {
        j["softirqs_enabled"] = true;
    }
    return j;
}

json record_json(const IrqsEnabledEvent &e) {
    json j = {{"t", "irqs_on"},
              {"time", e.time_ns},
              {"cpu", e.cpu},
              {"ctx", std::string(context_name(e.context))},
              {"hardirqs_enabled", e.hardirqs_enabled},
              {"softirqs_enabled", e.softirqs_enabled}};
    put_task(j, e.task);
    if (e.stack) {
        j["stack"] = e.stack;
    }
    return j;
}

}  // namespace

std::string trace_record_line(const Event &event) {
    return std::visit(
        [](const auto &e) {
            return record_json(e).dump(-1, ' ', false, json::error_handler_t::replace);
        },
        event);
}

}  // namespace lockwatch::engine
