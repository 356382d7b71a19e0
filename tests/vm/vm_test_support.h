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

std::vector<std::string> lines_of(const std::string &text);

}  // namespace lockwatch::vmtest
