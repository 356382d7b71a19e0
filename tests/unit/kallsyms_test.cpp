#include "capture/kallsyms.h"

#include <chrono>
#include <map>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

namespace lockwatch {
namespace {

Kallsyms parse(const std::string &text) {
    std::istringstream in(text);
    return Kallsyms::parse(in);
}

const char *kSample =
    "ffffffff81000000 T _stext\n"
    "ffffffff81000100 t helper_fn\n"
    "ffffffff81000180 T _raw_spin_lock\n"
    "ffffffff810001c0 D some_data\n"
    "ffffffffc0000000 t mod_fn\t[mymod]\n"
    "ffffffffc0000040 t mod_fn2\t[mymod]\n";

TEST(Kallsyms, SymbolizesWithOffsetAndSize) {
    Kallsyms k = parse(kSample);
    EXPECT_EQ(k.size(), 6u);
    EXPECT_EQ(k.format(0xffffffff81000190), "_raw_spin_lock+0x10/0x40");
    EXPECT_EQ(k.format(0xffffffff81000100), "helper_fn+0x0/0x80");
    EXPECT_EQ(k.format(0xffffffffc0000004), "mod_fn+0x4/0x40 [mymod]");
}

TEST(Kallsyms, AddressBelowEverySymbolIsUnknown) {
    Kallsyms k = parse(kSample);
    EXPECT_EQ(k.format(0x1000), "?");
    EXPECT_FALSE(k.symbolize(0xffffffff80000000).has_value());
}

TEST(Kallsyms, FindsTextSymbolsOnly) {
    Kallsyms k = parse(kSample);
    EXPECT_TRUE(k.has_text_symbol("_raw_spin_lock"));
    EXPECT_TRUE(k.has_text_symbol("helper_fn"));
    EXPECT_FALSE(k.has_text_symbol("some_data"));
    EXPECT_FALSE(k.has_text_symbol("_raw_spin_lock_bh"));
    EXPECT_EQ(k.address_of("some_data"), 0xffffffff810001c0u);
}

TEST(Kallsyms, FunctionCopiesIncludeCompilerClones) {
    std::istringstream in(
        "ffffffff81000000 t proc_pid_make_base_inode.constprop.0\n"
        "ffffffff81000100 T proc_pid_make_base_inode_other\n"
        "ffffffff81000200 T io_submit_one\n"
        "ffffffff81000300 D io_submit_one_data\n"
        "ffffffffc0000000 t io_submit_one\t[mod]\n");
    Kallsyms k = Kallsyms::parse(in);
    EXPECT_EQ(k.function_copies("proc_pid_make_base_inode"),
              std::vector<std::string>{"proc_pid_make_base_inode.constprop.0"});
    EXPECT_EQ(k.function_copies("io_submit_one"), std::vector<std::string>{"io_submit_one"});
    EXPECT_TRUE(k.function_copies("aio_poll").empty());
}

TEST(Kallsyms, CountsMalformedLines) {
    Kallsyms k = parse(
        "ffffffff81000000 T ok\n"
        "zzzz T bad_address\n"
        "ffffffff81000010 TT bad_type\n"
        "ffffffff81000020\n"
        "ffffffff81000030 t bad_module notbracketed\n");
    EXPECT_EQ(k.size(), 1u);
    EXPECT_EQ(k.malformed_lines(), 4u);
}

TEST(Kallsyms, DetectsHiddenAddresses) {
    Kallsyms k = parse("0000000000000000 T a\n0000000000000000 T b\n");
    EXPECT_TRUE(k.addresses_hidden());
    EXPECT_FALSE(parse(kSample).addresses_hidden());
}

TEST(Kallsyms, LoadFailsWithOneLineForMissingFile) {
    try {
        Kallsyms::load("/nonexistent/kallsyms");
        FAIL() << "expected an error";
    } catch (const std::runtime_error &e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find("cannot read /nonexistent/kallsyms"), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos);
    }
}

// A table read at start (one module), then a module loaded later.
const char *kBoot =
    "ffffffff81000000 T _stext\n"
    "ffffffff81000100 T do_one_initcall\n"
    "ffffffff82000000 B _end\n"
    "ffffffffc0100000 t old_fn\t[oldmod]\n"
    "ffffffffc0101000 d old_lock\t[oldmod]\n";

std::map<std::string, ModuleExtent> extents(const std::string &text) {
    std::istringstream in(text);
    return Kallsyms::parse_modules(in);
}

TEST(Kallsyms, ParsesModuleExtentsAndSkipsHiddenOnes) {
    auto m = extents(
        "scenarios 16384 0 - Live 0xffffffffc0200000 (O)\n"
        "hidden 8192 1 - Live 0x0000000000000000\n"
        "garbage\n");
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m["scenarios"].start, 0xffffffffc0200000u);
    EXPECT_EQ(m["scenarios"].end, 0xffffffffc0204000u);
}

