#include "live/fact_decoder.h"

// GCC 12 reports FirstCall's members as "may be used uninitialized" when a
// DecodedRecord holding an engine::Event is moved into the vector: a false
// positive of its variant move analysis (every member has an initializer),
// which appeared when engine::Event gained its seventh alternative.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "capture/kallsyms.h"
#include "capture/lock_functions.h"
#include "engine/kernel_frames.h"
#include "debuginfo/kernel_debuginfo.h"
#include "live/run_summary.h"

namespace lockwatch {

namespace {

engine::Task task_of(const lw_record &r) {
    engine::Task task;
    task.pid = static_cast<int32_t>(r.pid);
    task.set_comm(std::string_view(r.comm, strnlen(r.comm, sizeof(r.comm))));
    return task;
}

engine::Context context_of(uint32_t context) {
    return static_cast<engine::Context>(context < LW_CTX_COUNT ? context : 0);
}

}  // namespace

engine::Frame symbolize_frame(uint64_t ip, const Kallsyms &kallsyms) {
    engine::Frame frame;
    if (auto sym = kallsyms.symbolize(ip)) {
        frame.symbol = sym->name;
        frame.offset = sym->offset;
        frame.size = sym->size;
        frame.module = sym->module;
        return frame;
    }
    const uint64_t text = kallsyms.text_start();
    const uint64_t image_end = kallsyms.image_end() ? kallsyms.image_end() : LW_MODULES_VADDR;
    if (kallsyms.in_module_area(ip)) {
        frame.offset = ip - lw_module_area_start(ip);
        frame.module = engine::kModuleAreaRegion;
    } else if (text && ip >= text && ip < image_end) {
        frame.offset = ip - text;
    } else {
        frame.module = engine::kElsewhereRegion;  // no offset: nothing fixed to count from
    }
    return frame;
}

namespace {

// How many leading frames belong to the BPF machinery that read the stack.
size_t machinery_frames(const std::vector<uint64_t> &ips, const std::vector<engine::Frame> &frames,
                        const Kallsyms &kallsyms) {
    size_t last_bpf = 0;
    for (size_t i = 0; i < frames.size(); ++i) {
        if (!frames[i].symbol.empty() && !engine::is_bpf_machinery(frames[i].symbol)) {
            return i;
        }
        if (!frames[i].symbol.empty()) {
            last_bpf = i + 1;
        } else if (!kallsyms.in_module_area(ips[i])) {
            break;
        }
    }
    return last_bpf;
}

}  // namespace

engine::Stack symbolize_kernel_stack(const std::vector<uint64_t> &ips, const Kallsyms &kallsyms,
                                     KallsymsRefresher *refresher) {
    engine::Stack frames;
    frames.reserve(ips.size());
    for (uint64_t ip : ips) {
        frames.push_back(symbolize_frame(ip, kallsyms));
    }
    const size_t skip = machinery_frames(ips, frames, kallsyms);
    frames.erase(frames.begin(), frames.begin() + skip);
    // lockwatch's own programs load after the table is read: their frames
    // never ask for a re-read, only the kernel's and modules' frames do.
    for (size_t i = 0; refresher && i < frames.size(); ++i) {
        const uint64_t ip = ips[skip + i];
        if (kallsyms.in_module_area(ip) && !kallsyms.names_exactly(ip)) {
            refresher->before_naming(ip);
            frames[i] = symbolize_frame(ip, kallsyms);
        }
    }
    return frames;
}

uint64_t module_class_id(const std::string &name) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over a prefix and the name
    for (unsigned char c : "module-static:" + name) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h | 1;  // never 0, as the BPF ids
}

FactDecoder::FactDecoder(const ClassNamer &namer, const Kallsyms &kallsyms, StackReader read_stack)
    : namer_(namer), kallsyms_(kallsyms), read_stack_(std::move(read_stack)) {}

const std::string *FactDecoder::class_name(uint64_t class_id) const {
    auto it = class_names_.find(class_id);
    return it == class_names_.end() ? nullptr : &it->second;
}

engine::StackId FactDecoder::intern_stack(int32_t bpf_stack_id, std::vector<DecodedRecord> &out) {
    if (bpf_stack_id < 0) {
        return engine::kNoStack;
    }
    if (auto it = stacks_.find(bpf_stack_id); it != stacks_.end()) {
        return it->second;
    }
    // Engine ids start at 1: 0 is "no stack".
    engine::StackId id = static_cast<engine::StackId>(bpf_stack_id) + 1;
    announce_stack(id, read_stack_(bpf_stack_id), out);
    stacks_.emplace(bpf_stack_id, id);
    return id;
}

