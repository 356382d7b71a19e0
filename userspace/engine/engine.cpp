#include "engine/engine.h"

#include <algorithm>
#include <cstdio>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "engine/finding_names.h"

namespace lockwatch::engine {
namespace {

constexpr std::uint16_t lock_flag(int bit) {
    return static_cast<std::uint16_t>(1u << bit);
}
constexpr std::uint16_t lock_flag(UsageBit bit) {
    return lock_flag(static_cast<int>(bit));
}

// lockdep_internals.h masks over the 8 irq usage bits.
constexpr std::uint16_t kLockfUsedInIrqAll = 0x33;   // USED_IN_{HARD,SOFT}IRQ{,_READ}
constexpr std::uint16_t kLockfEnabledIrqAll = 0xcc;  // ENABLED_{HARD,SOFT}IRQ{,_READ}
constexpr std::uint16_t kLockfIrq = 0x55;            // the write (exclusive) bits
constexpr std::uint16_t kLockfIrqRead = 0xaa;        // the _READ bits
constexpr int kUsageReadMask = 1;
constexpr int kUsageDirMask = 2;
constexpr int kUsageStateMask = ~(kUsageReadMask | kUsageDirMask);

// lock_list::dep bits (calc_dep()): bit0 = prev->read == 0, bit1 = next->read != 2.
constexpr std::uint8_t kDepSR = 1u << 0;
// DEP_ER (bit 1) is never tested on its own: it is the dependency that only
// counts as -(*R)->, what only_xr filtering leaves.
constexpr std::uint8_t kDepSN = 1u << 2;
constexpr std::uint8_t kDepEN = 1u << 3;

std::uint8_t calc_dep(std::uint8_t prev_read, std::uint8_t next_read) {
    return static_cast<std::uint8_t>(1u << ((prev_read == 0) + ((next_read != 2) << 1)));
}

// The same dependency as seen from the locks_before side (calc_depb()): the
// two bit positions swap.
std::uint8_t dep_backwards(std::uint8_t dep) {
    std::uint8_t out = 0;
    for (int bit = 0; bit < 4; ++bit) {
        if (dep & (1u << bit)) {
            int prev_excl = bit & 1;
            int next_nonrec = (bit >> 1) & 1;
            out |= static_cast<std::uint8_t>(1u << (next_nonrec + (prev_excl << 1)));
        }
    }
    return out;
}

int exclusive_bit(int new_bit) {
    int state = new_bit & kUsageStateMask;
    int dir = new_bit & kUsageDirMask;
    return state | (dir ^ kUsageDirMask);
}

std::uint16_t invert_dir_mask(std::uint16_t mask) {
    std::uint16_t excl = 0;
    excl |= (mask & kLockfEnabledIrqAll) >> kUsageDirMask;
    excl |= (mask & kLockfUsedInIrqAll) << kUsageDirMask;
    return excl;
}

// USED_IN_x{,_READ} conflicts with ENABLED_x and ENABLED_x_READ and vice
// versa (lockdep's exclusive_mask(); original_mask() is the same map).
std::uint16_t exclusive_mask(std::uint16_t mask) {
    std::uint16_t excl = invert_dir_mask(mask);
    excl |= (excl & kLockfIrqRead) >> kUsageReadMask;
    excl |= (excl & kLockfIrq) << kUsageReadMask;
    return excl;
}

bool find_exclusive_match(std::uint16_t mask, std::uint16_t excl_mask, int *bitp, int *excl_bitp) {
    for (int bit = 0; bit < kNumIrqUsageBits; ++bit) {
        if (!(mask & lock_flag(bit))) {
            continue;
        }
        int excl = exclusive_bit(bit);
        int excl_read = excl | kUsageReadMask;
        if (excl_mask & lock_flag(excl)) {
            *bitp = bit;
            *excl_bitp = excl;
            return true;
        }
        if (excl_mask & lock_flag(excl_read)) {
            *bitp = bit;
            *excl_bitp = excl_read;
            return true;
        }
    }
    return false;
}

// lockdep's state_name(): "HARDIRQ", "SOFTIRQ-READ", ...
std::string state_name(int bit) {
    std::string s = (bit >> 2) == 0 ? "HARDIRQ" : "SOFTIRQ";
    if (bit & kUsageReadMask) {
        s += "-READ";
    }
    return s;
}

IrqClass irq_of_bit(int bit) {
    return (bit >> 2) == 0 ? IrqClass::Hardirq : IrqClass::Softirq;
}

std::uint64_t edge_key(std::uint32_t prev, std::uint32_t next) {
    return (static_cast<std::uint64_t>(prev) << 32) | next;
}

}  // namespace

std::string usage_chars(std::uint16_t usage_mask) {
    // get_usage_chars(): per state, the write char then the read char.
    std::string out;
    for (int state = 0; state < 2; ++state) {
        for (int read = 0; read < 2; ++read) {
            int bit = state * 4 + read;
            char c = '.';
            if (usage_mask & lock_flag(bit + kUsageDirMask)) {
                c = (usage_mask & lock_flag(bit)) ? '?' : '+';
            } else if (usage_mask & lock_flag(bit)) {
                c = '-';
            }
            out.push_back(c);
        }
    }
    return out;
}

std::string format_bounds(const EngineStats &s) {
    return "over the engine's bounds: " + std::to_string(s.classes_over_limit) + " classes, " +
           std::to_string(s.edges_over_limit) + " dependencies, " +
           std::to_string(s.stacks_over_limit) + " stacks, " +
           std::to_string(s.findings_over_limit) + " findings dropped; " +
           std::to_string(s.path_entries_elided) + " path entries and " +
           std::to_string(s.stacks_elided) + " stacks left out of reports";
}

bool any_over_bounds(const EngineStats &s) {
    return s.classes_over_limit || s.edges_over_limit || s.stacks_over_limit ||
           s.findings_over_limit || s.path_entries_elided || s.stacks_elided;
}

Engine::Engine(EngineOptions options) : options_(std::move(options)) {}
Engine::~Engine() = default;

void Engine::process(const Event &event) {
    std::visit(
        [this](const auto &e) {
            using T = std::decay_t<decltype(e)>;
            if constexpr (std::is_same_v<T, ClassFact>) {
                add_class(e);
            } else if constexpr (std::is_same_v<T, StackFact>) {
                add_stack(e);
            } else if constexpr (std::is_same_v<T, AcquireEvent>) {
                acquire(e);
            } else if constexpr (std::is_same_v<T, ReleaseEvent>) {
                release(e);
            } else if constexpr (std::is_same_v<T, UsageFact>) {
                add_usage(e);
            } else if constexpr (std::is_same_v<T, EdgeFact>) {
                add_edge(e);
            } else {
                static_assert(std::is_same_v<T, IrqsEnabledEvent>);
                irqs_enabled(e);
            }
        },
        event);
}

void Engine::add_class(const ClassFact &fact) {
    ++stats_.events;
    if (std::uint32_t known = find_class_index(fact.id); known != kNoClass) {
        // A re-announced class (the BPF class cache was evicted): keep the
        // graph, take the newer name only if the first was a placeholder.
        if (classes_[known].name.empty()) {
            classes_[known].name = fact.name;
        }
        return;
    }
    std::uint32_t idx = class_index(fact.id);
    if (idx != kNoClass) {
        classes_[idx].name = fact.name;
    }
}

void Engine::add_stack(const StackFact &fact) {
    ++stats_.events;
    if (fact.id == kNoStack) {
        return;
    }
    if (!stacks_.contains(fact.id) && stacks_.size() >= options_.max_stacks) {
        ++stats_.stacks_over_limit;  // events that name it print no trace
        return;
    }
    stacks_.put(fact.id, fact.frames);
}

std::uint32_t Engine::class_index(ClassId id, bool *created) {
    if (created) {
        *created = false;
    }
    if (classes_.size() >= options_.max_classes) {
        const std::uint32_t known = find_class_index(id);
        stats_.classes_over_limit += known == kNoClass;
        return known;
    }
    auto [idx, inserted] =
        class_by_id_.try_emplace(id, static_cast<std::uint32_t>(classes_.size()));
    if (created) {
        *created = inserted;
    }
    if (inserted) {
        LockClass c;
        c.id = id;
        c.topo = static_cast<std::uint32_t>(topo_order_.size());
        classes_.push_back(std::move(c));
        usage_.push_back(0);
        topo_order_.push_back(idx);
    }
    return idx;
}

std::uint32_t Engine::find_class_index(ClassId id) const {
    return class_by_id_.find(id);
}

std::optional<std::string> Engine::class_name(ClassId id) const {
    const std::uint32_t idx = find_class_index(id);
    if (idx == kNoClass) {
        return std::nullopt;
    }
    return report_class_name(classes_[idx].name, classes_[idx].id);
}

std::string Engine::usage_string(ClassId id) const {
    const std::uint32_t idx = find_class_index(id);
    return idx != kNoClass ? usage_chars(usage_[idx]) : std::string();
}

bool Engine::has_usage(ClassId id, UsageBit bit) const {
    const std::uint32_t idx = find_class_index(id);
    return idx != kNoClass && (usage_[idx] & lock_flag(bit));
}

bool Engine::has_edge(ClassId prev, ClassId next) const {
    const std::uint32_t p = find_class_index(prev);
    const std::uint32_t n = find_class_index(next);
    return p != kNoClass && n != kNoClass && edge_by_pair_.find(edge_key(p, n)) != IndexMap::kNone;
}

std::size_t Engine::held_depth(std::uint32_t cpu, Context ctx) const {
    if (cpu >= cpus_.size()) {
        return 0;
    }
    return cpus_[cpu].held[static_cast<int>(ctx)].size();
}

GraphView Engine::graph_view() const {
    GraphView view;
    view.classes.reserve(classes_.size());
    for (std::size_t i = 0; i < classes_.size(); ++i) {
        view.classes.push_back(
            {classes_[i].id, report_class_name(classes_[i].name, classes_[i].id), usage_[i]});
    }
    view.dependencies.reserve(edges_.size());
    for (const Edge &e : edges_) {
        view.dependencies.push_back({e.prev, e.next, e.reports});
    }
    return view;
}

std::size_t Engine::graph_bytes() const {
    std::size_t b = classes_.capacity() * sizeof(LockClass);
    for (const auto &c : classes_) {
        b += c.name.capacity() > 15 ? c.name.capacity() + 1 : 0;
        b += (c.after.capacity() + c.before.capacity()) * sizeof(std::uint32_t);
    }
    b += usage_.capacity() * sizeof(std::uint16_t);
    b += edges_.capacity() * sizeof(Edge) + edge_dep_.capacity();
    b += usage_records_.capacity() * sizeof(UsageRecord);
    b += topo_order_.capacity() * sizeof(std::uint32_t);
    b += class_by_id_.bytes() + edge_by_pair_.bytes();
    return b;
}

// ---------------------------------------------------------------------------
// Raw events: lockdep's __lock_acquire() / __lock_release().

const Engine::Origin &Engine::AcquireCheck::with_held() {
    if (!held_taken) {
        for (int c = 0; c <= static_cast<int>(origin.context); ++c) {
            origin.held.insert(origin.held.end(), cpu->held[c].begin(), cpu->held[c].end());
        }
        held_taken = true;
    }
    return origin;
}

Engine::Origin Engine::origin_at(const Task &task, std::uint32_t cpu, std::uint64_t time_ns,
                                 Context context) {
    Origin origin;
    origin.task = task;
    origin.cpu = cpu;
    origin.time_ns = time_ns;
    origin.context = context;
    origin.flags.in_hardirq = context == Context::Hardirq;
    origin.flags.in_softirq = context == Context::Softirq;
    return origin;
}

Engine::HeldLock Engine::held_lock_of(const AcquireEvent &ev, std::uint32_t cls) const {
    HeldLock next;
    next.lock = ev.lock;
    next.cls = cls;
    next.read =
        read_level(ev.flags | (ev.softirqs_enabled ? 0 : acquire_flags::kSoftirqsOff), ev.context);
    next.trylock = ev.flags & acquire_flags::kTrylock;
    next.irqs_off = ev.flags & acquire_flags::kIrqsOff;
    next.inferred = ev.hardirq_state_inferred;
    next.stack = ev.stack;
    return next;
}

Engine::Origin Engine::acquire_origin(const AcquireEvent &ev,
                                      const std::vector<HeldLock> &held) const {
    // lockdep samples irq state after the lock function's own
    // local_irq_disable()/local_bh_disable(): spin_lock_irq() in process
    // context is therefore neither HARDIRQ- nor SOFTIRQ-unsafe.
    bool hardirqs_on = ev.hardirqs_enabled && !(ev.flags & acquire_flags::kIrqsOff) &&
                       ev.context != Context::Hardirq && ev.context != Context::Nmi;
    if (hardirqs_on && ev.hardirq_state_inferred) {
        // The producer could not read EFLAGS: an _irq/_irqsave lock still
        // held in this context means irqs are off.
        hardirqs_on =
            std::none_of(held.begin(), held.end(), [](const HeldLock &h) { return h.irqs_off; });
    }
    Origin origin = origin_at(ev.task, ev.cpu, ev.time_ns, ev.context);
    origin.flags.hardirqs_enabled = hardirqs_on;
    origin.flags.softirqs_enabled =
        ev.softirqs_enabled && !(ev.flags & acquire_flags::kBhOff) && ev.context == Context::Task;
    origin.inferred = ev.hardirq_state_inferred;
    origin.stack = ev.stack;
    return origin;
}

void Engine::mark_usage(const HeldLock &next, const AcquireEvent &ev, AcquireCheck &check) {
    // lockdep's mark_usage(), the rule the BPF programs use too
    // (acquire_flags.h), marked in its order; a trylock's flag keeps it out
    // of the used-in bits.
    const std::uint32_t flags = ev.flags | (ev.softirqs_enabled ? 0 : acquire_flags::kSoftirqsOff) |
                                (next.trylock ? acquire_flags::kTrylock : 0);
    const unsigned mask =
        lw_usage_mask(flags, static_cast<unsigned>(ev.context), check.origin.flags.hardirqs_enabled,
                      check.origin.flags.softirqs_enabled);
    if (!(mask & ~usage_[next.cls])) {
        return;  // nothing new: the steady state
    }
    const UsageRecord rec{ev.stack, ev.task, ev.cpu, ev.time_ns, ev.hardirq_state_inferred};
    for (unsigned i = 0; i < LW_USAGE_BITS; ++i) {
        const auto bit = static_cast<UsageBit>(lw_usage_bit_at(i));
        if (!(mask & (1u << static_cast<unsigned>(bit))) || (usage_[next.cls] & lock_flag(bit))) {
            continue;  // not set by this acquire, or not new
        }
        mark_lock(next.cls, bit, next.read, rec, check.with_held(), &next);
    }
}

void Engine::validate_chain(const HeldLock &next, const AcquireEvent &ev, AcquireCheck &check) {
    const CpuState &cpu = *check.cpu;
    const int ctx = static_cast<int>(ev.context);
    for (int c = 0; c <= ctx; ++c) {
        for (const HeldLock &h : cpu.held[c]) {
            if (h.cls == next.cls && !(next.read == 2 && h.read)) {
                check_deadlock(next, check.with_held());
                return;
            }
        }
    }
    // check_prevs_add(): an edge from the newest held lock, and from
    // trylocked ones above the newest non-trylock, in this context only.
    const auto &held = cpu.held[ctx];
    for (auto it = held.rbegin(); it != held.rend(); ++it) {
        const std::uint32_t found = edge_by_pair_.find(edge_key(it->cls, next.cls));
        std::uint8_t dep = calc_dep(it->read, next.read);
        if ((found == IndexMap::kNone || !(edge_dep_[found] & dep)) && !refuse_new_edge(found)) {
            check_prev_add(*it, next, found, check.with_held(), ev.cpu, ev.time_ns);
        }
        if (!it->trylock) {
            break;
        }
    }
}

void Engine::acquire(const AcquireEvent &ev) {
    ++stats_.events;
    ++stats_.acquires;
    if (ev.cpu >= options_.max_cpus) {
        return;
    }
    if (ev.cpu >= cpus_.size()) {
        cpus_.resize(ev.cpu + 1);
    }
    bool created = false;
    std::uint32_t cls = class_index(ev.cls, &created);
    stats_.unknown_classes += created;
    if (cls == kNoClass) {
        return;  // counted; its release will be an unmatched one
    }
    if (ev.context == Context::Nmi && !options_.nmi_graph) {
        verify_lock_unused(cls, ev);
        return;
    }
    CpuState &cpu = cpus_[ev.cpu];
    auto &held = cpu.held[static_cast<int>(ev.context)];

    const HeldLock next = held_lock_of(ev, cls);
    AcquireCheck check{acquire_origin(ev, held), &cpu};
    mark_usage(next, ev, check);
    // validate_chain(): trylocks neither deadlock nor add dependencies.
    if (!next.trylock) {
        validate_chain(next, ev, check);
    }
    if (held.size() >= options_.max_held_depth) {
        held.erase(held.begin());
        ++stats_.held_overflows;
    }
    held.push_back(next);
}

void Engine::release(const ReleaseEvent &ev) {
    ++stats_.events;
    ++stats_.releases;
    if (ev.cpu >= cpus_.size()) {
        ++stats_.unmatched_releases;
        return;
    }
    CpuState &cpu = cpus_[ev.cpu];
    // The lock is normally released in the context that took it; unlock
    // order need not be LIFO, so search from the top.
    auto try_ctx = [&](int ctx) {
        auto &held = cpu.held[ctx];
        for (auto it = held.rbegin(); it != held.rend(); ++it) {
            if (it->lock == ev.lock) {
                held.erase(std::next(it).base());
                return true;
            }
        }
        return false;
    };
    int ctx = static_cast<int>(ev.context);
    if (try_ctx(ctx)) {
        return;
    }
    if (ev.context == Context::Nmi && !options_.nmi_graph) {
        return;  // NMI acquires are never held (verify_lock_unused() only)
    }
    for (int c = kNumContexts - 1; c >= 0; --c) {
        if (c != ctx && try_ctx(c)) {
            return;
        }
    }
    ++stats_.unmatched_releases;
}

// mark_held_locks() from lockdep_hardirqs_on() and lockdep_softirqs_on():
//
//     if (!mark_held_locks(curr, LOCK_ENABLED_HARDIRQ)) return;
//     if (curr->softirqs_enabled) mark_held_locks(curr, LOCK_ENABLED_SOFTIRQ);
//
// so `spin_lock_irqsave(A); spin_lock(B); spin_unlock_irqrestore(A)` leaves
// B HARDIRQ-ON. Only this context's locks: an interrupt context cannot turn
// on the interrupts of the code it interrupted. O(held) mark_lock() calls.
void Engine::irqs_enabled(const IrqsEnabledEvent &ev) {
    ++stats_.events;
    if (ev.cpu >= cpus_.size() || !ev.hardirqs_enabled) {
        return;  // nothing held there; softirqs on with hardirqs off marks nothing
    }
    CpuState &cpu = cpus_[ev.cpu];
    const std::vector<HeldLock> &held = cpu.held[static_cast<int>(ev.context)];
    Origin origin = origin_at(ev.task, ev.cpu, ev.time_ns, ev.context);
    origin.flags.hardirqs_enabled = true;
    origin.flags.softirqs_enabled = ev.softirqs_enabled && ev.context == Context::Task;
    origin.stack = ev.stack;
    for (int c = 0; c <= static_cast<int>(ev.context); ++c) {
        origin.held.insert(origin.held.end(), cpu.held[c].begin(), cpu.held[c].end());
    }
    const UsageRecord rec{ev.stack, ev.task, ev.cpu, ev.time_ns, false};
    for (const HeldLock &h : held) {
        mark_lock(h.cls, h.read ? UsageBit::EnabledHardirqRead : UsageBit::EnabledHardirq, h.read,
                  rec, origin, &h);
    }
    if (!origin.flags.softirqs_enabled) {
        return;
    }
    for (const HeldLock &h : held) {
        mark_lock(h.cls, h.read ? UsageBit::EnabledSoftirqRead : UsageBit::EnabledSoftirq, h.read,
                  rec, origin, &h);
    }
}

// ---------------------------------------------------------------------------
// Facts from the kernel side.

void Engine::add_usage(const UsageFact &fact) {
    ++stats_.events;
    bool created = false;
    std::uint32_t cls = class_index(fact.cls, &created);
    if (created) {
        ++stats_.unknown_classes;
    }
    if (cls == kNoClass || usage_[cls] & lock_flag(fact.bit)) {
        return;
    }
    int bit = static_cast<int>(fact.bit);
    bool used_in = bit < kNumIrqUsageBits && !(bit & kUsageDirMask);
    Origin origin = origin_at(
        fact.task, fact.cpu, fact.time_ns,
        used_in ? ((bit >> 2) == 0 ? Context::Hardirq : Context::Softirq) : Context::Task);
    origin.flags.hardirqs_enabled = bit < kNumIrqUsageBits && (bit & kUsageDirMask);
    origin.flags.softirqs_enabled =
        bit < kNumIrqUsageBits && (bit & kUsageDirMask) && (bit >> 2) == 1;
    origin.inferred = fact.hardirq_state_inferred;
    origin.stack = fact.stack;
    HeldLock self;
    self.cls = cls;
    self.read = fact.read;
    self.stack = fact.stack;
    UsageRecord rec{fact.stack, fact.task, fact.cpu, fact.time_ns, fact.hardirq_state_inferred};
    mark_lock(cls, fact.bit, fact.read, rec, origin, &self);
}

void Engine::add_edge(const EdgeFact &fact) {
    ++stats_.events;
    bool created = false;
    std::uint32_t p = class_index(fact.prev, &created);
    stats_.unknown_classes += created;
    std::uint32_t n = class_index(fact.next, &created);
    stats_.unknown_classes += created;
    if (p == kNoClass || n == kNoClass) {
        return;
    }
    const std::uint32_t found = edge_by_pair_.find(edge_key(p, n));
    std::uint8_t dep = calc_dep(fact.prev_read, fact.next_read);
    if (found != IndexMap::kNone) {
        edges_[found].reports += edges_[found].reports < UINT32_MAX;
        if (edge_dep_[found] & dep) {
            return;
        }
    }
    HeldLock prev;
    prev.cls = p;
    prev.read = fact.prev_read;
    prev.stack = fact.prev_stack;
    HeldLock next;
    next.cls = n;
    next.read = fact.next_read;
    next.stack = fact.next_stack;
    Origin origin;
    origin.task = fact.task;
    origin.cpu = fact.cpu;
    origin.time_ns = fact.time_ns;
    origin.context = fact.context;
    origin.flags.in_hardirq = fact.context == Context::Hardirq;
    origin.flags.in_softirq = fact.context == Context::Softirq;
    origin.flags.hardirqs_enabled = fact.hardirqs_enabled;
    origin.flags.softirqs_enabled = fact.softirqs_enabled;
    origin.inferred = fact.hardirq_state_inferred;
    origin.stack = fact.next_stack;
    origin.held.push_back(prev);  // all a fact tells about the held locks
    if (p == n) {
        // A same-class nesting reaches user space as an edge to itself.
        if (!(next.read == 2 && prev.read)) {
            check_deadlock(next, origin);
            return;
        }
    }
    if (!refuse_new_edge(found)) {
        check_prev_add(prev, next, found, origin, fact.cpu, fact.time_ns);
    }
}

// ---------------------------------------------------------------------------
// Usage bits: mark_lock() / mark_lock_irq().

// O(1) for a bit the class has; a new irq bit runs mark_lock_irq().
bool Engine::mark_lock(std::uint32_t cls, UsageBit bit, std::uint8_t read, const UsageRecord &rec,
                       const Origin &origin, const HeldLock *this_lock) {
    const std::uint16_t f = lock_flag(bit);
    if (usage_[cls] & f) {
        return false;
    }
    usage_[cls] |= f;
    usage_records_.push_back(rec);
    classes_[cls].usage_rec[static_cast<int>(bit)] =
        static_cast<std::uint32_t>(usage_records_.size());
    ++stats_.usages;
    if (static_cast<int>(bit) < kNumIrqUsageBits) {
        propagate_fwd(cls, static_cast<std::uint8_t>(f));
        propagate_bwd(cls, static_cast<std::uint8_t>(f));
        mark_lock_irq(cls, bit, read, origin, this_lock);
    }
    return true;
}

// check_usage_forwards()/backwards(): skipped in O(1) when the propagated
// masks say no class reachable holds the exclusive bit, else one bfs():
// O(classes + edges), at most O(max_classes + max_edges).
void Engine::mark_lock_irq(std::uint32_t cls, UsageBit new_bit_e, std::uint8_t read,
                           const Origin &origin, const HeldLock *this_lock) {
    const int new_bit = static_cast<int>(new_bit_e);
    const int excl_bit = exclusive_bit(new_bit);
    const bool is_read = new_bit & kUsageReadMask;
    const bool dir = new_bit & kUsageDirMask;
    const StackId this_stack = this_lock ? this_lock->stack : origin.stack;

    // valid_state(): the class itself must not have the opposite usage.
    auto usage_bug = [&](int bad_bit) {
        Finding f;
        f.kind = FindingKind::InconsistentState;
        f.irq = irq_of_bit(new_bit);
        f.irq_state = state_name(bad_bit);
        f.prev_bit = static_cast<UsageBit>(bad_bit);
        f.new_bit = new_bit_e;
        f.prev_usage = usage_trace(cls, static_cast<UsageBit>(bad_bit));
        f.acquiring = lock_ref(cls, this_stack, read);
        f.locks.push_back(f.acquiring);
        f.chain = {f.acquiring.name};
        f.hardirq_state_inferred = f.prev_usage->hardirq_state_inferred;
        f.signature_key = std::string(finding_kind_name(f.kind)) + ":" + f.acquiring.name + ":" +
                          std::string(usage_bit_name(*f.prev_bit)) + "->" +
                          std::string(usage_bit_name(new_bit_e));
        fill_common(f, origin);
        emit(std::move(f));
    };
    if (usage_[cls] & lock_flag(excl_bit)) {
        usage_bug(excl_bit);
        return;
    }
    if (!is_read && (usage_[cls] & lock_flag(excl_bit + kUsageReadMask))) {
        usage_bug(excl_bit + kUsageReadMask);
        return;
    }

    // check_usage_forwards() / check_usage_backwards()
    const std::uint16_t mask = lock_flag(excl_bit) | lock_flag(excl_bit + kUsageReadMask);
    const std::uint8_t reach = dir ? classes_[cls].bwd_mask : classes_[cls].fwd_mask;
    if (!(reach & mask)) {
        return;  // nothing with a conflicting usage is connected at all
    }
    const bool root_only_xr = dir ? read != 0 : read == 2;
    auto match = [&](const BfsEntry &e) {
        std::uint16_t usage = usage_[e.cls];
        if (e.only_xr) {
            usage &= kLockfIrq;
        }
        return (usage & mask) != 0;
    };
    std::int32_t target = bfs(cls, root_only_xr, /*forwards=*/!dir, match);
    if (target < 0) {
        return;
    }
    const std::uint32_t other = bfs_nodes_[target].cls;
    const int other_bit =
        (usage_[other] & lock_flag(excl_bit)) ? excl_bit : excl_bit + kUsageReadMask;

    Finding f;
    f.kind = FindingKind::IrqInversion;
    f.irq = irq_of_bit(new_bit);
    f.irq_state = state_name(other_bit);
    f.acquiring = lock_ref(cls, this_stack, read);
    // print_irq_inversion_bug(): the middle lock is the one next to the root.
    std::vector<std::uint32_t> nodes = bfs_path(target);  // leaf .. root
    std::uint32_t middle = nodes.size() >= 2 ? bfs_nodes_[nodes[nodes.size() - 2]].cls : other;
    f.path = print_path(target, origin.stack);
    std::vector<std::string> names;
    for (std::uint32_t n : nodes) {
        names.push_back(
            report_class_name(classes_[bfs_nodes_[n].cls].name, classes_[bfs_nodes_[n].cls].id));
    }
    LockRef other_ref = lock_ref(other, kNoStack);
    if (!dir) {
        // this lock is irq-safe and took an irq-unsafe one: this -> .. -> other
        f.safe_lock = f.acquiring;
        f.unsafe_lock = other_ref;
        f.safe_usage = usage_trace(cls, new_bit_e);
        f.unsafe_usage = usage_trace(other, static_cast<UsageBit>(other_bit));
        f.middle_lock = lock_ref(middle, kNoStack);
        std::reverse(names.begin(), names.end());
    } else {
        // this lock became irq-unsafe and an irq-safe one took it: other -> .. -> this
        f.safe_lock = other_ref;
        f.unsafe_lock = f.acquiring;
        f.safe_usage = usage_trace(other, static_cast<UsageBit>(other_bit));
        f.unsafe_usage = usage_trace(cls, new_bit_e);
        f.middle_lock = lock_ref(middle, kNoStack);
    }
    f.chain = names;
    f.locks = {f.acquiring, other_ref};
    f.hardirq_state_inferred =
        f.safe_usage->hardirq_state_inferred || f.unsafe_usage->hardirq_state_inferred;
    f.signature_key = std::string(finding_kind_name(f.kind)) + ":" +
                      state_name(new_bit & ~kUsageReadMask) + ":" + f.safe_lock->name + "->" +
                      f.unsafe_lock->name;
    fill_common(f, origin);
    emit(std::move(f));
}

// ---------------------------------------------------------------------------
// Dependencies: check_prev_add().

bool Engine::refuse_new_edge(std::uint32_t found) {
    if (found != IndexMap::kNone || edges_.size() < options_.max_edges) {
        return false;
    }
    ++stats_.edges_over_limit;  // neither kept nor checked
    return true;
}

// O(1) for a known dependency; a new one costs topo_insert(), at most one
// bfs() each for check_noncircular() and check_irq_usage(), and the mask
// propagation: O(max_classes + max_edges) in all.
void Engine::check_prev_add(const HeldLock &prev, const HeldLock &next, std::uint32_t found,
                            const Origin &origin, std::uint32_t cpu, std::uint64_t time_ns) {
    const std::uint32_t p = prev.cls;
    const std::uint32_t n = next.cls;
    const std::uint8_t dep = calc_dep(prev.read, next.read);
    const bool is_new = found == IndexMap::kNone;

    // check_noncircular(): can next already reach prev? With an acyclic graph
    // and a topological order, only when the order has to change; the
    // incremental order update (Pearce-Kelly) finds out.
    bool maybe_cycle;
    if (graph_cyclic_) {
        maybe_cycle = true;
    } else if (!is_new) {
        maybe_cycle = false;
    } else {
        maybe_cycle = !topo_insert(p, n);
    }
    if (maybe_cycle) {
        check_noncircular(prev, next, origin);
    }
    check_irq_usage(prev, next, origin);

    if (is_new) {
        Edge e;
        e.prev = p;
        e.next = n;
        e.inferred = origin.inferred;
        e.stack = next.stack;
        e.prev_stack = prev.stack;
        e.cpu = cpu;
        e.time_ns = time_ns;
        e.task = origin.task;
        std::uint32_t id = static_cast<std::uint32_t>(edges_.size());
        edges_.push_back(e);
        edge_dep_.push_back(dep);
        edge_by_pair_.try_emplace(edge_key(p, n), id);
        classes_[p].after.push_back(id);
        classes_[n].before.push_back(id);
        ++stats_.edges;
        if (maybe_cycle || p == n) {
            graph_cyclic_ = true;
        }
        propagate_fwd(p, classes_[n].fwd_mask);
        propagate_bwd(n, classes_[p].bwd_mask);
    } else {
        edge_dep_[found] |= dep;
    }
}

// One bfs() from next: O(classes + edges); the report O(path length).
bool Engine::check_noncircular(const HeldLock &prev, const HeldLock &next, const Origin &origin) {
    // hlock_conflict(): found prev's class over a path that is not
    // -(*R)-> into a shared prev.
    auto match = [&](const BfsEntry &e) {
        return e.cls == prev.cls && (prev.read == 0 || !e.only_xr);
    };
    std::int32_t target = bfs(next.cls, next.read == 2, /*forwards=*/true, match);
    if (target < 0) {
        return false;
    }
    Finding f;
    f.kind = FindingKind::Circular;
    f.acquiring = lock_ref(next.cls, next.stack, next.read);
    f.holding = lock_ref(prev.cls, prev.stack, prev.read);
    // print_circular_bug(): "-> #N" entries from the target back to the
    // root, whose trace is the current acquisition.
    std::vector<std::uint32_t> nodes = bfs_path(target);
    f.path.clear();
    for (std::uint32_t idx : nodes) {
        const BfsEntry &e = bfs_nodes_[idx];
        PathEntry pe;
        pe.name = report_class_name(classes_[e.cls].name, classes_[e.cls].id);
        pe.usage = usage_chars(usage_[e.cls]);
        pe.acquired_at = stacks_.get(e.edge == UINT32_MAX ? next.stack : edges_[e.edge].stack);
        f.path.push_back(std::move(pe));
    }
    // The scenario's middle: the parent of the target (first_parent).
    std::uint32_t parent = nodes.size() >= 2 ? bfs_nodes_[nodes[1]].cls : next.cls;
    f.middle_lock = lock_ref(parent, kNoStack);
    // Lock order: prev -> next -> ... -> prev.
    f.chain.push_back(f.holding->name);
    for (auto it = f.path.rbegin(); it != f.path.rend(); ++it) {
        f.chain.push_back(it->name);
    }
    // The signature must not depend on which edge closed the cycle: rotate
    // the cycle to start at its smallest name. O(k) in the cycle's length k.
    std::vector<std::string> cyc(f.chain.begin(), f.chain.end() - 1);
    auto smallest = std::min_element(cyc.begin(), cyc.end());
    std::rotate(cyc.begin(), smallest, cyc.end());
    std::unordered_map<std::string_view, std::uint32_t> class_by_name;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        class_by_name.try_emplace(f.path[i].name, bfs_nodes_[nodes[i]].cls);
    }
    std::unordered_set<std::string> listed;
    for (const auto &l : f.locks) {
        listed.insert(l.name);
    }
    f.signature_key = std::string(finding_kind_name(f.kind));
    for (const auto &name : cyc) {
        f.signature_key += ":" + name;
        auto c = class_by_name.find(name);
        if (c != class_by_name.end() && listed.insert(name).second) {
            f.locks.push_back(lock_ref(c->second, kNoStack));
        }
    }
    fill_common(f, origin);
    emit(std::move(f));
    return true;
}

