#include "vm/vm_script.h"

#include <charconv>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "output/json.h"

namespace lockwatch {

namespace {

constexpr std::string_view kCommandMarker = "LOCKWATCH-VM-COMMAND-EXIT ";
constexpr std::string_view kTracerMarker = "LOCKWATCH-VM-TRACER-EXIT ";

std::optional<int> parse_int(std::string_view s) {
    int v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end == s.data() || end != s.data() + s.size()) {
        return std::nullopt;
    }
    return v;
}

}  // namespace

std::string shell_quote(const std::string &s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    return out + "'";
}

std::string guest_script(const std::vector<std::string> &command, const std::string &backend,
                         double linger_s, const std::vector<std::string> &focus,
                         const std::vector<std::string> &run_args) {
    std::string run_options;
    for (const auto &fn : focus) {
        run_options += (run_options.empty() ? " --focus " : ",") + fn;
    }
    if (!run_options.empty()) {
        run_options = " --focus " + shell_quote(run_options.substr(9));
    }
    for (const auto &arg : run_args) {
        run_options += " " + shell_quote(arg);
    }
    std::string quoted;
    for (const auto &arg : command) {
        quoted += (quoted.empty() ? "" : " ") + shell_quote(arg);
    }
    // The token stays in this shell: the command gets neither it nor fd 9,
    // so nothing it prints or writes can pass for lockwatch's own lines.
    return fmt::format(
        "tok=$LOCKWATCH_VM_TOKEN\n"
        "unset LOCKWATCH_VM_TOKEN\n"
        "say() {{ echo \"$tok $*\" >&9; }}\n"
        "ready=/tmp/lockwatch.ready\n"
        "LOCKWATCH_JSON_LINE_PREFIX=\"$tok \" lockwatch run --json - --backend {backend}{focus} "
        "--ready-file $ready >&9 &\n"
        "lw=$!\n"
        "while [ ! -e $ready ] && kill -0 $lw 2>/dev/null; do sleep 0.2; done\n"
        "if [ ! -e $ready ]; then wait $lw; say \"{tracer}$?\"; exit 0; fi\n"
        "{command} 9>&-\n"
        "say \"{cmd_marker}$?\"\n"
        "sleep {linger}\n"
        // Final report without detaching: the VM powers off right after, and
        // detaching 30 programs is the slowest and riskiest part of a run.
        "kill -USR1 $lw\n"
        "i=0; while [ -e $ready ] && kill -0 $lw 2>/dev/null && [ $i -lt 300 ]; do sleep 0.2; "
        "i=$((i+1)); done\n"
        "if [ -e $ready ]; then say \"{tracer}124\"; else say \"{tracer}0\"; fi\n"
        "say \"LOCKWATCH-VM-EXIT 0\"\n"
        "sync; sleep 1; poweroff -f\n",
        fmt::arg("backend", shell_quote(backend)), fmt::arg("command", quoted),
        fmt::arg("cmd_marker", kCommandMarker), fmt::arg("tracer", kTracerMarker),
        fmt::arg("linger", linger_s), fmt::arg("focus", run_options));
}

// ---- what comes back --------------------------------------------------

