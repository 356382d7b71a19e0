// The engine's class and dependency index: every key inserted is found with
// its first value, nothing else is, across the table's growth.
#include <cstdint>
#include <unordered_map>

#include <gtest/gtest.h>

#include "engine/index_map.h"

namespace lockwatch::engine {
namespace {

TEST(IndexMap, EmptyFindsNothing) {
    IndexMap m;
    EXPECT_EQ(m.find(0), IndexMap::kNone);
    EXPECT_EQ(m.find(UINT64_MAX), IndexMap::kNone);
    EXPECT_EQ(m.size(), 0u);
    EXPECT_EQ(m.bytes(), 0u);
}

TEST(IndexMap, KeepsTheFirstValueOfAKey) {
    IndexMap m;
    EXPECT_EQ(m.try_emplace(0, 7), std::make_pair(7u, true));
    EXPECT_EQ(m.try_emplace(0, 9), std::make_pair(7u, false));
    EXPECT_EQ(m.try_emplace(UINT64_MAX, 1), std::make_pair(1u, true));
    EXPECT_EQ(m.find(0), 7u);
    EXPECT_EQ(m.find(UINT64_MAX), 1u);
    EXPECT_EQ(m.find(1), IndexMap::kNone);
    EXPECT_EQ(m.size(), 2u);
}

// Keys that differ only in their high bits (kernel addresses, class pairs
// edge_key() packs) and plain counters, through many doublings.
TEST(IndexMap, AgreesWithUnorderedMapThroughGrowth) {
    IndexMap m;
    std::unordered_map<std::uint64_t, std::uint32_t> ref;
    for (std::uint32_t i = 0; i < 100000; ++i) {
        const std::uint64_t key = (i % 3 == 0)   ? (static_cast<std::uint64_t>(i) << 32)
                                  : (i % 3 == 1) ? 0xffff888000000000ull + 64ull * i
                                                 : i;
        auto [value, inserted] = m.try_emplace(key, i);
        auto [it, ref_inserted] = ref.try_emplace(key, i);
        ASSERT_EQ(inserted, ref_inserted);
        ASSERT_EQ(value, it->second);
    }
    EXPECT_EQ(m.size(), ref.size());
    for (const auto &[key, value] : ref) {
        ASSERT_EQ(m.find(key), value);
        ASSERT_EQ(m.find(key + 1) == IndexMap::kNone, !ref.contains(key + 1));
    }
    // At most half full after growing: 16 bytes a slot, 2 to 4 slots a key.
    EXPECT_LE(m.bytes(), m.size() * 16 * 4);
}

}  // namespace
}  // namespace lockwatch::engine
