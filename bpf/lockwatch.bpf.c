// SPDX-License-Identifier: GPL-2.0
/*
 * lockwatch's kernel side: one small program per out-of-line lock function,
 * as fentry/fexit or as kprobe/kretprobe (the loader picks per function).
 *
 * Each acquire works out the context and irq state, derives the lock's
 * class, and keeps a per-CPU, per-context held-lock stack as lockdep's
 * held_locks. Only facts never seen before (a class, a usage bit, an
 * ordering edge) go to the ring buffer; a lock pair already seen costs a
 * hash lookup and nothing else.
 *
 * Every program runs under a per-CPU, per-context "busy" flag shared by all
 * of them: the maps and the ring buffer we use take kernel spinlocks, which
 * would otherwise re-enter us. What the guard skips is counted.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "irq_context.bpf.h"
#include "lock_class.bpf.h"
#include "lockwatch.h"
#include "return_address.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* A kernel built with lockdep: its lockdep_map (embedded in every lock) and
 * its own per-CPU view of the hardirq state. CO-RE resolves them on such a
 * kernel; the programs that use them are not loaded anywhere else. */
struct lockdep_map___lw {
    void *key;
    const char *name;
    __u8 wait_type_outer;
    __u8 wait_type_inner;
    __u8 lock_type;
} __attribute__((preserve_access_index));
extern int hardirqs_enabled __ksym __weak;
/* lockdep's master switch: debug_locks_off() clears it at lockdep's first
 * report, and from then on lockdep_hardirqs_on()/_off() return early, so
 * hardirqs_enabled keeps whatever it last held. Not in BTF (only per-CPU
 * variables are): read as memory. */
extern const void debug_locks __ksym __weak;
/* The irq tracer's per-CPU "hardirqs are off" flag (kernel/trace/
 * trace_preemptirq.c), kept by trace_hardirqs_on()/_off() and the entry
 * code beside lockdep's own calls, whatever debug_locks says. Built
 * wherever lockdep tracks irqs (TRACE_IRQFLAGS). */
extern int tracing_irq_cpu __ksym __weak;

/* A statically initialized lock has no key until lockdep registers its
 * class, and then the key is the lock's own lockdep_map: lockdep's rule for
 * static objects. The tracepoint fires before that (and never again once
 * lockdep has turned itself off after a report), so apply the rule here. */
static __always_inline __u64 lockdep_key(struct lockdep_map___lw *map)
{
    __u64 key = (__u64)BPF_CORE_READ(map, key);

    return key ? key : (__u64)map;
}

/* lockdep's wait types: their values depend on the kernel's config
 * (LD_WAIT_CONFIG is LD_WAIT_SPIN without PROVE_RAW_LOCK_NESTING), so CO-RE
 * reads them from the kernel. */
enum lockdep_wait_type___lw {
    LD_WAIT_SPIN___lw = 2,   /* raw_spinlock_t */
    LD_WAIT_CONFIG___lw = 3, /* spinlock_t, rwlock_t (and rcu_read_lock) */
};
#define LW_LD_LOCK_NORMAL 0

#define X86_EFLAGS_IF 0x200
#define EEXIST 17
#define E2BIG 7

/* Set by user space just before it detaches: every program returns at once,
 * so that nothing of ours runs (or takes a lock) while the kernel unpatches
 * the lock functions. */
bool stopping = false;

/* Set by the loader before load: only acquires that run inside one of the
 * --focus functions (probes below keep the scope depth) become facts. */
const volatile bool focus_enabled = false;
/* Track NMI acquisitions like any context's (stricter than lockdep, which
 * only checks that an NMI's lock was never used outside NMI). */
const volatile bool nmi_graph = false;
/* --record-ops: every acquire and release also as a record (a ring buffer
 * record and a stack walk per operation: a debugging aid). Off, the
 * verifier drops the code that sends them. */
const volatile bool record_ops = false;
/* --profile-phases: what each step of an operation costs, added up in
 * phase_costs (enum lw_phase). Off, the verifier drops the stamps. */
const volatile bool profile_phases = false;

/* Focus scope depth: per task in task context (focus functions may sleep),
 * per CPU for the interrupt contexts (they cannot). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u32);
    __type(value, __u32);
} focus_task_depth SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LW_CTX_COUNT);
    __type(key, __u32);
    __type(value, __u32);
} focus_irq_depth SEC(".maps");

struct held_lock {
    __u64 lock;
    __u64 class_id;
    __u64 site; /* the lock call's return address, 0 where the hook cannot see it */
    __u32 function;
    __u32 acquire_flags; /* enum lw_acquire_flags */
};

/* Entries are pushed on acquire. A release of the top entry pops it (and
 * any released entries under it); a release further down leaves a
 * tombstone (lock == 0), so that no loop has to move entries around. */
struct held_stack {
    __u32 depth;
    __u32 irqs_off_held; /* entries acquired with _irq/_irqsave, tombstones excluded */
    struct held_lock locks[LW_MAX_HELD];
};

enum lw_op_kind { OP_ACQUIRE, OP_RELEASE, OP_TRYLOCK_ENTRY, OP_TRYLOCK_EXIT };

/*
 * Where the lock was taken, lockdep's "at:" for a held lock: the return
 * address of the lock call. Each hook finds it its own way; it is read only
 * for acquires that will be tracked.
 */
enum lw_site_source {
    SITE_NONE,
    SITE_KPROBE_ENTRY, /* the word at the stack pointer */
    SITE_KRETPROBE,    /* regs->ip: the kretprobe puts the real return address there */
    SITE_TRAMPOLINE,   /* the BPF trampoline's frame (fentry, fexit) */
    SITE_LOCKDEP_IP,   /* lock_acquire()'s ip argument */
};

/* The hardirq state as the hook saw it: kprobes read it from the saved
 * EFLAGS, the lockdep backend from lockdep's own per-CPU record; fentry and
 * fexit cannot see it, and on_acquire() infers it. */
enum lw_hardirq_state {
    HARDIRQS_UNKNOWN = 0,
    HARDIRQS_OFF,
    HARDIRQS_ON,
};

/* One lock operation, as a hook describes it to on_lock_op(). A hook names
 * only what it knows; the rest is zero: hardirq state unknown, no call
 * site, subclass 0. */
struct lock_op {
    enum lw_op_kind kind;
    __u32 function; /* enum lw_lock_function_id, or LW_FN_LOCKDEP */
    __u32 flags;    /* enum lw_acquire_flags */
    __u64 lock;     /* lockdep backend: the lock's lockdep_map */
    enum lw_hardirq_state hardirqs;
    enum lw_site_source site_from;
    __u32 subclass; /* lockdep backend */
    int trylock_ok; /* OP_TRYLOCK_EXIT: the trylock's return value */
    __u32 enables;  /* RELEASE: enum lw_irq_flags this unlock may turn back on */
};

/* An acquire being processed: the lock_op and what on_lock_op() and
 * on_acquire() work out about it. */
struct acquire {
    __u64 lock; /* lockdep backend: the lock's lockdep_map */
    __u64 site; /* return address of the lock call, 0 where the hook cannot see it */
    __u32 subclass; /* lockdep backend */
    __u32 function;
    __u32 flags; /* enum lw_acquire_flags */
    __u32 context;
    __u32 irq_flags;
    __u32 preempt_count; /* read once per operation, in on_lock_op() */
};

struct edge_key {
    __u64 prev;
    __u64 next;
    /* Read levels, bits 0-1 prev, 2-3 next: a dependency through a
     * recursive reader is weaker than through a plain one (calc_dep()), so
     * the stronger one must still be sent when the weaker came first. */
    __u32 read_flags;
    __u32 context;
};

/*
 * Facts the dedup maps (class_usage, edges) already hold, direct-mapped per
 * CPU and context in front of them: in steady state nearly every acquire's
 * facts are known, and a hit here is a few loads where the hash lookup
 * hashes the key and walks a bucket (bench/vm/cost.sh --profile). Only what
 * a lookup found in a map goes in, and the maps never forget a fact, so a
 * hit is never wrong and a miss costs the lookup it always did. (A fact
 * whose record found the ring buffer full is unmarked again, and counted; a
 * CPU that saw it marked in that window may not send it again.) Per
 * context, so that our programs run nested by an interrupt cannot tear an
 * entry this context is reading.
 */
/* bench/vm/cost.sh's ~90 classes: a usage check cost 106 instructions
 * with 32 slots in use, 62 with 128 (bench/vm/cost.sh --profile); 128
 * keeps cpu_state well under the 32 KiB a per-CPU map value may take. */
#define LW_KNOWN_USAGE_SLOTS 128
#define LW_KNOWN_EDGE_SLOTS 64
struct known_usage {
    __u64 class_id;
    __u64 bits; /* usage bits (and LW_CLASS_REPORTED) the map holds */
};

struct known_facts {
    struct known_usage usage[LW_KNOWN_USAGE_SLOTS];
    struct edge_key edges[LW_KNOWN_EDGE_SLOTS];
};

