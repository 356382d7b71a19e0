#include "output/journald.h"

#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <systemd/sd-journal.h>

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

}  // namespace

JournaldSink::JournaldSink(std::vector<std::string> extra_fields)
    : extra_(std::move(extra_fields)) {}

std::vector<std::string> JournaldSink::fields(const Finding &f) const {
    std::vector<std::string> out = {
        "MESSAGE=" + render_text(f),
        "PRIORITY=4",  // LOG_WARNING
        "SYSLOG_IDENTIFIER=lockwatch",
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

}  // namespace lockwatch::output
