#include "vm/heartbeat.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace lockwatch {

namespace fs = std::filesystem;

namespace {

std::size_t compiled_files(const fs::path &log) {
    std::ifstream in(log);
    std::string line;
    std::size_t n = 0;
    while (std::getline(in, line)) {
        n += line.starts_with("  CC ") ? 1 : 0;
    }
    return n;
}

// From the log's creation to its last write: how long that build took.
double build_seconds(const fs::path &log) {
    struct statx stx {};
    if (statx(AT_FDCWD, log.c_str(), 0, STATX_BTIME | STATX_MTIME, &stx) != 0 ||
        !(stx.stx_mask & STATX_BTIME)) {
        return 0;
    }
    return static_cast<double>(stx.stx_mtime.tv_sec - stx.stx_btime.tv_sec) +
           (static_cast<double>(stx.stx_mtime.tv_nsec) - stx.stx_btime.tv_nsec) / 1e9;
}

}  // namespace

fs::path kernel_logs_dir() {
    if (const char *cache = std::getenv("LOCKWATCH_CACHE")) {
        return fs::path(cache) / "kernels" / "logs";
    }
    const char *xdg = std::getenv("XDG_CACHE_HOME");
    const char *home = std::getenv("HOME");
    fs::path base = xdg ? fs::path(xdg) : fs::path(home ? home : "/root") / ".cache";
    return base / "lockwatch" / "kernels" / "logs";
}

std::optional<BuildProgress> read_build_progress(const fs::path &logs_dir,
                                                 const std::string &flavor,
                                                 fs::file_time_type since) {
    std::error_code ec;
    std::optional<fs::path> running;
    std::vector<std::pair<fs::file_time_type, fs::path>> others;
    for (const auto &entry : fs::directory_iterator(logs_dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (!entry.is_regular_file(ec) || !name.starts_with(flavor + "-") ||
            !name.ends_with(".log")) {
            continue;
        }
        others.emplace_back(entry.last_write_time(ec), entry.path());
    }
    std::sort(others.rbegin(), others.rend());
    if (others.empty() || others.front().first < since) {
        return std::nullopt;
    }
    BuildProgress progress;
    progress.compiled = compiled_files(others.front().second);
    for (std::size_t i = 1; i < others.size(); ++i) {
        std::size_t total = compiled_files(others[i].second);
        if (total > 0) {
            progress.previous_total = total;
            progress.previous_seconds = build_seconds(others[i].second);
            break;
        }
    }
    return progress;
}

std::string format_duration(double seconds) {
    long s = static_cast<long>(seconds + 0.5);
    return s >= 60 ? fmt::format("{}m{:02}s", s / 60, s % 60) : fmt::format("{}s", s);
}

std::string format_heartbeat(const std::string &what, double elapsed_s,
                             const std::optional<BuildProgress> &progress) {
    std::string line = fmt::format("lockwatch vm: {}: {} so far", what, format_duration(elapsed_s));
    if (!progress) {
        return line;
    }
    if (progress->previous_total == 0) {
        return line + fmt::format("; make: {} files compiled (no earlier build to compare)",
                                  progress->compiled);
    }
    double fraction =
        std::min(1.0, static_cast<double>(progress->compiled) / progress->previous_total);
    line += fmt::format("; make: {} of about {} files ({:.0f} %)", progress->compiled,
                        progress->previous_total, fraction * 100);
    if (progress->previous_seconds > 0) {
        double left = std::max(0.0, progress->previous_seconds * (1 - fraction));
        line += fmt::format(", about {} left (the last build took {})", format_duration(left),
                            format_duration(progress->previous_seconds));
    }
    return line;
}

Heartbeat::Heartbeat(std::string what, std::chrono::milliseconds interval, Progress progress,
                     std::FILE *out)
    : what_(std::move(what)),
      interval_(interval),
      progress_(std::move(progress)),
      out_(out),
      start_(std::chrono::steady_clock::now()),
      thread_([this] { beat(); }) {}

Heartbeat::~Heartbeat() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        stop_ = true;
    }
    stop_cv_.notify_all();
    thread_.join();
}

std::chrono::milliseconds Heartbeat::default_interval() {
    const char *env = std::getenv("LOCKWATCH_HEARTBEAT_S");
    double s = env ? std::atof(env) : 30;
    return std::chrono::milliseconds(static_cast<long>((s > 0 ? s : 30) * 1000));
}

void Heartbeat::beat() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_cv_.wait_for(lock, interval_, [this] { return stop_; })) {
        double elapsed =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        std::string line = format_heartbeat(what_, elapsed, progress_ ? progress_() : std::nullopt);
        std::fprintf(out_, "%s\n", line.c_str());
        std::fflush(out_);
    }
}

}  // namespace lockwatch
