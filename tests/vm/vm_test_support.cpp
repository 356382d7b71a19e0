#include "vm_test_support.h"

#include "vm_script.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace lockwatch::vmtest {

GuestRun run_in_vm(const std::string &kernel, const std::vector<std::string> &bins,
                   const std::string &shell_command, int timeout_s) {
    char log_template[] = "/tmp/lockwatch-vmtest-XXXXXX";
    int log_fd = mkstemp(log_template);
    if (log_fd < 0) {
        throw std::runtime_error("cannot create a temporary file");
    }
    close(log_fd);

    std::string cmd = std::string(LOCKWATCH_SOURCE_DIR) + "/tools/vm/run-vm.sh --kernel " +
                      shell_quote(kernel) + " --timeout " + std::to_string(timeout_s) + " --bin " +
                      shell_quote(LOCKWATCH_BINARY);
    for (const auto &bin : bins) {
        cmd += " --bin " + shell_quote(bin);
    }
    cmd += " -- sh -c " + shell_quote(shell_command) + " 2>" + log_template;

    GuestRun run;
    FILE *pipe = popen(cmd.c_str(), "r");
    if (!pipe) {
        throw std::runtime_error("cannot start run-vm.sh");
    }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) {
        run.output.append(buf, n);
    }
    int status = pclose(pipe);
    run.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream log(log_template);
    std::stringstream text;
    text << log.rdbuf();
    run.harness_log = text.str();
    unlink(log_template);
    return run;
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
