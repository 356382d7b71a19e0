// What many unit tests share: a fresh directory under /tmp that is removed
// with its owner, and a whole file read into a string.
#pragma once

#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace lockwatch::test_support {

// The bytes of `path`, or "" when it cannot be read.
inline std::string read_file(const std::filesystem::path &path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// mkdtemp() under /tmp, named after `what`; removed, with everything in
// it, by the destructor. Throws when it cannot be made (the test fails).
class TempDir {
  public:
    explicit TempDir(const std::string &what) {
        std::string name = "/tmp/lockwatch-" + what + "-XXXXXX";
        if (!mkdtemp(name.data())) {
            throw std::runtime_error("mkdtemp " + name + " failed");
        }
        path_ = name;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir &) = delete;
    TempDir &operator=(const TempDir &) = delete;

    const std::filesystem::path &path() const { return path_; }
    std::filesystem::path operator/(const std::string &name) const { return path_ / name; }

  private:
    std::filesystem::path path_;
};

// A shell command's exit status and what it wrote to each stream.
struct ShellRun {
    int status = -1;
    std::string out, err;
};

// Runs `command` with std::system (sh), its stdout and stderr in the files
// `out` and `err` of `dir`, and reads them back.
inline ShellRun run_shell(const std::string &command, const std::filesystem::path &dir) {
    std::string out = (dir / "out").string(), err = (dir / "err").string();
    int rc = std::system((command + " >'" + out + "' 2>'" + err + "'").c_str());
    return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, read_file(out), read_file(err)};
}

}  // namespace lockwatch::test_support
