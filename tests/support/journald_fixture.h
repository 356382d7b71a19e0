// A systemd-journald for tests: uses the one that runs, or starts its own
// (as root, with /run/systemd/journal) and stops it afterwards. Tests that
// need it skip, with the reason, where none can run.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace lockwatch::testsupport {

inline constexpr const char *kJournalSocket = "/run/systemd/journal/socket";

inline bool journal_socket_answers() {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", kJournalSocket);
    bool ok = connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0;
    close(fd);
    return ok;
}

inline std::string run_capture(const std::string &cmd) {
    std::string out;
    if (FILE *p = popen(cmd.c_str(), "r")) {
        char buf[4096];
        std::size_t n;
        while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
            out.append(buf, n);
        }
        pclose(p);
    }
    return out;
}

class ScopedJournald {
  public:
    // Empty when a journald answers (ours or one already running); else why not.
    std::optional<std::string> start() {
        if (journal_socket_answers()) {
            return std::nullopt;  // a journald already runs here: use it, leave it alone
        }
        if (geteuid() != 0) {
            return "needs root to start systemd-journald";
        }
        const char *bin = "/lib/systemd/systemd-journald";
        if (access(bin, X_OK) != 0) {
            return std::string("no ") + bin + " to start";
        }
        if (access("/usr/bin/journalctl", X_OK) != 0 && access("/bin/journalctl", X_OK) != 0) {
            return "no journalctl to read the journal back";
        }
        mkdir("/run/systemd", 0755);
        mkdir("/run/systemd/journal", 0755);
        pid_ = fork();
        if (pid_ == 0) {
            int null = open("/dev/null", O_RDWR);
            dup2(null, 1);
            dup2(null, 2);
            execl(bin, bin, static_cast<char *>(nullptr));
            _exit(127);
        }
        if (pid_ < 0) {
            return "fork failed";
        }
        for (int i = 0; i < 100 && !journal_socket_answers(); ++i) {
            int status;
            if (waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                return "systemd-journald exited at start (status " + std::to_string(status) + ")";
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (!journal_socket_answers()) {
            return std::string("systemd-journald did not open ") + kJournalSocket + " within 5 s";
        }
        return std::nullopt;
    }

    ~ScopedJournald() {
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            int status;
            waitpid(pid_, &status, 0);
        }
    }

    // Every entry journalctl finds for `match` ("FIELD=value ..."), waiting
    // up to ~5 s for at least one to show up. --all: journalctl prints fields
    // over 4096 bytes (a full report) as null otherwise.
    static std::vector<nlohmann::json> entries(const std::string &match) {
        std::vector<nlohmann::json> found;
        for (int i = 0; i < 100 && found.empty(); ++i) {
            std::string out =
                run_capture("journalctl -o json --all --no-pager " + match + " 2>/dev/null");
            std::size_t pos = 0;
            while ((pos = out.find('\n')) != std::string::npos) {
                std::string line = out.substr(0, pos);
                out.erase(0, pos + 1);
                if (!line.empty() && line[0] == '{') {
                    found.push_back(nlohmann::json::parse(line, nullptr, false));
                }
            }
            if (found.empty()) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        }
        return found;
    }

  private:
    pid_t pid_ = -1;
};

}  // namespace lockwatch::testsupport
