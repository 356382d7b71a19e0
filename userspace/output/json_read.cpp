// finding_from_json(): the reading half of json.h.
#include <cstdint>
#include <limits>

#include <fmt/format.h>

#include "output/json.h"

namespace lockwatch::output {
namespace {

using json = nlohmann::json;
using engine::Finding;
using engine::Frame;
using engine::LockRef;
using engine::PathEntry;
using engine::Stack;
using engine::StackRef;
using engine::Task;
using engine::UsageBit;
using engine::UsageTrace;

// A field that is missing or of the wrong type; caught in finding_from_json().
struct FieldError {
    std::string message;
};

// Where in the finding a value sits ("held[1].stack[0].offset"), for errors,
// and the size limits every value there is held to.
class Where {
  public:
    explicit Where(const JsonReadLimits &limits) : limits_(&limits) {}
    Where(const Where &parent, std::string_view key)
        : path_(parent.path_.empty() ? std::string(key) : parent.path_ + "." + std::string(key)),
          limits_(parent.limits_) {}
    Where operator[](std::size_t i) const {
        Where w(*limits_);
        w.path_ = fmt::format("{}[{}]", path_, i);
        return w;
    }
    [[noreturn]] void fail(std::string_view what) const {
        throw FieldError{path_.empty() ? std::string(what)
                                       : fmt::format("field \"{}\": {}", path_, what)};
    }
    // The string at this place, held to the string limit.
    std::string string_of(const json &v) const {
        const std::string &s = v.get_ref<const std::string &>();
        if (s.size() > limits_->max_string_bytes) {
            fail(fmt::format("a string of {} bytes, over the limit of {}", s.size(),
                             limits_->max_string_bytes));
        }
        return s;
    }
    // The array at this place, held to the array limit.
    const json &array_of(const json &v) const {
        if (v.size() > limits_->max_array_items) {
            fail(fmt::format("an array of {} items, over the limit of {}", v.size(),
                             limits_->max_array_items));
        }
        return v;
    }

  private:
    std::string path_;
    const JsonReadLimits *limits_;
};

// obj[key]; null when it is missing or null and not required.
const json *member(const json &obj, const Where &at, const char *key, bool required) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) {
        if (required) {
            Where(at, key).fail("missing");
        }
        return nullptr;
    }
    return &*it;
}

const json &object_member(const json &obj, const Where &at, const char *key) {
    const json &v = *member(obj, at, key, true);
    if (!v.is_object()) {
        Where(at, key).fail("expected an object");
    }
    return v;
}

const json &array_member(const json &obj, const Where &at, const char *key) {
    const json &v = *member(obj, at, key, true);
    if (!v.is_array()) {
        Where(at, key).fail("expected an array");
    }
    return Where(at, key).array_of(v);
}

std::string string_member(const json &obj, const Where &at, const char *key, bool required = true) {
    const json *v = member(obj, at, key, required);
    if (!v) {
        return {};
    }
    if (!v->is_string()) {
        Where(at, key).fail("expected a string");
    }
    return Where(at, key).string_of(*v);
}

bool bool_member(const json &obj, const Where &at, const char *key) {
    const json &v = *member(obj, at, key, true);
    if (!v.is_boolean()) {
        Where(at, key).fail("expected true or false");
    }
    return v.get<bool>();
}

// An integer of type T; 0 when optional and missing.
template <typename T>
T integer_member(const json &obj, const Where &at, const char *key, bool required = true) {
    const json *v = member(obj, at, key, required);
    if (!v) {
        return 0;
    }
    if (v->is_number_unsigned()) {
        if (v->get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max())) {
            return static_cast<T>(v->get<std::uint64_t>());
        }
    } else if (v->is_number_integer()) {
        std::int64_t n = v->get<std::int64_t>();
        if (n >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
            (n < 0 || static_cast<std::uint64_t>(n) <=
                          static_cast<std::uint64_t>(std::numeric_limits<T>::max()))) {
            return static_cast<T>(n);
        }
    } else {
        Where(at, key).fail("expected an integer");
    }
    Where(at, key).fail(fmt::format("{} is out of range", v->dump()));
}

UsageBit usage_bit_member(const json &obj, const Where &at, const char *key) {
    UsageBit bit = UsageBit::Used;
    std::string name = string_member(obj, at, key);
    if (!engine::parse_usage_bit_name(name, &bit)) {
        Where(at, key).fail(fmt::format("unknown usage bit \"{}\"", name));
    }
    return bit;
}

