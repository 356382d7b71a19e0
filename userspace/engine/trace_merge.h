// Several traces (hosts, runs) as one graph: `lockwatch replay A B ...`.
// Class ids are the producer's (on a live kernel, hashes of addresses that
// KASLR changes with every boot), so a merged class is its name: the same
// lock on every host of one kernel build. A name two classes of one input
// share is matched for the first of them only. Names lockdep numbers by the
// order it met their keys (`&sb->s_type->i_lock_key#3`) may name different
// keys on different hosts; address classes (lockwatch's own rules) do not
// have that problem. Stack ids are renumbered per
// input. Each fact's inputs are kept, so that a finding can say which host
// saw which half of it.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/events.h"

namespace lockwatch::engine {

class TraceMerge {
  public:
    // One label per input, in input order ("host-a (a.jsonl)"). Without
    // keep_origins, the *_origins() queries know nothing (and cost no memory).
    explicit TraceMerge(std::vector<std::string> origins, bool keep_origins = true);

    // Names input `input` after the host its header names, once its header
    // has been read ("" keeps the label given): "host-a (a.jsonl)".
    void set_origin(std::size_t input, const std::string &hostname);

    // Rewrites an event of input `input` into the merged graph's ids, and
    // notes where its facts came from. O(1) per event (hash lookups).
    void translate(std::size_t input, Event &event);

    // The labels of the inputs that reported a dependency or a usage bit,
    // by class names; empty when none did (raw acquire traces derive them).
    std::vector<std::string> dependency_origins(const std::string &prev,
                                                const std::string &next) const;
    std::vector<std::string> usage_origins(const std::string &class_name, UsageBit bit) const;

    // The merged id of a named class: a hash of its name.
    static ClassId class_id_of_name(const std::string &name);
    // The merged id of input `input`'s class `producer_id`.
    ClassId class_of(std::size_t input, ClassId producer_id) const;

  private:
    ClassId merged_class(std::size_t input, const ClassFact &fact);
    StackId stack_of(std::size_t input, StackId producer_id);
    std::vector<std::string> labels(const std::set<std::size_t> &inputs) const;

    std::vector<std::string> origins_;
    bool keep_origins_ = true;
    std::vector<bool> named_;                                      // set_origin() done
    std::vector<std::unordered_map<ClassId, ClassId>> classes_;    // per input
    std::vector<std::unordered_map<std::string, ClassId>> names_;  // per input: its first id
    std::map<std::pair<std::size_t, StackId>, StackId> stacks_;
    StackId next_stack_ = 1;
    std::map<std::pair<ClassId, ClassId>, std::set<std::size_t>> dependency_inputs_;
    std::map<std::pair<ClassId, int>, std::set<std::size_t>> usage_inputs_;
};

}  // namespace lockwatch::engine
