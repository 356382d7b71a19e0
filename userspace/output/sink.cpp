#include "output/sink.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace lockwatch::output {

bool Sink::fail(std::string error, int err) {
    error_ = std::move(error);
    reader_gone_ = err == EPIPE;
    ++failures_;
    return false;
}

bool StreamSink::put(const std::string &rendered) {
    if (out_) {
        *out_ << rendered;
        return *out_ ? true : fail("write failed", 0);
    }
    if (std::fwrite(rendered.data(), 1, rendered.size(), file_) != rendered.size()) {
        return fail(fmt::format("write failed: {}", std::strerror(errno)), errno);
    }
    return true;
}

// A buffered FILE reports a full disk or a closed pipe only here.
bool StreamSink::flush() {
    if (out_) {
        out_->flush();
        return *out_ ? true : fail("write failed", 0);
    }
    if (std::fflush(file_) != 0) {
        return fail(fmt::format("write failed: {}", std::strerror(errno)), errno);
    }
    return true;
}

bool MultiSink::take_failure(const Sink &sink) {
    error_ = sink.last_error();
    reader_gone_ = sink.reader_gone();
    ++failures_;
    return false;
}

bool MultiSink::write(const engine::Finding &f) {
    bool ok = true;
    for (auto &s : sinks_) {
        if (!s->write(f)) {
            ok = take_failure(*s);
        }
    }
    return ok;
}

bool MultiSink::flush() {
    bool ok = true;
    for (auto &s : sinks_) {
        if (!s->flush()) {
            ok = take_failure(*s);
        }
    }
    return ok;
}

}  // namespace lockwatch::output
