// Long steps of `lockwatch vm` (a kernel download or build, a boot) say
// that they are alive: a line on stderr at least every 30 s with the time
// so far and, for a kernel build, how far make has got and how long is left,
// estimated from the previous build's log (tools/kernel/build-kernel.sh
// keeps one per build in KERNEL_CACHE/logs/FLAVOR-KEY.log).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace lockwatch {

struct BuildProgress {
    std::size_t compiled = 0;        // "  CC " lines in the running build's log
    std::size_t previous_total = 0;  // ... in the previous build's log
    double previous_seconds = 0;     // how long the previous build took
};

// The running build of `flavor` is its log modified last (since `since`);
// the previous one is the newest other log of that flavor with compiled
// files in it. nullopt when there is no running build's log.
std::optional<BuildProgress> read_build_progress(const std::filesystem::path &logs_dir,
                                                 const std::string &flavor,
                                                 std::filesystem::file_time_type since);
// KERNEL_CACHE/logs, as build-kernel.sh names it.
std::filesystem::path kernel_logs_dir();

// "lockwatch vm: building the seed kernel: 4m30s so far; make: 620 of about
// 1295 files (48 %), about 5m left (the last build took 37m40s)".
std::string format_heartbeat(const std::string &what, double elapsed_s,
                             const std::optional<BuildProgress> &progress);
std::string format_duration(double seconds);

// Prints format_heartbeat() to `out` every `interval` until destroyed.
class Heartbeat {
  public:
    using Progress = std::function<std::optional<BuildProgress>()>;
    Heartbeat(std::string what, std::chrono::milliseconds interval, Progress progress = {},
              std::FILE *out = stderr);
    ~Heartbeat();
    Heartbeat(const Heartbeat &) = delete;
    Heartbeat &operator=(const Heartbeat &) = delete;
    // The interval: $LOCKWATCH_HEARTBEAT_S, else 30 s.
    static std::chrono::milliseconds default_interval();

  private:
    void beat();
    std::string what_;
    std::chrono::milliseconds interval_;
    Progress progress_;
    std::FILE *out_;
    std::chrono::steady_clock::time_point start_;
    std::mutex mutex_;
    std::condition_variable stop_cv_;
    bool stop_ = false;
    std::thread thread_;
};

}  // namespace lockwatch