// Skipped in O(1) unless the masks say a safe class lies behind prev and an
// unsafe one ahead of next; then a bfs() each way: O(classes + edges).
bool Engine::check_irq_usage(const HeldLock &prev, const HeldLock &next, const Origin &origin) {
    // Cheap proof of absence first: no irq-safe class behind prev whose
    // opposite usage is ahead of next.
    std::uint16_t behind = classes_[prev.cls].bwd_mask & kLockfUsedInIrqAll;
    if (!behind || !(classes_[next.cls].fwd_mask & exclusive_mask(behind))) {
        return false;
    }
    // Step 1: accumulate the irq usages backwards from prev.
    std::uint16_t usage_mask = 0;
    bfs(prev.cls, prev.read != 0, /*forwards=*/false, [&](const BfsEntry &e) {
        std::uint16_t u = usage_[e.cls];
        usage_mask |= e.only_xr ? (u & kLockfIrq) : u;
        return false;
    });
    usage_mask &= kLockfUsedInIrqAll;
    if (!usage_mask) {
        return false;
    }
    // Step 2: an exclusive usage forwards from next.
    std::uint16_t forward_mask = exclusive_mask(usage_mask);
    auto usage_match = [&](std::uint16_t m) {
        return [this, m](const BfsEntry &e) {
            std::uint16_t u = usage_[e.cls];
            if (e.only_xr) {
                u &= kLockfIrq;
            }
            return (u & m) != 0;
        };
    };
    std::int32_t t1 = bfs(next.cls, next.read == 2, /*forwards=*/true, usage_match(forward_mask));
    if (t1 < 0) {
        return false;
    }
    const std::uint32_t unsafe = bfs_nodes_[t1].cls;
    std::vector<std::string> fwd_names;
    for (std::uint32_t idx : bfs_path(t1)) {
        std::uint32_t c = bfs_nodes_[idx].cls;
        fwd_names.push_back(report_class_name(classes_[c].name, classes_[c].id));
    }
    std::vector<PathEntry> unsafe_path = print_path(t1, origin.stack);

    // Step 3: the backward lock whose usage the forward one excludes.
    std::uint16_t backward_mask = exclusive_mask(usage_[unsafe] & kLockfEnabledIrqAll);
    std::int32_t t = bfs(prev.cls, prev.read != 0, /*forwards=*/false, usage_match(backward_mask));
    if (t < 0) {
        return false;
    }
    const std::uint32_t safe = bfs_nodes_[t].cls;
    // Step 4: the pair of incompatible bits.
    int backward_bit = 0;
    int forward_bit = 0;
    if (!find_exclusive_match(usage_[safe], usage_[unsafe], &backward_bit, &forward_bit)) {
        return false;
    }
    Finding f;
    f.kind = FindingKind::IrqSafeToUnsafe;
    f.irq = irq_of_bit(backward_bit);
    f.irq_state = state_name(backward_bit);
    f.acquiring = lock_ref(next.cls, next.stack, next.read);
    f.holding = lock_ref(prev.cls, prev.stack, prev.read);
    f.safe_lock = lock_ref(safe, kNoStack);
    f.unsafe_lock = lock_ref(unsafe, kNoStack);
    f.safe_usage = usage_trace(safe, static_cast<UsageBit>(backward_bit));
    f.unsafe_usage = usage_trace(unsafe, static_cast<UsageBit>(forward_bit));
    // print_irq_lock_scenario(): the middle is prev unless prev is the safe
    // lock itself, then next.
    std::uint32_t middle = prev.cls == safe ? next.cls : prev.cls;
    f.middle_lock = lock_ref(middle, kNoStack);
    f.safe_path = print_path(t, origin.stack);
    f.unsafe_path = std::move(unsafe_path);
    for (std::uint32_t idx : bfs_path(t)) {  // safe .. prev: lock order
        std::uint32_t c = bfs_nodes_[idx].cls;
        f.chain.push_back(report_class_name(classes_[c].name, classes_[c].id));
    }
    for (auto it = fwd_names.rbegin(); it != fwd_names.rend(); ++it) {  // next .. unsafe
        f.chain.push_back(*it);
    }
    for (const LockRef *l : {&*f.safe_lock, &*f.holding, &f.acquiring, &*f.unsafe_lock}) {
        bool seen = false;
        for (const auto &have : f.locks) {
            seen = seen || have.name == l->name;
        }
        if (!seen) {
            f.locks.push_back(*l);
        }
    }
    f.hardirq_state_inferred =
        f.safe_usage->hardirq_state_inferred || f.unsafe_usage->hardirq_state_inferred;
    f.signature_key = std::string(finding_kind_name(f.kind)) + ":" +
                      state_name(backward_bit & ~kUsageReadMask) + ":" + f.safe_lock->name + "->" +
                      f.unsafe_lock->name;
    fill_common(f, origin);
    emit(std::move(f));
    return true;
}