struct cpu_state {
    struct lw_cpu_calls counted; /* first: user space reads it (lockwatch.h) */
    struct held_stack ctx[LW_CTX_COUNT];
    /* kprobe mode: a trylock's lock and hardirq state between entry and return */
    __u64 trylock_lock[LW_CTX_COUNT];
    __u32 trylock_hardirqs[LW_CTX_COUNT]; /* enum lw_hardirq_state */
    __u32 busy[LW_CTX_COUNT];
    /* Set by every push in an interrupt context, cleared by
     * drop_finished_contexts() before it looks at that context's stack:
     * one load tells a lower context that no stack above it can hold
     * anything (an operation's entry: 58 instructions with the loop over
     * the stacks, 27 with this). A byte per context, so that a nested
     * context's store cannot tear another's. */
    union {
        __u8 in[LW_CTX_COUNT];
        __u32 any;
    } may_hold;
    /* The operation being processed and its class, per context. They live
     * here rather than on the stack so that the verifier does not follow
     * their values as constants: it would walk the code below once per
     * combination (class type, irq state, ...) and run out of its budget. */
    struct acquire acquire[LW_CTX_COUNT];
    struct lw_class class[LW_CTX_COUNT];
    __u64 phase_since[LW_CTX_COUNT]; /* --profile-phases: the last stamp */
    struct known_facts known[LW_CTX_COUNT];
    struct known_classes classes[LW_CTX_COUNT];
};
_Static_assert(__builtin_offsetof(struct cpu_state, counted) == 0, "user space reads it there");
_Static_assert(LW_CTX_COUNT == sizeof(__u32), "may_hold.any covers every context");
_Static_assert(sizeof(struct cpu_state) <= 32768, "a per-CPU map value takes at most 32 KiB");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct cpu_state);
} cpu_states SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LW_PHASE_COUNT);
    __type(key, __u32);
    __type(value, struct lw_phase_cost);
} phase_costs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LW_LOSS_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} losses SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LW_NOTE_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} notes SEC(".maps");

/* Set once a function's first call has been reported. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, LW_FN_SLOTS);
    __type(key, __u32);
    __type(value, __u64); /* 64-bit for cmpxchg without -mcpu=v3 */
} first_call_reported SEC(".maps");

/* class id -> usage bits already reported (bit 31: class reported). */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, LW_CLASS_USAGE_MAP_ENTRIES);
    __type(key, __u64);
    __type(value, __u64); /* 64-bit for atomic or without -mcpu=v3 */
} class_usage SEC(".maps");

/* Edges already reported. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, LW_EDGES_MAP_ENTRIES);
    __type(key, struct edge_key);
    __type(value, __u8);
} edges SEC(".maps");

/* Lock address -> the call site of its first acquire seen. It names locks
 * in memory that says nothing of their type (stacks, vmalloc), and tells
 * apart locks of unrelated structs that share a generic kmalloc-N cache and
 * an offset. The first acquirer's site holds for as long as the address
 * stays in this cache, so that one lock keeps one class whoever takes it. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, __u64);
} first_sites SEC(".maps");

/*
 * Object start -> the call site of its allocation, for objects of the
 * generic kmalloc-N caches (the kmalloc tracepoint's call_site: the caller
 * of kmalloc(), and of kmemdup(), kstrdup(), krealloc() and the other
 * _track_caller wrappers). lockdep keys a lock by its spin_lock_init() call
 * site; in a cache any struct of a size may come from, the allocation site
 * is the closest thing to that an address can give: one struct type, one
 * constructor. Entries are never deleted on kfree(): every allocation of an
 * address overwrites its entry, so an entry always names the object's latest
 * allocation, and entries nobody locks are the first the LRU evicts (the
 * acquires that lock_class.bpf.h's cache serves look theirs up now and then
 * to keep it so).
 */
#define LW_ALLOC_SITES 65536
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, LW_ALLOC_SITES);
    __type(key, __u64);
    __type(value, __u64);
} alloc_sites SEC(".maps");

/* lockdep backend: (lockdep class, address-rule class) pairs already sent. */
struct class_pair {
    __u64 lockdep_class;
    __u64 derived_class;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct class_pair);
    __type(value, __u8);
} class_pairs SEC(".maps");

/* lockdep backend: lock instance -> the lockdep class it was last paired
 * under, so that a lock seen before costs one lookup, not a classification. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, __u64);
} paired_locks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, 16384);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, 127 * sizeof(__u64));
} stacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 4 * 1024 * 1024);
} records SEC(".maps");

#define LW_CLASS_REPORTED (1ULL << 31)

extern const void _etext __ksym __weak;

static __always_inline void count(void *map, __u32 key)
{
    __u64 *n = bpf_map_lookup_elem(map, &key);

    if (n)
        *n += 1;
}

/* --profile-phases: a stamp that ends `phase` (LW_PHASE_COUNT: none) and
 * starts the next. Self-contained, so that each stamp costs the same and
 * LW_PHASE_STAMP measures it. */
static __noinline void stamp_phase(__u32 context, __u32 phase)
{
    struct lw_phase_cost *cost;
    struct cpu_state *cpu;
    __u32 zero = 0;
    __u64 now;

    now = bpf_ktime_get_ns();
    cpu = bpf_map_lookup_elem(&cpu_states, &zero);
    if (!cpu)
        return;
    cost = bpf_map_lookup_elem(&phase_costs, &phase);
    if (cost) {
        cost->ns += now - cpu->phase_since[context & (LW_CTX_COUNT - 1)];
        cost->count++;
    }
    cpu->phase_since[context & (LW_CTX_COUNT - 1)] = bpf_ktime_get_ns();
}

/* Out of line, so that without --profile-phases a stamp is one load of
 * the flag: the verifier knows it and drops the branch and the call.
 * Inlined, the compiler hoisted the stamp's
 * stores above the test, and its registers made the code around spill:
 * 6 % of lockwatch's added instructions on cost.sh's workload (1.379 ->
 * 1.295, one boot), for 2 s more attach in the icount guest (21 -> 23 s).
 * A barrier in the inlined stamp kept the stores below the test but not
 * the spills. */
static __always_inline void phase_stamp(__u32 context, __u32 phase)
{
    if (profile_phases)
        stamp_phase(context, phase);
}

/* A dedup insert's outcome: true when the fact is to be sent. A full map
 * (-E2BIG) sends nothing and counts a loss: sending anyway would send the
 * fact again on every later acquire. Any other failure (-EBUSY) sends it,
 * perhaps twice. */
static __always_inline bool dedup_inserted(long err)
{
    if (err == -E2BIG) {
        count(&losses, LW_LOSS_DEDUP_FULL);
        return false;
    }
    if (err)
        count(&notes, LW_NOTE_DEDUP_FAILED);
    return true;
}

/* The first frame outside the lock functions and outside BPF (trampolines
 * and programs live in the module area, before the lock function): kernel
 * text or module code (lw_is_call_site). */
static __always_inline __u64 call_site(void *ctx)
{
    __u64 ips[6] = {};
    __u64 text = (__u64)&_stext, etext = (__u64)&_etext, image_end = (__u64)&_end;
    __u64 lock_start = (__u64)&__lock_text_start, lock_end = (__u64)&__lock_text_end;
    long n = bpf_get_stack(ctx, ips, sizeof(ips), 0);
    int past_kernel = 0;

    for (int i = 0; i < 6; i++) {
        if (i * 8 >= n)
            break;
        if (lw_is_call_site(ips[i], text, etext, lock_start, lock_end, image_end, &past_kernel))
            return ips[i];
    }
    return 0;
}

/* A zeroed record; with_stack: the kernel stack in the stacks map. */
static __always_inline struct lw_record *new_record_of(void *ctx, __u32 type, __u32 function,
                                                       __u32 context, bool with_stack)
{
    struct lw_record *rec = bpf_ringbuf_reserve(&records, sizeof(*rec), 0);

    if (!rec) {
        count(&losses, LW_LOSS_RINGBUF_FULL);
        return NULL;
    }
    __builtin_memset(rec, 0, sizeof(*rec));
    rec->type = type;
    rec->function = function;
    rec->time_ns = bpf_ktime_get_ns();
    rec->stack_id = with_stack ? bpf_get_stackid(ctx, &stacks, 0) : -1;
    if (with_stack && rec->stack_id < 0)
        count(&losses, LW_LOSS_STACK);
    rec->cpu = bpf_get_smp_processor_id();
    rec->pid = (__u32)bpf_get_current_pid_tgid();
    rec->context = context;
    bpf_get_current_comm(rec->comm, sizeof(rec->comm));
    return rec;
}

static __always_inline struct lw_record *new_record(void *ctx, __u32 type, __u32 function,
                                                    __u32 context)
{
    return new_record_of(ctx, type, function, context, true);
}

/* --record-ops: one operation. `lock` goes out in class_key; user space
 * numbers locks per run, so an address never leaves the host. A release
 * carries no stack (the replay has no use for it, and it would fill the
 * stacks map the facts need). */
static __always_inline void report_op(void *ctx, __u32 type, __u32 function, __u32 context,
                                      __u64 lock, __u64 class_id, __u32 flags, __u32 irq_flags)
{
    struct lw_record *rec =
        new_record_of(ctx, type, function, context, type != LW_RECORD_OP_RELEASE);

    if (!rec)
        return;
    rec->class_key = lock;
    rec->class_id = class_id;
    rec->acquire_flags = flags;
    rec->irq_flags = irq_flags;
    bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
}

static __always_inline void report_first_call(void *ctx, __u32 function, __u32 context)
{
    __u64 *reported = bpf_map_lookup_elem(&first_call_reported, &function);
    struct lw_record *rec;

    if (!reported || *reported || __sync_val_compare_and_swap(reported, 0, 1) != 0)
        return;
    rec = new_record(ctx, LW_RECORD_FIRST_CALL, function, context);
    if (rec)
        bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
}

/* One more call of `function` on this CPU; its first anywhere is reported
 * (a CPU's first asks whether another CPU's came before). */
static __always_inline void count_call(void *ctx, struct cpu_state *cpu, __u32 function,
                                       __u32 context)
{
    __u64 *calls;

    if (function >= LW_FN_SLOTS)
        return;
    calls = &cpu->counted.calls[function];
    if (*calls == 0)
        report_first_call(ctx, function, context);
    *calls += 1;
}

