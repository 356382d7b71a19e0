#include "capture/capture.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "capture/attach_error.h"
#include "capture/kallsyms.h"
#include "capture/kernel_btf.h"
#include "lockwatch.skel.h"

namespace lockwatch {

namespace {

bool g_libbpf_verbose = false;
// The verifier's last word on the last program it refused: the one line that
// says why a load failed, which errno alone does not.
std::string g_verifier_verdict;

// The last non-empty line of a verifier log libbpf prints between
// "-- BEGIN PROG LOAD LOG --" and "-- END PROG LOAD LOG --" (lines that only
// count processed instructions are skipped).
void remember_verifier_verdict(const std::string &message) {
    auto begin = message.find("-- BEGIN PROG LOAD LOG --");
    auto end = message.find("-- END PROG LOAD LOG --");
    if (begin == std::string::npos || end == std::string::npos || end < begin) {
        return;
    }
    std::string log = message.substr(begin, end - begin);
    std::string verdict;
    size_t pos = 0;
    while (pos < log.size()) {
        size_t nl = log.find('\n', pos);
        std::string line = log.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        pos = nl == std::string::npos ? log.size() : nl + 1;
        if (!line.empty() && !line.starts_with("processed ") && !line.starts_with("-- BEGIN") &&
            !line.starts_with("verification time")) {
            verdict = line;
        }
    }
    if (!verdict.empty()) {
        g_verifier_verdict = verdict;
    }
}

int libbpf_log(enum libbpf_print_level level, const char *format, va_list args) {
    // Verifier logs run to megabytes: size the buffer to the message, so that
    // the verdict on its last line is never cut off.
    va_list copy;
    va_copy(copy, args);
    int n = vsnprintf(nullptr, 0, format, copy);
    va_end(copy);
    if (n < 0) {
        return 0;
    }
    std::string text(static_cast<size_t>(n) + 1, '\0');
    vsnprintf(text.data(), text.size(), format, args);
    text.resize(static_cast<size_t>(n));
    const char *buf = text.c_str();
    if (level == LIBBPF_WARN) {
        remember_verifier_verdict(buf);
    }
    // libbpf's warnings are repeated by our own one-line errors; show them
    // only on request so that a refused load or attach reads as one line.
    if (!g_libbpf_verbose) {
        return 0;
    }
    return std::fputs(buf, stderr);
}

bool is_preempt_rt() {
    std::ifstream realtime("/sys/kernel/realtime");
    int value = 0;
    return realtime && (realtime >> value) && value == 1;
}

// lockdep's tracepoints exist only where lockdep is built in.
bool has_lockdep_tracepoints(const btf &vmlinux_btf) {
    return btf__find_by_name_kind(&vmlinux_btf, "btf_trace_lock_acquire", BTF_KIND_TYPEDEF) > 0 &&
           btf__find_by_name_kind(&vmlinux_btf, "btf_trace_lock_release", BTF_KIND_TYPEDEF) > 0;
}

bool has_btf_function(const btf &vmlinux_btf, const char *name) {
    return btf__find_by_name_kind(&vmlinux_btf, name, BTF_KIND_FUNC) > 0;
}

// Which lock functions this kernel has: in BTF (fentry can attach), in
// kallsyms only (kprobes can), or neither.
std::array<Availability, LW_FN_COUNT> lock_functions_in(const btf &vmlinux_btf,
                                                        const Kallsyms &kallsyms) {
    return discover_lock_functions({
        .has_btf_function =
            [&](std::string_view name) {
                return has_btf_function(vmlinux_btf, std::string(name).c_str());
            },
        .has_text_symbol = [&](std::string_view name) { return kallsyms.has_text_symbol(name); },
    });
}

// Whether the fentry/fexit programs that void what the BPF side keeps of
// lock classes (lockwatch.bpf.c, void_kept_classes) can attach here: each
// cache is used only when every program guarding it is attached.
LockCapture::ClassCacheGuards class_cache_guards(const btf &vmlinux_btf, const Kallsyms &kallsyms) {
    // fentry needs the function in BTF and, at load, under its own name in
    // kallsyms: a kernel whose only copy is name.isra.0 would fail the load
    // of every program.
    auto fentry_can_attach = [&](const char *name) {
        return has_btf_function(vmlinux_btf, name) && kallsyms.has_text_symbol(name);
    };
    LockCapture::ClassCacheGuards guards;
    guards.cache_release = fentry_can_attach("slab_kmem_cache_release");
    auto kfence_copies = kallsyms.function_copies("__kfence_alloc");
    guards.kfence = !kfence_copies.empty();
    auto free_slab_copies = kallsyms.function_copies("__free_slab");
    if (!fentry_can_attach("__free_slab")) {
        guards.address_cache_off =
            "__free_slab is missing from this kernel's BTF or kallsyms (fentry needs both)";
    } else if (free_slab_copies.size() != 1) {
        guards.address_cache_off =
            fmt::format("__free_slab has {} copies in kallsyms: one fentry would miss the others",
                        free_slab_copies.size());
    } else if (guards.kfence &&
               (!fentry_can_attach("__kfence_alloc") || kfence_copies.size() != 1)) {
        guards.address_cache_off =
            "__kfence_alloc (KFENCE) is missing from this kernel's BTF or kallsyms, or has "
            "copies there";
    }
    return guards;
}

// The verifier's verdict when it gave one: errno alone says little.
std::string explain_load_failure(int err, const TracingEnvironment &env) {
    if (!g_verifier_verdict.empty() && err != -EPERM) {
        return fmt::format(
            "cannot load the lock tracing programs: {} ({}): the kernel's verifier said: "
            "\"{}\"; this kernel is not supported as built (--verbose shows the whole log)",
            std::strerror(-err), strerrorname_np(-err) ? strerrorname_np(-err) : "?",
            g_verifier_verdict);
    }
    return explain_tracing_failure("load the lock tracing programs", -err, env);
}

// How hard each program was to verify: the number to watch when the
// programs grow towards the verifier's limit of 1M instructions.
void print_verified_instructions(bpf_object *obj) {
    bpf_program *loaded;
    bpf_object__for_each_program(loaded, obj) {
        bpf_prog_info info{};
        uint32_t len = sizeof(info);
        int fd = bpf_program__fd(loaded);
        if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
            fmt::print(stderr, "lockwatch: {} verified {} instructions\n",
                       bpf_program__name(loaded), info.verified_insns);
        }
    }
}

size_t count_hooks(const std::vector<HookStatus> &hooks, HookState state) {
    return std::count_if(hooks.begin(), hooks.end(),
                         [&](const HookStatus &hook) { return hook.state == state; });
}

}  // namespace