// O(1): the same class is already held.
void Engine::check_deadlock(const HeldLock &next, const Origin &origin) {
    const HeldLock *prev = nullptr;
    for (const HeldLock &h : origin.held) {
        if (h.cls == next.cls && !(next.read == 2 && h.read)) {
            prev = &h;
            break;
        }
    }
    if (!prev) {
        return;
    }
    Finding f;
    f.kind = FindingKind::Recursive;
    f.acquiring = lock_ref(next.cls, next.stack, next.read);
    f.holding = lock_ref(prev->cls, prev->stack, prev->read);
    f.locks = {f.acquiring};
    f.chain = {f.holding->name, f.acquiring.name};
    f.signature_key = std::string(finding_kind_name(f.kind)) + ":" + f.acquiring.name;
    fill_common(f, origin);
    emit(std::move(f));
}

// lock_acquire() in NMI, where lockdep is off (lockdep.c, v6.1):
//
//     if (lockdep_nmi() && !trylock) { ... verify_lock_unused(lock, &hlock, subclass); }
//
// which reports a lock already used outside NMI, "inconsistent {INITIAL
// USE} -> {IN-NMI} usage", and records nothing: "READ locks only conflict
// with USED, such that if we only ever use READ locks, there is no deadlock
// possible -- RCU." O(1).
void Engine::verify_lock_unused(std::uint32_t cls, const AcquireEvent &ev) {
    if (ev.flags & acquire_flags::kTrylock) {
        return;
    }
    const std::uint8_t read = held_lock_of(ev, cls).read;
    const std::uint16_t mask = usage_[cls];
    UsageBit prev = UsageBit::Used;
    if (!(mask & lock_flag(UsageBit::Used))) {
        if (read || !(mask & lock_flag(UsageBit::UsedRead))) {
            return;
        }
        prev = UsageBit::UsedRead;
    }
    Finding f;
    f.kind = FindingKind::InconsistentState;
    f.prev_bit = prev;
    f.new_bit = UsageBit::InNmi;
    f.prev_usage = usage_trace(cls, prev);
    f.acquiring = lock_ref(cls, ev.stack, read);
    f.locks = {f.acquiring};
    f.chain = {f.acquiring.name};
    f.signature_key = std::string(finding_kind_name(f.kind)) + ":" + f.acquiring.name + ":" +
                      std::string(usage_bit_name(prev)) + "->IN_NMI";
    fill_common(f, acquire_origin(ev, {}));
    emit(std::move(f));
}

