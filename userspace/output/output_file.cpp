#include "output/output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace lockwatch::output {

void OutputFileCloser::operator()(std::FILE *file) const {
    if (file && file != stdout) {
        std::fclose(file);
    }
}

OutputFile open_output_file(const std::string &path, std::string *error) {
    if (path == "-") {
        return OutputFile(stdout);
    }
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        const int open_errno = errno;
        struct stat st {};
        if (open_errno == ELOOP && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
            *error = fmt::format("refusing to write {}: it is a symbolic link", path);
        } else {
            *error = fmt::format("cannot write {}: {}", path, std::strerror(open_errno));
        }
        return nullptr;
    }
    std::FILE *file = ::fdopen(fd, "a");
    if (!file) {
        *error = fmt::format("cannot write {}: {}", path, std::strerror(errno));
        ::close(fd);
        return nullptr;
    }
    return OutputFile(file);
}

}  // namespace lockwatch::output