uint64_t CaptureLosses::total() const {
    uint64_t n = kernel_recursion_misses + short_records + malformed_records + unread_at_stop;
    for (uint64_t v : bpf) {
        n += v;
    }
    return n;
}

std::vector<bpf_program *> LockCapture::programs_for(const HookStatus &hook) const {
    std::vector<bpf_program *> programs;
    for (const std::string &name : hook_program_names(hook)) {
        programs.push_back(bpf_object__find_program_by_name(skel_->obj, name.c_str()));
    }
    return programs;
}

bpf_program *LockCapture::tracepoint_program() const {
    return bpf_object__find_program_by_name(skel_->obj, backend_->tracepoint_program);
}

std::string_view to_string(lw_loss loss) {
    switch (loss) {
        case LW_LOSS_RINGBUF_FULL:
            return "ring buffer full";
        case LW_LOSS_STACK:
            return "stack unavailable";
        case LW_LOSS_HELD_OVERFLOW:
            return "held-lock stack overflow";
        case LW_LOSS_DEDUP_FULL:
            return "facts not sent: dedup map full";
        case LW_LOSS_COUNT:
            break;
    }
    return "?";
}

std::string_view to_string(lw_note note) {
    switch (note) {
        case LW_NOTE_UNMATCHED_RELEASE:
            return "unmatched releases";
        case LW_NOTE_STALE_HELD:
            return "stale held locks dropped";
        case LW_NOTE_IRQ_STATE_INFERRED:
            return "irq state inferred";
        case LW_NOTE_OWN_LOCK_OPS:
            return "own lock ops skipped";
        case LW_NOTE_DEDUP_FAILED:
            return "dedup inserts failed";
        case LW_NOTE_EDGES_KEPT:
            return "edges map entries";
        case LW_NOTE_CLASSES_KEPT:
            return "class_usage map entries";
        case LW_NOTE_COUNT:
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
    alloc_sites_wanted_ = options.alloc_sites;
    libbpf_set_print(libbpf_log);
    env_ = read_tracing_environment();
    try {
        KernelCheck kernel = check_kernel();
        choose_backend(options.backend, kernel);
        Kallsyms kallsyms = Kallsyms::load();
        auto availability = lock_functions_in(*kernel.vmlinux_btf, kallsyms);
        guards_ = class_cache_guards(*kernel.vmlinux_btf, kallsyms);
        kernel_counts_kprobe_skips_ = counts_kprobe_skips(*kernel.vmlinux_btf);
        kernel.vmlinux_btf.reset();
        open_programs();
        plan_hooks(options.focus, kallsyms, availability);
        skel_->rodata->nmi_graph = options.nmi_graph;
        skel_->rodata->record_ops = options.record_ops;
        skel_->rodata->profile_phases = options.profile_phases;
        load(options.verbose);
        attach_in_order();
        open_ring_buffer();
    } catch (...) {
        release();  // a constructor that throws gets no destructor
        throw;
    }
}

LockCapture::KernelCheck LockCapture::check_kernel() const {
    if (is_preempt_rt()) {
        throw CaptureError(
            "this is a PREEMPT_RT kernel: its spinlocks sleep and are not the "
            "_raw_spin_* functions lockwatch hooks, so it is not supported");
    }
    if (!env_.has_vmlinux_btf) {
        throw CaptureError(explain_tracing_failure("load lock tracing programs", ENOENT, env_));
    }
    VmlinuxBtf vmlinux_btf(btf__load_vmlinux_btf(), &btf__free);
    if (!vmlinux_btf) {
        throw CaptureError(explain_tracing_failure("read the kernel's BTF", errno, env_));
    }
    bool has_lockdep = has_lockdep_tracepoints(*vmlinux_btf);
    return {std::move(vmlinux_btf), has_lockdep};
}

void LockCapture::choose_backend(Backend requested, const KernelCheck &kernel) {
    backend_ = resolve_backend(requested, kernel.has_lockdep_tracepoints);
    if (!backend_) {
        throw CaptureError(std::string(backend_entry(requested).needs_lockdep));
    }
}

// Every program starts switched off; planning switches on those it attaches.
void LockCapture::open_programs() {
    skel_ = lockwatch_bpf__open();
    if (!skel_) {
        throw CaptureError(explain_tracing_failure("open the BPF object", errno, env_));
    }
    bpf_program *prog;
    bpf_object__for_each_program(prog, skel_->obj) {
        bpf_program__set_autoload(prog, false);
    }
}

void LockCapture::plan_hooks(const std::vector<std::string> &focus, const Kallsyms &kallsyms,
                             const std::array<Availability, LW_FN_COUNT> &availability) {
    plan_focus(focus, kallsyms);
    if (backend_->tracepoint_program) {
        bpf_program__set_autoload(tracepoint_program(), true);
    }
    bpf_program__set_autoload(skel_->progs.kmalloc_site, alloc_sites_wanted_);
    bpf_program__set_autoload(skel_->progs.cache_released, guards_.cache_release);
    for (bpf_program *guard : address_cache_guards()) {
        bpf_program__set_autoload(guard, true);
    }
    hooks_ = plan_lock_hooks(backend_->backend, availability);
    for (const HookStatus &hook : hooks_) {
        if (hook.state == HookState::Planned) {
            for (bpf_program *p : programs_for(hook)) {
                bpf_program__set_autoload(p, true);
            }
        }
    }
    if (backend_->tracepoints.empty() && count_hooks(hooks_, HookState::Planned) == 0) {
        throw CaptureError(
            "this kernel has none of the out-of-line lock functions lockwatch "
            "hooks (all inlined?): it is not supported");
    }
}

void LockCapture::plan_focus(const std::vector<std::string> &focus, const Kallsyms &kallsyms) {
    if (focus.empty()) {
        return;
    }
    for (const std::string &fn : focus) {
        auto copies = kallsyms.function_copies(fn);
        if (copies.empty()) {
            throw CaptureError(fmt::format(
                "cannot focus on {}: no such function in this kernel's text (inlined into "
                "its callers? focus on a caller instead)",
                fn));
        }
        focus_functions_.insert(focus_functions_.end(), copies.begin(), copies.end());
    }
    skel_->rodata->focus_enabled = true;
    bpf_program__set_autoload(skel_->progs.focus_enter, true);
    bpf_program__set_autoload(skel_->progs.focus_exit, true);
}

void LockCapture::load(bool verbose) {
    g_verifier_verdict.clear();
    if (int err = lockwatch_bpf__load(skel_); err) {
        throw CaptureError(explain_load_failure(err, env_));
    }
    if (verbose) {
        print_verified_instructions(skel_->obj);
    }
}

void LockCapture::attach_in_order() {
    // Focus scopes go live first, so that no acquire in scope is missed.
    attach_focus_kprobes();

    // Allocation sites before any lock: a kmalloc object allocated after
    // this point gets its allocation site as its class key.
    if (alloc_sites_wanted_) {
        attach_alloc_sites();
    }
    attach_cache_release();
    attach_slab_free();

    // lockdep's tracepoints, one program on both: release first, for the
    // reason below.
    for (const TracepointHook &tracepoint : backend_->tracepoints) {
        attach_raw_tracepoint(tracepoint);
    }

    // Releases go live before acquires: an acquire seen without its release
    // hook in place would leave a held lock behind that is never popped.
    for (LockOp op : {LockOp::Release, LockOp::Trylock, LockOp::Acquire}) {
        for (HookStatus &hook : hooks_) {
            if (hook.function->op == op && hook.state == HookState::Planned) {
                attach_lock_hook(hook);
            }
        }
    }
    if (attached_count() == 0) {
        auto failed = std::find_if(hooks_.begin(), hooks_.end(), [](const HookStatus &hook) {
            return hook.state == HookState::AttachFailed;
        });
        throw CaptureError(failed == hooks_.end() ? "no lock function could be attached"
                                                  : failed->reason);
    }
}

void LockCapture::attach_focus_kprobes() {
    for (const std::string &fn : focus_functions_) {
        for (bool exit : {false, true}) {
            bpf_link *link = bpf_program__attach_kprobe(
                exit ? skel_->progs.focus_exit : skel_->progs.focus_enter, exit, fn.c_str());
            if (!link) {
                int err = errno;
                throw CaptureError(explain_tracing_failure(
                    fmt::format("attach the --focus {} to {}", exit ? "kretprobe" : "kprobe", fn),
                    err, env_));
            }
            links_.push_back(link);
            kprobes_attached_ = true;
        }
    }
}

// Without the kmalloc tracepoint every generic kmalloc class falls back to
// its first acquirer's call site: worse classes, but no reason to stop.
void LockCapture::attach_alloc_sites() {
    bpf_link *link = bpf_program__attach(skel_->progs.kmalloc_site);
    if (!link) {
        int err = errno;
        fmt::print(stderr,
                   "lockwatch: {}; kmalloc objects are classed by their first acquirer instead\n",
                   explain_tracing_failure("attach to the kmem:kmalloc tracepoint", err, env_));
        return;
    }
    links_.push_back(link);
    alloc_sites_attached_ = true;
}

// The BPF side keeps each slab cache's sizes only while it hears of every
// kmem_cache freed (lock_class.bpf.h): without this program a slab lock
// reads them again on each acquire, slower but as exact.
void LockCapture::attach_cache_release() {
    if (!guards_.cache_release) {
        fmt::print(stderr,
                   "lockwatch: slab_kmem_cache_release is not in this kernel's BTF (no fentry "
                   "there); each slab lock reads its cache's sizes instead\n");
        return;
    }
    bpf_link *link = bpf_program__attach(skel_->progs.cache_released);
    if (!link) {
        int err = errno;
        fmt::print(stderr, "lockwatch: {}; each slab lock reads its cache's sizes instead\n",
                   explain_tracing_failure("attach fentry to slab_kmem_cache_release", err, env_));
        return;
    }
    links_.push_back(link);
    skel_->bss->lw_geometry_cache_on = true;
}

// The programs that void each lock address's kept class: none when one of
// them cannot be had (guards_.address_cache_off says why).
std::vector<bpf_program *> LockCapture::address_cache_guards() const {
    // The lockdep backend takes lockdep's classes: it keeps none by address.
    if (!guards_.address_cache_off.empty() || !backend_->tracepoints.empty()) {
        return {};
    }
    std::vector<bpf_program *> guards = {skel_->progs.slab_freeing, skel_->progs.slab_freed};
    if (guards_.kfence) {
        guards.push_back(skel_->progs.kfence_allocating);
        guards.push_back(skel_->progs.kfence_allocated);
    }
    return guards;
}

// Likewise, the BPF side keeps each lock address's class only while it
// hears of every slab page freed or given to another cache: all of these
// programs attached, or none.
void LockCapture::attach_slab_free() {
    const char *instead = "each lock's class is read from its page instead";
    if (!backend_->tracepoints.empty()) {
        return;  // lockdep's classes (address_cache_guards)
    }
    if (!guards_.address_cache_off.empty()) {
        fmt::print(stderr, "lockwatch: {}; {}\n", guards_.address_cache_off, instead);
        return;
    }
    std::vector<bpf_link *> attached;
    for (bpf_program *guard : address_cache_guards()) {
        bpf_link *link = bpf_program__attach(guard);
        if (!link) {
            int err = errno;
            for (bpf_link *done : attached) {
                bpf_link__destroy(done);
            }
            std::string what = fmt::format("attach {}", bpf_program__section_name(guard));
            fmt::print(stderr, "lockwatch: {}; {}\n", explain_tracing_failure(what, err, env_),
                       instead);
            return;
        }
        attached.push_back(link);
    }
    links_.insert(links_.end(), attached.begin(), attached.end());
    skel_->bss->lw_address_cache_on = true;
}

void LockCapture::attach_raw_tracepoint(const TracepointHook &tracepoint) {
    bpf_link *link = bpf_program__attach_raw_tracepoint(tracepoint_program(), tracepoint.name);
    if (!link) {
        int err = errno;
        throw CaptureError(explain_tracing_failure(
            fmt::format("attach to the {}:{} tracepoint", tracepoint.category, tracepoint.name),
            err, env_));
    }
    links_.push_back(link);
    ++tracepoint_links_;
}

// Each program attaches by its section (kprobe/SYMBOL, fentry/SYMBOL, ...).
void LockCapture::attach_lock_hook(HookStatus &hook) {
    for (bpf_program *p : programs_for(hook)) {
        bpf_link *link = bpf_program__attach(p);
        if (!link) {
            int err = errno;
            hook.state = HookState::AttachFailed;
            hook.reason = explain_tracing_failure(
                fmt::format("attach {} program to {}", bpf_program__section_name(p),
                            hook.function->symbol),
                err, env_);
            return;
        }
        links_.push_back(link);
        kprobes_attached_ = kprobes_attached_ || bpf_program__type(p) == BPF_PROG_TYPE_KPROBE;
    }
    hook.state = HookState::Attached;
}

void LockCapture::open_ring_buffer() {
    records_ = ring_buffer__new(bpf_map__fd(skel_->maps.records), on_ring_record, this, nullptr);
    if (!records_) {
        throw CaptureError(explain_tracing_failure("open the ring buffer", errno, env_));
    }
}

LockCapture::~LockCapture() {
    release();
}

void LockCapture::release() {
    ring_buffer__free(records_);
    records_ = nullptr;
    // Quiesce first: from here on every program returns at once, so none
    // of ours runs or takes a lock while the kernel unpatches the lock
    // functions. Then the links, newest first (acquires before releases),
    // before the maps go away.
    if (skel_ && skel_->bss) {
        __atomic_store_n(&skel_->bss->stopping, true, __ATOMIC_SEQ_CST);
    }
    for (auto it = links_.rbegin(); it != links_.rend(); ++it) {
        bpf_link__destroy(*it);
    }
    links_.clear();
    tracepoint_links_ = 0;
    lockwatch_bpf__destroy(skel_);
    skel_ = nullptr;
}

size_t LockCapture::attached_count() const {
    return tracepoint_links_ + count_hooks(hooks_, HookState::Attached);
}

namespace {

void add_to(uint64_t &total, uint64_t value) {
    total += value;
}

void add_to(lw_phase_cost &total, const lw_phase_cost &value) {
    total.ns += value.ns;
    total.count += value.count;
}

// Each of a per-CPU array's N entries, summed over the CPUs.
template <size_t N, typename T = uint64_t>
std::array<T, N> sum_percpu_array(int map_fd) {
    std::array<T, N> totals{};
    int ncpus = libbpf_num_possible_cpus();
    if (ncpus <= 0) {
        return totals;
    }
    std::vector<T> values(static_cast<size_t>(ncpus));
    for (uint32_t key = 0; key < N; ++key) {
        if (bpf_map_lookup_elem(map_fd, &key, values.data()) != 0) {
            continue;
        }
        for (const T &v : values) {
            add_to(totals[key], v);
        }
    }
    return totals;
}

}  // namespace

// Each CPU's lw_cpu_calls, at the start of its cpu_states value: one
// lookup copies every CPU's whole state (about 32 KiB each), once an
// interval. While it copies, the kernel skips kprobe programs on the CPU
// that reads (counted as kernel recursion misses from 6.7 on), as it did
// for the many smaller lookups this replaces.
std::array<uint64_t, LW_FN_SLOTS> LockCapture::read_call_slots() const {
    std::array<uint64_t, LW_FN_SLOTS> totals{};
    int ncpus = libbpf_num_possible_cpus();
    size_t stride = (bpf_map__value_size(skel_->maps.cpu_states) + 7) / 8 * 8;
    if (ncpus <= 0 || stride < sizeof(lw_cpu_calls)) {
        return last_call_slots_;
    }
    std::vector<uint8_t> values(static_cast<size_t>(ncpus) * stride);
    uint32_t key = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.cpu_states), &key, values.data()) != 0) {
        // The last totals, so that an interval's counts never run backwards.
        fmt::print(stderr, "lockwatch: reading the call counts failed: {}\n", std::strerror(errno));
        return last_call_slots_;
    }
    for (size_t cpu = 0; cpu < static_cast<size_t>(ncpus); ++cpu) {
        lw_cpu_calls counted;
        std::memcpy(&counted, values.data() + cpu * stride, sizeof(counted));
        for (size_t fn = 0; fn < LW_FN_SLOTS; ++fn) {
            totals[fn] += counted.calls[fn];
        }
    }
    last_call_slots_ = totals;
    return totals;
}

