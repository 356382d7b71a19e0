#include "install_paths.h"

#include <cstdlib>
#include <system_error>

namespace lockwatch {

namespace fs = std::filesystem;

namespace {

// PREFIX/lib/lockwatch when this binary is PREFIX/bin/lockwatch of an
// install (the directory holds tools/vm/run-vm.sh); empty otherwise.
fs::path installed_lib_dir() {
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (ec) {
        return {};
    }
    fs::path lib = self.parent_path().parent_path() / LOCKWATCH_INSTALL_LIB_SUBDIR;
    return fs::exists(lib / "tools" / "vm" / "run-vm.sh", ec) ? lib : fs::path();
}

}  // namespace

fs::path self_path() {
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path("lockwatch") : self;
}

fs::path tools_dir() {
    if (const char *dir = std::getenv("LOCKWATCH_TOOLS_DIR")) {
        return dir;
    }
    if (fs::path lib = installed_lib_dir(); !lib.empty()) {
        return lib / "tools";
    }
    return fs::path(LOCKWATCH_SOURCE_DIR) / "tools";
}

fs::path repro_dir() {
    if (fs::path lib = installed_lib_dir(); !lib.empty()) {
        return lib / "repro";
    }
    return fs::path(LOCKWATCH_BUILD_DIR) / "tools" / "repro";
}

}  // namespace lockwatch