static __always_inline void fill_class(struct lw_record *rec, const struct lw_class *c,
                                       __u64 lock, __u64 site)
{
    rec->class_id = c->id;
    rec->class_type = c->type;
    rec->class_offset = c->offset;
    rec->object_size = c->object_size;
    if (c->type == LW_CLASS_STATIC || c->type == LW_CLASS_MODULE)
        rec->class_key = lock;
    else if (c->type == LW_CLASS_SITE)
        rec->class_key = site;
    else if (c->type == LW_CLASS_SLAB || c->type == LW_CLASS_KMALLOC ||
             c->type == LW_CLASS_KMALLOC_ALLOC) {
        struct kmem_cache *cache = (struct kmem_cache *)c->cache;

        rec->class_key = c->cache;
        rec->site = site;
        bpf_probe_read_kernel_str(rec->name, sizeof(rec->name), BPF_CORE_READ(cache, name));
    } else if (c->type == LW_CLASS_LOCKDEP) {
        struct lockdep_map___lw *map = (struct lockdep_map___lw *)lock;

        /* Resolved at load: without lockdep this branch is dead code. */
        if (!bpf_core_field_exists(map->key))
            return;

        rec->class_key = lockdep_key(map);
        bpf_probe_read_kernel_str(rec->name, sizeof(rec->name), BPF_CORE_READ(map, name));
    }
}


/* lockdep's mark_usage(), shared with the engine (acquire_flags.h). */
static __always_inline __u32 usage_mask_of(const struct acquire *a)
{
    return lw_usage_mask(a->flags, a->context, !!(a->irq_flags & LW_IRQ_HARDIRQS_ENABLED),
                         !!(a->irq_flags & LW_IRQ_SOFTIRQS_ENABLED));
}

/* Class ids always have bit 0 set (class_id_of). */
static __always_inline __u32 known_usage_slot(__u64 class_id)
{
    return (class_id >> 1) & (LW_KNOWN_USAGE_SLOTS - 1);
}

/* Whether this context's cache says class_usage holds all of `mask`. */
static __always_inline bool usage_known(const struct known_facts *k, __u64 class_id, __u64 mask)
{
    const struct known_usage *slot = &k->usage[known_usage_slot(class_id)];

    return slot->class_id == class_id && (slot->bits & mask) == mask;
}

/* `bits`: what class_usage was just read to hold for the class. */
static __always_inline void remember_usage(struct known_facts *k, __u64 class_id, __u64 bits)
{
    struct known_usage *slot = &k->usage[known_usage_slot(class_id)];

    slot->class_id = class_id;
    slot->bits = bits;
}

/* A fact whose record found no room in the ring buffer is not seen yet:
 * the next acquire that has it sends it again. */
static __always_inline void unmark_usage(__u64 class_id, __u64 bits)
{
    __u64 *known = bpf_map_lookup_elem(&class_usage, &class_id);

    if (known)
        __sync_fetch_and_and(known, ~bits);
}

static __always_inline void report_class_and_usage(void *ctx, struct known_facts *k,
                                                   const struct acquire *a,
                                                   const struct lw_class *c, __u64 site)
{
    __u64 mask = usage_mask_of(a) | LW_CLASS_REPORTED;
    __u64 *known, old = 0, fresh;
    struct lw_record *rec;

    if (usage_known(k, c->id, mask))
        return;
    known = bpf_map_lookup_elem(&class_usage, &c->id);
    if (known) {
        old = *known;
        if ((old & mask) == mask) {
            remember_usage(k, c->id, old);
            return;
        }
        __sync_fetch_and_or(known, mask);
    } else {
        long err = bpf_map_update_elem(&class_usage, &c->id, &mask, BPF_NOEXIST);

        if (err == -EEXIST) {
            known = bpf_map_lookup_elem(&class_usage, &c->id);
            if (!known)
                return;
            old = *known;
            __sync_fetch_and_or(known, mask);
        } else if (!dedup_inserted(err)) {
            return;
        } else if (!err) {
            count(&notes, LW_NOTE_CLASSES_KEPT);
        }
    }
    fresh = mask & ~old;

    if (fresh & LW_CLASS_REPORTED) {
        rec = new_record(ctx, LW_RECORD_CLASS, a->function, a->context);
        if (!rec) {
            unmark_usage(c->id, LW_CLASS_REPORTED);
        } else {
            fill_class(rec, c, a->lock, site);
            rec->irq_flags = a->irq_flags;
            rec->acquire_flags = a->flags;
            bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
        }
    }
    /* In mark_usage()'s order: the engine reports in the order facts come. */
    for (__u32 i = 0; i < LW_USAGE_BITS; i++) {
        __u32 bit = lw_usage_bit_at(i);

        if (!(fresh & (1ULL << bit)))
            continue;
        rec = new_record(ctx, LW_RECORD_USAGE, a->function, a->context);
        if (!rec) {
            unmark_usage(c->id, 1ULL << bit);
            continue;
        }
        rec->class_id = c->id;
        rec->class_type = c->type;
        rec->usage_bit = bit;
        rec->irq_flags = a->irq_flags;
        rec->acquire_flags = a->flags;
        bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
    }
}

/* True while `lock` is still locked: a qspinlock's or qrwlock's word is
 * non-zero while anyone holds it. A held entry whose lock reads unlocked
 * lost its release. */
static __always_inline bool still_locked(__u64 lock)
{
    __u32 word = 1;

    bpf_probe_read_kernel(&word, sizeof(word), (void *)lock);
    return word != 0;
}

static __always_inline void edge_key_of(struct edge_key *key, const struct acquire *a,
                                        __u64 next_class, const struct held_lock *prev)
{
    key->prev = prev->class_id;
    key->next = next_class;
    key->read_flags =
        lw_read_level(prev->acquire_flags, a->context) | lw_read_level(a->flags, a->context) << 2;
    key->context = a->context;
}

static __always_inline struct edge_key *known_edge_slot(struct known_facts *k,
                                                        const struct edge_key *key)
{
    return &k->edges[(key->prev ^ (key->next >> 7) ^ key->read_flags) & (LW_KNOWN_EDGE_SLOTS - 1)];
}

static __always_inline bool edge_known(struct known_facts *k, const struct edge_key *key)
{
    const struct edge_key *known = known_edge_slot(k, key);

    return known->prev == key->prev && known->next == key->next &&
           known->read_flags == key->read_flags && known->context == key->context;
}

static __always_inline void report_edge(void *ctx, struct known_facts *k, const struct acquire *a,
                                        const struct lw_class *next, const struct held_lock *prev,
                                        __u32 depth)
{
    struct edge_key key;
    __u8 one = 1;
    struct lw_record *rec;
    long err;

    edge_key_of(&key, a, next->id, prev);
    if (edge_known(k, &key))
        return;
    if (bpf_map_lookup_elem(&edges, &key)) {
        *known_edge_slot(k, &key) = key;
        return;
    }
    err = bpf_map_update_elem(&edges, &key, &one, BPF_NOEXIST);
    if (err == -EEXIST || !dedup_inserted(err))
        return;

    rec = new_record(ctx, LW_RECORD_EDGE, a->function, a->context);
    if (!rec) {
        if (!err)
            bpf_map_delete_elem(&edges, &key); /* not seen: send it next time */
        return;
    }
    if (!err)
        count(&notes, LW_NOTE_EDGES_KEPT);
    rec->class_id = next->id;
    rec->class_type = next->type;
    rec->irq_flags = a->irq_flags;
    rec->acquire_flags = a->flags;
    rec->prev_class_id = prev->class_id;
    rec->prev_function = prev->function;
    rec->prev_acquire_flags = prev->acquire_flags;
    rec->prev_site = prev->site;
    rec->held_depth = depth;
    bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
}

/* An index into a held stack. The mask is in asm so that the compiler
 * cannot drop it where it knows the bound but the verifier does not. */
static __always_inline __u32 LW_SLOT(__u32 i)
{
    asm volatile("%[i] &= %[mask]" : [i] "+r"(i) : [mask] "i"(LW_MAX_HELD - 1));
    return i;
}

/* The topmost live entry at or below `from`, or -1. */
static __always_inline int live_entry_below(struct held_stack *held, int from)
{
    for (int i = 0; i < 4; i++) {
        int at = from - i;

        if (at < 0)
            return -1;
        if (held->locks[LW_SLOT(at)].lock)
            return at;
    }
    return -1;
}

static __always_inline void pop_released(struct held_stack *held)
{
    for (int i = 0; i < LW_MAX_HELD; i++) {
        __u32 depth = held->depth;

        if (depth == 0 || depth > LW_MAX_HELD || held->locks[LW_SLOT(depth - 1)].lock)
            break;
        held->depth = depth - 1;
    }
}

static __always_inline void forget_entry(struct held_stack *held, __u32 at)
{
    struct held_lock *entry = &held->locks[LW_SLOT(at)];

    if ((entry->acquire_flags & LW_ACQ_IRQS_OFF) && held->irqs_off_held)
        held->irqs_off_held--;
    entry->lock = 0;
    pop_released(held);
}

/* --record-ops: a held lock forgotten without its unlock (a lost release,
 * an interrupt context that ended) is released in the trace too, or a
 * replay from the operations would hold it for good. */
static __always_inline void report_forgotten(void *ctx, const struct held_lock *entry,
                                             __u32 context)
{
    if (record_ops && entry->lock)
        report_op(ctx, LW_RECORD_OP_RELEASE, entry->function, context, entry->lock, 0, 0, 0);
}

