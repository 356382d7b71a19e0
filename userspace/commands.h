// Subcommands of the lockwatch binary. Each one registers its options on the
// top-level CLI11 app and returns the function that runs it once parsed; the
// returned int is the process exit status.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace lockwatch {

using CommandRunner = std::function<int()>;

CommandRunner add_run_command(CLI::App &app);
CommandRunner add_replay_command(CLI::App &app);
CommandRunner add_vm_command(CLI::App &app);
CommandRunner add_check_command(CLI::App &app);

}  // namespace lockwatch
