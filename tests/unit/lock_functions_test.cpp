#include "capture/lock_functions.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace lockwatch {
namespace {

TEST(LockFunctions, TableIsIndexedById) {
    const auto &table = lock_functions();
    for (size_t i = 0; i < table.size(); ++i) {
        EXPECT_EQ(static_cast<size_t>(table[i].id), i) << table[i].symbol;
    }
}

TEST(LockFunctions, SymbolsAreUniqueRawLockFunctions) {
    std::set<std::string_view> seen;
    for (const auto &fn : lock_functions()) {
        EXPECT_TRUE(seen.insert(fn.symbol).second) << fn.symbol;
        EXPECT_TRUE(fn.symbol.starts_with("_raw_")) << fn.symbol;
        EXPECT_EQ(fn.symbol.find("slowpath"), std::string_view::npos)
            << "slowpaths must never be hooked: " << fn.symbol;
    }
}

// Every acquire variant must have the release that undoes it, or the held-lock
// stacks built from these hooks would leak entries.
TEST(LockFunctions, EveryAcquireVariantHasItsRelease) {
    for (const auto &acquire : lock_functions()) {
        if (acquire.op == LockOp::Release) {
            continue;
        }
        bool found = false;
        for (const auto &release : lock_functions()) {
            found |= release.op == LockOp::Release && release.kind == acquire.kind &&
                     release.variant == acquire.variant;
        }
        EXPECT_TRUE(found) << acquire.symbol;
    }
}

TEST(LockFunctions, VariantsMatchTheirNames) {
    for (const auto &fn : lock_functions()) {
        std::string_view s = fn.symbol;
        if (s.find("irqsave") != s.npos || s.find("irqrestore") != s.npos) {
            EXPECT_EQ(fn.variant, LockVariant::Irqsave) << s;
        } else if (s.ends_with("_irq")) {
            EXPECT_EQ(fn.variant, LockVariant::Irq) << s;
        } else if (s.ends_with("_bh")) {
            EXPECT_EQ(fn.variant, LockVariant::Bh) << s;
        }
        EXPECT_EQ(fn.op == LockOp::Trylock, s.find("trylock") != s.npos) << s;
        EXPECT_EQ(fn.op == LockOp::Release, s.find("unlock") != s.npos) << s;
        EXPECT_EQ(fn.kind == LockKind::Read, s.starts_with("_raw_read_")) << s;
        EXPECT_EQ(fn.kind == LockKind::Write, s.starts_with("_raw_write_")) << s;
    }
}

TEST(LockFunctions, IsLockFunction) {
    EXPECT_TRUE(is_lock_function("_raw_spin_lock_irqsave"));
    EXPECT_FALSE(is_lock_function("queued_spin_lock_slowpath"));
    EXPECT_FALSE(is_lock_function("_raw_spin"));
}

TEST(LockFunctions, DiscoveryClassifiesEachFunction) {
    // A kernel like a tinyconfig build: unlock_irq inlined, a _nested variant
    // only in kallsyms (no BTF), the rest out of line.
    auto result = discover_lock_functions({
        .has_btf_function =
            [](std::string_view name) {
                return name != "_raw_spin_unlock_irq" && name != "_raw_write_lock_nested" &&
                       name.find("nest") == name.npos;
            },
        .has_text_symbol =
            [](std::string_view name) {
                return name != "_raw_spin_unlock_irq" && name != "_raw_spin_lock_nested";
            },
    });
    EXPECT_EQ(result[LW_FN__raw_spin_lock], Availability::OutOfLine);
    EXPECT_EQ(result[LW_FN__raw_spin_unlock_irq], Availability::NotInKernel);
    EXPECT_EQ(result[LW_FN__raw_spin_lock_nested], Availability::NotInKernel);
    EXPECT_EQ(result[LW_FN__raw_write_lock_nested], Availability::NoBtf);
    EXPECT_EQ(result[LW_FN__raw_read_unlock_bh], Availability::OutOfLine);
}

}  // namespace
}  // namespace lockwatch
