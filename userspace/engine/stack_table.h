// Interned stacks. The producer sends a stack once under an id of its choice
// (the BPF stack-map id, or a trace's "stack" record); events then carry the
// id only. intern() serves producers that have frames but no id.
#pragma once

#include <cstddef>
#include <unordered_map>

#include "engine/events.h"

namespace lockwatch::engine {

class StackTable {
  public:
    // Stores frames under id (id != kNoStack); a later put() with the same id
    // replaces it (the BPF stack map reuses ids after eviction).
    void put(StackId id, Stack frames);
    // Returns the id of identical frames if known, else stores them under a
    // fresh id.
    StackId intern(Stack frames);
    // Null for kNoStack or an unknown id.
    StackRef get(StackId id) const;
    bool contains(StackId id) const { return by_id_.count(id) != 0; }
    std::size_t size() const { return by_id_.size(); }
    std::size_t bytes() const;

  private:
    std::unordered_map<StackId, StackRef> by_id_;
    std::unordered_map<std::size_t, StackId> by_hash_;
    StackId next_id_ = 1;
};

}  // namespace lockwatch::engine
