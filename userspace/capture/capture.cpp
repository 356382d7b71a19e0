#include "capture/capture.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "capture/attach_error.h"
#include "capture/kallsyms.h"
#include "lockwatch.skel.h"

namespace lockwatch {

namespace {

bool g_libbpf_verbose = false;

int libbpf_log(enum libbpf_print_level level, const char *format, va_list args) {
    if (!g_libbpf_verbose && level != LIBBPF_WARN) {
        return 0;
    }
    // libbpf's warnings are repeated by our own one-line errors; show them
    // only on request so that a refused attach reads as one line.
    if (!g_libbpf_verbose) {
        return 0;
    }
    return vfprintf(stderr, format, args);
}

bpf_program *program_for(lockwatch_bpf *skel, const LockFunction &fn) {
    std::string name = fmt::format("lw_{}", fn.symbol);
    return bpf_object__find_program_by_name(skel->obj, name.c_str());
}

}  // namespace

std::string_view to_string(lw_loss loss) {
    switch (loss) {
        case LW_LOSS_RECURSION:
            return "recursion";
        case LW_LOSS_RINGBUF_FULL:
            return "ring buffer full";
        case LW_LOSS_STACK:
            return "stack unavailable";
        case LW_LOSS_COUNT:
            break;
    }
    return "?";
}

std::string_view to_string(lw_context context) {
    switch (context) {
        case LW_CTX_TASK:
            return "task";
        case LW_CTX_SOFTIRQ:
            return "softirq";
        case LW_CTX_HARDIRQ:
            return "hardirq";
        case LW_CTX_NMI:
            return "nmi";
        case LW_CTX_COUNT:
            break;
    }
    return "?";
}

LockCapture::LockCapture(const CaptureOptions &options) {
    g_libbpf_verbose = options.verbose;
    libbpf_set_print(libbpf_log);

    TracingEnvironment env = read_tracing_environment();
    if (!env.has_vmlinux_btf) {
        throw CaptureError(explain_tracing_failure("load lock tracing programs", ENOENT, env));
    }

    btf *vmlinux_btf = btf__load_vmlinux_btf();
    if (!vmlinux_btf) {
        throw CaptureError(explain_tracing_failure("read the kernel's BTF", errno, env));
    }
    Kallsyms kallsyms = Kallsyms::load();
    auto availability = discover_lock_functions({
        .has_btf_function =
            [&](std::string_view name) {
                return btf__find_by_name_kind(vmlinux_btf, std::string(name).c_str(),
                                              BTF_KIND_FUNC) > 0;
            },
        .has_text_symbol = [&](std::string_view name) { return kallsyms.has_text_symbol(name); },
    });
    btf__free(vmlinux_btf);

    skel_ = lockwatch_bpf__open();
    if (!skel_) {
        throw CaptureError(explain_tracing_failure("open the BPF object", errno, env));
    }
    for (const LockFunction &fn : lock_functions()) {
        bool available = availability[fn.id] == Availability::OutOfLine;
        bpf_program__set_autoload(program_for(skel_, fn), available);
        hooks_.push_back({&fn, available ? HookState::Attached : HookState::Unavailable,
                          availability[fn.id],
                          available ? "" : std::string(to_string(availability[fn.id]))});
    }
    if (attached_count() == 0) {
        release();
        throw CaptureError(
            "this kernel has none of the out-of-line lock functions lockwatch "
            "hooks (all inlined?): it is not supported");
    }

    if (int err = lockwatch_bpf__load(skel_); err) {
        release();
        throw CaptureError(explain_tracing_failure("load the lock tracing programs", -err, env));
    }

    for (HookStatus &hook : hooks_) {
        if (hook.state != HookState::Attached) {
            continue;
        }
        bpf_program *prog = program_for(skel_, *hook.function);
        bpf_link *link = bpf_program__attach(prog);
        if (!link) {
            int err = errno;
            hook.state = HookState::AttachFailed;
            hook.reason = explain_tracing_failure(
                fmt::format("attach fentry program to {}", hook.function->symbol), err, env);
            continue;
        }
        links_.push_back(link);
    }
    if (attached_count() == 0) {
        std::string reason;
        for (const HookStatus &hook : hooks_) {
            if (hook.state == HookState::AttachFailed) {
                reason = hook.reason;
                break;
            }
        }
        release();
        throw CaptureError(reason.empty() ? "no lock function could be attached" : reason);
    }

    records_ = ring_buffer__new(bpf_map__fd(skel_->maps.records), on_ring_record, this, nullptr);
    if (!records_) {
        int err = errno;
        release();
        throw CaptureError(explain_tracing_failure("open the ring buffer", err, env));
    }
}

LockCapture::~LockCapture() {
    release();
}

void LockCapture::release() {
    ring_buffer__free(records_);
    records_ = nullptr;
    // Links first: detaching stops the programs before their maps go away.
    for (bpf_link *link : links_) {
        bpf_link__destroy(link);
    }
    links_.clear();
    lockwatch_bpf__destroy(skel_);
    skel_ = nullptr;
}

size_t LockCapture::attached_count() const {
    size_t n = 0;
    for (const HookStatus &hook : hooks_) {
        n += hook.state == HookState::Attached;
    }
    return n;
}

namespace {

template <size_t N>
std::array<uint64_t, N> sum_percpu_array(int map_fd) {
    std::array<uint64_t, N> totals{};
    int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0) {
        return totals;
    }
    std::vector<uint64_t> values(static_cast<size_t>(ncpus));
    for (uint32_t key = 0; key < N; ++key) {
        if (bpf_map_lookup_elem(map_fd, &key, values.data()) != 0) {
            continue;
        }
        for (uint64_t v : values) {
            totals[key] += v;
        }
    }
    return totals;
}

}  // namespace

std::array<uint64_t, LW_FN_COUNT> LockCapture::read_calls() const {
    return sum_percpu_array<LW_FN_COUNT>(bpf_map__fd(skel_->maps.calls));
}

std::array<uint64_t, LW_LOSS_COUNT> LockCapture::read_losses() const {
    return sum_percpu_array<LW_LOSS_COUNT>(bpf_map__fd(skel_->maps.losses));
}

int LockCapture::on_ring_record(void *ctx, void *data, size_t size) {
    auto *self = static_cast<LockCapture *>(ctx);
    if (size < sizeof(lw_record)) {
        ++self->short_records_;
        return 0;
    }
    lw_record record;
    std::memcpy(&record, data, sizeof(record));
    (*self->handler_)(record);
    return 0;
}

int LockCapture::poll(int timeout_ms, const RecordHandler &handler) {
    handler_ = &handler;
    int n = ring_buffer__poll(records_, timeout_ms);
    handler_ = nullptr;
    if (n == -EINTR) {
        return 0;
    }
    return n;
}

std::vector<uint64_t> LockCapture::stack(int32_t stack_id) const {
    std::vector<uint64_t> frames;
    if (stack_id < 0) {
        return frames;
    }
    std::array<uint64_t, 127> ips{};
    uint32_t key = static_cast<uint32_t>(stack_id);
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.stacks), &key, ips.data()) != 0) {
        return frames;
    }
    for (uint64_t ip : ips) {
        if (ip == 0) {
            break;
        }
        frames.push_back(ip);
    }
    return frames;
}

}  // namespace lockwatch
