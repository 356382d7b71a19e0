// Where lockwatch finds what it runs besides itself: the VM and kernel
// scripts (tools/) and the reproducers it copies into every guest. An
// installed lockwatch finds them relative to its own install prefix
// (PREFIX/bin/lockwatch -> PREFIX/lib/lockwatch/); one run from its build
// tree finds them in the source and build trees it was built from.
#pragma once

#include <filesystem>

namespace lockwatch {

// $LOCKWATCH_TOOLS_DIR; else PREFIX/lib/lockwatch/tools when this binary is
// installed there (it has vm/run-vm.sh); else the source tree's tools/.
std::filesystem::path tools_dir();
// PREFIX/lib/lockwatch/repro when installed, else the build tree's
// tools/repro: seed-repro and seed-repro-m32 for the guest.
std::filesystem::path repro_dir();
// This binary, from /proc/self/exe ("lockwatch" when that cannot be read).
std::filesystem::path self_path();

}  // namespace lockwatch