// ---------------------------------------------------------------------------
// Graph search and bookkeeping.

// Breadth-first, each class and each edge at most once: O(classes + edges).
template <typename Match>
std::int32_t Engine::bfs(std::uint32_t root, bool root_only_xr, bool forwards, Match &&match) {
    ++stats_.bfs_runs;
    if (visited_gen_.size() < classes_.size()) {
        visited_gen_.resize(classes_.size(), 0);
    }
    if (++gen_ == 0) {
        std::fill(visited_gen_.begin(), visited_gen_.end(), 0);
        gen_ = 1;
    }
    bfs_nodes_.clear();
    bfs_nodes_.push_back(BfsEntry{root, -1, UINT32_MAX, 0, root_only_xr});
    for (std::size_t head = 0; head < bfs_nodes_.size(); ++head) {
        const std::uint32_t cls = bfs_nodes_[head].cls;
        // lockdep marks a class accessed when it is dequeued, before the
        // dependency-type filter: the first path to reach it decides.
        if (visited_gen_[cls] == gen_) {
            continue;
        }
        visited_gen_[cls] = gen_;
        if (bfs_nodes_[head].parent >= 0) {
            std::uint8_t dep = bfs_nodes_[head].dep;
            if (bfs_nodes_[bfs_nodes_[head].parent].only_xr) {
                dep &= static_cast<std::uint8_t>(~(kDepSR | kDepSN));
            }
            if (!dep) {
                continue;
            }
            bfs_nodes_[head].only_xr = !(dep & (kDepSN | kDepEN));
        }
        if (match(bfs_nodes_[head])) {
            return static_cast<std::int32_t>(head);
        }
        const auto &list = forwards ? classes_[cls].after : classes_[cls].before;
        for (std::uint32_t eid : list) {
            const Edge &e = edges_[eid];
            bfs_nodes_.push_back(
                BfsEntry{forwards ? e.next : e.prev, static_cast<std::int32_t>(head), eid,
                         forwards ? edge_dep_[eid] : dep_backwards(edge_dep_[eid]), false});
        }
    }
    return -1;
}

