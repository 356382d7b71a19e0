/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Everything the BPF programs and the daemon share: the ring-buffer records
 * and the counter layout. Plain C, fixed-size types only.
 */
#ifndef LOCKWATCH_H
#define LOCKWATCH_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#include "acquire_flags.h"
#include "address_regions.h"
#include "lock_functions.h"

#define LW_TASK_COMM_LEN 16

/* Why a lock operation or a fact was seen but not processed: each is a
 * counted loss, reported by `lockwatch run`. */
enum lw_loss {
    /* The ring buffer had no room for a fact. */
    LW_LOSS_RINGBUF_FULL = 0,
    /* bpf_get_stackid() failed (stack map full or bucket busy): the fact
     * was sent without its stack. */
    LW_LOSS_STACK = 1,
    /* More than LW_MAX_HELD locks held in one context. */
    LW_LOSS_HELD_OVERFLOW = 2,
    /* A new fact found its dedup map (edges, class_usage) full: not sent,
     * so that a full map does not send every later acquire's facts again. */
    LW_LOSS_DEDUP_FULL = 3,
    LW_LOSS_COUNT
};

/* Sizes of the dedup maps, for their fill levels. */
#define LW_EDGES_MAP_ENTRIES 262144
#define LW_CLASS_USAGE_MAP_ENTRIES 65536

/* Events that are not losses but say how exact the picture is. */
enum lw_note {
    /* A release whose acquire we never saw: taken before tracing began, or
     * its acquire was lost. */
    LW_NOTE_UNMATCHED_RELEASE = 0,
    /* Held entries dropped because their release was lost: the lock reads
     * unlocked, or they belong to an interrupt context that has ended. */
    LW_NOTE_STALE_HELD = 1,
    /* Acquires whose hardirq state was inferred rather than read. */
    LW_NOTE_IRQ_STATE_INFERRED = 2,
    /* Lock operations made by lockwatch's own programs (ring buffer and map
     * locks), skipped by the per-context busy flag: not kernel events. */
    LW_NOTE_OWN_LOCK_OPS = 3,
    /* A dedup map insert failed (-EBUSY from a bucket held by an
     * interrupted update): the fact was sent anyway and may come twice. */
    LW_NOTE_DEDUP_FAILED = 4,
    /* Entries the dedup maps hold (inserts kept): their fill levels. */
    LW_NOTE_EDGES_KEPT = 5,
    LW_NOTE_CLASSES_KEPT = 6,
    LW_NOTE_COUNT
};

#define LW_MAX_HELD 32

/* --profile-phases: the steps of one lock operation whose cost the
 * phase_costs map adds up (bpf_ktime_get_ns() deltas: instructions under
 * qemu -icount shift=0), in the order they run. LW_PHASE_STAMP is two
 * stamps with nothing between, the overhead each phase's figure includes. */
enum lw_phase {
    LW_PHASE_STAMP = 0,
    LW_PHASE_ENTRY = 1,      /* finished contexts, call count, first call, focus */
    LW_PHASE_SITE = 2,       /* the lock call's return address */
    LW_PHASE_STALE = 3,      /* held entries whose release was lost: the top's lock word */
    LW_PHASE_CLASS_KEPT = 4, /* irq state; the class kept for the address */
    LW_PHASE_CLASS = 5,      /* irq state; the class read from the address */
    LW_PHASE_CLASS_SITE = 6, /* kmalloc allocation site, or first acquirer's site */
    LW_PHASE_USAGE = 7,      /* class and usage bits: known, or sent */
    LW_PHASE_RECURSION = 8,  /* the same lock already held */
    LW_PHASE_EDGES = 9,      /* dependencies on the held locks: known, or sent */
    LW_PHASE_PUSH = 10,      /* onto the held stack */
    LW_PHASE_RELEASE = 11,   /* off the held stack */
    LW_PHASE_IRQS_ON = 12,   /* an unlock that turns interrupts on: held locks marked */
    LW_PHASE_COUNT
};

struct lw_phase_cost {
    __u64 ns;
    __u64 count;
};

enum lw_class_type {
    LW_CLASS_STATIC = 1, /* kernel image data: named by kallsyms */
    LW_CLASS_PERCPU = 2, /* per-CPU data: named by its per-CPU offset */
    LW_CLASS_SLAB = 3,   /* slab object: named by (cache, offset) and BTF */
    LW_CLASS_SITE = 4,   /* anything else: named by the acquiring call site */
    LW_CLASS_PAGE = 5,   /* inside a struct page (split page-table locks) */
    LW_CLASS_LOCKDEP = 6, /* lockdep's own class: (lock_class_key, subclass) and its name */
    /* generic kmalloc-N object allocated before tracing began (or whose
     * allocation fell out of the alloc_sites map): (cache, offset, first
     * acquirer's site) */
    LW_CLASS_KMALLOC = 7,
    LW_CLASS_MODULE = 8, /* module data (static lock in a module): named by kallsyms */
    /* generic kmalloc-N object: (cache, offset, allocation site) */
    LW_CLASS_KMALLOC_ALLOC = 9,
};

