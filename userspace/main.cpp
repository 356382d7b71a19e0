// lockwatch: lockdep's verdicts on kernels built without lockdep.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "commands.h"
#include "exit_status.h"
#include "version.h"

namespace {

// What a command printed to stdout must have reached it: a full disk is an
// error; a reader that went away (`| head`) is not.
int check_stdout(int status) {
    errno = 0;
    const bool flushed = std::fflush(stdout) == 0;
    const int err = errno;
    if ((flushed && !std::ferror(stdout)) || err == EPIPE || status != 0) {
        return status;  // written; or the reader is gone; or the command said why
    }
    std::fprintf(stderr, "lockwatch: writing standard output failed%s%s\n", err ? ": " : "",
                 err ? std::strerror(err) : "");
    return lockwatch::kExitCannotTrace;
}

}  // namespace

int main(int argc, char **argv) {
    // A closed pipe is a write error (EPIPE) that each command handles,
    // never a silent death by signal halfway through a report.
    std::signal(SIGPIPE, SIG_IGN);
    CLI::App app{
        "lockwatch - lockdep's irq-safety and lock-order checks on a live kernel built without "
        "lockdep.\n\n"
        "BPF programs watch every out-of-line spinlock and rwlock operation, work out the\n"
        "interrupt context, and hand new facts to this daemon, which keeps lockdep's\n"
        "dependency graph and reports bugs in lockdep's own format.\n\n"
        "Run 'lockwatch COMMAND --help' for the options of each command.",
        "lockwatch"};
    app.footer(lockwatch::kExitStatusHelp);
    app.set_version_flag("--version", std::string("lockwatch ") + LOCKWATCH_VERSION);
    app.require_subcommand(1);
    app.fallthrough(false);

    std::vector<std::pair<CLI::App *, lockwatch::CommandRunner>> commands;
    auto add = [&](lockwatch::CommandRunner runner) {
        auto all = app.get_subcommands([](CLI::App *) { return true; });
        commands.emplace_back(all.back(), std::move(runner));
    };
    add(lockwatch::add_run_command(app));
    add(lockwatch::add_replay_command(app));
    add(lockwatch::add_vm_command(app));
    add(lockwatch::add_check_command(app));

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError &e) {
        // --help and --version exit 0; every parse error is a usage error
        // (CLI11's own codes, 105 and up, are not lockwatch's contract).
        return app.exit(e) == 0 ? lockwatch::kExitNoFinding : lockwatch::kExitUsage;
    }
    for (auto &[sub, runner] : commands) {
        if (sub->parsed()) {
            return check_stdout(runner());
        }
    }
    return lockwatch::kExitUsage;
}
