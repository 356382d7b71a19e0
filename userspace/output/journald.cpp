#include "output/journald.h"

#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
// No CODE_FILE (a build path) or CODE_FUNC: lockwatch's fields say where.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "output/host_info.h"
#include "output/text.h"

namespace lockwatch::output {
namespace {

using engine::Finding;
using engine::LockRef;

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

// The lock names of a one-line summary: the chain, else every lock.
std::string locks_in_line(const Finding &f) {
    if (!f.chain.empty()) {
        return chain_text(f);
    }
    std::string out;
    for (const LockRef &l : f.locks) {
        out += (out.empty() ? "" : ", ") + l.name;
    }
    return out;
}

// At most max bytes, cut before a UTF-8 sequence rather than inside one.
std::string cut(std::string text, std::size_t max) {
    if (text.size() <= max) {
        return text;
    }
    std::size_t end = max - 4;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xc0) == 0x80) {
        --end;
    }
    return text.substr(0, end) + " ...";
}

}  // namespace

std::string_view journal_message_id(engine::FindingKind kind) {
    // packaging/lockwatch.catalog has an entry for each.
    switch (kind) {
        case engine::FindingKind::IrqSafeToUnsafe:
            return "f49a2bfbd86d4734a09e121b011b5a88";
        case engine::FindingKind::IrqInversion:
            return "3d63d1aebf71497b950f5dc689cd6571";
        case engine::FindingKind::InconsistentState:
            return "9a033ddca3904017a66015f78b858d9d";
        case engine::FindingKind::Circular:
            return "0641482a6a324a06902b3090942e692d";
        case engine::FindingKind::Recursive:
            return "28c11ee9ac1742f5a46dc5dd2bec746f";
    }
    return "";
}

std::string journal_message(const Finding &f) {
    std::string what;
    switch (f.kind) {
        case engine::FindingKind::IrqSafeToUnsafe:
            what = fmt::format("{0}-safe -> {0}-unsafe", f.irq_state);
            break;
        case engine::FindingKind::IrqInversion:
            what = fmt::format("irq lock inversion, {}", f.irq_state);
            break;
        case engine::FindingKind::InconsistentState:
            what = fmt::format("inconsistent {} lock state", f.irq_state);
            break;
        case engine::FindingKind::Circular:
            what = "circular locking dependency";
            break;
        case engine::FindingKind::Recursive:
            what = "recursive locking";
            break;
    }
    return cut(fmt::format("{}: {} ({})", f.title, what, locks_in_line(f)),
               kMaxJournalMessageBytes);
}

namespace {

bool send_fields(std::vector<std::string> fields, std::string *error) {
    std::vector<struct iovec> iov(fields.size());
    for (std::size_t i = 0; i < fields.size(); ++i) {
        iov[i].iov_base = fields[i].data();
        iov[i].iov_len = fields[i].size();
    }
    int r = sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
    if (r < 0) {
        *error = fmt::format("sd_journal_sendv: {}", std::strerror(-r));
        return false;
    }
    return true;
}

}  // namespace

bool journal_notice(std::string_view message_id, std::string_view message, std::string *error,
                    const std::vector<std::string> &extra_fields) {
    std::vector<std::string> fields = {
        "MESSAGE=" + std::string(message),
        "MESSAGE_ID=" + std::string(message_id),
        "PRIORITY=5",  // LOG_NOTICE
        "SYSLOG_IDENTIFIER=lockwatch",
        "LOCKWATCH_VERSION=" + host_info().version,
    };
    fields.insert(fields.end(), extra_fields.begin(), extra_fields.end());
    return send_fields(std::move(fields), error);
}

JournaldSink::JournaldSink(std::vector<std::string> extra_fields)
    : extra_(std::move(extra_fields)) {}

std::vector<std::string> JournaldSink::fields(const Finding &f) const {
    std::vector<std::string> out = {
        "MESSAGE=" + journal_message(f),
        "MESSAGE_ID=" + std::string(journal_message_id(f.kind)),
        "PRIORITY=4",  // LOG_WARNING
        "SYSLOG_IDENTIFIER=lockwatch",
        "LOCKWATCH_REPORT=" + render_text(f),
        "LOCKWATCH_VERSION=" + host_info().version,
        "LOCKWATCH_KIND=" + std::string(engine::finding_kind_name(f.kind)),
        "LOCKWATCH_IRQ=" + std::string(engine::irq_class_name(f.irq)),
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
    return send_fields(fields(f), &error_);
}

}  // namespace lockwatch::output
