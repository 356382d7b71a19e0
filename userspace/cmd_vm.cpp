// `lockwatch vm`: boot a test VM with lockwatch tracing inside it, run a
// command there, and bring the findings back to this host as they happen.
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "capture/backends.h"
#include "commands.h"
#include "debuginfo/kernel_debuginfo.h"
#include "debuginfo/kernel_image.h"
#include "install_paths.h"
#include "output/host_info.h"
#include "output/journald.h"
#include "output/json.h"
#include "output/output_file.h"
#include "output/text.h"
#include "vm/heartbeat.h"
#include "vm/vm_script.h"

namespace lockwatch {

namespace {

namespace fs = std::filesystem;

struct VmOptions {
    std::string kernel = "debian";
    std::vector<std::string> command;
    std::vector<std::string> bins;
    std::string backend = "auto";
    std::vector<std::string> focus;
    std::string json_out;
    bool journal = false;
    bool json_brief = false;
    std::string console;
    int timeout_s = 600;
    double linger_s = 3;
    std::string vmlinux = "auto";
    bool net = false;
    std::string modules;
    std::vector<std::string> run_args;
};

// The VM scripts must be there before anything else is tried: an install
// without them cannot boot a VM (exit 3: nothing could be traced).
bool tools_present() {
    fs::path script = tools_dir() / "vm" / "run-vm.sh";
    if (access(script.c_str(), X_OK) == 0) {
        return true;
    }
    fmt::print(stderr,
               "lockwatch vm: cannot run {}: {}; reinstall lockwatch, or point "
               "LOCKWATCH_TOOLS_DIR at the tools/ directory of a lockwatch source tree\n",
               script.string(), std::strerror(errno));
    return false;
}

// popen() with SIGPIPE back at its default for the child: lockwatch ignores
// it (a closed reader is a write error it handles), but the harness and the
// tools it runs expect the usual `| head` behaviour.
FILE *popen_with_default_sigpipe(const std::string &cmd) {
    std::signal(SIGPIPE, SIG_DFL);
    FILE *pipe = popen(cmd.c_str(), "r");
    std::signal(SIGPIPE, SIG_IGN);
    return pipe;
}

std::string run_and_capture_last_line(const std::string &cmd, int *status) {
    std::string last;
    FILE *pipe = popen_with_default_sigpipe(cmd);
    if (!pipe) {
        *status = -1;
        return last;
    }
    char line[4096];
    while (std::fgets(line, sizeof(line), pipe)) {
        last = line;
    }
    int rc = pclose(pipe);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    while (!last.empty() && (last.back() == '\n' || last.back() == '\r')) {
        last.pop_back();
    }
    return last;
}

// Runs a kernel script and returns the last line it printed (a path), or
// nullopt after saying that `what` failed. Its progress goes to stderr, with
// a heartbeat at least every 30 s (for a build, `flavor`'s make progress).
std::optional<std::string> kernel_from_script(const std::string &cmd, const std::string &what,
                                              const std::string &flavor = "") {
    int status = 0;
    std::string path;
    {
        Heartbeat::Progress progress;
        if (!flavor.empty()) {
            auto since = fs::file_time_type::clock::now();
            progress = [flavor, since] {
                return read_build_progress(kernel_logs_dir(), flavor, since);
            };
        }
        Heartbeat heartbeat(what, Heartbeat::default_interval(), progress);
        path = run_and_capture_last_line(cmd, &status);
    }
    if (status != 0 || path.empty()) {
        fmt::print(stderr, "lockwatch vm: {} failed (exit {})\n", what, status);
        return std::nullopt;
    }
    return path;
}

// debian[:VER] -> the directory fetch-kernel.sh keeps (and checks) the
// package's kernel in; seed|lockdep -> the bzImage build-kernel.sh built or
// took from the cache; anything else is a path.
std::optional<std::string> resolve_kernel(const std::string &kernel) {
    if (kernel == "debian" || kernel.starts_with("debian:")) {
        std::string cmd = shell_quote((tools_dir() / "vm" / "fetch-kernel.sh").string());
        if (kernel != "debian") {
            cmd += " --version " + shell_quote(kernel.substr(7));
        }
        return kernel_from_script(cmd, "fetching Debian's kernel");
    }
    if (kernel != "seed" && kernel != "lockdep") {
        return kernel;
    }
    fmt::print(stderr,
               "lockwatch vm: preparing the {} kernel (built once from linux-source-6.1, then "
               "cached; the first build takes 10-20 minutes)\n",
               kernel);
    return kernel_from_script(
        shell_quote((tools_dir() / "kernel" / "build-kernel.sh").string()) + " " + kernel,
        fmt::format("building the {} kernel", kernel), kernel);
}

// --vmlinux: auto finds the one whose build id is the guest kernel's (see
// choose_vmlinux()), PATH must be that one. False on a usage error.
bool open_vmlinux(const VmOptions &o, const std::string &kernel,
                  std::unique_ptr<KernelDebugInfo> *debuginfo) {
    std::string image = kernel_image_in(kernel);
    if (image.empty()) {
        return true;  // run-vm.sh says that there is no kernel image
    }
    VmlinuxChoice choice = choose_vmlinux(o.vmlinux, image);
    for (const std::string &warning : choice.warnings) {
        fmt::print(stderr, "lockwatch vm: warning: {}\n", warning);
    }
    if (!choice.error.empty()) {
        fmt::print(stderr, "lockwatch vm: --vmlinux: {}\n", choice.error);
        return false;
    }
    if (choice.path.empty()) {
        return true;
    }
    try {
        *debuginfo = KernelDebugInfo::open(choice.path);
    } catch (const std::exception &e) {
        fmt::print(stderr, "lockwatch vm: {}\n", e.what());
        return o.vmlinux == "auto";
    }
    return true;
}

// run-vm.sh's command line: lockwatch and the reproducers go into the
// guest, the control port's lines come back on fd 3.
std::string harness_command(const VmOptions &o, const std::string &kernel) {
    std::vector<std::string> bins = o.bins;
    // The reproducers built with lockwatch go into every guest.
    for (const char *repro : {"seed-repro", "seed-repro-m32"}) {
        fs::path p = repro_dir() / repro;
        if (fs::exists(p)) {
            bins.push_back(p.string());
        }
    }
    std::string cmd = shell_quote((tools_dir() / "vm" / "run-vm.sh").string()) + " --kernel " +
                      shell_quote(kernel) + fmt::format(" --timeout {}", o.timeout_s) +
                      " --control-fd 3 --bin " + shell_quote(self_path().string());
    for (const auto &bin : bins) {
        cmd += " --bin " + shell_quote(bin);
    }
    if (!o.console.empty()) {
        cmd += " --console " + shell_quote(o.console);
    }
    if (o.net) {
        cmd += " --net";
    }
    if (!o.modules.empty()) {
        cmd += " --modules " + shell_quote(o.modules);
    }
    return cmd + " -- sh -c " +
           shell_quote(guest_script(o.command, o.backend, o.linger_s, o.focus, o.run_args));
}

// A finding the guest sent: its stacks get their places from the vmlinux,
// then it goes to the sinks like any other.
void show_finding(engine::Finding &finding, const KernelDebugInfo *debuginfo, output::Sink &sinks) {
    if (debuginfo) {
        annotate_stacks(finding, *debuginfo);
    }
    if (!sinks.write(finding)) {
        fmt::print(stderr, "lockwatch vm: a finding sink failed: {}\n", sinks.last_error());
    }
    sinks.flush();
    std::fflush(stdout);
}

// run-vm.sh with its stdout (the guest's output) on one pipe and the
// control port's lines (--control-fd 3) on another.
struct Harness {
    pid_t pid = -1;
    int output_fd = -1;
    int control_fd = -1;
};

std::optional<Harness> start_harness(const std::string &cmd) {
    int output[2], control[2];
    if (pipe2(output, O_CLOEXEC) != 0) {
        return std::nullopt;
    }
    if (pipe2(control, O_CLOEXEC) != 0) {
        close(output[0]);
        close(output[1]);
        return std::nullopt;
    }
    // The write ends above fd 3, so that neither dup2 below is a no-op that
    // would leave close-on-exec set; the copies dup2 makes stay open across
    // exec, the originals close there.
    for (int *fd : {&output[1], &control[1]}) {
        int moved = fcntl(*fd, F_DUPFD_CLOEXEC, 10);
        if (moved >= 0) {
            close(*fd);
            *fd = moved;
        }
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, output[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, control[1], 3);
    // lockwatch ignores SIGPIPE (it handles EPIPE); the harness and what it
    // runs get the default back.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t default_signals;
    sigemptyset(&default_signals);
    sigaddset(&default_signals, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &default_signals);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    const char *argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
    Harness h;
    int rc =
        posix_spawn(&h.pid, "/bin/sh", &actions, &attr, const_cast<char *const *>(argv), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(output[1]);
    close(control[1]);
    if (rc != 0) {
        close(output[0]);
        close(control[0]);
        errno = rc;  // posix_spawn() returns its error
        return std::nullopt;
    }
    h.output_fd = output[0];
    h.control_fd = control[0];
    return h;
}

// Reads both channels to their end: the guest's output to stderr, escaped;
// the control port's lines parsed. Dropped and rejected lines are said on
// stderr as they happen (the first kMaxRejectionsShown rejections) and counted.
class GuestReader {
  public:
    GuestReader(const KernelDebugInfo *debuginfo, output::Sink &sinks)
        : debuginfo_(debuginfo), sinks_(sinks) {}

    void run(const Harness &h) {
        pollfd fds[2] = {{h.output_fd, POLLIN, 0}, {h.control_fd, POLLIN, 0}};
        GuestLineSplitter::Handler handlers[2] = {
            [this](std::string_view line, std::uint64_t dropped) { on_output(line, dropped); },
            [this](std::string_view line, std::uint64_t dropped) { on_control(line, dropped); }};
        GuestLineSplitter splitters[2];
        int open_fds = 2;
        std::vector<char> buf(1 << 16);
        while (open_fds > 0) {
            if (poll(fds, 2, -1) < 0) {
                if (errno == EINTR) {
                    continue;
                }
                break;
            }
            for (int i = 0; i < 2; ++i) {
                if (fds[i].fd < 0 || fds[i].revents == 0) {
                    continue;
                }
                ssize_t n = read(fds[i].fd, buf.data(), buf.size());
                if (n > 0) {
                    splitters[i].feed(std::string_view(buf.data(), n), handlers[i]);
                } else if (n == 0 || errno != EINTR) {
                    splitters[i].finish(handlers[i]);
                    close(fds[i].fd);
                    fds[i].fd = -1;
                    --open_fds;
                }
            }
        }
    }

    // After run(): the totals, one line each, when something was left out.
    void report() const {
        if (outcome_.rejected > kMaxRejectionsShown) {
            fmt::print(stderr,
                       "lockwatch vm: rejected {} lines of the guest's control port in all "
                       "(the first {} are named above)\n",
                       outcome_.rejected, kMaxRejectionsShown);
        }
    }

    const GuestOutcome &outcome() const { return outcome_; }

  private:
    static constexpr int kMaxRejectionsShown = 10;

    void on_output(std::string_view line, std::uint64_t dropped) {
        std::string text = escape_guest_text(line) + "\n";
        std::fputs(text.c_str(), stderr);
        if (dropped > 0) {
            fmt::print(stderr,
                       "lockwatch vm: the guest output line above was longer than {} bytes: "
                       "its last {} bytes were dropped\n",
                       kMaxGuestLineBytes, dropped);
        }
    }

    void on_control(std::string_view line, std::uint64_t dropped) {
        if (dropped > 0) {
            ++outcome_.rejected;
            say_rejected(fmt::format("a line of {} bytes, over the limit of {}",
                                     line.size() + dropped, kMaxGuestLineBytes));
            return;
        }
        ControlLine parsed = parse_control_line(line, &outcome_);
        if (parsed.finding) {
            show_finding(*parsed.finding, debuginfo_, sinks_);
        } else if (!parsed.rejected.empty()) {
            say_rejected(parsed.rejected);
        }
    }

    void say_rejected(const std::string &why) const {
        if (outcome_.rejected <= kMaxRejectionsShown) {
            fmt::print(stderr, "lockwatch vm: rejected a line of the guest's control port: {}\n",
                       why);
        }
    }

    const KernelDebugInfo *debuginfo_;
    output::Sink &sinks_;
    GuestOutcome outcome_;
};

int run_vm(const VmOptions &o) {
    // Usage errors first, before a kernel build that can take minutes.
    output::MultiSink sinks;
    // JSON lines on standard output (--json -) leave it to them alone.
    sinks.add(std::make_unique<output::TextSink>(o.json_out == "-" ? stderr : stdout));
    output::OutputFile json_file;
    if (!o.json_out.empty()) {
        std::string error;
        json_file = output::open_output_file(o.json_out, &error);
        if (!json_file) {
            fmt::print(stderr, "lockwatch vm: {}\n", error);
            return kVmExitUsage;
        }
        nlohmann::json extra = output::host_fields();
        extra["vm_kernel"] = o.kernel;
        sinks.add(std::make_unique<output::JsonLinesSink>(json_file.get(), std::move(extra),
                                                          o.json_brief));
    }
    if (o.journal) {
        sinks.add(std::make_unique<output::JournaldSink>(
            std::vector<std::string>{"LOCKWATCH_VM_KERNEL=" + o.kernel, "LOCKWATCH_SOURCE=vm"}));
    }

    if (!tools_present()) {
        return kVmExitTracerFailed;
    }
    auto kernel = resolve_kernel(o.kernel);
    if (!kernel) {
        return kVmExitVmFailed;
    }
    std::unique_ptr<KernelDebugInfo> debuginfo;
    if (!open_vmlinux(o, *kernel, &debuginfo)) {
        return kVmExitUsage;
    }

    auto harness = start_harness(harness_command(o, *kernel));
    if (!harness) {
        fmt::print(stderr, "lockwatch vm: cannot start {}: {}\n",
                   (tools_dir() / "vm" / "run-vm.sh").string(), std::strerror(errno));
        return kVmExitVmFailed;
    }
    GuestReader reader(debuginfo.get(), sinks);
    {
        Heartbeat heartbeat("the VM (boot, then the command)", Heartbeat::default_interval());
        reader.run(*harness);
    }
    int rc = 0;
    while (waitpid(harness->pid, &rc, 0) < 0 && errno == EINTR) {
    }
    reader.report();
    int harness_status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    return vm_exit_status(harness_status, reader.outcome());
}

}  // namespace

CommandRunner add_vm_command(CLI::App &app) {
    auto o = std::make_shared<VmOptions>();
    CLI::App *cmd = app.add_subcommand(
        "vm",
        "Boot a test VM (qemu) with lockwatch tracing inside, run COMMAND there, and stream\n"
        "the findings back to this host as they happen: to stdout, --json and --journal.\n"
        "The guest's own output goes to stderr, control characters escaped; findings and\n"
        "exit statuses come only from a port the command is not given (tools/vm/README.md).\n"
        "Example, the seed bug end to end:\n"
        "  lockwatch vm --kernel seed -- seed-repro edge-last\n"
        "Exit status: 0 no finding; 1 findings were reported; 2 usage error; 3 lockwatch\n"
        "could not trace inside the guest; 4 the guest command failed (and no finding);\n"
        "5 the VM failed (kernel build or download, boot, panic, time-out).");
    cmd->add_option("-k,--kernel", o->kernel,
                    "debian (Debian's stock cloud kernel), seed (linux-source-6.1 with the seed "
                    "bug, no lockdep), lockdep (the same with PROVE_LOCKING), or a bzImage path")
        ->default_val("debian");
    // One value per occurrence for the repeated options: CLI11 would take
    // the "--" after a list as the list's end, and the command's own options
    // after it as lockwatch's.
    cmd->add_option("--bin", o->bins, "Also copy PROGRAM (and its libraries) into the guest")
        ->allow_extra_args(false);
    cmd->add_option("--backend", o->backend,
                    "lockwatch run --backend inside the guest: " + backend_choices_help())
        ->check(CLI::IsMember(backend_names()))
        ->default_val("auto");
    cmd->add_option("--focus", o->focus, "lockwatch run --focus inside the guest")
        ->delimiter(',')
        ->allow_extra_args(false);
    cmd->add_option("--json", o->json_out,
                    "Also write findings as JSON lines to FILE, appended ('-': standard output, "
                    "and the text goes to standard error), each with a vm_kernel field");
    cmd->add_flag("--json-brief", o->json_brief,
                  "JSON lines without the report's text and its dependency paths");
    cmd->add_flag("--journal,--journald", o->journal,
                  "Also send each finding to this host's journal, with LOCKWATCH_VM_KERNEL");
    cmd->add_option("--console", o->console, "Keep the guest's kernel log in FILE");
    cmd->add_option("--timeout", o->timeout_s, "Stop the VM after SECONDS")
        ->check(CLI::PositiveNumber)
        ->default_val(600);
    cmd->add_option("--linger", o->linger_s,
                    "Keep tracing SECONDS after COMMAND ends (RCU callbacks and softirqs "
                    "run late)")
        ->check(CLI::NonNegativeNumber)
        ->default_val(3);
    cmd->add_option("--vmlinux", o->vmlinux,
                    "vmlinux with debug info for file:line in the findings: auto (beside the "
                    "kernel image, as the seed and lockdep kernels keep it, or Debian's "
                    "/usr/lib/debug/boot/vmlinux-<release>; only one with the guest kernel's "
                    "build id), none, or a path (which must have that build id)")
        ->default_val("auto");
    cmd->add_flag("--net", o->net,
                  "Give the guest a virtio-net NIC on qemu's user network (10.0.2.15/24; "
                  "the kernel must have virtio_net, built in or as a module)");
    cmd->add_option("--modules", o->modules,
                    "The kernel's own modules to put in the guest for modprobe, e.g. "
                    "virtio_pci,virtio_net (run-vm.sh --modules)");
    cmd->add_option("--run-arg", o->run_args,
                    "Pass ARG on to lockwatch run in the guest, e.g. --run-arg=--classes")
        ->allow_extra_args(false);
    cmd->add_option("command", o->command, "The command to run in the guest")->required();
    return [o] { return run_vm(*o); };
}

}  // namespace lockwatch
