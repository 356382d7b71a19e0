#include "capture/kallsyms.h"

#include <sstream>

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

}  // namespace
}  // namespace lockwatch