namespace {

void append_hex(std::string &out, std::string_view bytes) {
    for (unsigned char c : bytes) {
        out += fmt::format("\\x{:02x}", c);
    }
}

// The length of the UTF-8 sequence at the start of `s` and its code point;
// 0 when it is not one (stray or missing continuation, overlong, surrogate,
// past U+10FFFF).
std::size_t utf8_sequence(std::string_view s, char32_t *cp) {
    auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
    unsigned char lead = byte(0);
    std::size_t n = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 0;
    if (n == 0 || lead > 0xf4 || n > s.size()) {
        return 0;
    }
    char32_t v = lead & (0x7f >> n);
    for (std::size_t i = 1; i < n; ++i) {
        if ((byte(i) & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (byte(i) & 0x3f);
    }
    static constexpr char32_t kLeast[] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < kLeast[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *cp = v;
    return n;
}

bool terminal_acts_on(char32_t cp) {
    return (cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

// A task's name holds TASK_COMM_LEN - 1 bytes: cut a longer one where no
// UTF-8 character is split (Task::set_comm() would cut anywhere, and a
// split character is not UTF-8, which JSON output refuses).
void clip_comm(std::string &s) {
    constexpr std::size_t kMax = std::tuple_size_v<decltype(engine::Task::comm)> - 1;
    if (s.size() <= kMax) {
        return;
    }
    std::size_t n = kMax;
    while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) {
        --n;
    }
    s.resize(n);
}

// Escapes every string in `j` in place. Iterative: a guest's JSON may nest
// as deep as its line is long.
void escape_strings(nlohmann::json &j) {
    std::vector<std::pair<nlohmann::json *, bool>> todo{{&j, false}};  // value, is a "comm"
    while (!todo.empty()) {
        auto [v, comm] = todo.back();
        todo.pop_back();
        if (v->is_string()) {
            std::string &s = v->get_ref<std::string &>();
            s = escape_guest_text(s);
            if (comm) {
                clip_comm(s);
            }
        } else if (v->is_object()) {
            for (auto it = v->begin(); it != v->end(); ++it) {
                todo.emplace_back(&*it, it.key() == "comm");
            }
        } else if (v->is_array()) {
            for (auto &child : *v) {
                todo.emplace_back(&child, false);
            }
        }
    }
}

// A marker line: LOCKWATCH-VM-COMMAND-EXIT or -TRACER-EXIT and a status.
bool take_marker(std::string_view line, GuestOutcome *outcome, ControlLine *result) {
    std::optional<int> *slot = nullptr;
    if (line.starts_with(kCommandMarker)) {
        slot = &outcome->command_exit;
        line.remove_prefix(kCommandMarker.size());
    } else if (line.starts_with(kTracerMarker)) {
        slot = &outcome->tracer_exit;
        line.remove_prefix(kTracerMarker.size());
    } else {
        return false;
    }
    std::optional<int> status = parse_int(line);
    if (!status || *status < 0 || *status > 255) {
        result->rejected = "a marker without an exit status of 0-255";
        return true;
    }
    *slot = status;
    return true;
}

// At most about `n` bytes of escaped `text`, for messages: cut neither
// inside a UTF-8 character nor inside a \xNN escape.
std::string clipped(std::string_view text, std::size_t n = 200) {
    if (text.size() <= n) {
        return std::string(text);
    }
    std::size_t cut = n;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) {
        --cut;
    }
    std::size_t escape = text.rfind("\\x", cut);
    if (escape != std::string_view::npos && escape + 4 > cut) {
        cut = escape;
    }
    return std::string(text.substr(0, cut)) + "...";
}

ControlLine take_finding(std::string_view line, GuestOutcome *outcome) {
    ControlLine result;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
        result.rejected = "not JSON";
        return result;
    }
    // Before reading: the error messages quote the guest's strings too.
    escape_strings(j);
    std::string error;
    result.finding = output::finding_from_json(j, &error, kGuestJsonLimits);
    if (!result.finding) {
        result.rejected = clipped(error);
        return result;
    }
    ++outcome->findings;
    return result;
}

}  // namespace

std::string escape_guest_text(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    while (!text.empty()) {
        auto c = static_cast<unsigned char>(text[0]);
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                append_hex(out, text.substr(0, 1));
            } else {
                out += static_cast<char>(c);
            }
            text.remove_prefix(1);
            continue;
        }
        char32_t cp = 0;
        std::size_t n = utf8_sequence(text, &cp);
        if (n == 0) {
            append_hex(out, text.substr(0, 1));
            text.remove_prefix(1);
            continue;
        }
        if (terminal_acts_on(cp)) {
            append_hex(out, text.substr(0, n));
        } else {
            out.append(text.substr(0, n));
        }
        text.remove_prefix(n);
    }
    return out;
}

void GuestLineSplitter::feed(std::string_view bytes, const Handler &on_line) {
    while (!bytes.empty()) {
        std::size_t newline = bytes.find('\n');
        std::string_view part = bytes.substr(0, newline);
        std::size_t room = max_ - line_.size();
        line_.append(part.substr(0, room));
        dropped_ += part.size() > room ? part.size() - room : 0;
        if (newline == std::string_view::npos) {
            return;
        }
        on_line(line_, dropped_);
        line_.clear();
        dropped_ = 0;
        bytes.remove_prefix(newline + 1);
    }
}

void GuestLineSplitter::finish(const Handler &on_line) {
    if (!line_.empty() || dropped_ > 0) {
        on_line(line_, dropped_);
    }
    line_.clear();
    dropped_ = 0;
}

ControlLine parse_control_line(std::string_view line, GuestOutcome *outcome) {
    ControlLine result;
    if (!take_marker(line, outcome, &result)) {
        if (line.starts_with('{')) {
            result = take_finding(line, outcome);
        } else {
            result.rejected = "neither a marker nor a finding: \"" +
                              clipped(escape_guest_text(line.substr(0, 200)), 80) + "\"";
        }
    }
    outcome->rejected += result.rejected.empty() ? 0 : 1;
    return result;
}

int vm_exit_status(int harness_status, const GuestOutcome &outcome) {
    if (harness_status >= 240 || harness_status < 0) {
        return kVmExitVmFailed;
    }
    if (!outcome.tracer_exit || *outcome.tracer_exit != 0) {
        // Findings that did arrive still count: a tracer that died later
        // does not undo them.
        return outcome.findings > 0 ? kVmExitFindings : kVmExitTracerFailed;
    }
    if (outcome.findings > 0) {
        return kVmExitFindings;
    }
    if (!outcome.command_exit || *outcome.command_exit != 0) {
        return kVmExitCommandFailed;
    }
    return kVmExitNoFinding;
}

}  // namespace lockwatch
