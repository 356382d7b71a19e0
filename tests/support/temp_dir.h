// What many unit tests share: a fresh directory under /tmp that is removed
// with its owner, and a whole file read into a string.
#pragma once

#include <stdlib.h>

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

}  // namespace lockwatch::test_support
