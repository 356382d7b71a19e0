// The lock scenarios of tools/kmod/lockwatch_scenarios.c, with lockdep's
// verdict on each, as tools/kmod/scenarios.tsv lists them; and the two ways
// the live tests read a verdict: from lockdep's kernel log, and from
// lockwatch's JSON findings.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace lockwatch::vmtest {

struct Scenario {
    std::string name;         // what /sys/module/lockwatch_scenarios/parameters/run takes
    std::string lock_prefix;  // every lock of the scenario is named so
    std::string kind;         // lockwatch's JSON kind, or "none"
    std::string irq;          // "hardirq", "softirq" or "" (not an irq kind)

    bool healthy() const { return kind == "none"; }
};
void PrintTo(const Scenario &s, std::ostream *os);  // for gtest: the name

// The module's two halves of softirq_safe_unsafe (split_safe's softirq use;
// split_safe -> split_unsafe), for runs that each see one: listed after the
// table's scenarios, and not in it (one boot runs every table scenario).
inline constexpr const char *kSplitHalves = "split_usage split_order";

// Reads tools/kmod/scenarios.tsv; throws std::runtime_error on a bad line.
std::vector<Scenario> read_scenario_table(const std::string &path);
std::vector<Scenario> scenario_table();  // the one in the source tree

struct Verdict {
    std::string kind;    // lockwatch's name for the kind, "none" when no report
    std::string irq;     // "hardirq", "softirq" or ""
    std::string header;  // lockdep's "WARNING: ..." line
};

// The first lockdep report in a kernel log (lockdep reports once per boot):
// its kind from the header line, its irq class from the lines after it.
Verdict first_lockdep_verdict(const std::string &kernel_log);

// Whether a lock name (lockdep's or lockwatch's: "circ2_a",
// "circ2_a [lockwatch_scenarios]", "&oknest_objs[i].lock") is one of the
// scenario's locks.
bool names_scenario_lock(const std::string &lock_name, const Scenario &s);

// Guest shell that loads the scenario module and runs `names`
// (space-separated) in turn, `pause` (shell) after each.
std::string run_scenarios_script(const std::string &names, const std::string &pause = "");

// Guest shell that, with `lockwatch run --json /tmp/findings.json
// --ready-file /tmp/ready OPTIONS` started as $lw (its output in /tmp/lw.txt),
// waits until it is attached, loads the
// scenario module, runs `names` (space-separated) 0.3 s apart, stops
// lockwatch with SIGUSR1 and prints "lockwatch-exit=0" (124: it did not
// stop), its output as "lw: " lines and its findings as "json: " lines.
std::string scenarios_under_lockwatch_script(const std::string &names,
                                             const std::string &options = "");

// A finding of lockwatch's JSON output, reduced to what the tests compare.
struct LiveFinding {
    std::string kind;
    std::string irq;
    std::vector<std::string> locks;  // "locks", "acquiring", "safe_lock", "unsafe_lock"
    std::string title;
    std::string signature;
    std::uint64_t time_ns = 0;
};

// The findings in lines "json: {...}" (PREFIX {...}) of a guest's output.
std::vector<LiveFinding> findings_in(const std::string &guest_output,
                                     const std::string &prefix = "json: ");

// When each scenario started and ended, in ns of the kernel log's clock,
// from its lines "[   12.345678] lockwatch_scenarios: NAME start|done".
struct ScenarioSpan {
    std::string name;
    std::uint64_t start_ns = 0;
    std::uint64_t end_ns = 0;
};
std::vector<ScenarioSpan> scenario_spans(const std::string &kernel_log);

}  // namespace lockwatch::vmtest