/* The lockdep backend's pseudo lock function: the lock:lock_acquire and
 * lock:lock_release tracepoints, one slot after the real functions. */
#define LW_FN_LOCKDEP LW_FN_COUNT
#define LW_FN_SLOTS (LW_FN_COUNT + 1)

/* Each CPU's calls of each lock function, at the start of its cpu_states
 * value, where user space reads them: a map of their own would cost a
 * helper call on every lock operation (about 25 instructions on 6.1, which
 * does not inline per-CPU array lookups). */
struct lw_cpu_calls {
    __u64 calls[LW_FN_SLOTS];
};

enum lw_record_type {
    /* The first time a lock function ran: who called it. */
    LW_RECORD_FIRST_CALL = 1,
    /* A lock class seen for the first time. */
    LW_RECORD_CLASS = 2,
    /* A usage bit set on a class for the first time. */
    LW_RECORD_USAGE = 3,
    /* A dependency prev -> next seen for the first time. */
    LW_RECORD_EDGE = 4,
    /* The same lock instance acquired again while held: a real self-deadlock. */
    LW_RECORD_RECURSION = 5,
    /* lockdep backend: a lockdep class (class_id) met a lock lockwatch's own
     * address rules put in class prev_class_id (of type class_type, described
     * as a CLASS record would: class_key, class_offset, name, site), for the
     * first time. How the two classings agree. */
    LW_RECORD_CLASS_PAIR = 6,
    /* An acquire in NMI of a class already used outside NMI (class_id,
     * acquire_flags): lockdep checks nothing else in NMI. */
    LW_RECORD_NMI_ACQUIRE = 7,
    /* Interrupts came back on (irq_flags: which) while this context still
     * holds a lock of class class_id (acquire_flags: how it was taken);
     * usage_bit is a mask of the ENABLED_* bits that are new for the class.
     * lockdep's mark_held_locks(). */
    LW_RECORD_HELD_IRQS_ON = 8,
    /* lockdep backend: lockdep has turned itself off (debug_locks is 0, after
     * its first report). Sent once. From here on the hardirq state is read
     * from the irq tracer's per-CPU flag (irq_flags: LW_IRQ_STATE_INFERRED
     * when the kernel has none and the state is inferred instead). */
    LW_RECORD_LOCKDEP_OFF = 9,
    /* --record-ops (record_ops): each operation as it happened, for a trace
     * that a replay can derive the graph from by itself. OP_ACQUIRE: a lock
     * went on this context's held stack (class_id; class_key: the lock's
     * address, which user space replaces by a number while it is held;
     * acquire_flags, irq_flags as an EDGE's). OP_RELEASE: class_key was
     * released, or forgotten (a lost release, an interrupt that ended): a
     * lock that was on the held stack only. OP_IRQS_ON: an unlock turned
     * interrupts back on (irq_flags: which) while locks are held. */
    LW_RECORD_OP_ACQUIRE = 10,
    LW_RECORD_OP_RELEASE = 11,
    LW_RECORD_OP_IRQS_ON = 12,
};

/* State of the CPU at the acquire that produced a fact. */
enum lw_irq_flags {
    LW_IRQ_HARDIRQS_ENABLED = 1 << 0,
    LW_IRQ_SOFTIRQS_ENABLED = 1 << 1,
    LW_IRQ_STATE_INFERRED = 1 << 2, /* hardirq state inferred, not read */
};

struct lw_record {
    __u32 type;     /* enum lw_record_type */
    __u32 function; /* enum lw_lock_function_id of the acquire */
    __u64 time_ns;  /* bpf_ktime_get_ns() */
    __s32 stack_id; /* id in the stacks map, < 0 when unavailable */
    __u32 cpu;
    __u32 pid; /* thread id */
    __u32 context;   /* enum lw_context */
    __u32 irq_flags; /* enum lw_irq_flags */
    __u32 acquire_flags; /* enum lw_acquire_flags of the acquire */
    char comm[LW_TASK_COMM_LEN];

    /* The class the fact is about (CLASS, USAGE), or the acquired one (EDGE). */
    __u64 class_id;
    __u32 class_type;  /* enum lw_class_type */
    __u32 class_offset;
    __u64 class_key;   /* STATIC, MODULE: lock address; SITE: call site; SLAB: kmem_cache;
                          LOCKDEP: lock_class_key (class_offset: subclass) */
    __u64 object_size; /* SLAB */
    char name[64];     /* SLAB, KMALLOC: kmem_cache->name; LOCKDEP: lockdep_map->name */
    __u64 site;        /* KMALLOC: the call site of the lock's first acquire;
                          KMALLOC_ALLOC: the object's allocation site */

    __u32 usage_bit; /* USAGE: enum lw_usage_bit */
    __u32 prev_function;      /* EDGE: how the held lock was acquired */
    __u64 prev_class_id;      /* EDGE */
    __u32 prev_acquire_flags; /* EDGE */
    __u32 held_depth;         /* locks held in this context before this acquire */
    __u64 prev_site;          /* EDGE, RECURSION: where the held lock was taken, or 0 */
};

#endif /* LOCKWATCH_H */
