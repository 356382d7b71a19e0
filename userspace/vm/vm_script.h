// The guest side of `lockwatch vm`: the shell script that runs lockwatch and
// the command inside the VM, and the reading of what comes back. Pure
// functions, so that they can be tested without a VM.
//
// A guest is not trusted: its command runs as root and may be hostile, and
// so may its kernel. Two channels come back (tools/vm/README.md): the
// guest's output (what the command and lockwatch print), shown on stderr and
// never parsed, and the control port, where only lines that carried the
// boot's token arrive (run-vm.sh checks it and strips it): lockwatch's
// findings as JSON lines and the marker lines with the exit statuses. Both
// are read here as bytes from an adversary: lines are capped, every string
// is escaped before it reaches a terminal or the journal, and a line that is
// not what lockwatch sends is rejected and counted, never thrown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/finding.h"
#include "exit_status.h"
#include "output/json.h"

namespace lockwatch {

// lockwatch vm's statuses: the contract of every command (exit_status.h).
inline constexpr int kVmExitNoFinding = kExitNoFinding;
inline constexpr int kVmExitFindings = kExitFindings;
inline constexpr int kVmExitUsage = kExitUsage;
inline constexpr int kVmExitTracerFailed = kExitCannotTrace;
inline constexpr int kVmExitCommandFailed = kExitCommandFailed;
inline constexpr int kVmExitVmFailed = kExitVmFailed;

// The longest line taken from a guest, either channel. lockwatch's largest
// lines are findings with every stack and dependency path: the seed bug's
// is 75 KiB (stacks of 58 frames, each in its text too). 1 MiB leaves more
// than ten times that and bounds what a guest can make the host hold per
// channel; run-vm.sh applies the same limit.
inline constexpr std::size_t kMaxGuestLineBytes = 1 << 20;

// How large a string or an array may be in a finding from a guest. Kernel
// symbols are at most 512 bytes (KSYM_NAME_LEN), class names are made of
// symbols, BTF names and offsets, a circular finding's signature key joins
// its cycle's names; held stacks are at most 48 deep (MAX_LOCK_DEPTH), BPF
// stacks 127 frames before inline frames are added.
inline constexpr output::JsonReadLimits kGuestJsonLimits{.max_string_bytes = 8192,
                                                         .max_array_items = 1024};

std::string shell_quote(const std::string &s);

// Starts `lockwatch run --json -` in the guest with its JSON lines on the
// control port (fd 9, each line marked with the token run-vm.sh's /init
// hands over in LOCKWATCH_VM_TOKEN), waits until it is attached, runs
// `command` with neither the control port nor the token, keeps tracing
// `linger_s` seconds, stops lockwatch, and reports both exit statuses on
// marker lines of the control port.
std::string guest_script(const std::vector<std::string> &command, const std::string &backend,
                         double linger_s, const std::vector<std::string> &focus = {},
                         const std::vector<std::string> &run_args = {});

// `text` with every byte a terminal could act on written out as \xNN: C0
// controls but tab, DEL, C1 controls (U+0080-U+009F), the bidirectional
// overrides and isolates (U+202A-U+202E, U+2066-U+2069), and bytes that are
// not UTF-8. What remains is printable UTF-8.
std::string escape_guest_text(std::string_view text);

// Cuts a byte stream into lines of at most `max_bytes` (the newline not
// counted). The rest of a longer line is dropped, and counted: handlers see
// each line once, with the number of bytes dropped from it (0 for a line
// within the limit). Never holds more than `max_bytes` of one line.
class GuestLineSplitter {
  public:
    using Handler = std::function<void(std::string_view line, std::uint64_t dropped_bytes)>;
    explicit GuestLineSplitter(std::size_t max_bytes = kMaxGuestLineBytes) : max_(max_bytes) {}
    void feed(std::string_view bytes, const Handler &on_line);
    // End of stream: a last line without a newline is still a line.
    void finish(const Handler &on_line);

  private:
    std::size_t max_;
    std::string line_;
    std::uint64_t dropped_ = 0;
};

struct GuestOutcome {
    std::optional<int> command_exit;
    std::optional<int> tracer_exit;
    int findings = 0;
    int rejected = 0;  // control lines that were neither a marker nor a finding
};

struct ControlLine {
    std::optional<engine::Finding> finding;  // every string escaped, within kGuestJsonLimits
    // Why the line was rejected: one printable line, empty when it was taken.
    std::string rejected;
};

// One line of the control port, the token already checked and removed.
ControlLine parse_control_line(std::string_view line, GuestOutcome *outcome);

// run-vm.sh's own failures are 240-246 (tools/vm/README.md).
int vm_exit_status(int harness_status, const GuestOutcome &outcome);

}  // namespace lockwatch
