#include "engine/trace_merge.h"

#include <type_traits>
#include <utility>

namespace lockwatch::engine {
namespace {

// FNV-1a, 64 bits: the same name gives the same id on every host.
std::uint64_t fnv1a(const std::string &text) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : text) {
        h = (h ^ c) * 0x100000001b3ULL;
    }
    return h;
}

// Lock instances of different inputs kept apart: within one input a
// bijection, across inputs a collision is as likely as in a 64-bit hash.
LockId lock_of(std::size_t input, LockId lock) {
    return lock ^ (static_cast<LockId>(input) * 0x9e3779b97f4a7c15ULL);
}

}  // namespace

TraceMerge::TraceMerge(std::vector<std::string> origins, bool keep_origins)
    : origins_(std::move(origins)),
      keep_origins_(keep_origins),
      classes_(origins_.size()),
      names_(origins_.size()) {}

void TraceMerge::set_origin(std::size_t input, const std::string &hostname) {
    if (!hostname.empty()) {
        origins_[input] = hostname + " (" + origins_[input] + ")";
    }
}

ClassId TraceMerge::class_id_of_name(const std::string &name) {
    return fnv1a(name) | 1;  // odd: never 0, never one of the unnamed ids below
}

// A class used before its name came keeps an id of its own per input.
ClassId TraceMerge::class_of(std::size_t input, ClassId producer_id) const {
    auto it = classes_[input].find(producer_id);
    if (it != classes_[input].end()) {
        return it->second;
    }
    return (fnv1a(std::to_string(input) + ":" + std::to_string(producer_id)) << 1) | 2;
}

// A class is matched by its name across inputs. One with no name, or with
// a name that another class of the same input has already (two call sites
// in one function, two unnamed static locks), cannot be: it stays its
// input's, so that two locks one host told apart are never joined.
ClassId TraceMerge::merged_class(std::size_t input, const ClassFact &fact) {
    if (fact.name.empty()) {
        return class_of(input, fact.id);
    }
    auto [owner, added] = names_[input].try_emplace(fact.name, fact.id);
    return owner->second == fact.id ? class_id_of_name(fact.name) : class_of(input, fact.id);
}

StackId TraceMerge::stack_of(std::size_t input, StackId producer_id) {
    if (producer_id == kNoStack) {
        return kNoStack;
    }
    auto [it, added] = stacks_.try_emplace({input, producer_id}, next_stack_);
    next_stack_ += added ? 1 : 0;
    return it->second;
}

void TraceMerge::translate(std::size_t input, Event &event) {
    std::visit(
        [&](auto &e) {
            using T = std::decay_t<decltype(e)>;
            if constexpr (std::is_same_v<T, ClassFact>) {
                ClassId merged = merged_class(input, e);
                classes_[input][e.id] = merged;
                e.id = merged;
            } else if constexpr (std::is_same_v<T, StackFact>) {
                e.id = stack_of(input, e.id);
            } else if constexpr (std::is_same_v<T, AcquireEvent>) {
                e.cls = class_of(input, e.cls);
                e.stack = stack_of(input, e.stack);
                e.lock = lock_of(input, e.lock);
            } else if constexpr (std::is_same_v<T, ReleaseEvent>) {
                e.lock = lock_of(input, e.lock);
            } else if constexpr (std::is_same_v<T, UsageFact>) {
                e.cls = class_of(input, e.cls);
                e.stack = stack_of(input, e.stack);
                if (keep_origins_) {
                    usage_inputs_[{e.cls, static_cast<int>(e.bit)}].insert(input);
                }
            } else if constexpr (std::is_same_v<T, EdgeFact>) {
                e.prev = class_of(input, e.prev);
                e.next = class_of(input, e.next);
                e.next_stack = stack_of(input, e.next_stack);
                e.prev_stack = stack_of(input, e.prev_stack);
                if (keep_origins_) {
                    dependency_inputs_[{e.prev, e.next}].insert(input);
                }
            } else if constexpr (std::is_same_v<T, IrqsEnabledEvent>) {
                e.stack = stack_of(input, e.stack);
            }
        },
        event);
}

std::vector<std::string> TraceMerge::labels(const std::set<std::size_t> &inputs) const {
    std::vector<std::string> out;
    for (std::size_t i : inputs) {
        out.push_back(origins_[i]);
    }
    return out;
}

std::vector<std::string> TraceMerge::dependency_origins(const std::string &prev,
                                                        const std::string &next) const {
    auto it = dependency_inputs_.find({class_id_of_name(prev), class_id_of_name(next)});
    return it == dependency_inputs_.end() ? std::vector<std::string>{} : labels(it->second);
}

std::vector<std::string> TraceMerge::usage_origins(const std::string &class_name,
                                                   UsageBit bit) const {
    auto it = usage_inputs_.find({class_id_of_name(class_name), static_cast<int>(bit)});
    return it == usage_inputs_.end() ? std::vector<std::string>{} : labels(it->second);
}

}  // namespace lockwatch::engine
