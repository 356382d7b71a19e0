#include "vm_test_support.h"

#include "vm/vm_script.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <tuple>
#include <utility>

namespace lockwatch::vmtest {

namespace {

// Runs `cmd` through the shell; its standard output, and its exit status (-1
// when it did not exit).
std::string run_command(const std::string &cmd, int &exit_status) {
    FILE *pipe = popen(cmd.c_str(), "r");
    if (!pipe) {
        throw std::runtime_error("cannot start: " + cmd);
    }
    std::string output;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) {
        output.append(buf, n);
    }
    int status = pclose(pipe);
    exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return output;
}

// `cmd` with its stderr in a temporary file: {stdout, stderr}.
std::pair<std::string, std::string> run_with_stderr(const std::string &cmd, int &exit_status) {
    char log_template[] = "/tmp/lockwatch-vmtest-XXXXXX";
    int log_fd = mkstemp(log_template);
    if (log_fd < 0) {
        throw std::runtime_error("cannot create a temporary file");
    }
    close(log_fd);
    std::string out = run_command(cmd + " 2>" + log_template, exit_status);
    std::ifstream log(log_template);
    std::stringstream text;
    text << log.rdbuf();
    unlink(log_template);
    return {out, text.str()};
}

}  // namespace

GuestRun run_in_vm(const std::string &kernel, const std::vector<std::string> &bins,
                   const std::string &shell_command, int timeout_s) {
    return run_in_vm_with_files(kernel, bins, {}, shell_command, timeout_s);
}

GuestRun run_in_vm_with_files(const std::string &kernel, const std::vector<std::string> &bins,
                              const std::vector<std::string> &files,
                              const std::string &shell_command, int timeout_s, int smp) {
    VmRequest request{kernel, bins, files, {}, shell_command, timeout_s};
    if (smp > 0) {
        request.run_vm_args = {"--smp", std::to_string(smp)};
    }
    return run_in_vm(request);
}

GuestRun run_in_vm(const VmRequest &request) {
    std::string cmd = std::string(LOCKWATCH_SOURCE_DIR) + "/tools/vm/run-vm.sh --kernel " +
                      shell_quote(request.kernel) + " --timeout " +
                      std::to_string(request.timeout_s) + " --bin " + shell_quote(LOCKWATCH_BINARY);
    for (const auto &bin : request.bins) {
        cmd += " --bin " + shell_quote(bin);
    }
    for (const auto &file : request.files) {
        cmd += " --file " + shell_quote(file);
    }
    for (const auto &arg : request.run_vm_args) {
        cmd += " " + shell_quote(arg);
    }
    cmd += " -- sh -c " + shell_quote(request.shell_command);
    GuestRun run;
    std::tie(run.output, run.harness_log) = run_with_stderr(cmd, run.exit_status);
    return run;
}

LockwatchVmRun run_lockwatch_vm(const std::vector<std::string> &vm_args,
                                const std::string &shell_command, int timeout_s) {
    std::string cmd = shell_quote(LOCKWATCH_BINARY) + " vm --kernel debian --timeout " +
                      std::to_string(timeout_s);
    for (const auto &arg : vm_args) {
        cmd += " " + shell_quote(arg);
    }
    cmd += " -- sh -c " + shell_quote(shell_command);
    LockwatchVmRun run;
    std::tie(run.findings, run.output) = run_with_stderr(cmd, run.exit_status);
    return run;
}

namespace {

// The last line `cmd` printed, or "" (and all it printed in `error`) when
// it failed.
std::string last_line_of(const std::string &cmd, std::string &error) {
    int status = -1;
    std::string output = run_command(cmd + " 2>&1", status);
    auto lines = lines_of(output);
    if (status != 0 || lines.empty()) {
        error = output;
        return "";
    }
    return lines.back();
}

}  // namespace

std::string build_scenario_module(const std::string &out_dir, const std::string &kernel,
                                  std::string &error) {
    return last_line_of(std::string(LOCKWATCH_SOURCE_DIR) +
                            "/tools/kmod/build-module.sh --kernel " + shell_quote(kernel) +
                            " --out " + shell_quote(out_dir),
                        error);
}

std::string test_kernel_image(const std::string &flavor, std::string &error) {
    return last_line_of(
        std::string(LOCKWATCH_SOURCE_DIR) + "/tools/kernel/build-kernel.sh " + shell_quote(flavor),
        error);
}

std::vector<std::string> lines_of(const std::string &text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        lines.push_back(line);
    }
    return lines;
}

}  // namespace lockwatch::vmtest