std::vector<std::uint32_t> Engine::bfs_path(std::int32_t leaf) const {
    std::vector<std::uint32_t> out;
    for (std::int32_t i = leaf; i >= 0; i = bfs_nodes_[i].parent) {
        out.push_back(static_cast<std::uint32_t>(i));
    }
    return out;
}

// Stops where the bits are already known: each class gains each of the
// 8 bits once, so all propagation over a run is O(8 * (classes + edges)).
void Engine::propagate_fwd(std::uint32_t cls, std::uint8_t bits) {
    if (!bits || (classes_[cls].fwd_mask & bits) == bits) {
        return;
    }
    scratch_.clear();
    classes_[cls].fwd_mask |= bits;
    scratch_.push_back(cls);
    while (!scratch_.empty()) {
        std::uint32_t c = scratch_.back();
        scratch_.pop_back();
        for (std::uint32_t eid : classes_[c].before) {
            std::uint32_t p = edges_[eid].prev;
            if ((classes_[p].fwd_mask & bits) != bits) {
                classes_[p].fwd_mask |= bits;
                scratch_.push_back(p);
            }
        }
    }
}

void Engine::propagate_bwd(std::uint32_t cls, std::uint8_t bits) {
    if (!bits || (classes_[cls].bwd_mask & bits) == bits) {
        return;
    }
    scratch_.clear();
    classes_[cls].bwd_mask |= bits;
    scratch_.push_back(cls);
    while (!scratch_.empty()) {
        std::uint32_t c = scratch_.back();
        scratch_.pop_back();
        for (std::uint32_t eid : classes_[c].after) {
            std::uint32_t n = edges_[eid].next;
            if ((classes_[n].bwd_mask & bits) != bits) {
                classes_[n].bwd_mask |= bits;
                scratch_.push_back(n);
            }
        }
    }
}

