#include "vm/vm_script.h"

#include <charconv>

#include <fmt/format.h>

#include "output/json.h"

namespace lockwatch {

namespace {

constexpr std::string_view kCommandMarker = "LOCKWATCH-VM-COMMAND-EXIT ";
constexpr std::string_view kTracerMarker = "LOCKWATCH-VM-TRACER-EXIT ";

std::optional<int> parse_int(std::string_view s) {
    int v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end == s.data()) {
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
    return fmt::format(
        "ready=/tmp/lockwatch.ready\n"
        "lockwatch run --json - --backend {backend}{focus} --ready-file $ready &\n"
        "lw=$!\n"
        "while [ ! -e $ready ] && kill -0 $lw 2>/dev/null; do sleep 0.2; done\n"
        "if [ ! -e $ready ]; then wait $lw; echo \"{tracer}$?\"; exit 0; fi\n"
        "{command}\n"
        "echo \"{cmd_marker}$?\"\n"
        "sleep {linger}\n"
        // Final report without detaching: the VM powers off right after, and
        // detaching 30 programs is the slowest and riskiest part of a run.
        "kill -USR1 $lw\n"
        "i=0; while [ -e $ready ] && kill -0 $lw 2>/dev/null && [ $i -lt 300 ]; do sleep 0.2; "
        "i=$((i+1)); done\n"
        "if [ -e $ready ]; then echo \"{tracer}124\"; else echo \"{tracer}0\"; fi\n"
        "echo \"LOCKWATCH-VM-EXIT 0\"\n"
        "sync; sleep 1; poweroff -f\n",
        fmt::arg("backend", shell_quote(backend)), fmt::arg("command", quoted),
        fmt::arg("cmd_marker", kCommandMarker), fmt::arg("tracer", kTracerMarker),
        fmt::arg("linger", linger_s), fmt::arg("focus", run_options));
}

GuestLine parse_guest_line(const std::string &raw, GuestOutcome *outcome) {
    GuestLine result;
    std::string_view line(raw);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
        line.remove_suffix(1);
    }
    if (line.starts_with(kCommandMarker)) {
        result.marker = true;
        outcome->command_exit = parse_int(line.substr(kCommandMarker.size()));
        return result;
    }
    if (line.starts_with(kTracerMarker)) {
        result.marker = true;
        outcome->tracer_exit = parse_int(line.substr(kTracerMarker.size()));
        return result;
    }
    // A finding is one write() from lockwatch, but the traced command may
    // have left a line unfinished before it: look for the object anywhere.
    size_t start = line.find("{\"");
    if (start == std::string_view::npos) {
        return result;
    }
    nlohmann::json j =
        nlohmann::json::parse(line.substr(start), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) {
        return result;
    }
    if (auto finding = output::finding_from_json(j)) {
        result.finding = std::move(finding);
        ++outcome->findings;
    }
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
