#include "engine/sinks.h"

#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <systemd/sd-journal.h>

#include "engine/report.h"

namespace lockwatch::engine {
namespace {

nlohmann::json stack_json(const StackRef &s) {
    nlohmann::json arr = nlohmann::json::array();
    if (s) {
        for (const Frame &f : *s) {
            arr.push_back(finding_frame_to_json(f));
        }
    }
    return arr;
}

nlohmann::json lock_json(const LockRef &l) {
    nlohmann::json j = {{"name", l.name}, {"usage", l.usage}};
    if (l.at) {
        j["stack"] = stack_json(l.at);
    }
    return j;
}

nlohmann::json usage_json(const UsageTrace &u) {
    return {{"bit", std::string(usage_bit_name(u.bit))},
            {"usage_str", std::string(usage_bit_str(u.bit))},
            {"pid", u.task.pid},
            {"comm", std::string(u.task.comm_view())},
            {"cpu", u.cpu},
            {"time_ns", u.time_ns},
            {"hardirq_state_inferred", u.hardirq_state_inferred},
            {"stack", stack_json(u.stack)}};
}

nlohmann::json path_json(const std::vector<PathEntry> &path) {
    nlohmann::json arr = nlohmann::json::array();
    for (const PathEntry &e : path) {
        nlohmann::json usages = nlohmann::json::array();
        for (const UsageTrace &u : e.usages) {
            usages.push_back(usage_json(u));
        }
        arr.push_back({{"name", e.name},
                       {"usage", e.usage},
                       {"usages", usages},
                       {"acquired_at", stack_json(e.acquired_at)}});
    }
    return arr;
}

bool write_line(std::ostream *out, std::FILE *file, const std::string &s, std::string *error) {
    if (out) {
        *out << s;
        if (!*out) {
            *error = "write failed";
            return false;
        }
        return true;
    }
    if (std::fwrite(s.data(), 1, s.size(), file) != s.size()) {
        *error = fmt::format("write failed: {}", std::strerror(errno));
        return false;
    }
    return true;
}

std::string lock_list(const Finding &f) {
    std::string out;
    for (const LockRef &l : f.locks) {
        if (!out.empty()) {
            out += ",";
        }
        out += fmt::format("{}{{{}}}", l.name, l.usage);
    }
    return out;
}

std::string chain_text(const Finding &f) {
    std::string out;
    for (const std::string &n : f.chain) {
        if (!out.empty()) {
            out += " -> ";
        }
        out += n;
    }
    return out;
}

}  // namespace

bool TextSink::write(const Finding &f) {
    return write_line(out_, file_, fmt::format("lockwatch: {}\n{}\n", f.title, f.text), &error_);
}

void TextSink::flush() {
    if (out_) {
        out_->flush();
    } else {
        std::fflush(file_);
    }
}

nlohmann::json finding_frame_to_json(const Frame &f) {
    nlohmann::json j = {{"symbol", f.symbol}, {"offset", f.offset}, {"text", format_frame(f)}};
    if (f.size) {
        j["size"] = f.size;
    }
    if (!f.file.empty()) {
        j["file"] = f.file;
        if (f.line) {
            j["line"] = f.line;
        }
    }
    if (f.inlined) {
        j["inline"] = true;
    }
    return j;
}

nlohmann::json finding_to_json(const Finding &f) {
    nlohmann::json j;
    j["schema"] = kJsonSchemaVersion;
    j["kind"] = std::string(finding_kind_name(f.kind));
    j["irq"] = f.irq == IrqClass::None ? nlohmann::json(nullptr)
                                       : nlohmann::json(std::string(irq_class_name(f.irq)));
    j["irq_state"] = f.irq_state.empty() ? nlohmann::json(nullptr) : nlohmann::json(f.irq_state);
    j["title"] = f.title;
    j["signature"] = f.signature;
    j["signature_key"] = f.signature_key;
    nlohmann::json locks = nlohmann::json::array();
    for (const LockRef &l : f.locks) {
        locks.push_back({{"name", l.name}, {"usage", l.usage}});
    }
    j["locks"] = locks;
    j["chain"] = f.chain;
    j["task"] = {{"pid", f.task.pid}, {"comm", std::string(f.task.comm_view())}};
    j["cpu"] = f.cpu;
    j["time_ns"] = f.time_ns;
    j["context"] = std::string(context_name(f.context));
    j["irq_flags"] = {{"hardirq_context", f.irq_flags.in_hardirq},
                      {"softirq_context", f.irq_flags.in_softirq},
                      {"hardirqs_enabled", f.irq_flags.hardirqs_enabled},
                      {"softirqs_enabled", f.irq_flags.softirqs_enabled}};
    j["hardirq_state_inferred"] = f.hardirq_state_inferred;
    j["acquiring"] = lock_json(f.acquiring);
    j["holding"] = f.holding ? lock_json(*f.holding) : nlohmann::json(nullptr);
    nlohmann::json held = nlohmann::json::array();
    for (const LockRef &l : f.held) {
        held.push_back(lock_json(l));
    }
    j["held"] = held;
    nlohmann::json stacks = nlohmann::json::object();
    stacks["backtrace"] = stack_json(f.stack);
    if (f.safe_usage) {
        stacks["safe_usage"] = usage_json(*f.safe_usage);
        j["safe_lock"] = f.safe_lock->name;
    }
    if (f.unsafe_usage) {
        stacks["unsafe_usage"] = usage_json(*f.unsafe_usage);
        j["unsafe_lock"] = f.unsafe_lock->name;
    }
    if (f.prev_usage) {
        stacks["prev_usage"] = usage_json(*f.prev_usage);
        j["usage_change"] = {{"from", std::string(usage_bit_name(*f.prev_bit))},
                             {"to", std::string(usage_bit_name(*f.new_bit))}};
    }
    j["stacks"] = stacks;
    nlohmann::json paths = nlohmann::json::object();
    if (!f.safe_path.empty()) {
        paths["safe"] = path_json(f.safe_path);
    }
    if (!f.unsafe_path.empty()) {
        paths["unsafe"] = path_json(f.unsafe_path);
    }
    if (!f.path.empty()) {
        paths["dependency"] = path_json(f.path);
    }
    j["paths"] = paths;
    j["text"] = f.text;
    return j;
}

std::optional<Finding> finding_from_json(const nlohmann::json &j) {
    if (!j.is_object() || !j.contains("kind") || !j.contains("text") || !j["kind"].is_string() ||
        !j["text"].is_string()) {
        return std::nullopt;
    }
    Finding f;
    bool known_kind = false;
    for (FindingKind k :
         {FindingKind::IrqSafeToUnsafe, FindingKind::IrqInversion, FindingKind::InconsistentState,
          FindingKind::Circular, FindingKind::Recursive}) {
        if (finding_kind_name(k) == j["kind"].get<std::string>()) {
            f.kind = k;
            known_kind = true;
        }
    }
    if (!known_kind) {
        return std::nullopt;
    }
    std::string irq = j.value("irq", nlohmann::json(nullptr)).is_string()
                          ? j["irq"].get<std::string>()
                          : std::string();
    f.irq = irq == "hardirq"   ? IrqClass::Hardirq
            : irq == "softirq" ? IrqClass::Softirq
                               : IrqClass::None;
    f.title = j.value("title", "");
    f.signature = j.value("signature", "");
    f.signature_key = j.value("signature_key", "");
    f.text = j["text"].get<std::string>();
    if (j.contains("locks") && j["locks"].is_array()) {
        for (const auto &l : j["locks"]) {
            if (l.is_object()) {
                f.locks.push_back(LockRef{l.value("name", ""), l.value("usage", ""), nullptr, 0});
            }
        }
    }
    if (j.contains("chain") && j["chain"].is_array()) {
        for (const auto &n : j["chain"]) {
            if (n.is_string()) {
                f.chain.push_back(n.get<std::string>());
            }
        }
    }
    if (j.contains("task") && j["task"].is_object()) {
        f.task.pid = j["task"].value("pid", 0);
        f.task.set_comm(j["task"].value("comm", ""));
    }
    f.cpu = j.value("cpu", 0u);
    f.time_ns = j.value("time_ns", uint64_t{0});
    f.hardirq_state_inferred = j.value("hardirq_state_inferred", false);
    return f;
}

bool JsonLinesSink::write(const Finding &f) {
    return write_line(out_, file_, finding_to_json(f).dump() + "\n", &error_);
}

void JsonLinesSink::flush() {
    if (out_) {
        out_->flush();
    } else {
        std::fflush(file_);
    }
}

JournaldSink::JournaldSink(std::vector<std::string> extra_fields)
    : extra_(std::move(extra_fields)) {}

std::vector<std::string> JournaldSink::fields(const Finding &f) const {
    std::vector<std::string> out = {
        "MESSAGE=" + f.text,
        "PRIORITY=4",  // LOG_WARNING
        "SYSLOG_IDENTIFIER=lockwatch",
        "LOCKWATCH_KIND=" + std::string(finding_kind_name(f.kind)),
        "LOCKWATCH_IRQ=" + std::string(irq_class_name(f.irq)),
        "LOCKWATCH_TITLE=" + f.title,
        "LOCKWATCH_SIGNATURE=" + f.signature,
        "LOCKWATCH_LOCKS=" + lock_list(f),
        "LOCKWATCH_CHAIN=" + chain_text(f),
        "LOCKWATCH_TASK=" + std::string(f.task.comm_view()),
        fmt::format("LOCKWATCH_PID={}", f.task.pid),
        fmt::format("LOCKWATCH_CPU={}", f.cpu),
        fmt::format("LOCKWATCH_TIME_NS={}", f.time_ns),
        fmt::format("LOCKWATCH_HARDIRQ_STATE_INFERRED={}", f.hardirq_state_inferred ? 1 : 0),
    };
    out.insert(out.end(), extra_.begin(), extra_.end());
    return out;
}

bool JournaldSink::write(const Finding &f) {
    std::vector<std::string> fs = fields(f);
    std::vector<struct iovec> iov(fs.size());
    for (std::size_t i = 0; i < fs.size(); ++i) {
        iov[i].iov_base = fs[i].data();
        iov[i].iov_len = fs[i].size();
    }
    int r = sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
    if (r < 0) {
        error_ = fmt::format("sd_journal_sendv: {}", std::strerror(-r));
        return false;
    }
    return true;
}

bool MultiSink::write(const Finding &f) {
    bool ok = true;
    for (auto &s : sinks_) {
        if (!s->write(f)) {
            error_ = s->last_error();
            ok = false;
        }
    }
    return ok;
}

void MultiSink::flush() {
    for (auto &s : sinks_) {
        s->flush();
    }
}

}  // namespace lockwatch::engine