engine::StackId FactDecoder::intern_site(uint64_t site, std::vector<DecodedRecord> &out) {
    if (site == 0) {
        return engine::kNoStack;
    }
    if (auto it = sites_.find(site); it != sites_.end()) {
        return it->second;
    }
    // A one-frame stack, numbered apart from the BPF stack ids. Not read in
    // a program: no BPF frames to drop.
    engine::StackId id = kFirstSiteStackId + static_cast<engine::StackId>(sites_.size());
    before_naming(site);
    engine::Stack frames{symbolize_frame(site, kallsyms_)};
    if (debuginfo_) {
        frames = debuginfo_->annotate(frames);
    }
    out.push_back(engine::Event{engine::StackFact{id, std::move(frames)}});
    sites_.emplace(site, id);
    return id;
}

void FactDecoder::announce_stack(engine::StackId id, const std::vector<uint64_t> &ips,
                                 std::vector<DecodedRecord> &out) const {
    engine::Stack frames = symbolize_kernel_stack(ips, kallsyms_, refresher_);
    if (debuginfo_) {
        frames = debuginfo_->annotate(frames);
    }
    out.push_back(engine::Event{engine::StackFact{id, std::move(frames)}});
}

std::string FactDecoder::name_class(const lw_record &r) {
    switch (r.class_type) {
        case LW_CLASS_SLAB:
            return namer_.slab(std::string(r.name, strnlen(r.name, sizeof(r.name))), r.class_offset,
                               r.object_size);
        case LW_CLASS_PERCPU:
            return namer_.percpu(r.class_offset);
        case LW_CLASS_PAGE:
            return namer_.page(r.class_offset);
        case LW_CLASS_STATIC:
            return namer_.kernel_data(r.class_key);
        case LW_CLASS_MODULE:
            return namer_.module_data_or_offset(r.class_key);
        case LW_CLASS_KMALLOC_ALLOC:
        case LW_CLASS_KMALLOC:
            // A generic kmalloc cache holds any struct of a size: the
            // allocating function tells unrelated locks apart, or, for an
            // object allocated before attach, the first one that locked it.
            return fmt::format("{}@{}{}",
                               namer_.slab(std::string(r.name, strnlen(r.name, sizeof(r.name))),
                                           r.class_offset, r.object_size),
                               r.class_type == LW_CLASS_KMALLOC ? "locker:" : "",
                               namer_.function(r.site));
        case LW_CLASS_LOCKDEP: {
            // lockdep's own name as lockdep prints it: "#N" for the Nth key
            // of that name, "/N" for a subclass.
            std::string name(r.name, strnlen(r.name, sizeof(r.name)));
            if (name.empty()) {
                name = namer_.kernel_data(r.class_key);
            }
            auto &keys = lockdep_keys_by_name_[name];
            auto at = std::find(keys.begin(), keys.end(), r.class_key);
            if (at == keys.end()) {
                at = keys.insert(keys.end(), r.class_key);
            }
            if (at != keys.begin()) {
                name += fmt::format("#{}", at - keys.begin() + 1);
            }
            return r.class_offset ? fmt::format("{}/{}", name, r.class_offset) : name;
        }
        case LW_CLASS_SITE:
        default:
            return namer_.call_site(r.class_key);
    }
}

void FactDecoder::decode(const lw_record &r, std::vector<DecodedRecord> &out) {
    switch (static_cast<lw_record_type>(r.type)) {
        case LW_RECORD_FIRST_CALL:
            return decode_first_call(r, out);
        case LW_RECORD_CLASS:
            return decode_class(r, out);
        case LW_RECORD_USAGE:
            return decode_usage(r, out);
        case LW_RECORD_EDGE:
            return decode_edge(r, out);
        case LW_RECORD_RECURSION:
            return decode_recursion(r, out);
        case LW_RECORD_CLASS_PAIR:
            out.push_back(
                ClassPair{r.class_id, class_of(r.prev_class_id), r.class_type, name_class(r)});
            return;
        case LW_RECORD_NMI_ACQUIRE:
            return decode_nmi_acquire(r, out);
        case LW_RECORD_HELD_IRQS_ON:
            return decode_held_irqs_on(r, out);
        case LW_RECORD_LOCKDEP_OFF:
            out.push_back(LockdepOff{r.time_ns, r.cpu, !(r.irq_flags & LW_IRQ_STATE_INFERRED)});
            return;
        case LW_RECORD_OP_ACQUIRE:
        case LW_RECORD_OP_RELEASE:
        case LW_RECORD_OP_IRQS_ON:
            return decode_operation(r, out);
    }
    ++malformed_records_;  // a type this build does not know
}