/* The same for a whole held stack dropped at once. O(LW_MAX_HELD). */
static __always_inline void report_all_forgotten(void *ctx, const struct held_stack *held,
                                                 __u32 context)
{
    if (!record_ops)
        return;
    for (int i = 0; i < LW_MAX_HELD; i++) {
        if (i >= held->depth)
            break;
        report_forgotten(ctx, &held->locks[LW_SLOT(i)], context);
    }
}

static __always_inline bool in_generic_kmalloc(const struct lw_class *c)
{
    return c->type == LW_CLASS_SLAB && c->generic_kmalloc;
}

/* The call site of the first acquire of `lock` seen, kept for as long as
 * the address stays in first_sites: `site` where the hook knows it, else
 * (read_stack) the first frame outside the lock functions. */
static __always_inline __u64 first_site(void *ctx, __u64 lock, __u64 site, bool read_stack)
{
    __u64 *cached = bpf_map_lookup_elem(&first_sites, &lock);

    if (cached)
        return *cached;
    if (read_stack)
        site = call_site(ctx);
    bpf_map_update_elem(&first_sites, &lock, &site, BPF_ANY);
    return site;
}

/* A lock in a generic kmalloc-N object: (cache, offset, allocation site),
 * or, for an object allocated before tracing began (no alloc_sites entry),
 * (cache, offset, first acquirer's site): a fallback that splits a lock its
 * acquirers take from several functions. Returns the site. */
static __always_inline __u64 kmalloc_class(void *ctx, __u64 lock, __u64 site, bool read_stack,
                                           struct lw_class *class)
{
    __u64 object = lock - class->offset;
    __u64 *alloc = bpf_map_lookup_elem(&alloc_sites, &object);

    if (alloc) {
        class->type = LW_CLASS_KMALLOC_ALLOC;
        site = *alloc;
    } else {
        class->type = LW_CLASS_KMALLOC;
        site = first_site(ctx, lock, site, read_stack);
    }
    class->id = class_id_of(class->type, class->cache, class->offset ^ mix64(site));
    return site;
}

/* lockdep backend: the class is lockdep's own, (key, subclass). Each new
 * pairing with the class lockwatch's address rules would give the same lock
 * is reported once, to measure how the two agree. */
static __always_inline void lockdep_class(void *ctx, const struct acquire *a,
                                          struct known_classes *known, struct lw_class *c)
{
    struct lockdep_map___lw *map = (struct lockdep_map___lw *)a->lock;
    struct class_pair pair;
    struct lw_class derived;
    __u64 *paired, remembered, site = 0;
    struct lw_record *rec;
    __u8 one = 1;

    c->type = LW_CLASS_LOCKDEP;
    c->offset = a->subclass;
    c->cache = 0;
    c->object_size = 0;
    c->generic_kmalloc = false;
    c->name_unread = false;
    c->id = class_id_of(LW_CLASS_LOCKDEP, lockdep_key(map), a->subclass);

    paired = bpf_map_lookup_elem(&paired_locks, &a->lock);
    if (paired && *paired == c->id)
        return;
    classify_lock(a->lock, 0, known->geometry, &derived);
    /* A kmalloc object's class changes with each allocation of the address:
     * such locks are derived on every acquire (remembered as 0). */
    remembered = c->id;
    if (in_generic_kmalloc(&derived)) {
        site = kmalloc_class(ctx, a->lock, a->site, false, &derived);
        remembered = 0;
    }
    if (!paired || *paired != remembered)
        bpf_map_update_elem(&paired_locks, &a->lock, &remembered, BPF_ANY);
    pair.lockdep_class = c->id;
    pair.derived_class = derived.id;
    if (bpf_map_lookup_elem(&class_pairs, &pair) ||
        bpf_map_update_elem(&class_pairs, &pair, &one, BPF_NOEXIST))
        return;
    rec = new_record(ctx, LW_RECORD_CLASS_PAIR, a->function, a->context);
    if (!rec)
        return;
    /* The derived class as a CLASS record would describe it, for its name. */
    fill_class(rec, &derived, a->lock, site);
    rec->class_id = c->id;
    rec->prev_class_id = derived.id;
    bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
}

/* A held entry whose lock reads unlocked lost its release: drop such
 * entries off the top, two at most per acquire. A depth out of bounds
 * resets the stack. */
static __always_inline void drop_stale_top(void *ctx, struct held_stack *held, __u32 context)
{
    __u32 depth;

    if (held->depth > LW_MAX_HELD) {
        report_all_forgotten(ctx, held, context);
        held->depth = 0;
        held->irqs_off_held = 0;
    }
    for (int i = 0; i < 2; i++) {
        depth = held->depth;
        if (depth == 0 || depth > LW_MAX_HELD)
            break;
        if (still_locked(held->locks[LW_SLOT(depth - 1)].lock))
            break;
        report_forgotten(ctx, &held->locks[LW_SLOT(depth - 1)], context);
        forget_entry(held, depth - 1);
        count(&notes, LW_NOTE_STALE_HELD);
    }
}

/* Hardirq state: implied by the variant or the context, read from the saved
 * flags where the hook has them, else inferred from the held _irq/_irqsave
 * locks of this context. Softirq state from preempt_count. */
static __always_inline void set_irq_flags(struct acquire *a, const struct held_stack *held,
                                          enum lw_hardirq_state seen)
{
    bool hardirqs_on;

    if ((a->flags & LW_ACQ_IRQS_OFF) || a->context >= LW_CTX_HARDIRQ) {
        hardirqs_on = false;
    } else if (seen == HARDIRQS_UNKNOWN) {
        hardirqs_on = held->irqs_off_held == 0;
        a->irq_flags |= LW_IRQ_STATE_INFERRED;
        count(&notes, LW_NOTE_IRQ_STATE_INFERRED);
    } else {
        hardirqs_on = seen == HARDIRQS_ON;
    }
    if (hardirqs_on)
        a->irq_flags |= LW_IRQ_HARDIRQS_ENABLED;
    if (!softirqs_enabled(a->preempt_count))
        a->flags |= LW_ACQ_SOFTIRQS_OFF; /* a reader here is recursive */
    else if (!(a->flags & LW_ACQ_BH))
        a->irq_flags |= LW_IRQ_SOFTIRQS_ENABLED;
}

static __always_inline void remember_address(struct known_address *slot, __u64 lock,
                                             __u64 generation, __u32 alloc_bucket,
                                             __u32 alloc_generation, __u64 site,
                                             const struct lw_class *class)
{
    slot->lock = lock;
    slot->generation = generation;
    slot->site = site;
    slot->alloc_bucket = alloc_bucket;
    slot->hits = 0;
    slot->alloc_generation = alloc_generation;
    slot->class = *class;
}

/* A kept kmalloc lock's site entry, looked up on every 16th hit: the LRU
 * keeps entries that are looked up (lock_class.bpf.h). */
static __always_inline void touch_site_entry(struct known_address *slot, __u64 lock)
{
    __u64 object = lock - slot->class.offset;

    if (!slot->class.generic_kmalloc || (++slot->hits & 15))
        return;
    if (slot->class.type == LW_CLASS_KMALLOC_ALLOC)
        bpf_map_lookup_elem(&alloc_sites, &object);
    else
        bpf_map_lookup_elem(&first_sites, &lock);
}

/* The class by the address rules, with a call site where the address says
 * too little: the allocation site (generic kmalloc caches), else the first
 * acquirer's (SITE, kmalloc objects allocated before tracing began); kept
 * per address while it holds (lock_class.bpf.h). Returns that site, or 0. */
static __always_inline __u64 address_class(void *ctx, const struct acquire *a,
                                           struct known_classes *known, struct lw_class *class)
{
    struct known_address *slot = known_address_slot(known, a->lock);
    /* Each generation before what it guards is read: a bump during the
     * reads voids what they found. */
    __u64 generation = lw_slab_generation, site = 0;
    __u32 bucket = 0, alloc_generation = 0;

    if (address_known(slot, a->lock)) {
        touch_site_entry(slot, a->lock);
        *class = slot->class;
        phase_stamp(a->context, LW_PHASE_CLASS_KEPT);
        return slot->site;
    }
    classify_lock(a->lock, 0, known->geometry, class);
    phase_stamp(a->context, LW_PHASE_CLASS);
    if (class->type == LW_CLASS_SITE) {
        site = first_site(ctx, a->lock, 0, true);
        class->id = class_id_of(LW_CLASS_SITE, site, 0);
        return site; /* not kept: the address may yet be a slab's */
    }
    if (in_generic_kmalloc(class)) {
        bucket = alloc_bucket_of(a->lock - class->offset);
        alloc_generation = *bucket_generation(bucket);
        site = kmalloc_class(ctx, a->lock, 0, true, class);
    }
    if (!class->name_unread)
        remember_address(slot, a->lock, generation, bucket, alloc_generation, site, class);
    return site;
}

/* The lock's class: lockdep's own on the lockdep backend, else from the
 * address. Returns the site address_class() names it by, or 0. */
static __always_inline __u64 derive_class(void *ctx, const struct acquire *a,
                                          struct known_classes *known, struct lw_class *class)
{
    __u64 site = 0;

    /* Resolved at load: on kernels without lockdep only the else remains. */
    if (a->function == LW_FN_LOCKDEP &&
        bpf_core_field_exists(((struct lockdep_map___lw *)0)->key)) {
        lockdep_class(ctx, a, known, class);
        phase_stamp(a->context, LW_PHASE_CLASS);
    } else {
        site = address_class(ctx, a, known, class);
    }
    phase_stamp(a->context, LW_PHASE_CLASS_SITE);
    return site;
}

/* Copies the entry of `lock` on one context's held stack into *found. The
 * loop hands on what it found, never the index or a pointer: one the
 * verifier knows would make it walk everything after once per value. */
