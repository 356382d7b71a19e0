#include "engine/sinks.h"

#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <systemd/sd-journal.h>

#include "engine/finding_json.h"
#include "engine/report.h"

namespace lockwatch::engine {
namespace {

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

bool JsonLinesSink::write(const Finding &f) {
    nlohmann::json j = finding_to_json(f);
    j.update(extra_);
    return write_line(out_, file_, j.dump() + "\n", &error_);
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