std::array<uint64_t, LW_FN_COUNT> LockCapture::read_calls() const {
    std::array<uint64_t, LW_FN_COUNT> calls{};
    auto slots = read_call_slots();
    std::copy_n(slots.begin(), LW_FN_COUNT, calls.begin());
    return calls;
}

uint64_t LockCapture::read_lockdep_calls() const {
    return read_call_slots()[LW_FN_LOCKDEP];
}

CaptureLosses LockCapture::read_losses() const {
    CaptureLosses losses;
    losses.bpf = sum_percpu_array<LW_LOSS_COUNT>(bpf_map__fd(skel_->maps.losses));
    losses.notes = sum_percpu_array<LW_NOTE_COUNT>(bpf_map__fd(skel_->maps.notes));
    losses.short_records = short_records_;
    losses.unread_at_stop = unread_at_stop_;
    if (kprobes_attached_) {
        losses.kprobe_skips = kernel_counts_kprobe_skips_
                                  ? CaptureLosses::KprobeSkips::InsideKprobesUncounted
                                  : CaptureLosses::KprobeSkips::Uncounted;
    }
    bpf_program *prog;
    bpf_object__for_each_program(prog, skel_->obj) {
        int fd = bpf_program__fd(prog);
        if (fd < 0) {
            continue;
        }
        bpf_prog_info info{};
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
            // lockdep's tracepoints fire for the programs' own locks: see CaptureLosses.
            (backend_->tracepoints.empty() ? losses.kernel_recursion_misses
                                           : losses.skipped_nested_tracepoints) +=
                info.recursion_misses;
        }
    }
    return losses;
}