// Pearce & Kelly's dynamic topological order: adding prev -> next only
// needs work when next is not already after prev. Returns false when next
// reaches prev (the new edge closes a cycle); the order is then left as is.
// Sorts the classes of one side of a reordering (all with topo in [lb, ub])
// by their topological position: by scanning that range of the order when
// it is not much wider than the list, O(ub - lb); by sorting otherwise,
// O(k log k). The scan made the worst case (a chain built against the order
// its classes were met in, every insertion moving the chain) 15x faster.
void Engine::order_by_topo(std::vector<std::uint32_t> &list, std::uint32_t lb, std::uint32_t ub) {
    if (list.size() < 2) {
        return;
    }
    if (ub - lb > 4 * list.size()) {
        std::sort(list.begin(), list.end(), [this](std::uint32_t a, std::uint32_t b) {
            return classes_[a].topo < classes_[b].topo;
        });
        return;
    }
    if (++gen_ == 0) {  // a fresh mark; visited_gen_ is sized by the caller
        std::fill(visited_gen_.begin(), visited_gen_.end(), 0);
        gen_ = 1;
    }
    for (std::uint32_t c : list) {
        visited_gen_[c] = gen_;
    }
    std::size_t i = 0;
    for (std::uint32_t pos = lb; pos <= ub && i < list.size(); ++pos) {
        if (visited_gen_[topo_order_[pos]] == gen_) {
            list[i++] = topo_order_[pos];
        }
    }
}

