#include "engine/stack_table.h"

#include <functional>

namespace lockwatch::engine {
namespace {

std::size_t hash_frames(const Stack &frames) {
    std::size_t h = frames.size();
    std::hash<std::string> hs;
    for (const Frame &f : frames) {
        h = h * 1000003u ^ hs(f.symbol);
        h = h * 1000003u ^ static_cast<std::size_t>(f.offset);
        h = h * 1000003u ^ static_cast<std::size_t>(f.line) ^ (f.inlined ? 0x9e37u : 0u);
    }
    return h;
}

}  // namespace

void StackTable::put(StackId id, Stack frames) {
    if (id == kNoStack) {
        return;
    }
    by_id_[id] = StackRef(std::move(frames));
    if (id >= next_id_) {
        next_id_ = id + 1;
    }
}

StackId StackTable::intern(Stack frames) {
    std::size_t h = hash_frames(frames);
    auto it = by_hash_.find(h);
    if (it != by_hash_.end()) {
        auto found = by_id_.find(it->second);
        if (found != by_id_.end() && *found->second == frames) {
            return it->second;
        }
    }
    while (by_id_.count(next_id_) || next_id_ == kNoStack) {
        ++next_id_;
    }
    StackId id = next_id_++;
    by_id_[id] = StackRef(std::move(frames));
    by_hash_[h] = id;
    return id;
}

StackRef StackTable::get(StackId id) const {
    if (id == kNoStack) {
        return nullptr;
    }
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : it->second;
}

std::size_t StackTable::bytes() const {
    std::size_t b = 0;
    for (const auto &[id, s] : by_id_) {
        b += sizeof(Stack) + s->capacity() * sizeof(Frame) + 48;
        for (const Frame &f : *s) {
            b += f.symbol.capacity() > 15 ? f.symbol.capacity() + 1 : 0;
            b += f.file.capacity() > 15 ? f.file.capacity() + 1 : 0;
        }
    }
    return b;
}

}  // namespace lockwatch::engine