void FactDecoder::decode_first_call(const lw_record &r, std::vector<DecodedRecord> &out) {
    if (r.function >= LW_FN_COUNT || r.context >= LW_CTX_COUNT) {
        ++malformed_records_;
        return;
    }
    out.push_back(FirstCall{
        .function = r.function,
        .cpu = r.cpu,
        .pid = r.pid,
        .comm = std::string(r.comm, strnlen(r.comm, sizeof(r.comm))),
        .context = static_cast<lw_context>(r.context),
        .caller = caller_of(read_stack_(r.stack_id), kallsyms_),
    });
}

engine::LockId FactDecoder::op_lock(uint64_t address, bool acquire) {
    auto it = op_locks_.find(address);
    if (it == op_locks_.end()) {
        if (!acquire || op_locks_.size() >= kMaxOpLocks) {
            return next_op_lock_++;  // its acquire was lost, or the table is full
        }
        it = op_locks_.emplace(address, OpLock{next_op_lock_++, 0}).first;
    }
    engine::LockId id = it->second.id;
    if (acquire) {
        ++it->second.holders;
    } else if (--it->second.holders == 0) {
        op_locks_.erase(it);
    }
    return id;
}

void FactDecoder::decode_operation(const lw_record &r, std::vector<DecodedRecord> &out) {
    if (r.context >= LW_CTX_COUNT) {
        ++malformed_records_;
        return;
    }
    const bool hardirqs_on = r.irq_flags & LW_IRQ_HARDIRQS_ENABLED;
    const bool softirqs_on = r.irq_flags & LW_IRQ_SOFTIRQS_ENABLED;
    if (r.type == LW_RECORD_OP_RELEASE) {
        out.push_back(RawOperation{engine::ReleaseEvent{
            r.time_ns, r.cpu, task_of(r), context_of(r.context), op_lock(r.class_key, false)}});
    } else if (r.type == LW_RECORD_OP_IRQS_ON) {
        engine::StackId stack = intern_stack(r.stack_id, out);
        out.push_back(RawOperation{engine::IrqsEnabledEvent{
            r.time_ns, r.cpu, task_of(r), context_of(r.context), hardirqs_on, softirqs_on, stack}});
    } else {
        engine::AcquireEvent ev;
        ev.time_ns = r.time_ns;
        ev.cpu = r.cpu;
        ev.task = task_of(r);
        ev.context = context_of(r.context);
        ev.lock = op_lock(r.class_key, true);
        ev.cls = class_of(r.class_id);
        ev.flags = r.acquire_flags & engine::acquire_flags::kAll;
        ev.hardirqs_enabled = hardirqs_on;
        ev.softirqs_enabled = softirqs_on;
        ev.hardirq_state_inferred = r.irq_flags & LW_IRQ_STATE_INFERRED;
        ev.stack = intern_stack(r.stack_id, out);
        out.push_back(RawOperation{ev});
    }
}

uint64_t FactDecoder::class_of(uint64_t bpf_class_id) const {
    auto it = canonical_.find(bpf_class_id);
    return it == canonical_.end() ? bpf_class_id : it->second;
}

void FactDecoder::before_naming(uint64_t address) {
    if (refresher_ && address) {
        refresher_->before_naming(address);
    }
}

void FactDecoder::decode_class(const lw_record &r, std::vector<DecodedRecord> &out) {
    before_naming(r.class_key);
    before_naming(r.site);
    std::string name = name_class(r);
    uint64_t id = r.class_id;
    // The BPF id of a module static is its address, which a reloaded module
    // changes: named, it is one class under its name. Every later record
    // about the BPF id follows (class_of()); the BPF side announces a class
    // before any fact about it.
    if (r.class_type == LW_CLASS_MODULE && namer_.module_data(r.class_key)) {
        id = module_class_id(name);
        canonical_[r.class_id] = id;
    }
    if (class_names_.emplace(id, name).second) {
        ++classes_by_type_[r.class_type];
    }
    out.push_back(engine::Event{engine::ClassFact{id, std::move(name)}});
}