// Pearce-Kelly: O(region) to find the classes to move and O(region) or
// O(region log region) to move them, where region is what lies between
// next and prev in the order and is reachable from them: at most
// O(max_classes + max_edges) per new dependency.
bool Engine::topo_insert(std::uint32_t prev, std::uint32_t next) {
    const std::uint32_t lb = classes_[next].topo;
    const std::uint32_t ub = classes_[prev].topo;
    if (prev == next) {
        return false;
    }
    if (ub < lb) {
        return true;
    }
    if (visited_gen_.size() < classes_.size()) {
        visited_gen_.resize(classes_.size(), 0);
    }
    if (++gen_ == 0) {
        std::fill(visited_gen_.begin(), visited_gen_.end(), 0);
        gen_ = 1;
    }
    std::vector<std::uint32_t> delta_f;
    std::vector<std::uint32_t> delta_b;
    std::vector<std::uint32_t> stack{next};
    visited_gen_[next] = gen_;
    while (!stack.empty()) {
        std::uint32_t c = stack.back();
        stack.pop_back();
        delta_f.push_back(c);
        for (std::uint32_t eid : classes_[c].after) {
            std::uint32_t n = edges_[eid].next;
            if (n == prev) {
                return false;
            }
            if (visited_gen_[n] != gen_ && classes_[n].topo < ub) {
                visited_gen_[n] = gen_;
                stack.push_back(n);
            }
        }
    }
    stack.push_back(prev);
    visited_gen_[prev] = gen_;
    while (!stack.empty()) {
        std::uint32_t c = stack.back();
        stack.pop_back();
        delta_b.push_back(c);
        for (std::uint32_t eid : classes_[c].before) {
            std::uint32_t p = edges_[eid].prev;
            if (visited_gen_[p] != gen_ && classes_[p].topo > lb) {
                visited_gen_[p] = gen_;
                stack.push_back(p);
            }
        }
    }
    order_by_topo(delta_f, lb, ub);
    order_by_topo(delta_b, lb, ub);
    // Both lists in topological order: their slots, merged, are sorted.
    std::vector<std::uint32_t> slots(delta_f.size() + delta_b.size());
    auto topo_of = [this](std::uint32_t c) { return classes_[c].topo; };
    std::vector<std::uint32_t> f_slots(delta_f.size()), b_slots(delta_b.size());
    std::transform(delta_f.begin(), delta_f.end(), f_slots.begin(), topo_of);
    std::transform(delta_b.begin(), delta_b.end(), b_slots.begin(), topo_of);
    std::merge(b_slots.begin(), b_slots.end(), f_slots.begin(), f_slots.end(), slots.begin());
    std::size_t i = 0;
    for (std::uint32_t c : delta_b) {
        classes_[c].topo = slots[i];
        topo_order_[slots[i++]] = c;
    }
    for (std::uint32_t c : delta_f) {
        classes_[c].topo = slots[i];
        topo_order_[slots[i++]] = c;
    }
    return true;
}