static __always_inline bool held_entry_of(const struct held_stack *held, __u32 depth, __u64 lock,
                                          struct held_lock *found)
{
    for (int i = 0; i < LW_MAX_HELD; i++) {
        if (i >= depth)
            break;
        if (held->locks[i].lock == lock) {
            found->function = held->locks[i].function;
            found->acquire_flags = held->locks[i].acquire_flags;
            found->site = held->locks[i].site;
            return true;
        }
    }
    return false;
}

/* lockdep's check_deadlock(): the same lock instance again while this CPU
 * holds it, in this context or in one this context interrupted (an irq that
 * takes a lock its task holds spins on it for good; lockdep walks the task's
 * whole held list). Legal only for a recursive reader after a reader:
 * "if ((next->read == 2) && prev->read) continue;". A lower context's entry
 * counts only while the lock reads locked (a lost release leaves a stale one). */
static __always_inline void report_recursion(void *ctx, struct cpu_state *cpu, __u32 depth,
                                             const struct acquire *a, const struct lw_class *class)
{
    struct held_lock same = {};
    struct lw_record *rec;
    bool found = held_entry_of(&cpu->ctx[a->context & (LW_CTX_COUNT - 1)], depth, a->lock, &same);

    if (!found && a->context > LW_CTX_TASK)
        found = held_entry_of(&cpu->ctx[LW_CTX_TASK], cpu->ctx[LW_CTX_TASK].depth, a->lock,
                              &same) &&
                still_locked(a->lock);
    if (!found && a->context > LW_CTX_SOFTIRQ)
        found = held_entry_of(&cpu->ctx[LW_CTX_SOFTIRQ], cpu->ctx[LW_CTX_SOFTIRQ].depth, a->lock,
                              &same) &&
                still_locked(a->lock);
    if (!found || (lw_read_level(a->flags, a->context) == 2 &&
                   lw_read_level(same.acquire_flags, a->context)))
        return;
    rec = new_record(ctx, LW_RECORD_RECURSION, a->function, a->context);
    if (!rec)
        return;
    rec->class_id = class->id;
    rec->class_type = class->type;
    rec->irq_flags = a->irq_flags;
    rec->acquire_flags = a->flags;
    rec->prev_function = same.function;
    rec->prev_acquire_flags = same.acquire_flags;
    rec->prev_site = same.site; /* the report's "already holding ... at:" */
    bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
}

/* lockdep's check_prevs_add(): an edge from the top held lock, and from the
 * one below when the top is a trylock. No edge into a trylock. Same class,
 * different instance is a nesting lockdep would see through
 * spin_lock_nested(), which we cannot: no self-edge. */
static __always_inline void report_edges(void *ctx, struct known_facts *k,
                                         struct held_stack *held, __u32 depth,
                                         const struct acquire *a, const struct lw_class *class)
{
    int top, below = -1;

    if (a->flags & LW_ACQ_TRYLOCK)
        return;
    top = depth ? live_entry_below(held, depth - 1) : -1;
    if (top >= 0 && (held->locks[LW_SLOT(top)].acquire_flags & LW_ACQ_TRYLOCK))
        below = live_entry_below(held, top - 1);
    if (top >= 0 && held->locks[LW_SLOT(top)].class_id != class->id)
        report_edge(ctx, k, a, class, &held->locks[LW_SLOT(top)], depth);
    if (below >= 0 && held->locks[LW_SLOT(below)].class_id != class->id)
        report_edge(ctx, k, a, class, &held->locks[LW_SLOT(below)], depth);
}

/* False when the stack is full (counted): the lock is not held. */
static __always_inline bool push_held(struct held_stack *held, __u32 depth,
                                      const struct acquire *a, const struct lw_class *class)
{
    if (depth >= LW_MAX_HELD) {
        count(&losses, LW_LOSS_HELD_OVERFLOW);
        return false;
    }
    held->locks[LW_SLOT(depth)] = (struct held_lock){
        .lock = a->lock,
        .class_id = class->id,
        .site = a->site,
        .function = a->function,
        .acquire_flags = a->flags,
    };
    if (a->flags & LW_ACQ_IRQS_OFF)
        held->irqs_off_held++;
    held->depth = depth + 1;
    return true;
}

/* lock_acquire() in NMI, where lockdep is off, runs verify_lock_unused()
 * only: a lock used outside NMI (USED, or USED_READ for a write) is
 * "inconsistent {INITIAL USE} -> {IN-NMI}". Sent once per class; nothing
 * is held, marked or linked. */
#define LW_CLASS_NMI_SENT (1ULL << 30)

static __always_inline void report_nmi_acquire(void *ctx, const struct acquire *a,
                                               const struct lw_class *c)
{
    __u64 conflict = 1ULL << LW_USED, *known;
    struct lw_record *rec;

    if (a->flags & LW_ACQ_TRYLOCK)
        return;
    if (!lw_read_level(a->flags, a->context))
        conflict |= 1ULL << LW_USED_READ;
    known = bpf_map_lookup_elem(&class_usage, &c->id);
    if (!known || !(*known & conflict) || (*known & LW_CLASS_NMI_SENT))
        return;
    __sync_fetch_and_or(known, LW_CLASS_NMI_SENT);
    rec = new_record(ctx, LW_RECORD_NMI_ACQUIRE, a->function, a->context);
    if (!rec)
        return;
    rec->class_id = c->id;
    rec->class_type = c->type;
    rec->acquire_flags = a->flags;
    bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
}

/* lockdep's __lock_acquire(), step by step. */
static __always_inline void on_acquire(void *ctx, struct cpu_state *cpu, struct acquire *a,
                                       enum lw_hardirq_state hardirqs)
{
    struct held_stack *held = &cpu->ctx[a->context & (LW_CTX_COUNT - 1)];
    struct lw_class *class = &cpu->class[a->context & (LW_CTX_COUNT - 1)];
    struct known_facts *known = &cpu->known[a->context & (LW_CTX_COUNT - 1)];
    struct known_classes *classes = &cpu->classes[a->context & (LW_CTX_COUNT - 1)];
    __u32 depth;
    __u64 site;

    if (a->context == LW_CTX_NMI && !nmi_graph) {
        derive_class(ctx, a, classes, class);
        report_nmi_acquire(ctx, a, class);
        return;
    }
    /* Before anything reads the held stack: a stale irqsave entry would
     * make the inferred irq state wrong, and a stale top a dependency. */
    drop_stale_top(ctx, held, a->context);
    depth = held->depth;
    phase_stamp(a->context, LW_PHASE_STALE);
    set_irq_flags(a, held, hardirqs);
    site = derive_class(ctx, a, classes, class);
    report_class_and_usage(ctx, known, a, class, site);
    phase_stamp(a->context, LW_PHASE_USAGE);
    if (!(a->flags & LW_ACQ_TRYLOCK)) /* validate_chain(): no check_deadlock() for one */
        report_recursion(ctx, cpu, depth, a, class);
    phase_stamp(a->context, LW_PHASE_RECURSION);
    report_edges(ctx, known, held, depth, a, class);
    phase_stamp(a->context, LW_PHASE_EDGES);
    if (a->context != LW_CTX_TASK) /* the task's byte is never read */
        cpu->may_hold.in[a->context & (LW_CTX_COUNT - 1)] = 1;
    if (push_held(held, depth, a, class) && record_ops)
        report_op(ctx, LW_RECORD_OP_ACQUIRE, a->function, a->context, a->lock, class->id,
                  a->flags, a->irq_flags);
    phase_stamp(a->context, LW_PHASE_PUSH);
}

/* True when `lock` was on this context's held stack. */
static __always_inline bool on_release(void *ctx, struct cpu_state *cpu, __u32 context,
                                       __u64 lock)
{
    struct held_stack *held = &cpu->ctx[context & (LW_CTX_COUNT - 1)];
    __u32 depth = held->depth;

    if (depth > LW_MAX_HELD) {
        report_all_forgotten(ctx, held, context);
        held->depth = 0;
        held->irqs_off_held = 0;
        depth = 0;
    }
    /* Releases may come out of order: search from the top. */
    for (int i = 0; i < LW_MAX_HELD; i++) {
        int at = (int)depth - 1 - i;

        if (at < 0)
            break;
        if (held->locks[LW_SLOT(at)].lock == lock) {
            forget_entry(held, at);
            return true;
        }
    }
    count(&notes, LW_NOTE_UNMATCHED_RELEASE);
    return false;
}

/* The ENABLED_* bits (the _READ ones for a reader) that interrupts coming
 * back on sets on a lock still held. */
static __always_inline __u64 enabled_usage_mask(const struct held_lock *entry, __u32 context,
                                                __u32 enables)
{
    __u32 read = lw_read_level(entry->acquire_flags, context) != 0;
    __u64 mask = 0;

    if (enables & LW_IRQ_HARDIRQS_ENABLED)
        mask |= 1ULL << (LW_ENABLED_HARDIRQ + read);
    if (enables & LW_IRQ_SOFTIRQS_ENABLED)
        mask |= 1ULL << (LW_ENABLED_SOFTIRQ + read);
    return mask;
}

/* One lock still held when interrupts come back on: its `mask` bits that
 * are new for its class. */
static __always_inline void mark_held_lock(void *ctx, struct known_facts *k,
                                           const struct held_lock *entry, __u32 context,
                                           __u32 enables, __u64 mask)
{
    __u64 old, *known;
    struct lw_record *rec;

    known = bpf_map_lookup_elem(&class_usage, &entry->class_id);
    if (!known)
        return; /* the class was never reported: nothing to mark it on */
    old = *known;
    if ((old & mask) == mask) {
        remember_usage(k, entry->class_id, old);
        return;
    }
    __sync_fetch_and_or(known, mask);
    rec = new_record(ctx, LW_RECORD_HELD_IRQS_ON, entry->function, context);
    if (!rec)
        return;
    rec->class_id = entry->class_id;
    rec->acquire_flags = entry->acquire_flags;
    rec->irq_flags = enables;
    rec->usage_bit = (__u32)(mask & ~old);
    bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
}