Frame read_frame(const json &j, const Where &at) {
    if (!j.is_object()) {
        at.fail("expected a frame object");
    }
    Frame f;
    f.symbol = string_member(j, at, "symbol");
    f.offset = integer_member<std::uint64_t>(j, at, "offset");
    f.size = integer_member<std::uint64_t>(j, at, "size", false);
    f.module = string_member(j, at, "module", false);
    f.file = string_member(j, at, "file", false);
    f.line = integer_member<std::uint32_t>(j, at, "line", false);
    const json *inl = member(j, at, "inline", false);
    f.inlined = inl && bool_member(j, at, "inline");
    return f;
}

StackRef read_stack(const json &obj, const Where &parent, const char *key) {
    Where at(parent, key);
    const json &arr = array_member(obj, parent, key);
    Stack frames;
    for (std::size_t i = 0; i < arr.size(); ++i) {
        frames.push_back(read_frame(arr[i], at[i]));
    }
    return StackRef(std::move(frames));
}

LockRef read_lock(const json &j, const Where &at) {
    if (!j.is_object()) {
        at.fail("expected a lock object");
    }
    LockRef l;
    l.name = string_member(j, at, "name");
    l.usage = string_member(j, at, "usage");
    if (member(j, at, "stack", false)) {
        l.at = read_stack(j, at, "stack");
    }
    l.read = integer_member<std::uint8_t>(j, at, "read", false);
    return l;
}

std::optional<LockRef> optional_lock(const json &obj, const Where &parent, const char *key) {
    const json *v = member(obj, parent, key, false);
    return v ? std::optional<LockRef>(read_lock(*v, Where(parent, key))) : std::nullopt;
}

std::vector<LockRef> read_locks(const json &obj, const Where &parent, const char *key) {
    Where at(parent, key);
    std::vector<LockRef> locks;
    const json &arr = array_member(obj, parent, key);
    for (std::size_t i = 0; i < arr.size(); ++i) {
        locks.push_back(read_lock(arr[i], at[i]));
    }
    return locks;
}

Task read_task(const json &j, const Where &at) {
    Task t;
    t.pid = integer_member<std::int32_t>(j, at, "pid");
    t.set_comm(string_member(j, at, "comm"));
    return t;
}

UsageTrace read_usage(const json &j, const Where &at) {
    if (!j.is_object()) {
        at.fail("expected a usage object");
    }
    UsageTrace u;
    u.bit = usage_bit_member(j, at, "bit");
    u.task = read_task(j, at);
    u.cpu = integer_member<std::uint32_t>(j, at, "cpu");
    u.time_ns = integer_member<std::uint64_t>(j, at, "time_ns");
    u.hardirq_state_inferred = bool_member(j, at, "hardirq_state_inferred");
    u.stack = read_stack(j, at, "stack");
    return u;
}

std::optional<UsageTrace> optional_usage(const json &obj, const Where &parent, const char *key) {
    const json *v = member(obj, parent, key, false);
    return v ? std::optional<UsageTrace>(read_usage(*v, Where(parent, key))) : std::nullopt;
}

std::vector<PathEntry> read_path(const json &obj, const Where &parent, const char *key) {
    std::vector<PathEntry> path;
    if (!member(obj, parent, key, false)) {
        return path;
    }
    Where at(parent, key);
    const json &arr = array_member(obj, parent, key);
    for (std::size_t i = 0; i < arr.size(); ++i) {
        if (!arr[i].is_object()) {
            at[i].fail("expected a path entry object");
        }
        PathEntry e;
        e.name = string_member(arr[i], at[i], "name");
        e.usage = string_member(arr[i], at[i], "usage");
        const json &usages = array_member(arr[i], at[i], "usages");
        for (std::size_t u = 0; u < usages.size(); ++u) {
            e.usages.push_back(read_usage(usages[u], Where(at[i], "usages")[u]));
        }
        e.acquired_at = read_stack(arr[i], at[i], "acquired_at");
        e.elided_before = integer_member<std::uint32_t>(arr[i], at[i], "elided_before", false);
        path.push_back(std::move(e));
    }
    return path;
}

std::vector<std::string> read_chain(const json &obj, const Where &parent) {
    Where at(parent, "chain");
    const json &arr = array_member(obj, parent, "chain");
    std::vector<std::string> chain;
    for (std::size_t i = 0; i < arr.size(); ++i) {
        if (!arr[i].is_string()) {
            at[i].fail("expected a string");
        }
        chain.push_back(at[i].string_of(arr[i]));
    }
    return chain;
}

