// The file a command writes findings to (--json FILE). lockwatch runs as
// root, often in world-writable directories: it creates the file itself or
// appends to it (a restarted daemon keeps the findings of its earlier runs),
// and never follows a symbolic link planted in its place.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

namespace lockwatch::output {

// Closes the file unless it is standard output.
struct OutputFileCloser {
    void operator()(std::FILE *file) const;
};
using OutputFile = std::unique_ptr<std::FILE, OutputFileCloser>;

// Standard output for "-"; else PATH opened for appending (created with
// mode 0644 if missing), close-on-exec. Null when it cannot be, and then
// *error is one line: "refusing to write PATH: it is a symbolic link",
// "cannot write PATH: Permission denied", ...
OutputFile open_output_file(const std::string &path, std::string *error);

// A new, empty file at PATH (mode 0644) for writing from its start (--record
// FILE): made beside it and renamed into place at once, so that whatever
// was at PATH (a planted link, a FIFO, a file another user owns or has a
// second link to) is replaced, never opened. Null, with one line in *error,
// when it cannot be.
OutputFile create_output_file(const std::string &path, std::string *error);

// Replaces PATH with `content` (--graph FILE): written to a new file beside
// it (created exclusively, mode 0644), then renamed over it, so that a
// reader never sees half a file and a symbolic link at PATH is replaced,
// never followed. False, with one line in *error, when it cannot be.
bool replace_file(const std::string &path, const std::string &content, std::string *error);

}  // namespace lockwatch::output