/* lockdep_hardirqs_on() / lockdep_softirqs_on() run mark_held_locks():
 * every lock this context still holds becomes HARDIRQ-ON (SOFTIRQ-ON).
 * Entries whose lock reads unlocked lost their release and are skipped
 * (read only when the bits are not known already). O(LW_MAX_HELD) cache
 * probes, and map lookups at most. */
static __always_inline void mark_held_locks(void *ctx, struct known_facts *k,
                                            struct held_stack *held, __u32 context,
                                            __u32 enables)
{
    for (int i = 0; i < LW_MAX_HELD; i++) {
        const struct held_lock *entry;
        __u64 mask;

        if (i >= held->depth)
            break;
        entry = &held->locks[LW_SLOT(i)];
        if (!entry->lock)
            continue;
        mask = enabled_usage_mask(entry, context, enables);
        if (!usage_known(k, entry->class_id, mask) && still_locked(entry->lock))
            mark_held_lock(ctx, k, entry, context, enables, mask);
    }
}

/* What an unlock turned back on, given what its variant may turn on
 * (op->enables) and the state around it: _irq and _irqrestore (with IF in
 * the saved flags) turn hardirqs on; _bh softirqs, when it ends the last
 * softirq-disabled section and hardirqs are known to be on. Softirqs count
 * only outside interrupts and with hardirqs on (lockdep_softirqs_on()). */
static __always_inline __u32 unlock_enables(const struct lock_op *op, __u32 pc, __u32 context)
{
    bool hard_on = (op->enables & LW_IRQ_HARDIRQS_ENABLED) || op->hardirqs == HARDIRQS_ON;
    bool soft_on;

    if (!hard_on || !op->enables)
        return 0;
    if (op->enables & LW_IRQ_SOFTIRQS_ENABLED)
        soft_on = (pc & LW_SOFTIRQ_MASK) == LW_SOFTIRQ_DISABLE_OFFSET;
    else
        soft_on = softirqs_enabled(pc);
    soft_on = soft_on && context == LW_CTX_TASK;
    return LW_IRQ_HARDIRQS_ENABLED | (soft_on ? LW_IRQ_SOFTIRQS_ENABLED : 0);
}

static __always_inline bool in_focus(__u32 context)
{
    __u32 *depth;

    if (context == LW_CTX_TASK) {
        __u32 tid = (__u32)bpf_get_current_pid_tgid();

        depth = bpf_map_lookup_elem(&focus_task_depth, &tid);
    } else {
        depth = bpf_map_lookup_elem(&focus_irq_depth, &context);
    }
    return depth && *depth > 0;
}

static __always_inline int change_focus_depth(int delta)
{
    __u32 context = context_of(read_preempt_count());
    __u32 one = 1, *depth;

    if (stopping)
        return 0;
    if (context == LW_CTX_TASK) {
        __u32 tid = (__u32)bpf_get_current_pid_tgid();

        depth = bpf_map_lookup_elem(&focus_task_depth, &tid);
        if (!depth) {
            if (delta > 0 && bpf_map_update_elem(&focus_task_depth, &tid, &one, BPF_ANY))
                count(&notes, LW_NOTE_DEDUP_FAILED);
            return 0;
        }
        if (delta < 0 && *depth <= 1) {
            bpf_map_delete_elem(&focus_task_depth, &tid);
            return 0;
        }
    } else {
        depth = bpf_map_lookup_elem(&focus_irq_depth, &context);
        if (!depth || (delta < 0 && *depth == 0))
            return 0;
    }
    *depth += delta;
    return 0;
}

SEC("kprobe")
int focus_enter(struct pt_regs *ctx)
{
    return change_focus_depth(1);
}

SEC("kretprobe")
int focus_exit(struct pt_regs *ctx)
{
    return change_focus_depth(-1);
}

/* A raw tracepoint argument read as memory (see lockdep_lock_op). */
static __always_inline __u64 raw_tp_arg(__u64 *ctx, int n)
{
    __u64 value = 0;

    bpf_probe_read_kernel(&value, sizeof(value), &ctx[n]);
    return value;
}

static __always_inline __u64 lock_site(void *ctx, enum lw_site_source from)
{
    switch (from) {
    case SITE_KPROBE_ENTRY:
        return kprobe_return_address(ctx);
    case SITE_KRETPROBE:
        return PT_REGS_IP((struct pt_regs *)ctx);
    case SITE_TRAMPOLINE:
        return fentry_return_address(ctx, bpf_get_func_arg_cnt(ctx));
    case SITE_LOCKDEP_IP:
        return raw_tp_arg(ctx, 6);
    default:
        return 0;
    }
}

/* Code running in `context` proves that no context above it is active on
 * this CPU: an interrupt ends before what it interrupted goes on, and it may
 * not return with a spinlock held. Whatever those stacks still hold lost its
 * release (the kernel skips a program that is already running on this CPU
 * when an interrupt re-enters it): drop it, so that it cannot make up
 * dependencies later. */
static __always_inline void drop_finished_contexts(void *ctx, struct cpu_state *cpu,
                                                   __u32 context)
{
    /* The bytes of may_hold.any for the contexts above this one (x86 is
     * little-endian: in[0], the task's, is the lowest). */
    __u32 above = (__u32)(~0ULL << (8 * (context + 1)));
    /* Compared below in place of `context`, which the verifier would
     * otherwise narrow in the loop and then walk the rest of the program
     * once per value it knows (per acquire program: 249 k instructions
     * verified when the loop always ran, 335 k with the early return and
     * `context` compared, 170 k with this copy). */
    __u32 lowest;

    if (!(cpu->may_hold.any & above))
        return;
    lowest = context;
    asm volatile("%[c] &= %[mask]" : [c] "+r"(lowest) : [mask] "i"(LW_CTX_COUNT - 1));
    for (__u32 c = LW_CTX_SOFTIRQ; c < LW_CTX_COUNT; c++) {
        struct held_stack *held = &cpu->ctx[c & (LW_CTX_COUNT - 1)];
        __u64 *stale;
        __u32 note = LW_NOTE_STALE_HELD;

        if (c <= lowest)
            continue;
        /* Cleared before the stack is read (the barrier keeps the compiler
         * from swapping the two): a push by an interrupt that comes in
         * between sets it again. */
        cpu->may_hold.in[c & (LW_CTX_COUNT - 1)] = 0;
        asm volatile("" ::: "memory");
        if (held->depth == 0)
            continue;
        stale = bpf_map_lookup_elem(&notes, &note);
        if (stale)
            *stale += held->depth > LW_MAX_HELD ? LW_MAX_HELD : held->depth;
        report_all_forgotten(ctx, held, c);
        held->depth = 0;
        held->irqs_off_held = 0;
    }
}

static __always_inline int on_lock_op(void *ctx, const struct lock_op *op)
{
    __u32 zero = 0, context, pc;
    struct cpu_state *cpu;
    __u32 *busy;

    if (stopping)
        return 0;
    pc = read_preempt_count();
    context = context_of(pc);
    cpu = bpf_map_lookup_elem(&cpu_states, &zero);
    if (!cpu)
        return 0;
    busy = &cpu->busy[context & (LW_CTX_COUNT - 1)];
    if (*busy) {
        count(&notes, LW_NOTE_OWN_LOCK_OPS);
        return 0;
    }
    *busy = 1;
    phase_stamp(context, LW_PHASE_COUNT);
    phase_stamp(context, LW_PHASE_STAMP);
    drop_finished_contexts(ctx, cpu, context);

    if (op->kind == OP_TRYLOCK_ENTRY) {
        /* kprobe mode: remember the lock and irq state until the return. */
        cpu->trylock_lock[context & (LW_CTX_COUNT - 1)] = op->lock;
        cpu->trylock_hardirqs[context & (LW_CTX_COUNT - 1)] = op->hardirqs;
        goto out;
    }
    if (op->kind == OP_TRYLOCK_EXIT && !op->trylock_ok)
        goto out;

    count_call(ctx, cpu, op->function, context);
    /* Focus: releases always pop (a lock taken in scope may be dropped out
     * of it); acquires outside the scope are not tracked at all. */
    if (focus_enabled && op->kind != OP_RELEASE && !in_focus(context))
        goto out;
    phase_stamp(context, LW_PHASE_ENTRY);
    if (op->kind == OP_RELEASE) {
        struct held_stack *held = &cpu->ctx[context & (LW_CTX_COUNT - 1)];
        __u32 enables;
        bool released;

        if (context == LW_CTX_NMI && !nmi_graph)
            goto out; /* NMI acquires are never held */
        released = on_release(ctx, cpu, context, op->lock);
        enables = unlock_enables(op, pc, context);
        phase_stamp(context, LW_PHASE_RELEASE);
        /* Only the releases of locks it holds: the others were never
         * tracked (--focus) or lost their acquire. */
        if (record_ops && released)
            report_op(ctx, LW_RECORD_OP_RELEASE, op->function, context, op->lock, 0, 0, 0);
        if (enables && held->depth) {
            if (record_ops) /* what it changes: the held locks' usage */
                report_op(ctx, LW_RECORD_OP_IRQS_ON, op->function, context, 0, 0, 0, enables);
            mark_held_locks(ctx, &cpu->known[context & (LW_CTX_COUNT - 1)], held, context,
                            enables);
            phase_stamp(context, LW_PHASE_IRQS_ON);
        }
    } else {
        struct acquire *a = &cpu->acquire[context & (LW_CTX_COUNT - 1)];

        a->lock = op->lock;
        a->site = lock_site(ctx, op->site_from);
        phase_stamp(context, LW_PHASE_SITE);
        a->subclass = op->subclass;
        a->function = op->function;
        a->flags = op->flags;
        a->context = context;
        a->irq_flags = 0;
        a->preempt_count = pc;
        on_acquire(ctx, cpu, a, op->hardirqs);
    }
out:
    *busy = 0;
    return 0;
}