std::vector<LockCapture::ProgramCost> LockCapture::read_costs() const {
    std::vector<ProgramCost> costs;
    bpf_program *prog;
    bpf_object__for_each_program(prog, skel_->obj) {
        int fd = bpf_program__fd(prog);
        if (fd < 0) {
            continue;
        }
        bpf_prog_info info{};
        uint32_t len = sizeof(info);
        if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0 && info.run_cnt > 0) {
            costs.push_back({bpf_program__section_name(prog), info.run_cnt, info.run_time_ns});
        }
    }
    return costs;
}

std::array<lw_phase_cost, LW_PHASE_COUNT> LockCapture::read_phase_costs() const {
    return sum_percpu_array<LW_PHASE_COUNT, lw_phase_cost>(bpf_map__fd(skel_->maps.phase_costs));
}

// libbpf's ring_buffer__consume() returns only once it finds the ring empty.
// While the programs submit faster than the records are handled, it never
// does, and nothing above it looks at its stop flag: in soak runs
// (tools/soak/) under virtio_net and loop traffic on two vCPUs, `lockwatch
// run` took SIGINT and was still consuming, busy in user space, minutes
// later. A negative return from this callback ends the consume (the record
// handed over counts as read), so each consume stops at its time slice.
constexpr int kSliceSpent = -EAGAIN;