TEST(Kallsyms, ModuleSymbolsEndWithTheirModule) {
    Kallsyms k = parse(kBoot);
    // Without extents the last symbol reaches 1 MiB on, as for the kernel.
    EXPECT_EQ(k.format(0xffffffffc0101010), "old_lock+0x10/0x0 [oldmod]");
    k.set_module_extents(extents("oldmod 8192 0 - Live 0xffffffffc0100000\n"));
    EXPECT_EQ(k.format(0xffffffffc0101010), "old_lock+0x10/0x1000 [oldmod]");
    // Past the module's end: another module's code, not old_lock's.
    EXPECT_FALSE(k.symbolize(0xffffffffc0102000).has_value());
}

// While a module initialises, /proc/modules counts its init code in its
// size, but the init code is a separate allocation: its symbols are named
// by the next symbol, not cut off at the core's end.
TEST(Kallsyms, InitCodeLiesOutsideTheModuleCore) {
    Kallsyms k = parse(
        "ffffffffc0100000 t core_fn\t[scen]\n"
        "ffffffffc0300000 t init_fn\t[scen]\n"
        "ffffffffc0300400 t init_end\t[scen]\n");
    k.set_module_extents(extents("scen 12288 0 - Loading 0xffffffffc0100000\n"));
    EXPECT_EQ(k.format(0xffffffffc0300010), "init_fn+0x10/0x400 [scen]");
    EXPECT_FALSE(k.names_exactly(0xffffffffc0300010)) << "its end is a guess";
    EXPECT_TRUE(k.names_exactly(0xffffffffc0100010));
}

// kallsyms' [bpf] and [__builtin__*] symbols cover a page at most: past it
// lies other module code, perhaps of a module already gone.
TEST(Kallsyms, PseudoModuleSymbolsCoverAPageAtMost) {
    Kallsyms k = parse(
        "ffffffffc0000000 t bpf_trampoline_6442536391\t[bpf]\n"
        "ffffffffc0100000 t bpf_prog_abc_x\t[bpf]\n");
    EXPECT_EQ(k.format(0xffffffffc0000ff0), "bpf_trampoline_6442536391+0xff0/0x1000 [bpf]");
    EXPECT_FALSE(k.symbolize(0xffffffffc0007075).has_value());
    EXPECT_FALSE(k.symbolize(0xffffffffc0101000).has_value());
}

TEST(Kallsyms, KnowsTheImageAndTheModuleArea) {
    Kallsyms k = parse(kBoot);
    EXPECT_EQ(k.text_start(), 0xffffffff81000000u);
    EXPECT_EQ(k.image_end(), 0xffffffff82000000u);
    EXPECT_TRUE(k.in_module_area(0xffffffffc0100000));
    EXPECT_FALSE(k.in_module_area(0xffffffff81000100));
    EXPECT_FALSE(k.in_module_area(0xffffffffff000000));
}

TEST(Kallsyms, MergeAddsANewModuleAndKeepsAGoneOne) {
    Kallsyms k = parse(kBoot);
    Kallsyms fresh = parse(
        "ffffffff81000000 T _stext\n"
        "ffffffffc0200000 t scen_init\t[scenarios]\n"
        "ffffffffc0201000 d circ_a\t[scenarios]\n");
    k.merge_modules(fresh);
    EXPECT_EQ(k.format(0xffffffffc0200010), "scen_init+0x10/0x1000 [scenarios]");
    EXPECT_EQ(k.symbolize(0xffffffffc0201000)->module, "scenarios");
    // oldmod is gone from the fresh read but still names late records.
    EXPECT_EQ(k.format(0xffffffffc0100004), "old_fn+0x4/0x1000 [oldmod]");
    EXPECT_EQ(k.format(0xffffffff81000104), "do_one_initcall+0x4/0xffff00");
}

TEST(Kallsyms, ReloadedModuleReplacesItsOldSymbols) {
    Kallsyms k = parse(kBoot);
    Kallsyms fresh = parse(
        "ffffffffc0300000 t old_fn\t[oldmod]\n"
        "ffffffffc0301000 d old_lock\t[oldmod]\n");
    k.merge_modules(fresh);
    EXPECT_EQ(k.format(0xffffffffc0301008), "old_lock+0x8/0x0 [oldmod]");
    // The old address no longer names the module that moved away.
    EXPECT_FALSE(k.symbolize(0xffffffffc0100004).has_value());
}

