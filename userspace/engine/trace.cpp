#include "engine/trace.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <limits>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "engine/flat_json.h"

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

using Kind = FlatValue::Kind;

const FlatValue *field(const FlatObject &obj, std::string_view name, bool required) {
    const FlatValue *v = obj.find(name);
    if (!v || v->kind == Kind::Null) {
        if (required) {
            fail(fmt::format("missing field \"{}\"", name));
        }
        return nullptr;
    }
    return v;
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
std::uint64_t get_u64(const FlatObject &obj, std::string_view name, bool required,
                      std::uint64_t def = 0,
                      std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
    const FlatValue *v = field(obj, name, required);
    if (!v) {
        return def;
    }
    std::uint64_t out = 0;
    if (v->kind == Kind::Unsigned) {
        out = v->number;
    } else if (v->kind == Kind::Integer && static_cast<std::int64_t>(v->number) >= 0) {
        out = v->number;  // -0
    } else if (v->kind == Kind::String) {
        if (!parse_hex_or_dec(v->text, &out)) {
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

std::int32_t get_pid(const FlatObject &obj) {
    const FlatValue *v = field(obj, "pid", false);
    if (!v) {
        return 0;
    }
    const auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max());
    const bool non_negative =
        v->kind == Kind::Unsigned ||
        (v->kind == Kind::Integer && static_cast<std::int64_t>(v->number) >= 0);
    if (!non_negative || v->number > max) {
        fail("field \"pid\": expected a pid");
    }
    return static_cast<std::int32_t>(v->number);
}

bool get_bool(const FlatObject &obj, std::string_view name, bool def) {
    const FlatValue *v = field(obj, name, false);
    if (!v) {
        return def;
    }
    if (v->kind != Kind::Bool) {
        fail(fmt::format("field \"{}\": expected true or false", name));
    }
    return v->boolean;
}

std::string_view get_text(const FlatObject &obj, std::string_view name, bool required) {
    const FlatValue *v = field(obj, name, required);
    if (!v) {
        return {};
    }
    if (v->kind != Kind::String) {
        fail(fmt::format("field \"{}\": expected a string", name));
    }
    return v->text;
}

std::string get_string(const FlatObject &obj, std::string_view name, bool required) {
    return std::string(get_text(obj, name, required));
}

Context get_context(const FlatObject &obj, std::string_view name) {
    std::string_view s = get_text(obj, name, false);
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

Task get_task(const FlatObject &obj) {
    Task t;
    t.pid = get_pid(obj);
    t.set_comm(get_text(obj, "comm", false));
    return t;
}

std::uint8_t get_read(const FlatObject &obj, std::string_view name) {
    return static_cast<std::uint8_t>(get_u64(obj, name, false, 0, 2));
}

StackId get_stack(const FlatObject &obj, std::string_view name) {
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

Frame get_frame(const FlatValue &v) {
    Frame f;
    if (v.kind == Kind::String) {
        std::string err;
        if (!parse_frame_text(v.text, &f, &err)) {
            fail("frame: " + err);
        }
        check_frame_sizes(f);
        return f;
    }
    if (v.kind != Kind::Object) {
        fail("frame: expected a string or an object");
    }
    FlatObject obj;
    read_dom_object(*v.object, &obj);
    f.symbol = get_string(obj, "sym", true);
    f.offset = get_u64(obj, "off", false);
    f.size = get_u64(obj, "size", false);
    f.module = get_string(obj, "mod", false);
    f.file = get_string(obj, "file", false);
    f.line = static_cast<std::uint32_t>(get_u64(obj, "line", false, 0, 0xffffffffu));
    f.inlined = get_bool(obj, "inline", false);
    if (f.symbol.empty() && (f.inlined || f.size)) {
        fail("frame: empty \"sym\" (an unnamed frame has an offset and a region only)");
    }
    check_frame_sizes(f);
    return f;
}

std::uint32_t get_flags(const FlatObject &obj) {
    const FlatValue *v = field(obj, "flags", false);
    if (!v) {
        return 0;
    }
    if (v->kind != Kind::Array) {
        fail("field \"flags\": expected an array of strings");
    }
    std::uint32_t flags = 0;
    for (std::uint32_t i = v->first; i < v->first + v->count; ++i) {
        const FlatValue &f = obj.elements[i];
        if (f.kind != Kind::String) {
            fail("field \"flags\": expected an array of strings");
        }
        const std::string_view s = f.text;
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

ClassFact parse_class(const FlatObject &j) {
    ClassFact c;
    c.id = get_u64(j, "id", true);
    c.name = get_string(j, "name", true);
    if (c.name.size() > kTraceMaxClassName) {
        fail(fmt::format("field \"name\": longer than {} characters", kTraceMaxClassName));
    }
    return c;
}

StackFact parse_stack(const FlatObject &j) {
    StackFact s;
    s.id = get_stack(j, "id");
    if (s.id == kNoStack) {
        fail("field \"id\": stack ids start at 1");
    }
    const FlatValue *frames = field(j, "frames", true);
    if (frames->kind != Kind::Array) {
        fail("field \"frames\": expected an array");
    }
    if (frames->count > kTraceMaxFrames) {
        fail(fmt::format("field \"frames\": more than {} frames", kTraceMaxFrames));
    }
    for (std::uint32_t i = frames->first; i < frames->first + frames->count; ++i) {
        s.frames.push_back(get_frame(j.elements[i]));
    }
    return s;
}

Event parse_object(const FlatObject &j) {
    const std::string_view t = get_text(j, "t", true);
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
        std::string_view bit = get_text(j, "bit", true);
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

namespace {

// The record in text through nlohmann::json's DOM: every record the flat
// reader refuses, and the reference it is checked against.
std::optional<Event> parse_dom_record(std::string_view text, std::size_t line,
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
    if (!j.is_object()) {
        *error = TraceError{line, 0, "a record must be a JSON object"};
        return std::nullopt;
    }
    try {
        FlatObject obj;
        read_dom_object(j, &obj);
        return parse_object(obj);
    } catch (const FieldError &e) {
        *error = TraceError{line, 0, e.message};
    } catch (const json::exception &e) {
        *error = TraceError{line, 0, e.what()};
    }
    return std::nullopt;
}

// The flat reader first, the DOM for what it refuses; obj is scratch space.
std::optional<Event> parse_record(std::string_view text, std::size_t line,
                                  std::optional<TraceError> *error, FlatObject *obj) {
    if (!read_flat_object(text, obj)) {
        return parse_dom_record(text, line, error);
    }
    try {
        return parse_object(*obj);
    } catch (const FieldError &e) {
        *error = TraceError{line, 0, e.message};
    }
    return std::nullopt;
}

}  // namespace

std::optional<Event> parse_trace_record(std::string_view text, std::size_t line,
                                        std::optional<TraceError> *error) {
    FlatObject obj;
    return parse_record(text, line, error, &obj);
}

std::optional<Event> parse_trace_record_reference(std::string_view text, std::size_t line,
                                                  std::optional<TraceError> *error) {
    return parse_dom_record(text, line, error);
}

// The input is read in the chunks its stream buffer holds: a file's 8 KiB
// reads, a string stream's whole text, a pipe's records as they arrive.
// Reading it a character at a time through std::istream::get() cost more
// than the parsing (perf: istream::get, its sentry and string::push_back).
struct TraceReader::Input {
    static constexpr std::size_t kChunk = 64 * 1024;
    std::vector<char> buf = std::vector<char>(kChunk);
    std::size_t pos = 0;
    std::size_t end = 0;
    std::string line;  // a line that crosses two chunks
    FlatObject record;
};

TraceReader::TraceReader(std::istream &in) : in_(in), input_(std::make_unique<Input>()) {}
TraceReader::~TraceReader() = default;

bool TraceReader::refill() {
    Input &in = *input_;
    in.pos = in.end = 0;
    std::streambuf *sb = in_.rdbuf();
    if (!in_ || !sb || sb->sgetc() == std::char_traits<char>::eof()) {
        return false;
    }
    const std::streamsize buffered = sb->in_avail();
    const auto want = static_cast<std::streamsize>(std::clamp<std::size_t>(
        buffered > 0 ? static_cast<std::size_t>(buffered) : 1, 1, in.buf.size()));
    in.end = static_cast<std::size_t>(std::max<std::streamsize>(sb->sgetn(in.buf.data(), want), 0));
    return in.end > 0;
}

// Bounded getline: a line longer than the limit is an error, not an
// allocation the size of the input. False with nothing read at the end of
// the input, and on that error (error_ set).
bool TraceReader::read_line(std::string_view *text, bool *newline) {
    Input &in = *input_;
    in.line.clear();
    *newline = false;
    bool got = false;
    while (in.pos < in.end || refill()) {
        got = true;
        const char *start = in.buf.data() + in.pos;
        const std::size_t avail = in.end - in.pos;
        const auto *nl = static_cast<const char *>(std::memchr(start, '\n', avail));
        const std::size_t n = nl ? static_cast<std::size_t>(nl - start) : avail;
        if (in.line.size() + n > kTraceMaxLineBytes) {
            error_ = TraceError{line_ + 1, kTraceMaxLineBytes + 1,
                                fmt::format("line longer than {} bytes", kTraceMaxLineBytes)};
            return false;
        }
        in.pos += n + (nl ? 1 : 0);
        if (nl && in.line.empty()) {
            *text = std::string_view(start, n);  // the common case: no copy
            *newline = true;
            return true;
        }
        in.line.append(start, n);
        if (nl) {
            *newline = true;
            break;
        }
    }
    *text = in.line;
    return got;
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
    // A label for a merge's origins, never trusted further: printable and
    // at most a host name's length.
    if (j.contains("hostname") && j["hostname"].is_string()) {
        for (char c : j["hostname"].get<std::string>().substr(0, 255)) {
            hostname_ += c > 0x20 && c < 0x7f ? c : '?';
        }
    }
    auto operations = j.find(kTraceOperationsKey);
    operations_with_facts_ = operations != j.end() && operations->is_string() &&
                             operations->get<std::string>() == kTraceOperationsWithFacts;
    return true;
}

std::optional<Event> TraceReader::next() {
    if (error_) {
        return std::nullopt;
    }
    while (true) {
        std::string_view text;
        bool newline = false;
        if (!read_line(&text, &newline)) {
            if (!error_ && version_ == 0) {
                error_ = TraceError{line_ + 1, 0, "empty trace: no header line"};
            }
            return std::nullopt;
        }
        ++line_;
        if (!text.empty() && text.back() == '\r') {
            text.remove_suffix(1);
        }
        if (text.find_first_not_of(" \t") == std::string_view::npos) {
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
        std::optional<Event> ev = parse_record(text, line_, &error_, &input_->record);
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