// kind, irq, irq_state, title, signature(_key) and kernel_ident.
void read_names(const json &j, const Where &at, Finding &f) {
    if (integer_member<std::int64_t>(j, at, "schema") != kJsonSchemaVersion) {
        Where(at, "schema")
            .fail(fmt::format("version {} is not {}", j["schema"].dump(), kJsonSchemaVersion));
    }
    std::string kind = string_member(j, at, "kind");
    if (!engine::parse_finding_kind_name(kind, &f.kind)) {
        Where(at, "kind").fail(fmt::format("unknown kind \"{}\"", kind));
    }
    std::string irq = string_member(j, at, "irq", false);
    if (!irq.empty() && !engine::parse_irq_class_name(irq, &f.irq)) {
        Where(at, "irq").fail(fmt::format("unknown irq \"{}\"", irq));
    }
    f.irq_state = string_member(j, at, "irq_state", false);
    f.title = string_member(j, at, "title");
    f.signature = string_member(j, at, "signature");
    f.signature_key = string_member(j, at, "signature_key");
    f.kernel_ident = string_member(j, at, "kernel_ident", false);
}

// task, cpu, time, context and the irq state.
void read_origin(const json &j, const Where &at, Finding &f) {
    f.task = read_task(object_member(j, at, "task"), Where(at, "task"));
    f.cpu = integer_member<std::uint32_t>(j, at, "cpu");
    f.time_ns = integer_member<std::uint64_t>(j, at, "time_ns");
    std::string context = string_member(j, at, "context");
    if (!engine::parse_context_name(context, &f.context)) {
        Where(at, "context").fail(fmt::format("unknown context \"{}\"", context));
    }
    Where flags_at(at, "irq_flags");
    const json &flags = object_member(j, at, "irq_flags");
    f.irq_flags.in_hardirq = bool_member(flags, flags_at, "hardirq_context");
    f.irq_flags.in_softirq = bool_member(flags, flags_at, "softirq_context");
    f.irq_flags.hardirqs_enabled = bool_member(flags, flags_at, "hardirqs_enabled");
    f.irq_flags.softirqs_enabled = bool_member(flags, flags_at, "softirqs_enabled");
    f.hardirq_state_inferred = bool_member(j, at, "hardirq_state_inferred");
}

void read_roles(const json &j, const Where &at, Finding &f) {
    if (const json *roles = member(j, at, "lock_roles", false)) {
        Where roles_at(at, "lock_roles");
        if (!roles->is_object()) {
            roles_at.fail("expected an object");
        }
        f.safe_lock = optional_lock(*roles, roles_at, "safe");
        f.unsafe_lock = optional_lock(*roles, roles_at, "unsafe");
        f.middle_lock = optional_lock(*roles, roles_at, "middle");
    }
    if (const json *change = member(j, at, "usage_change", false)) {
        Where change_at(at, "usage_change");
        if (!change->is_object()) {
            change_at.fail("expected an object");
        }
        if (member(*change, change_at, "from", false)) {
            f.prev_bit = usage_bit_member(*change, change_at, "from");
        }
        if (member(*change, change_at, "to", false)) {
            f.new_bit = usage_bit_member(*change, change_at, "to");
        }
    }
}

Finding read_finding(const json &j, const JsonReadLimits &limits) {
    Where at(limits);
    if (!j.is_object()) {
        at.fail("a finding must be a JSON object");
    }
    Finding f;
    read_names(j, at, f);
    read_origin(j, at, f);
    f.locks = read_locks(j, at, "locks");
    f.chain = read_chain(j, at);
    f.acquiring = read_lock(object_member(j, at, "acquiring"), Where(at, "acquiring"));
    f.holding = optional_lock(j, at, "holding");
    f.held = read_locks(j, at, "held");
    read_roles(j, at, f);
    Where stacks_at(at, "stacks");
    const json &stacks = object_member(j, at, "stacks");
    f.stack = read_stack(stacks, stacks_at, "backtrace");
    f.safe_usage = optional_usage(stacks, stacks_at, "safe_usage");
    f.unsafe_usage = optional_usage(stacks, stacks_at, "unsafe_usage");
    f.prev_usage = optional_usage(stacks, stacks_at, "prev_usage");
    Where paths_at(at, "paths");
    const json &paths = object_member(j, at, "paths");
    f.safe_path = read_path(paths, paths_at, "safe");
    f.unsafe_path = read_path(paths, paths_at, "unsafe");
    f.path = read_path(paths, paths_at, "dependency");
    return f;
}

}  // namespace

std::optional<Finding> finding_from_json(const json &j, std::string *error,
                                         const JsonReadLimits &limits) {
    try {
        return read_finding(j, limits);
    } catch (const FieldError &e) {
        if (error) {
            *error = e.message;
        }
        return std::nullopt;
    }
}

}  // namespace lockwatch::output