int LockCapture::on_ring_record(void *ctx, void *data, size_t size) {
    auto *self = static_cast<LockCapture *>(ctx);
    if (!self->handler_) {
        ++self->unread_at_stop_;  // count_unread(): counted, not handled
    } else if (size < sizeof(lw_record)) {
        ++self->short_records_;
    } else {
        lw_record record;
        std::memcpy(&record, data, sizeof(record));
        (*self->handler_)(record);
    }
    // The clock after every record, not every 64th: records can take a
    // large part of a second each in a loaded TCG guest, where with a check
    // every 64 records SIGINT waited 33-40 s for the report. A clock read
    // costs nanoseconds.
    ++self->slice_records_;
    if (std::chrono::steady_clock::now() >= self->slice_end_) {
        self->slice_spent_ = true;
        return kSliceSpent;
    }
    return 0;
}

int LockCapture::poll(int timeout_ms, const RecordHandler &handler) {
    // The programs submit without waking us (BPF_RB_NO_WAKEUP): a wakeup is
    // an irq_work and a wait-queue lock, which lockwatch would then trace as
    // part of the kernel it watches. Polling every few milliseconds instead
    // costs a little latency and nothing in the kernel.
    constexpr int kPollStepMs = 20;
    handler_ = &handler;
    slice_end_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(kConsumeSliceMs);
    slice_records_ = 0;
    slice_spent_ = false;
    int total = 0;
    for (int waited = 0;; waited += kPollStepMs) {
        uint64_t before = slice_records_;
        int n = ring_buffer__consume(records_);
        if (n < 0 && !slice_spent_) {
            total = n;
            break;
        }
        total += static_cast<int>(slice_records_ - before);
        if (total > 0 || waited >= timeout_ms) {
            break;
        }
        struct timespec step {
            0, std::min(kPollStepMs, timeout_ms - waited) * 1000000L
        };
        if (nanosleep(&step, nullptr) != 0) {
            break;  // a signal: let the caller look at it
        }
    }
    handler_ = nullptr;
    return total;
}

uint64_t LockCapture::count_unread(int budget_ms) {
    // Counting a record takes nanoseconds, so the budget ends only while
    // the programs keep sending faster than that; what comes after it
    // arrived after the stop.
    handler_ = nullptr;
    slice_end_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(budget_ms);
    slice_spent_ = false;
    uint64_t before = unread_at_stop_;
    ring_buffer__consume(records_);
    return unread_at_stop_ - before;
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
