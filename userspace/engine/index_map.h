// A map from 64-bit keys to 32-bit indexes, for the engine's lookups on every
// event (class id -> class, class pair -> dependency): open addressing with
// linear probing in one flat array. Entries are never removed.
//
// Why not std::unordered_map: it keeps one heap node per entry, so a lookup
// is a bucket load and then a node load, two cache misses in a graph of
// 50,000 classes and 65,536 dependencies. Its two find()s were 57 % of the
// engine's replay time (perf, bench/engine_bench BM_EngineReplay); here a
// lookup is one probe sequence in one array, usually one cache line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace lockwatch::engine {

class IndexMap {
  public:
    static constexpr std::uint32_t kNone = UINT32_MAX;  // the value of an empty slot

    // The index stored for key, or kNone.
    std::uint32_t find(std::uint64_t key) const {
        if (slots_.empty()) {
            return kNone;
        }
        for (std::size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
            const Slot &s = slots_[i];
            if (s.value == kNone || s.key == key) {
                return s.value;
            }
        }
    }

    // Maps key to value unless key is mapped already. Returns the index now
    // mapped and whether it was inserted. value must not be kNone.
    std::pair<std::uint32_t, bool> try_emplace(std::uint64_t key, std::uint32_t value) {
        // At most half full: probe sequences stay short (about 1.5 slots on
        // a hit, 2.5 on a miss) and the doubling keeps inserts O(1) amortized.
        if ((size_ + 1) * 2 > slots_.size()) {
            grow();
        }
        for (std::size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
            Slot &s = slots_[i];
            if (s.value == kNone) {
                s = Slot{key, value};
                ++size_;
                return {value, true};
            }
            if (s.key == key) {
                return {s.value, false};
            }
        }
    }

    std::size_t size() const { return size_; }
    // The heap the map holds.
    std::size_t bytes() const { return slots_.capacity() * sizeof(Slot); }

  private:
    struct Slot {
        std::uint64_t key = 0;
        std::uint32_t value = kNone;
    };

    // MurmurHash3's 64-bit finalizer: class ids may be small counters or
    // kernel addresses with their low bits all zero, and every bit of the
    // key has to reach the low bits that pick the slot.
    static std::size_t hash(std::uint64_t k) {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdULL;
        k ^= k >> 33;
        k *= 0xc4ceb9fe1a85ec53ULL;
        k ^= k >> 33;
        return static_cast<std::size_t>(k);
    }

    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
        mask_ = slots_.size() - 1;
        for (const Slot &s : old) {
            if (s.value == kNone) {
                continue;
            }
            std::size_t i = hash(s.key) & mask_;
            while (slots_[i].value != kNone) {
                i = (i + 1) & mask_;
            }
            slots_[i] = s;
        }
    }

    std::vector<Slot> slots_;
    std::size_t mask_ = 0;
    std::size_t size_ = 0;
};

}  // namespace lockwatch::engine