TEST(Kallsyms, AModuleWhereAGoneOneWasTakesItsPlace) {
    Kallsyms k = parse(kBoot);
    Kallsyms fresh = parse("ffffffffc0100000 t new_fn\t[newmod]\n");
    fresh.set_module_extents(extents("newmod 8192 0 - Live 0xffffffffc0100000\n"));
    k.merge_modules(fresh);
    EXPECT_EQ(k.format(0xffffffffc0101004), "new_fn+0x1004/0x2000 [newmod]");
}

TEST(Kallsyms, PseudoModulesDoNotEvictRealOnes) {
    Kallsyms k = parse(kBoot);
    // BPF programs on both sides of oldmod: their span covers it.
    Kallsyms fresh = parse(
        "ffffffffc0000000 t bpf_prog_a\t[bpf]\n"
        "ffffffffc0900000 t bpf_prog_b\t[bpf]\n");
    k.merge_modules(fresh);
    EXPECT_EQ(k.symbolize(0xffffffffc0100004)->module, "oldmod");
}

Kallsyms with_extents(const std::string &symbols, const std::string &modules) {
    Kallsyms k = parse(symbols);
    k.set_module_extents(extents(modules));
    return k;
}

const char *kBootModules = "oldmod 8192 0 - Live 0xffffffffc0100000\n";

TEST(Kallsyms, KernelSymbolsDoNotReachIntoTheModuleArea) {
    Kallsyms k = parse(kBoot);
    Kallsyms fresh = parse("ffffffffc0300000 t old_fn\t[oldmod]\n");
    k.merge_modules(fresh);
    EXPECT_FALSE(k.symbolize(0xffffffffc0000010).has_value());
    EXPECT_FALSE(k.names_exactly(0xffffffffc0000010));
}

// The linker's markers past _end (Debian: __init_scratch_end, 4 MiB past
// it) are no functions: what lies above them is not theirs to name.
TEST(Kallsyms, MarkersPastTheImageNameOnlyThemselves) {
    Kallsyms k = parse(
        "ffffffffb9200000 T _stext\n"
        "ffffffffbba30000 B _end\n"
        "ffffffffbc000000 D __init_scratch_end\n"
        "ffffffffc0300000 t mod_fn\t[mod]\n");
    EXPECT_FALSE(k.symbolize(0xffffffffbd82b858).has_value());
    auto exact = k.symbolize(0xffffffffbc000000);
    ASSERT_TRUE(exact.has_value());
    EXPECT_EQ(exact->name, "__init_scratch_end");
    EXPECT_EQ(k.symbolize(0xffffffffb9200010)->name, "_stext");
}

struct FakeClock {
    std::chrono::steady_clock::time_point now{};
    KallsymsRefresher::Clock clock() {
        return [this] { return now; };
    }
};

TEST(KallsymsRefresher, RereadsForAnUnnamedModuleAddressAtMostOncePerInterval) {
    Kallsyms k = with_extents(kBoot, kBootModules);
    FakeClock clock;
    std::string next = "ffffffffc0200000 t scen_init\t[scenarios]\n";
    std::string next_modules = "scenarios 4096 0 - Live 0xffffffffc0200000\n";
    KallsymsRefresher refresher(
        k, [&] { return with_extents(next, next_modules); }, std::chrono::seconds(1),
        clock.clock());
    refresher.before_naming(0xffffffff81000104);  // kernel text: named
    refresher.before_naming(0xffffffffc0100004);  // oldmod: named
    EXPECT_EQ(refresher.reloads(), 0u);
    // Past oldmod's end, where its last symbol would have reached.
    refresher.before_naming(0xffffffffc0200008);
    EXPECT_EQ(refresher.reloads(), 1u);
    EXPECT_EQ(k.format(0xffffffffc0200008), "scen_init+0x8/0x1000 [scenarios]");
    // Another module within the second: deferred, then read.
    next = "ffffffffc0400000 t other_fn\t[other]\n";
    next_modules = "other 4096 0 - Live 0xffffffffc0400000\n";
    refresher.before_naming(0xffffffffc0400000);
    EXPECT_EQ(refresher.reloads(), 1u);
    EXPECT_EQ(refresher.deferred(), 1u);
    clock.now += std::chrono::milliseconds(1500);
    refresher.before_naming(0xffffffffc0400000);
    EXPECT_EQ(refresher.reloads(), 2u);
    EXPECT_TRUE(k.names_exactly(0xffffffffc0400000));
    EXPECT_TRUE(k.names_exactly(0xffffffffc0200008));  // scenarios stays
}

