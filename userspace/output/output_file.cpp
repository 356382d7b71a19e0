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

namespace {

// open(2) that never follows a link at PATH; -1 with *error set.
int open_no_follow(const std::string &path, int flags, std::string *error) {
    int fd = ::open(path.c_str(), flags | O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        const int open_errno = errno;
        struct stat st {};
        if (open_errno == ELOOP && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
            *error = fmt::format("refusing to write {}: it is a symbolic link", path);
        } else {
            *error = fmt::format("cannot write {}: {}", path, std::strerror(open_errno));
        }
    }
    return fd;
}

// A new file beside PATH (created exclusively by mkostemp, so no link, FIFO
// or file of someone else's can be there), made mode 0644. -1, with *error
// set, when it cannot be.
int create_beside(const std::string &path, std::string *temp, std::string *error) {
    *temp = path + ".XXXXXX";
    int fd = ::mkostemp(temp->data(), O_CLOEXEC);
    if (fd < 0 || ::fchmod(fd, 0644) != 0) {
        *error = fmt::format("cannot write {}: {}", path, std::strerror(errno));
        if (fd >= 0) {
            ::close(fd);
            ::unlink(temp->c_str());
        }
        return -1;
    }
    return fd;
}

}  // namespace

OutputFile create_output_file(const std::string &path, std::string *error) {
    std::string temp;
    int fd = create_beside(path, &temp, error);
    if (fd < 0) {
        return nullptr;
    }
    // In place at once: what was at PATH (a link too) is replaced, not followed.
    std::FILE *file = ::rename(temp.c_str(), path.c_str()) == 0 ? ::fdopen(fd, "w") : nullptr;
    if (!file) {
        *error = fmt::format("cannot write {}: {}", path, std::strerror(errno));
        ::close(fd);
        ::unlink(temp.c_str());
        return nullptr;
    }
    return OutputFile(file);
}

OutputFile open_output_file(const std::string &path, std::string *error) {
    if (path == "-") {
        return OutputFile(stdout);
    }
    int fd = open_no_follow(path, O_APPEND, error);
    if (fd < 0) {
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

bool replace_file(const std::string &path, const std::string &content, std::string *error) {
    std::string temp;
    int fd = create_beside(path, &temp, error);
    if (fd < 0) {
        return false;
    }
    int failed_errno = 0;
    for (std::size_t done = 0; !failed_errno && done < content.size();) {
        ssize_t n = ::write(fd, content.data() + done, content.size() - done);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
        } else if (n == 0 || errno != EINTR) {
            failed_errno = n == 0 ? EIO : errno;
        }
    }
    if (::close(fd) != 0 && !failed_errno) {
        failed_errno = errno;
    }
    if (!failed_errno && ::rename(temp.c_str(), path.c_str()) != 0) {
        failed_errno = errno;
    }
    if (failed_errno) {
        *error = fmt::format("cannot write {}: {}", path, std::strerror(failed_errno));
        ::unlink(temp.c_str());
        return false;
    }
    return true;
}

}  // namespace lockwatch::output
