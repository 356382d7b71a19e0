#include "output/json.h"

#include "output/host_info.h"
#include "output/text.h"

namespace lockwatch::output {
namespace {

using json = nlohmann::json;
using engine::Finding;
using engine::Frame;
using engine::LockRef;
using engine::PathEntry;
using engine::StackRef;
using engine::UsageTrace;

json stack_to_json(const StackRef &stack) {
    json frames = json::array();
    if (stack) {
        for (const Frame &f : *stack) {
            frames.push_back(finding_frame_to_json(f));
        }
    }
    return frames;
}

json lock_to_json(const LockRef &l) {
    json j = {{"name", l.name}, {"usage", l.usage}};
    if (l.at) {
        j["stack"] = stack_to_json(l.at);
    }
    if (l.read) {
        j["read"] = l.read;
    }
    return j;
}

json locks_to_json(const std::vector<LockRef> &locks) {
    json arr = json::array();
    for (const LockRef &l : locks) {
        arr.push_back(lock_to_json(l));
    }
    return arr;
}

json usage_to_json(const UsageTrace &u) {
    return {{"bit", std::string(engine::usage_bit_name(u.bit))},
            {"usage_str", std::string(engine::usage_bit_str(u.bit))},
            {"pid", u.task.pid},
            {"comm", std::string(u.task.comm_view())},
            {"cpu", u.cpu},
            {"time_ns", u.time_ns},
            {"hardirq_state_inferred", u.hardirq_state_inferred},
            {"stack", stack_to_json(u.stack)}};
}

json path_to_json(const std::vector<PathEntry> &path) {
    json arr = json::array();
    for (const PathEntry &e : path) {
        json usages = json::array();
        for (const UsageTrace &u : e.usages) {
            usages.push_back(usage_to_json(u));
        }
        json entry = {{"name", e.name},
                      {"usage", e.usage},
                      {"usages", usages},
                      {"acquired_at", stack_to_json(e.acquired_at)}};
        if (e.elided_before) {
            entry["elided_before"] = e.elided_before;
        }
        arr.push_back(std::move(entry));
    }
    return arr;
}

json optional_string(const std::string &s) {
    return s.empty() ? json(nullptr) : json(s);
}

// The irq kinds' safe and unsafe classes, the scenario's middle lock and
// the inconsistent-state bits.
void roles_to_json(const Finding &f, json &j) {
    json roles = json::object();
    if (f.safe_lock) {
        roles["safe"] = lock_to_json(*f.safe_lock);
        j["safe_lock"] = f.safe_lock->name;
    }
    if (f.unsafe_lock) {
        roles["unsafe"] = lock_to_json(*f.unsafe_lock);
        j["unsafe_lock"] = f.unsafe_lock->name;
    }
    if (f.middle_lock) {
        roles["middle"] = lock_to_json(*f.middle_lock);
    }
    j["lock_roles"] = roles;
    if (f.prev_bit || f.new_bit) {
        json change = json::object();
        if (f.prev_bit) {
            change["from"] = std::string(engine::usage_bit_name(*f.prev_bit));
        }
        if (f.new_bit) {
            change["to"] = std::string(engine::usage_bit_name(*f.new_bit));
        }
        j["usage_change"] = change;
    }
}

json stacks_to_json(const Finding &f) {
    json stacks = json::object();
    stacks["backtrace"] = stack_to_json(f.stack);
    if (f.safe_usage) {
        stacks["safe_usage"] = usage_to_json(*f.safe_usage);
    }
    if (f.unsafe_usage) {
        stacks["unsafe_usage"] = usage_to_json(*f.unsafe_usage);
    }
    if (f.prev_usage) {
        stacks["prev_usage"] = usage_to_json(*f.prev_usage);
    }
    return stacks;
}

json paths_to_json(const Finding &f) {
    json paths = json::object();
    if (!f.safe_path.empty()) {
        paths["safe"] = path_to_json(f.safe_path);
    }
    if (!f.unsafe_path.empty()) {
        paths["unsafe"] = path_to_json(f.unsafe_path);
    }
    if (!f.path.empty()) {
        paths["dependency"] = path_to_json(f.path);
    }
    return paths;
}

}  // namespace

json finding_frame_to_json(const Frame &f) {
    json j = {{"symbol", f.symbol}, {"offset", f.offset}, {"text", format_frame(f)}};
    if (f.size) {
        j["size"] = f.size;
    }
    if (!f.module.empty()) {
        j["module"] = f.module;
    }
    if (!f.file.empty()) {
        j["file"] = f.file;
    }
    if (f.line) {
        j["line"] = f.line;
    }
    if (f.inlined) {
        j["inline"] = true;
    }
    return j;
}

json finding_to_json(const Finding &f) {
    json j;
    j["schema"] = kJsonSchemaVersion;
    j["kind"] = std::string(engine::finding_kind_name(f.kind));
    j["irq"] = optional_string(std::string(engine::irq_class_name(f.irq)));
    j["irq_state"] = optional_string(f.irq_state);
    j["title"] = f.title;
    j["signature"] = f.signature;
    j["signature_key"] = f.signature_key;
    j["kernel_ident"] = f.kernel_ident;
    j["locks"] = locks_to_json(f.locks);
    j["chain"] = f.chain;
    j["task"] = {{"pid", f.task.pid}, {"comm", std::string(f.task.comm_view())}};
    j["cpu"] = f.cpu;
    j["time_ns"] = f.time_ns;
    j["context"] = std::string(engine::context_name(f.context));
    j["irq_flags"] = {{"hardirq_context", f.irq_flags.in_hardirq},
                      {"softirq_context", f.irq_flags.in_softirq},
                      {"hardirqs_enabled", f.irq_flags.hardirqs_enabled},
                      {"softirqs_enabled", f.irq_flags.softirqs_enabled}};
    j["hardirq_state_inferred"] = f.hardirq_state_inferred;
    j["acquiring"] = lock_to_json(f.acquiring);
    j["holding"] = f.holding ? lock_to_json(*f.holding) : json(nullptr);
    j["held"] = locks_to_json(f.held);
    roles_to_json(f, j);
    j["stacks"] = stacks_to_json(f);
    j["paths"] = paths_to_json(f);
    j["text"] = render_text(f);
    return j;
}

json brief_json(json full) {
    full.erase("text");
    full.erase("paths");
    return full;
}

bool JsonLinesSink::write(const Finding &f) {
    json j = brief_ ? brief_json(finding_to_json(f)) : finding_to_json(f);
    j["wall_time"] = wall_time_now();
    j.update(extra_);
    // One string: on an unbuffered stream (lockwatch run --json -) that is
    // one write(), which a tty shared with other writers keeps whole. Invalid
    // UTF-8 in a name becomes U+FFFD: a name never stops a report.
    return put(prefix_ + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n");
}

}  // namespace lockwatch::output
