// The BPF boundary: the only code that touches the skeleton, libbpf and the
// kernel's maps. Everything above it sees plain C++ values.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "capture/lock_functions.h"
#include "lockwatch.h"

struct lockwatch_bpf;
struct ring_buffer;
struct bpf_link;

namespace lockwatch {

// One clear line that explains why capture cannot start.
class CaptureError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

enum class HookState { Attached, Unavailable, AttachFailed };

struct HookStatus {
    const LockFunction *function;
    HookState state;
    Availability availability;
    std::string reason;  // why it is not attached; empty when attached
};

struct CaptureOptions {
    bool verbose = false;  // pass libbpf's own log through to stderr
};

class LockCapture {
  public:
    using RecordHandler = std::function<void(const lw_record &)>;

    // Discovers the lock functions, loads the BPF object and attaches every
    // program it can. Throws CaptureError when nothing could be attached.
    explicit LockCapture(const CaptureOptions &options);
    ~LockCapture();
    LockCapture(const LockCapture &) = delete;
    LockCapture &operator=(const LockCapture &) = delete;

    const std::vector<HookStatus> &hooks() const { return hooks_; }
    size_t attached_count() const;

    // Totals since attach, summed over CPUs.
    std::array<uint64_t, LW_FN_COUNT> read_calls() const;
    std::array<uint64_t, LW_LOSS_COUNT> read_losses() const;

    // Waits up to timeout_ms for records and hands each to `handler`.
    // Returns the number of records handled.
    int poll(int timeout_ms, const RecordHandler &handler);

    // The kernel stack recorded under `stack_id`, innermost frame first.
    std::vector<uint64_t> stack(int32_t stack_id) const;

  private:
    void release();
    static int on_ring_record(void *ctx, void *data, size_t size);

    lockwatch_bpf *skel_ = nullptr;
    ring_buffer *records_ = nullptr;
    std::vector<bpf_link *> links_;
    std::vector<HookStatus> hooks_;
    const RecordHandler *handler_ = nullptr;
    uint64_t short_records_ = 0;
};

std::string_view to_string(lw_loss loss);
std::string_view to_string(lw_context context);

}  // namespace lockwatch
