// Runs a command inside a test VM through tools/vm/run-vm.sh and captures
// what the guest command printed (the results port) and its exit status.
#pragma once

#include <string>
#include <vector>

namespace lockwatch::vmtest {

struct GuestRun {
    int exit_status = -1;  // run-vm.sh's exit status: the guest command's, or the harness's error
    std::string output;    // the guest command's stdout+stderr
    std::string harness_log;  // run-vm.sh's own stderr lines
};

// `kernel` is what run-vm.sh --kernel takes (debian, or a path). `bins` are
// extra host binaries copied into the guest; the lockwatch binary always is.
GuestRun run_in_vm(const std::string &kernel, const std::vector<std::string> &bins,
                   const std::string &shell_command, int timeout_s = 300);

// Everything run-vm.sh can be asked for; the lockwatch binary always goes in.
struct VmRequest {
    std::string kernel = "debian";         // what run-vm.sh --kernel takes
    std::vector<std::string> bins;         // extra host binaries
    std::vector<std::string> files;        // "SRC[:DEST]", as run-vm.sh --file takes
    std::vector<std::string> run_vm_args;  // more run-vm.sh options: --modules, --net, --smp
    std::string shell_command;
    int timeout_s = 300;
};
GuestRun run_in_vm(const VmRequest &request);

// As run_in_vm(), with extra files ("SRC[:DEST]", as run-vm.sh --file takes)
// and `smp` guest CPUs (0: run-vm.sh's default).
GuestRun run_in_vm_with_files(const std::string &kernel, const std::vector<std::string> &bins,
                              const std::vector<std::string> &files,
                              const std::string &shell_command, int timeout_s = 300, int smp = 0);

// Builds tools/kmod's lock-scenario module into `out_dir` for `kernel`:
// "debian" (the kernel `run_in_vm("debian")` boots), "seed" or "lockdep"
// (tools/kernel/build-kernel.sh's); returns the .ko's path, or "" (and the
// reason in `error`) when it cannot be built.
std::string build_scenario_module(const std::string &out_dir, const std::string &kernel,
                                  std::string &error);

// The bzImage of tools/kernel/build-kernel.sh's `flavor` (seed, lockdep),
// built when not cached; "" (and the reason in `error`) when there is none.
std::string test_kernel_image(const std::string &flavor, std::string &error);

// `lockwatch vm` on Debian's kernel: the findings (its stdout) apart from
// what the guest printed and what lockwatch vm and run-vm.sh said (stderr).
struct LockwatchVmRun {
    int exit_status = -1;
    std::string findings;
    std::string output;
};
LockwatchVmRun run_lockwatch_vm(const std::vector<std::string> &vm_args,
                                const std::string &shell_command, int timeout_s = 300);

std::vector<std::string> lines_of(const std::string &text);

}  // namespace lockwatch::vmtest