/* kretprobe mode: the lock and irq state saved by the trylock's entry probe. */
static __always_inline int on_trylock_return(void *ctx, __u32 function, __u32 flags, int ok)
{
    __u32 zero = 0, context = context_of(read_preempt_count());
    struct cpu_state *cpu = bpf_map_lookup_elem(&cpu_states, &zero);
    struct lock_op op = {
        .kind = OP_TRYLOCK_EXIT,
        .function = function,
        .flags = flags,
        .trylock_ok = ok,
        .site_from = SITE_KRETPROBE,
    };

    if (!cpu)
        return 0;
    op.lock = cpu->trylock_lock[context & (LW_CTX_COUNT - 1)];
    op.hardirqs = cpu->trylock_hardirqs[context & (LW_CTX_COUNT - 1)];
    cpu->trylock_lock[context & (LW_CTX_COUNT - 1)] = 0;
    if (!op.lock)
        return 0;
    return on_lock_op(ctx, &op);
}

/* Flags each table entry implies. */
#define LW_FLAGS_SPIN 0
#define LW_FLAGS_READ LW_ACQ_READ
#define LW_FLAGS_WRITE 0
#define LW_FLAGS_PLAIN 0
#define LW_FLAGS_BH LW_ACQ_BH
#define LW_FLAGS_IRQ LW_ACQ_IRQS_OFF
#define LW_FLAGS_IRQSAVE LW_ACQ_IRQS_OFF

#define LW_REGS_HARDIRQS(regs) (((regs)->flags & X86_EFLAGS_IF) ? HARDIRQS_ON : HARDIRQS_OFF)

/* The lock API's variants, for what an unlock may turn back on. */
#define LW_VARIANT_PLAIN 0
#define LW_VARIANT_BH 1
#define LW_VARIANT_IRQ 2
#define LW_VARIANT_IRQSAVE 3

/* _irq turns hardirqs on, _irqrestore when the saved flags have IF, _bh may
 * turn softirqs on (unlock_enables() decides with preempt_count). */
static __always_inline __u32 release_enables(__u32 variant, __u64 saved_flags)
{
    switch (variant) {
    case LW_VARIANT_IRQ:
        return LW_IRQ_HARDIRQS_ENABLED;
    case LW_VARIANT_IRQSAVE:
        return (saved_flags & X86_EFLAGS_IF) ? LW_IRQ_HARDIRQS_ENABLED : 0;
    case LW_VARIANT_BH:
        return LW_IRQ_SOFTIRQS_ENABLED;
    default:
        return 0;
    }
}

/*
 * Two programs per function; the loader autoloads one flavour. fentry/fexit
 * cannot see EFLAGS (hardirq state is then inferred); kprobes read it from
 * the saved registers.
 */
/*
 * fentry arguments are read with bpf_get_func_arg(), which the verifier
 * inlines: it yields the lock address as a plain number, where a typed
 * argument would be a BTF pointer that allows no arithmetic.
 */
static __always_inline __u64 fentry_lock_arg(void *ctx)
{
    __u64 lock = 0;

    bpf_get_func_arg(ctx, 0, &lock);
    return lock;
}

/* _irqrestore's second argument, the saved flags; 0 for other variants. */
static __always_inline __u64 fentry_flags_arg(void *ctx, __u32 variant)
{
    __u64 flags = 0;

    if (variant == LW_VARIANT_IRQSAVE)
        bpf_get_func_arg(ctx, 1, &flags);
    return flags;
}

static __always_inline int fexit_return_value(void *ctx)
{
    __u64 ret = 0;

    bpf_get_func_ret(ctx, &ret);
    return (int)ret;
}

