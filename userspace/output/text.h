// lockdep-format text: each finding as lockdep prints a report of its kind,
// frames as syzbot prints them.
#pragma once

#include <cstdio>
#include <ostream>
#include <string>

#include "engine/finding.h"
#include "output/sink.h"

namespace lockwatch::output {

// "io_submit_one+0x97f/0x2b00 fs/aio.c:1878" or
// "aio_poll fs/aio.c:1767 [inline]". No addresses, ever.
std::string format_frame(const engine::Frame &frame);

// The report, section by section as lockdep prints it for the kind. The
// finding's kernel_ident replaces lockdep's "5.6.0-rc2 #0 Not tainted" line.
std::string render_text(const engine::Finding &finding);

// The text, each report preceded by its title line ("lockwatch: possible
// deadlock in io_submit_one") and followed by a blank line.
class TextSink : public StreamSink {
  public:
    explicit TextSink(std::ostream &out) : StreamSink(out) {}
    explicit TextSink(std::FILE *file) : StreamSink(file) {}
    bool write(const engine::Finding &finding) override;
};

}  // namespace lockwatch::output
