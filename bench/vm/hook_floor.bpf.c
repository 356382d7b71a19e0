// SPDX-License-Identifier: GPL-2.0
/*
 * The floor of lockwatch's design: an empty program on every hook lockwatch
 * uses, in the same flavour as the backend measured (fentry on acquires and
 * releases and fexit on trylocks, or a kprobe, and a kretprobe on trylocks),
 * and on the kmalloc tracepoint. What these cost is the price of the hooks
 * themselves (the BPF trampoline, ftrace's register save, the tracepoint's
 * call); what lockwatch costs above it is its programs' work. The loader
 * (hook_floor.cpp) autoloads one flavour per function, as lockwatch does.
 *
 * With track_held set, each program does the least a lockdep-like tracker
 * must: find its context from preempt_count and push the lock on that
 * context's per-CPU held stack on an acquire (a successful trylock), or pop
 * it on a release. No class, no fact, no map but the stack. What this costs
 * over the empty programs bounds from below what any design that keeps
 * held locks can reach.
 *
 * With track_sites set too, each held entry also keeps its lock call's
 * return address, read as lockwatch reads it (return_address.bpf.h): the
 * "at:" lockdep keeps with every held lock, and what its reports print.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "irq_context.bpf.h"
#include "lock_functions.h"
#include "return_address.bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile bool track_held = false;
const volatile bool track_sites = false;

#define FLOOR_MAX_HELD 16

struct floor_held {
    __u32 depth;
    __u64 trylock; /* kprobe: the lock between a trylock's entry and return */
    __u64 locks[FLOOR_MAX_HELD];
    __u64 sites[FLOOR_MAX_HELD]; /* track_sites: each lock's call site */
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LW_CTX_COUNT);
    __type(key, __u32);
    __type(value, struct floor_held);
} floor_held_stacks SEC(".maps");

/* This CPU's held stack for the context running now, or NULL. */
static __always_inline struct floor_held *this_held(void)
{
    __u32 context = context_of(read_preempt_count()) & (LW_CTX_COUNT - 1);

    return bpf_map_lookup_elem(&floor_held_stacks, &context);
}

static __always_inline void push_held(struct floor_held *held, __u64 lock, __u64 site)
{
    if (!held || held->depth >= FLOOR_MAX_HELD)
        return;
    held->locks[held->depth & (FLOOR_MAX_HELD - 1)] = lock;
    if (track_sites)
        held->sites[held->depth & (FLOOR_MAX_HELD - 1)] = site;
    held->depth++;
}

/* Releases may come out of order: the top four entries are searched. */
static __always_inline void pop_held(struct floor_held *held, __u64 lock)
{
    if (!held)
        return;
    for (int i = 0; i < 4; i++) {
        __u32 at = held->depth - 1 - i;

        if (at >= FLOOR_MAX_HELD)
            break;
        if (held->locks[at & (FLOOR_MAX_HELD - 1)] == lock) {
            held->locks[at & (FLOOR_MAX_HELD - 1)] = 0;
            break;
        }
    }
    for (int i = 0; i < FLOOR_MAX_HELD; i++) {
        if (!held->depth || held->depth > FLOOR_MAX_HELD ||
            held->locks[(held->depth - 1) & (FLOOR_MAX_HELD - 1)])
            break;
        held->depth--;
    }
}

static __always_inline void note_trylock(struct floor_held *held, __u64 lock)
{
    if (held)
        held->trylock = lock;
}

static __always_inline void trylock_returned(struct floor_held *held, long ok, __u64 site)
{
    if (held && ok)
        push_held(held, held->trylock, site);
}

/* Each hook's call site, read only where sites are kept. */
#define SITE_OF_KPROBE(ctx) (track_sites ? kprobe_return_address(ctx) : 0)
#define SITE_OF_TRAMPOLINE(ctx) \
    (track_sites ? fentry_return_address(ctx, bpf_get_func_arg_cnt(ctx)) : 0)
#define SITE_OF_KRETPROBE(ctx) PT_REGS_IP(ctx)

/* One fentry and one kprobe program per function; the action sees `ctx`. */
#define LW_FLOOR_HOOK(symbol, fentry_action, kprobe_action)                 \
    SEC("fentry/" #symbol)                                                  \
    int fentry_##symbol(__u64 *ctx)                                         \
    {                                                                       \
        if (track_held)                                                     \
            fentry_action;                                                  \
        return 0;                                                           \
    }                                                                       \
    SEC("kprobe/" #symbol)                                                  \
    int kprobe_##symbol(struct pt_regs *ctx)                                \
    {                                                                       \
        if (track_held)                                                     \
            kprobe_action;                                                  \
        return 0;                                                           \
    }
#define LW_FLOOR_ACQUIRE(symbol)                                            \
    LW_FLOOR_HOOK(symbol, push_held(this_held(), ctx[0], SITE_OF_TRAMPOLINE(ctx)), \
                  push_held(this_held(), PT_REGS_PARM1(ctx), SITE_OF_KPROBE(ctx)))
#define LW_FLOOR_RELEASE(symbol)                                            \
    LW_FLOOR_HOOK(symbol, pop_held(this_held(), ctx[0]), pop_held(this_held(), PT_REGS_PARM1(ctx)))
/* fexit sees the argument and the return value (ctx[1]); kprobes keep the
 * lock from entry to return. */
#define LW_FLOOR_TRYLOCK(symbol)                                            \
    SEC("fexit/" #symbol)                                                   \
    int fexit_##symbol(__u64 *ctx)                                          \
    {                                                                       \
        if (track_held && (int)ctx[1])                                      \
            push_held(this_held(), ctx[0], SITE_OF_TRAMPOLINE(ctx));        \
        return 0;                                                           \
    }                                                                       \
    SEC("kprobe/" #symbol)                                                  \
    int kprobe_##symbol(struct pt_regs *ctx)                                \
    {                                                                       \
        if (track_held)                                                     \
            note_trylock(this_held(), PT_REGS_PARM1(ctx));                  \
        return 0;                                                           \
    }                                                                       \
    SEC("kretprobe/" #symbol)                                               \
    int kretprobe_##symbol(struct pt_regs *ctx)                             \
    {                                                                       \
        if (track_held)                                                     \
            trylock_returned(this_held(), (int)PT_REGS_RC(ctx),             \
                             SITE_OF_KRETPROBE(ctx));                       \
        return 0;                                                           \
    }

#define LW_LOCK_FUNCTION(symbol, kind, op, variant) LW_FLOOR_##op(symbol)
LW_LOCK_FUNCTIONS
#undef LW_LOCK_FUNCTION

SEC("raw_tp/kmalloc")
int floor_kmalloc(void *ctx)
{
    return 0;
}
