// The scenario table and the two readers of verdicts, on text as the kernel
// and lockwatch write it; no guest.
#include <set>

#include <gtest/gtest.h>

#include "scenario_table.h"

namespace lockwatch::vmtest {
namespace {

TEST(ScenarioTable, EveryRowIsWellFormedAndPrefixesAreApart) {
    auto table = scenario_table();
    ASSERT_GE(table.size(), 20u);
    const std::set<std::string> kinds = {
        "none",         "circular", "recursive", "inconsistent_state", "irq_safe_to_unsafe",
        "irq_inversion"};
    std::set<std::string> names;
    for (const Scenario &s : table) {
        EXPECT_TRUE(names.insert(s.name).second) << s.name;
        EXPECT_TRUE(kinds.count(s.kind)) << s.name << ": " << s.kind;
        bool irq_kind = s.kind == "inconsistent_state" || s.kind == "irq_safe_to_unsafe" ||
                        s.kind == "irq_inversion";
        EXPECT_EQ(irq_kind, s.irq == "hardirq" || s.irq == "softirq") << s.name;
        for (const Scenario &other : table) {
            if (&other != &s) {
                EXPECT_NE(other.lock_prefix.rfind(s.lock_prefix, 0), 0u)
                    << s.lock_prefix << " is a prefix of " << other.lock_prefix;
            }
        }
    }
}

TEST(ScenarioTable, FirstLockdepReportGivesKindAndIrq) {
    Verdict v = first_lockdep_verdict(
        "[    8.9] lockwatch_scenarios: healthy_bh done\n"
        "[    9.0] WARNING: inconsistent lock state\n"
        "[    9.0] 6.1.192 #1 Not tainted\n"
        "[    9.0] --------------------------------\n"
        "[    9.0] inconsistent {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W} usage.\n"
        "[    9.1] WARNING: possible circular locking dependency detected\n");
    EXPECT_EQ(v.kind, "inconsistent_state");
    EXPECT_EQ(v.irq, "softirq");

    v = first_lockdep_verdict(
        "[ 1.0] WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock order detected\n");
    EXPECT_EQ(v.kind, "irq_safe_to_unsafe");
    EXPECT_EQ(v.irq, "hardirq");

    v = first_lockdep_verdict(
        "WARNING: possible irq lock inversion dependency detected\n"
        "insmod/77 just changed the state of lock:\n"
        "ffffffffc0 (inv_safe){-...}-{2:2}, at: hardirq_call+0x1c/0x40\n"
        "but this lock took another, HARDIRQ-unsafe lock in the past:\n");
    EXPECT_EQ(v.kind, "irq_inversion");
    EXPECT_EQ(v.irq, "hardirq");

    EXPECT_EQ(first_lockdep_verdict("WARNING: possible recursive locking detected\n").kind,
              "recursive");
    EXPECT_EQ(first_lockdep_verdict("lockwatch_scenarios: healthy_order done\n").kind, "none");
}

TEST(ScenarioTable, FindingsBelongToTheScenarioWhoseLocksTheyName) {
    Scenario circ2{"circular_two", "circ2_", "circular", ""};
    Scenario nested{"healthy_nested", "oknest_", "none", ""};
    EXPECT_TRUE(names_scenario_lock("circ2_a [lockwatch_scenarios]", circ2));
    EXPECT_TRUE(names_scenario_lock("circ2_b", circ2));
    EXPECT_FALSE(names_scenario_lock("lock@do_one_initcall", circ2));
    EXPECT_FALSE(names_scenario_lock("circ3_a [lockwatch_scenarios]", circ2));
    EXPECT_TRUE(names_scenario_lock("&oknest_objs[i].lock", nested));
    // A generic kmalloc object's lock, by its allocating function.
    Scenario kmreuse{"kmalloc_reuse", "kmreuse_pair", "circular", ""};
    EXPECT_TRUE(
        names_scenario_lock("kmalloc-128+0x40@kmreuse_pair_alloc [lockwatch_scenarios]", kmreuse));
    EXPECT_FALSE(
        names_scenario_lock("kmalloc-128+0x40@kmreuse_old_alloc [lockwatch_scenarios]", kmreuse));
    EXPECT_FALSE(
        names_scenario_lock("kmalloc-128+0x0@locker:nest_two [lockwatch_scenarios]", kmreuse));

    auto findings = findings_in(
        "noise\n"
        R"(json: {"kind":"irq_safe_to_unsafe","irq":"softirq","title":"t","locks":[{"name":"ssu_safe [lockwatch_scenarios]"}],)"
        R"("acquiring":{"name":"ssu_unsafe [lockwatch_scenarios]"},"safe_lock":"ssu_safe [lockwatch_scenarios]"})"
        "\njson: {\"kind\":\"circular\",\"irq\":null,\"locks\":[]}\n");
    ASSERT_EQ(findings.size(), 2u);
    EXPECT_EQ(findings[0].kind, "irq_safe_to_unsafe");
    EXPECT_EQ(findings[0].irq, "softirq");
    EXPECT_EQ(findings[0].locks.size(), 3u);
    EXPECT_EQ(findings[1].irq, "");
}

TEST(ScenarioTable, SpansComeFromTheStartAndDoneLines) {
    auto spans = scenario_spans(
        "[    8.500000] lockwatch_scenarios: circular_two start\n"
        "[    8.512345] lockwatch_scenarios: circular_two done\n"
        "[    9.000001] lockwatch_scenarios: recursive start\n"
        "[    9.100000] lockwatch_scenarios: recursive done\n"
        "[    9.2] lockwatch_scenarios: unknown scenario 'x'\n");
    ASSERT_EQ(spans.size(), 2u);
    EXPECT_EQ(spans[0].name, "circular_two");
    EXPECT_EQ(spans[0].start_ns, 8'500'000'000u);
    EXPECT_EQ(spans[0].end_ns, 8'512'345'000u);
    EXPECT_EQ(spans[1].name, "recursive");
    EXPECT_EQ(spans[1].start_ns, 9'000'001'000u);
}

}  // namespace
}  // namespace lockwatch::vmtest
