// The service manager's notification protocol (sd_notify(3)), for
// `lockwatch run` under systemd (Type=notify): READY=1 once every program is
// attached, STOPPING=1 when a stop begins, STATUS= for `systemctl status`.
// Each is a no-op where $NOTIFY_SOCKET is unset (not a service).
#pragma once

#include <string>

namespace lockwatch {

// Attached and tracing; status is what `systemctl status` shows.
void notify_ready(const std::string &status);
// A stop began (signal or --duration): the report and the detach follow.
void notify_stopping(const std::string &status);
// Only the status line (a refusal, a finding count).
void notify_status(const std::string &status);

}  // namespace lockwatch