// ---------------------------------------------------------------------------
// Findings.

LockRef Engine::lock_ref(std::uint32_t cls, StackId at, std::uint8_t read) const {
    LockRef r;
    r.name = report_class_name(classes_[cls].name, classes_[cls].id);
    r.usage = usage_chars(usage_[cls]);
    r.at = stacks_.get(at);
    r.read = read;
    return r;
}

UsageTrace Engine::usage_trace(std::uint32_t cls, UsageBit bit) const {
    UsageTrace t;
    t.bit = bit;
    std::uint32_t idx = classes_[cls].usage_rec[static_cast<int>(bit)];
    if (idx) {
        const UsageRecord &r = usage_records_[idx - 1];
        t.stack = stacks_.get(r.stack);
        t.task = r.task;
        t.cpu = r.cpu;
        t.time_ns = r.time_ns;
        t.hardirq_state_inferred = r.inferred;
    }
    return t;
}

PathEntry Engine::path_entry(std::uint32_t cls, StackId acquired_at) const {
    PathEntry pe;
    pe.name = report_class_name(classes_[cls].name, classes_[cls].id);
    pe.usage = usage_chars(usage_[cls]);
    for (int bit = 0; bit < kNumUsageBits; ++bit) {
        if (usage_[cls] & lock_flag(bit)) {
            pe.usages.push_back(usage_trace(cls, static_cast<UsageBit>(bit)));
        }
    }
    pe.acquired_at = stacks_.get(acquired_at);
    return pe;
}

// print_shortest_lock_dependencies(): leaf first; each entry's trace is the
// dependency that reached it, the root's is the current acquisition.
std::vector<PathEntry> Engine::print_path(std::int32_t leaf, StackId root_trace) const {
    std::vector<PathEntry> out;
    for (std::uint32_t idx : bfs_path(leaf)) {
        const BfsEntry &e = bfs_nodes_[idx];
        out.push_back(path_entry(e.cls, e.edge == UINT32_MAX ? root_trace : edges_[e.edge].stack));
    }
    return out;
}

void Engine::fill_common(Finding &f, const Origin &origin) const {
    f.task = origin.task;
    f.cpu = origin.cpu;
    f.time_ns = origin.time_ns;
    f.context = origin.context;
    f.irq_flags = origin.flags;
    f.hardirq_state_inferred = f.hardirq_state_inferred || origin.inferred;
    for (const HeldLock &h : origin.held) {
        f.held.push_back(lock_ref(h.cls, h.stack, h.read));
    }
    f.stack = stacks_.get(origin.stack);
}

namespace {

// Keeps the first and last kMaxPathEntries / 2 entries; O(path length).
std::uint64_t elide_middle(std::vector<PathEntry> &path) {
    constexpr std::size_t kKeep = kMaxPathEntries / 2;
    if (path.size() <= kMaxPathEntries) {
        return 0;
    }
    std::size_t gap = path.size() - 2 * kKeep;
    path.erase(path.begin() + kKeep, path.end() - kKeep);
    path[kKeep].elided_before += static_cast<std::uint32_t>(gap);
    return gap;
}

void elide_middle(std::vector<std::string> &chain) {
    constexpr std::size_t kKeep = kMaxPathEntries / 2;
    if (chain.size() <= kMaxPathEntries) {
        return;
    }
    std::size_t gap = chain.size() - 2 * kKeep;
    chain.erase(chain.begin() + kKeep + 1, chain.end() - kKeep);
    chain[kKeep] = "... " + std::to_string(gap) + " more ...";
}

// The frame text a stack adds to a report, roughly: what the renderers print.
std::size_t stack_text_bytes(const StackRef &stack) {
    std::size_t n = 0;
    if (stack) {
        for (const Frame &fr : *stack) {
            n += fr.symbol.size() + fr.file.size() + fr.module.size() + 40;
        }
    }
    return n;
}

// A report prints each path entry's stacks. Past kMaxReportStackBytes of
// frame text (kernel stacks are about 2 KiB; a trace's may be 256 frames of
// 512-character symbols) the further ones are replaced by one frame saying
// so. O(stacks in the finding).
std::uint64_t bound_stack_text(Finding &f) {
    static const StackRef left_out = [] {
        Frame note;
        note.symbol = "(stack left out: the report is over its size bound)";
        return StackRef(Stack{note});
    }();
    std::size_t budget = kMaxReportStackBytes;
    std::uint64_t dropped = 0;
    auto keep = [&](StackRef &stack) {
        std::size_t n = stack_text_bytes(stack);
        if (n > budget) {
            stack = left_out;
            ++dropped;
        } else {
            budget -= n;
        }
    };
    for (auto *path : {&f.path, &f.safe_path, &f.unsafe_path}) {
        for (PathEntry &e : *path) {
            keep(e.acquired_at);
            for (UsageTrace &u : e.usages) {
                keep(u.stack);
            }
        }
    }
    return dropped;
}

}  // namespace

bool Engine::add_reported(const std::string &signature) {
    if (reported_before_.size() >= options_.max_findings) {
        return false;
    }
    reported_before_.try_emplace(signature, false);
    return true;
}

void Engine::emit(Finding &&f) {
    f.signature = signature_hash(f.signature_key);
    if (finding_by_signature_.contains(f.signature)) {
        ++stats_.duplicate_findings;
        return;
    }
    if (auto before = reported_before_.find(f.signature); before != reported_before_.end()) {
        stats_.reported_before += before->second ? 0 : 1;
        before->second = true;
        return;
    }
    if (findings_.size() >= options_.max_findings) {
        ++stats_.findings_over_limit;
        return;
    }
    finding_by_signature_.emplace(f.signature, findings_.size());
    for (auto *path : {&f.path, &f.safe_path, &f.unsafe_path}) {
        stats_.path_entries_elided += elide_middle(*path);
    }
    elide_middle(f.chain);
    stats_.stacks_elided += bound_stack_text(f);
    f.title = make_title(f.kind, f.stack.get());
    f.kernel_ident = options_.kernel_ident;
    ++stats_.findings;
    findings_.push_back(std::move(f));
    if (handler_) {
        handler_(findings_.back());
    }
}

}  // namespace lockwatch::engine