void FactDecoder::decode_usage(const lw_record &r, std::vector<DecodedRecord> &out) {
    if (r.usage_bit >= LW_USAGE_BITS) {
        ++malformed_records_;
        return;
    }
    engine::UsageFact fact;
    fact.cls = class_of(r.class_id);
    fact.bit = static_cast<engine::UsageBit>(r.usage_bit);
    fact.stack = intern_stack(r.stack_id, out);
    fact.task = task_of(r);
    fact.cpu = r.cpu;
    fact.time_ns = r.time_ns;
    fact.hardirq_state_inferred = r.irq_flags & LW_IRQ_STATE_INFERRED;
    fact.read = lw_read_level(r.acquire_flags, r.context);
    out.push_back(engine::Event{fact});
}

void FactDecoder::decode_edge(const lw_record &r, std::vector<DecodedRecord> &out) {
    engine::EdgeFact fact;
    fact.prev = class_of(r.prev_class_id);
    fact.next = class_of(r.class_id);
    fact.context = context_of(r.context);
    fact.prev_read = lw_read_level(r.prev_acquire_flags, r.context);
    fact.next_read = lw_read_level(r.acquire_flags, r.context);
    fact.next_stack = intern_stack(r.stack_id, out);
    fact.prev_stack = intern_site(r.prev_site, out);
    fact.hardirqs_enabled = r.irq_flags & LW_IRQ_HARDIRQS_ENABLED;
    fact.softirqs_enabled = r.irq_flags & LW_IRQ_SOFTIRQS_ENABLED;
    fact.task = task_of(r);
    fact.cpu = r.cpu;
    fact.time_ns = r.time_ns;
    fact.hardirq_state_inferred = r.irq_flags & LW_IRQ_STATE_INFERRED;
    out.push_back(engine::Event{fact});
}

// An NMI's acquire of a class used outside NMI: to the engine, the raw
// acquire in NMI context, which it only checks (verify_lock_unused()).
void FactDecoder::decode_nmi_acquire(const lw_record &r, std::vector<DecodedRecord> &out) {
    engine::AcquireEvent ev;
    ev.time_ns = r.time_ns;
    ev.cpu = r.cpu;
    ev.task = task_of(r);
    ev.context = engine::Context::Nmi;
    ev.cls = class_of(r.class_id);
    ev.flags = r.acquire_flags & engine::acquire_flags::kAll;
    ev.hardirqs_enabled = false;
    ev.softirqs_enabled = false;
    ev.stack = intern_stack(r.stack_id, out);
    out.push_back(engine::Event{ev});
}

// Interrupts back on with a lock of this class held: one usage fact per new
// ENABLED_* bit in the record's mask, with the stack of the unlock that
// turned them on (lockdep's mark_held_locks() trace).
void FactDecoder::decode_held_irqs_on(const lw_record &r, std::vector<DecodedRecord> &out) {
    constexpr std::uint32_t kEnabledBits = 1u << LW_ENABLED_HARDIRQ |
                                           1u << LW_ENABLED_HARDIRQ_READ |
                                           1u << LW_ENABLED_SOFTIRQ | 1u << LW_ENABLED_SOFTIRQ_READ;
    if (!r.usage_bit || (r.usage_bit & ~kEnabledBits) || r.context >= LW_CTX_COUNT) {
        ++malformed_records_;
        return;
    }
    // Each bit as the usage record it stands for (irq_flags says which irqs
    // came on, never "inferred": the state was read off the unlock).
    for (std::uint32_t bit = 0; bit < LW_USAGE_BITS; ++bit) {
        if (r.usage_bit & (1u << bit)) {
            lw_record one = r;
            one.usage_bit = bit;
            decode_usage(one, out);
        }
    }
}

// The same lock instance acquired again while held. To the engine this is
// the held class meeting itself: a dependency from the class to itself,
// which its check_deadlock() reports as lockdep's "possible recursive
// locking detected" (an instance is a stronger case than lockdep's class).
void FactDecoder::decode_recursion(const lw_record &r, std::vector<DecodedRecord> &out) {
    lw_record as_edge = r;
    as_edge.prev_class_id = r.class_id;
    decode_edge(as_edge, out);
}

}  // namespace lockwatch