#define LW_HOOK_ACQUIRE(symbol, implied_flags, variant)                          \
    SEC("fentry/" #symbol)                                                       \
    int fentry_##symbol(void *ctx)                                               \
    {                                                                            \
        struct lock_op op = {                                                    \
            .kind = OP_ACQUIRE,                                                  \
            .function = LW_FN_##symbol,                                          \
            .flags = (implied_flags),                                            \
            .lock = fentry_lock_arg(ctx),                                        \
            .site_from = SITE_TRAMPOLINE,                                        \
        };                                                                       \
                                                                                 \
        return on_lock_op(ctx, &op);                                             \
    }                                                                            \
    SEC("kprobe/" #symbol)                                                       \
    int kprobe_##symbol(struct pt_regs *ctx)                                     \
    {                                                                            \
        struct lock_op op = {                                                    \
            .kind = OP_ACQUIRE,                                                  \
            .function = LW_FN_##symbol,                                          \
            .flags = (implied_flags),                                            \
            .lock = PT_REGS_PARM1(ctx),                                          \
            .hardirqs = LW_REGS_HARDIRQS(ctx),                                   \
            .site_from = SITE_KPROBE_ENTRY,                                      \
        };                                                                       \
                                                                                 \
        return on_lock_op(ctx, &op);                                             \
    }
#define LW_HOOK_RELEASE(symbol, implied_flags, variant)                          \
    SEC("fentry/" #symbol)                                                       \
    int fentry_##symbol(void *ctx)                                               \
    {                                                                            \
        struct lock_op op = {                                                    \
            .kind = OP_RELEASE,                                                  \
            .function = LW_FN_##symbol,                                          \
            .flags = (implied_flags),                                            \
            .lock = fentry_lock_arg(ctx),                                        \
            .enables = release_enables(variant, fentry_flags_arg(ctx, variant)), \
        };                                                                       \
                                                                                 \
        return on_lock_op(ctx, &op);                                             \
    }                                                                            \
    SEC("kprobe/" #symbol)                                                       \
    int kprobe_##symbol(struct pt_regs *ctx)                                     \
    {                                                                            \
        struct lock_op op = {                                                    \
            .kind = OP_RELEASE,                                                  \
            .function = LW_FN_##symbol,                                          \
            .flags = (implied_flags),                                            \
            .lock = PT_REGS_PARM1(ctx),                                          \
            .hardirqs = LW_REGS_HARDIRQS(ctx),                                   \
            .enables = release_enables(variant, PT_REGS_PARM2(ctx)),             \
        };                                                                       \
                                                                                 \
        return on_lock_op(ctx, &op);                                             \
    }
#define LW_HOOK_TRYLOCK(symbol, implied_flags, variant)                                 \
    SEC("fexit/" #symbol)                                                               \
    int fexit_##symbol(void *ctx)                                                       \
    {                                                                                   \
        struct lock_op op = {                                                           \
            .kind = OP_TRYLOCK_EXIT,                                                    \
            .function = LW_FN_##symbol,                                                 \
            .flags = (implied_flags) | LW_ACQ_TRYLOCK,                                  \
            .lock = fentry_lock_arg(ctx),                                               \
            .trylock_ok = fexit_return_value(ctx),                                      \
            .site_from = SITE_TRAMPOLINE,                                               \
        };                                                                              \
                                                                                        \
        return on_lock_op(ctx, &op);                                                    \
    }                                                                                   \
    SEC("kprobe/" #symbol)                                                              \
    int kprobe_##symbol(struct pt_regs *ctx)                                            \
    {                                                                                   \
        struct lock_op op = {                                                           \
            .kind = OP_TRYLOCK_ENTRY,                                                   \
            .function = LW_FN_##symbol,                                                 \
            .flags = (implied_flags) | LW_ACQ_TRYLOCK,                                  \
            .lock = PT_REGS_PARM1(ctx),                                                 \
            .hardirqs = LW_REGS_HARDIRQS(ctx),                                          \
        };                                                                              \
                                                                                        \
        return on_lock_op(ctx, &op);                                                    \
    }                                                                                   \
    SEC("kretprobe/" #symbol)                                                           \
    int kretprobe_##symbol(struct pt_regs *ctx)                                         \
    {                                                                                   \
        return on_trylock_return(ctx, LW_FN_##symbol, (implied_flags) | LW_ACQ_TRYLOCK, \
                                 (int)PT_REGS_RC(ctx));                                 \
    }

#define LW_LOCK_FUNCTION(symbol, kind, op, variant) \
    LW_HOOK_##op(symbol, LW_FLAGS_##kind | LW_FLAGS_##variant, LW_VARIANT_##variant)
LW_LOCK_FUNCTIONS
#undef LW_LOCK_FUNCTION

/*
 * The lockdep backend: on a kernel built with lockdep, lock_acquire() and
 * lock_release() announce every spin and rw lock operation, inlined or not,
 * with the lock's lockdep_map: lockdep's own class and name, and lockdep's
 * own record of the hardirq state.
 */
static __always_inline bool lockdep_spin_or_rw(struct lockdep_map___lw *map)
{
    __u8 inner = BPF_CORE_READ(map, wait_type_inner);

    if (!bpf_core_enum_value_exists(enum lockdep_wait_type___lw, LD_WAIT_SPIN___lw) ||
        !bpf_core_enum_value_exists(enum lockdep_wait_type___lw, LD_WAIT_CONFIG___lw))
        return false;
    if (bpf_core_field_exists(map->lock_type) &&
        BPF_CORE_READ(map, lock_type) != LW_LD_LOCK_NORMAL)
        return false;
    /* rcu_read_lock() and friends have an outer wait type (LD_WAIT_FREE);
     * spin and rw locks none. They must stay out: the BPF machinery itself
     * takes rcu_read_lock() around every program, the kernel skips the
     * nested program, and half-seen pairs would pile up on the stacks. */
    if (BPF_CORE_READ(map, wait_type_outer) != 0)
        return false;
    return inner == bpf_core_enum_value(enum lockdep_wait_type___lw, LD_WAIT_SPIN___lw) ||
           inner == bpf_core_enum_value(enum lockdep_wait_type___lw, LD_WAIT_CONFIG___lw);
}

/* lock_acquire()'s trylock and read arguments as acquire flags. */
static __always_inline __u32 lockdep_acquire_flags(int trylock, int read)
{
    __u32 flags = 0;

    if (trylock)
        flags |= LW_ACQ_TRYLOCK; /* lockdep hears of a trylock only when it succeeded */
    /* lockdep's read: 1 read, 2 recursive read; its word, not the rule's. */
    if (read)
        flags |= LW_ACQ_READ | (read == 2 ? LW_ACQ_RECURSIVE_READ : LW_ACQ_NONRECURSIVE_READ);
    return flags;
}

/* Set once a program has read debug_locks as 0: lockdep does not turn
 * itself back on. */
bool lockdep_turned_off = false;
/* Claimed (cmpxchg) by the program that sends LW_RECORD_LOCKDEP_OFF, and
 * given back when the ring buffer had no room, so that a later one sends
 * it. 64-bit for cmpxchg without -mcpu=v3. */
__u64 lockdep_off_sent = 0;

static __always_inline void report_lockdep_off(void *ctx)
{
    struct lw_record *rec;

    if (lockdep_off_sent || __sync_val_compare_and_swap(&lockdep_off_sent, 0, 1) != 0)
        return;
    /* Not about one acquire: no context of its own. */
    rec = new_record(ctx, LW_RECORD_LOCKDEP_OFF, LW_FN_LOCKDEP, LW_CTX_TASK);
    if (!rec) {
        lockdep_off_sent = 0;
        return;
    }
    rec->irq_flags = &tracing_irq_cpu ? 0 : LW_IRQ_STATE_INFERRED;
    bpf_ringbuf_submit(rec, 0);
}

/* True once lockdep has turned itself off. A failed read says nothing (the
 * helper zeroes what it could not read). */
static __always_inline bool lockdep_is_off(void *ctx)
{
    int on = 1;

    if (!lockdep_turned_off) {
        if (!&debug_locks || bpf_probe_read_kernel(&on, sizeof(on), &debug_locks) || on)
            return false;
        lockdep_turned_off = true;
    }
    report_lockdep_off(ctx);
    return true;
}

/* lockdep's own per-CPU record of the hardirq state while lockdep runs;
 * once it has turned itself off that record is stale (see debug_locks), and
 * the irq tracer's flag, kept by the same irq-state hooks, is read instead.
 * lock_acquire() fires its tracepoint before it disables interrupts, so
 * either shows the caller's state. */
static __always_inline enum lw_hardirq_state lockdep_hardirq_state(void *ctx)
{
    if (!&hardirqs_enabled)
        return HARDIRQS_UNKNOWN;
    if (!lockdep_is_off(ctx))
        return *(int *)bpf_this_cpu_ptr(&hardirqs_enabled) ? HARDIRQS_ON : HARDIRQS_OFF;
    if (!&tracing_irq_cpu)
        return HARDIRQS_UNKNOWN; /* inferred from the held locks, and flagged so */
    return *(int *)bpf_this_cpu_ptr(&tracing_irq_cpu) ? HARDIRQS_OFF : HARDIRQS_ON;
}

/*
 * One program for both tracepoints. The kernel skips a program that is
 * already running on this CPU, and a softirq can run inside ours (on the
 * exit of an interrupt that hit it): with one program per tracepoint, the
 * releases in that softirq were skipped while its acquires were not, and
 * the locks left behind made up dependencies. With one program both halves
 * are skipped together. lock_release(lock, ip) has a code address where
 * lock_acquire(lock, subclass, trylock, read, check, nest_lock, ip) has the
 * subclass. The arguments past the second are read as memory: a direct read
 * would stop the program from attaching to the two-argument tracepoint.
 */

SEC("raw_tp")
int lockdep_lock_op(__u64 *ctx)
{
    struct lockdep_map___lw *map = (struct lockdep_map___lw *)ctx[0];
    __u64 second = ctx[1];
    int trylock, read, check;

    if (stopping || !map || !lockdep_spin_or_rw(map))
        return 0;
    if (second >= LW_KERNEL_TEXT_MIN) {
        struct lock_op release_op = {
            .kind = OP_RELEASE,
            .function = LW_FN_LOCKDEP,
            .lock = (__u64)map,
        };

        return on_lock_op(ctx, &release_op);
    }

    /* All three are read before the check: with trylock and read read after
     * it, the verifier walked 259782 instructions instead of 217547 (6.1
     * with lockdep). */
    trylock = (int)raw_tp_arg(ctx, 2);
    read = (int)raw_tp_arg(ctx, 3);
    check = (int)raw_tp_arg(ctx, 4);
    /* check == 0: lockdep neither tracks usage nor dependencies; spin and rw
     * locks always check, so only odd lockdep_maps get here. */
    if (!check)
        return 0;

    struct lock_op acquire_op = {
        .kind = OP_ACQUIRE,
        .function = LW_FN_LOCKDEP,
        .flags = lockdep_acquire_flags(trylock, read),
        .lock = (__u64)map,
        .hardirqs = lockdep_hardirq_state(ctx),
        .subclass = (__u32)second,
        .site_from = SITE_LOCKDEP_IP,
    };

    return on_lock_op(ctx, &acquire_op);
}

/*
 * What lock_class.bpf.h keeps is void once the kernel changes what it was
 * read from. fentry and fexit, not kprobes: the kernel skips a kprobe
 * program while another BPF program of that kind runs on the CPU or a
 * bpf() syscall copies a map there (bpf_prog_active), and a lost bump
 * would keep a stale class for good; a trampoline's program is skipped
 * only when it would run inside itself. User space attaches them all or
 * turns the caches they guard off.
 */
static __always_inline int void_kept_classes(void)
{
    __sync_fetch_and_add(&lw_slab_generation, 1);
    return 0;
}

/* A kmem_cache is freed: the geometry kept for caches is void from here
 * on, as its address may come back as another cache. */
SEC("fentry/slab_kmem_cache_release")
int cache_released(void *ctx)
{
    __sync_fetch_and_add(&lw_cache_generation, 1);
    return 0;
}

/* A slab's pages go back to the page allocator, or a KFENCE object's page
 * is handed to a cache (which rewrites the page's slab_cache without
 * freeing anything): every lock address kept with its class may have been
 * in them. Bumped on entry, so that nothing read before the page is reused
 * counts, and on return, so that nothing read from it meanwhile does. */
SEC("fentry/__free_slab")
int slab_freeing(void *ctx)
{
    return void_kept_classes();
}

SEC("fexit/__free_slab")
int slab_freed(void *ctx)
{
    return void_kept_classes();
}

SEC("fentry/__kfence_alloc")
int kfence_allocating(void *ctx)
{
    return void_kept_classes();
}

SEC("fexit/__kfence_alloc")
int kfence_allocated(void *ctx)
{
    return void_kept_classes();
}

/*
 * Allocation sites: kmalloc(call_site, ptr, bytes_req, bytes_alloc, ...),
 * the tracepoint every allocation from a generic kmalloc-N cache reports
 * (kmalloc, kmalloc_node, __kmalloc_track_caller and their wrappers), as
 * do large kmallocs straight from the page allocator, which are skipped.
 * The map update takes the LRU's and the bucket's raw spinlocks: the busy
 * flag keeps our own lock hooks out of them.
 */
#define LW_KMALLOC_MAX_CACHE_SIZE 8192 /* SLUB: two pages; larger sizes bypass the caches */

SEC("raw_tp/kmalloc")
int kmalloc_site(__u64 *ctx)
{
    __u64 site = ctx[0], object = ctx[1], *known;
    __u32 zero = 0, context;
    struct cpu_state *cpu;
    __u32 *busy;

    /* A failed allocation is NULL or ZERO_SIZE_PTR (16); kernel addresses
     * have the top bit set, and with 5-level paging (qemu's -cpu max) the
     * direct map lies below LW_KERNEL_TEXT_MIN. */
    if (stopping || !(object >> 63) || ctx[3] > LW_KMALLOC_MAX_CACHE_SIZE)
        return 0;
    context = context_of(read_preempt_count());
    cpu = bpf_map_lookup_elem(&cpu_states, &zero);
    if (!cpu)
        return 0;
    busy = &cpu->busy[context & (LW_CTX_COUNT - 1)];
    if (*busy)
        return 0;
    *busy = 1;
    /* Slab reuse is last-freed-first: most allocations repeat the site the
     * address had, and a lookup is far cheaper than an LRU update, which
     * takes a spinlock that our own lock programs then see and skip
     * (bench/vm/cost.sh: 2595 instructions per call before, 283 after,
     * and 400 k fewer nested lock operations in its run). */
    known = bpf_map_lookup_elem(&alloc_sites, &object);
    if (!known || *known != site) {
        bpf_map_update_elem(&alloc_sites, &object, &site, BPF_ANY);
        /* After the update: the classes kept for its locks are void. */
        __sync_fetch_and_add(bucket_generation(alloc_bucket_of(object)), 1);
    }
    *busy = 0;
    return 0;
}