TEST(KallsymsRefresher, AnAddressNoReadNamesAsksOnce) {
    Kallsyms k = with_extents(kBoot, kBootModules);
    FakeClock clock;
    int reads = 0;
    KallsymsRefresher refresher(
        k,
        [&]() -> Kallsyms {
            if (++reads == 2) {
                throw std::runtime_error("cannot read");
            }
            return parse("ffffffffc0800000 t bpf_prog_1234_x\t[bpf]\n");
        },
        std::chrono::seconds(1), clock.clock());
    refresher.before_naming(0xffffffffc0800010);
    EXPECT_EQ(k.format(0xffffffffc0800010), "bpf_prog_1234_x+0x10/0x1000 [bpf]");
    clock.now += std::chrono::seconds(5);
    refresher.before_naming(0xffffffffc0800010);  // a pseudo-module's: asked once
    EXPECT_EQ(reads, 1);
    refresher.before_naming(0xffffffffc0900000);  // a new one asks; the read fails
    EXPECT_EQ(reads, 2);
    EXPECT_EQ(refresher.failed_reloads(), 1u);
    EXPECT_EQ(refresher.reloads(), 1u);
}

// With /proc/modules to compare: a module that loaded is read for at once,
// within the interval; an unchanged list waits for the interval, as without
// one (a BPF program's or trampoline's symbol comes with no module).
TEST(KallsymsRefresher, AChangedModuleListIsReadForAtOnce) {
    Kallsyms k = with_extents(kBoot, kBootModules);
    FakeClock clock;
    int reads = 0;
    std::string next = "ffffffffc0800000 t bpf_trampoline_1\t[bpf]\n";
    std::string next_modules;
    std::optional<std::string> modules = std::string(kBootModules);
    KallsymsRefresher refresher(
        k,
        [&] {
            ++reads;
            return with_extents(next, next_modules);
        },
        std::chrono::seconds(1), clock.clock(), [&] { return modules; }, modules);
    refresher.before_naming(0xffffffffc0800010);  // a trampoline: read
    EXPECT_EQ(reads, 1);
    EXPECT_TRUE(k.names_exactly(0xffffffffc0800010));
    refresher.before_naming(0xffffffffc0900000);  // unchanged list, within the interval
    EXPECT_EQ(reads, 1);
    EXPECT_EQ(refresher.deferred(), 1u);
    next = "ffffffffc0200000 t scen_init\t[scenarios]\n";
    next_modules = "scenarios 4096 0 - Live 0xffffffffc0200000\n";
    modules = *modules + next_modules;  // scenarios loads: read at once
    refresher.before_naming(0xffffffffc0200008);
    EXPECT_EQ(reads, 2);
    EXPECT_EQ(k.format(0xffffffffc0200008), "scen_init+0x8/0x1000 [scenarios]");
}

// Where /proc/modules cannot be read, the interval applies as before.
TEST(KallsymsRefresher, WithoutTheModuleListTheIntervalApplies) {
    Kallsyms k = with_extents(kBoot, kBootModules);
    FakeClock clock;
    int reads = 0;
    KallsymsRefresher refresher(
        k,
        [&] {
            ++reads;
            return parse("");
        },
        std::chrono::seconds(1), clock.clock(), [] { return std::optional<std::string>(); },
        std::nullopt);
    refresher.before_naming(0xffffffffc0800000);
    refresher.before_naming(0xffffffffc0900000);
    EXPECT_EQ(reads, 1);
    EXPECT_EQ(refresher.deferred(), 1u);
}

// A read that takes 3 s (an emulated guest) holds the next one off 27 s.
TEST(KallsymsRefresher, ASlowReadWaitsLonger) {
    Kallsyms k = with_extents(kBoot, kBootModules);
    FakeClock clock;
    KallsymsRefresher refresher(
        k,
        [&] {
            clock.now += std::chrono::seconds(3);
            return parse("");
        },
        std::chrono::seconds(1), clock.clock());
    refresher.before_naming(0xffffffffc0800000);
    clock.now += std::chrono::seconds(20);
    refresher.before_naming(0xffffffffc0900000);
    EXPECT_EQ(refresher.reloads(), 1u);
    EXPECT_EQ(refresher.deferred(), 1u);
    clock.now += std::chrono::seconds(8);
    refresher.before_naming(0xffffffffc0900000);
    EXPECT_EQ(refresher.reloads(), 2u);
}

}  // namespace
}  // namespace lockwatch
