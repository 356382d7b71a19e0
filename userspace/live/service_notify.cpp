#include "live/service_notify.h"

#include <systemd/sd-daemon.h>

namespace lockwatch {

namespace {

// One line: systemd takes STATUS= up to the newline.
std::string one_line(std::string text) {
    for (char &c : text) {
        if (c == '\n') {
            c = ' ';
        }
    }
    return text;
}

void send(const std::string &state) {
    sd_notify(0, state.c_str());  // < 0 or 0 (no socket): nothing to tell
}

}  // namespace

void notify_ready(const std::string &status) {
    send("READY=1\nSTATUS=" + one_line(status));
}

void notify_stopping(const std::string &status) {
    send("STOPPING=1\nSTATUS=" + one_line(status));
}

void notify_status(const std::string &status) {
    send("STATUS=" + one_line(status));
}

}  // namespace lockwatch
