#include "output/sink.h"

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace lockwatch::output {

bool StreamSink::put(const std::string &rendered) {
    if (out_) {
        *out_ << rendered;
        if (!*out_) {
            error_ = "write failed";
            return false;
        }
        return true;
    }
    if (std::fwrite(rendered.data(), 1, rendered.size(), file_) != rendered.size()) {
        error_ = fmt::format("write failed: {}", std::strerror(errno));
        return false;
    }
    return true;
}

void StreamSink::flush() {
    if (out_) {
        out_->flush();
    } else {
        std::fflush(file_);
    }
}

bool MultiSink::write(const engine::Finding &f) {
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

}  // namespace lockwatch::output
