#include "scenario_table.h"

#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "vm_test_support.h"

namespace lockwatch::vmtest {

std::vector<Scenario> read_scenario_table(const std::string &path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot read " + path);
    }
    std::vector<Scenario> table;
    std::string line;
    for (int n = 1; std::getline(in, line); n++) {
        if (line.empty() || line[0] == '#') {
            continue;
        }
        std::istringstream fields(line);
        Scenario s;
        std::string extra;
        if (!(fields >> s.name >> s.lock_prefix >> s.kind >> s.irq) || (fields >> extra)) {
            throw std::runtime_error(path + ":" + std::to_string(n) + ": not 4 fields");
        }
        if (s.irq == "-") {
            s.irq.clear();
        }
        table.push_back(s);
    }
    return table;
}

void PrintTo(const Scenario &s, std::ostream *os) {
    *os << s.name;
}

std::vector<Scenario> scenario_table() {
    return read_scenario_table(std::string(LOCKWATCH_SOURCE_DIR) + "/tools/kmod/scenarios.tsv");
}

namespace {

struct Header {
    const char *text;
    const char *kind;
};

constexpr Header kHeaders[] = {
    {"WARNING: possible circular locking dependency detected", "circular"},
    {"WARNING: possible recursive locking detected", "recursive"},
    {"WARNING: inconsistent lock state", "inconsistent_state"},
    {"WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected", "irq_safe_to_unsafe"},
    {"WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "irq_safe_to_unsafe"},
    {"WARNING: possible irq lock inversion dependency detected", "irq_inversion"},
};

// The irq class a report names first after its header: "HARDIRQ-safe",
// "{IN-SOFTIRQ-W}", "another, HARDIRQ-unsafe lock".
std::string irq_class_after(const std::vector<std::string> &lines, size_t from) {
    for (size_t i = from; i < lines.size() && i < from + 8; i++) {
        size_t hard = lines[i].find("HARDIRQ");
        size_t soft = lines[i].find("SOFTIRQ");
        if (hard != std::string::npos || soft != std::string::npos) {
            return hard < soft ? "hardirq" : "softirq";
        }
    }
    return "";
}

}  // namespace

std::string run_scenarios_script(const std::string &names, const std::string &pause) {
    return R"SH(
insmod /lockwatch/lockwatch_scenarios.ko || echo "insmod failed"
echo "scenarios: $(cat /sys/module/lockwatch_scenarios/parameters/run)"
for s in )SH" +
           names +
           R"SH(; do
    echo $s > /sys/module/lockwatch_scenarios/parameters/run
    echo "scenario $s: exit $?"
    )SH" + pause +
           R"SH(
done
)SH";
}

std::string scenarios_under_lockwatch_script(const std::string &names, const std::string &options) {
    return "lockwatch run --json /tmp/findings.json --ready-file /tmp/ready " + options +
           R"SH( >/tmp/lw.txt 2>&1 &
lw=$!
while [ ! -e /tmp/ready ] && kill -0 $lw 2>/dev/null; do sleep 0.2; done
)SH" + run_scenarios_script(names, "sleep 0.3") +
           R"SH(sleep 1
kill -USR1 $lw
i=0; while [ -e /tmp/ready ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done
[ -e /tmp/ready ] && echo "lockwatch-exit=124" || echo "lockwatch-exit=0"
sed 's/^/lw: /' /tmp/lw.txt
sed 's/^/json: /' /tmp/findings.json
)SH";
}

Verdict first_lockdep_verdict(const std::string &kernel_log) {
    auto lines = lines_of(kernel_log);
    for (size_t i = 0; i < lines.size(); i++) {
        for (const Header &h : kHeaders) {
            if (lines[i].find(h.text) == std::string::npos) {
                continue;
            }
            Verdict v{h.kind, "", h.text};
            if (v.kind == "irq_safe_to_unsafe" || v.kind == "irq_inversion" ||
                v.kind == "inconsistent_state") {
                v.irq = irq_class_after(lines, i);
            }
            return v;
        }
    }
    return {"none", "", ""};
}

bool names_scenario_lock(const std::string &lock_name, const Scenario &s) {
    std::string name = lock_name;
    if (!name.empty() && name[0] == '&') {
        name.erase(0, 1);
    }
    // A generic kmalloc object's lock: kmalloc-N+OFFSET@FUNCTION, its
    // allocating function's name after the '@' (lockwatch's name for it).
    return name.compare(0, s.lock_prefix.size(), s.lock_prefix) == 0 ||
           (name.rfind("kmalloc", 0) == 0 && name.find("@" + s.lock_prefix) != std::string::npos);
}

std::vector<LiveFinding> findings_in(const std::string &guest_output, const std::string &prefix) {
    std::vector<LiveFinding> findings;
    for (const auto &line : lines_of(guest_output)) {
        if (line.rfind(prefix, 0) != 0) {
            continue;
        }
        auto j = nlohmann::json::parse(line.substr(prefix.size()), nullptr, false);
        if (j.is_discarded() || !j.contains("kind")) {
            continue;
        }
        LiveFinding f;
        f.kind = j.value("kind", "");
        f.irq = j["irq"].is_string() ? j["irq"].get<std::string>() : "";
        f.title = j.value("title", "");
        f.signature = j.value("signature", "");
        f.time_ns = j.value("time_ns", std::uint64_t{0});
        for (const auto &l : j.value("locks", nlohmann::json::array())) {
            f.locks.push_back(l.value("name", ""));
        }
        if (j.contains("acquiring") && j["acquiring"].is_object()) {
            f.locks.push_back(j["acquiring"].value("name", ""));
        }
        for (const char *role : {"safe_lock", "unsafe_lock"}) {
            if (j.contains(role) && j[role].is_string()) {
                f.locks.push_back(j[role].get<std::string>());
            }
        }
        findings.push_back(f);
    }
    return findings;
}

std::vector<ScenarioSpan> scenario_spans(const std::string &kernel_log) {
    static const std::regex mark(
        R"(\[ *(\d+)\.(\d{6})\] lockwatch_scenarios: (\w+) (start|done)$)");
    std::vector<ScenarioSpan> spans;
    for (const auto &line : lines_of(kernel_log)) {
        std::smatch m;
        if (!std::regex_search(line, m, mark)) {
            continue;
        }
        std::uint64_t t = std::stoull(m[1]) * 1000000000 + std::stoull(m[2]) * 1000;
        if (m[4] == "start") {
            spans.push_back({m[3], t, 0});
        } else if (!spans.empty() && spans.back().name == m[3]) {
            spans.back().end_ns = t;
        }
    }
    return spans;
}

}  // namespace lockwatch::vmtest
