// SPDX-License-Identifier: GPL-2.0
/*
 * lockwatch's kernel side: one small program per out-of-line lock function.
 *
 * Every program runs under a per-CPU, per-context "busy" flag shared by all
 * of them: the maps and the ring buffer we use take kernel spinlocks, which
 * would otherwise re-enter us. What the guard skips is counted, never lost
 * silently.
 */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "lockwatch.h"

char LICENSE[] SEC("license") = "GPL";

/* preempt_count layout (include/linux/preempt.h). */
#define LW_SOFTIRQ_MASK 0x0000ff00U
#define LW_HARDIRQ_MASK 0x000f0000U
#define LW_NMI_MASK 0x00f00000U
#define LW_SOFTIRQ_OFFSET 0x00000100U

/*
 * preempt_count lives in the per-CPU __preempt_count up to 6.1 and again in
 * newer kernels, in pcpu_hot.preempt_count in between. Both are weak so that
 * the object loads on either; CO-RE picks the one that exists.
 */
extern int __preempt_count __ksym __weak;
struct pcpu_hot___lw {
    int preempt_count;
} __attribute__((preserve_access_index));
extern struct pcpu_hot___lw pcpu_hot __ksym __weak;

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LW_FN_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} calls SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LW_LOSS_COUNT);
    __type(key, __u32);
    __type(value, __u64);
} losses SEC(".maps");

/* One flag per context: a hardirq that interrupts a task-context program
 * must still be traced, so the guard cannot be a single per-CPU bit. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LW_CTX_COUNT);
    __type(key, __u32);
    __type(value, __u32);
} busy SEC(".maps");

/* Set once a function's first call has been reported. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, LW_FN_COUNT);
    __type(key, __u32);
    __type(value, __u64); /* 64-bit for cmpxchg without -mcpu=v3 */
} first_call_reported SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_STACK_TRACE);
    __uint(max_entries, 4096);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, 127 * sizeof(__u64));
} stacks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 256 * 1024);
} records SEC(".maps");

static __always_inline __u32 read_preempt_count(void)
{
    if (bpf_core_type_exists(struct pcpu_hot___lw) && &pcpu_hot)
        return BPF_CORE_READ((struct pcpu_hot___lw *)bpf_this_cpu_ptr(&pcpu_hot),
                             preempt_count);
    if (&__preempt_count)
        return *(int *)bpf_this_cpu_ptr(&__preempt_count);
    return 0;
}

static __always_inline __u32 context_of(__u32 preempt_count)
{
    if (preempt_count & LW_NMI_MASK)
        return LW_CTX_NMI;
    if (preempt_count & LW_HARDIRQ_MASK)
        return LW_CTX_HARDIRQ;
    /* Serving a softirq, as opposed to merely having softirqs disabled. */
    if (preempt_count & LW_SOFTIRQ_OFFSET)
        return LW_CTX_SOFTIRQ;
    return LW_CTX_TASK;
}

static __always_inline void count_loss(__u32 loss)
{
    __u64 *n = bpf_map_lookup_elem(&losses, &loss);

    if (n)
        *n += 1;
}

static __always_inline void report_first_call(void *ctx, __u32 function, __u32 context)
{
    __u64 *reported = bpf_map_lookup_elem(&first_call_reported, &function);
    struct lw_record *rec;

    if (!reported || *reported || __sync_val_compare_and_swap(reported, 0, 1) != 0)
        return;

    rec = bpf_ringbuf_reserve(&records, sizeof(*rec), 0);
    if (!rec) {
        count_loss(LW_LOSS_RINGBUF_FULL);
        return;
    }
    rec->type = LW_RECORD_FIRST_CALL;
    rec->function = function;
    rec->time_ns = bpf_ktime_get_ns();
    rec->stack_id = bpf_get_stackid(ctx, &stacks, 0);
    if (rec->stack_id < 0)
        count_loss(LW_LOSS_STACK);
    rec->cpu = bpf_get_smp_processor_id();
    rec->pid = (__u32)bpf_get_current_pid_tgid();
    rec->context = context;
    bpf_get_current_comm(rec->comm, sizeof(rec->comm));
    bpf_ringbuf_submit(rec, 0);
}

static __always_inline int on_lock_op(void *ctx, __u32 function)
{
    __u32 context = context_of(read_preempt_count());
    __u32 *busy_flag = bpf_map_lookup_elem(&busy, &context);
    __u64 *n;

    if (!busy_flag)
        return 0;
    if (*busy_flag) {
        count_loss(LW_LOSS_RECURSION);
        return 0;
    }
    *busy_flag = 1;

    n = bpf_map_lookup_elem(&calls, &function);
    if (n)
        *n += 1;
    report_first_call(ctx, function, context);

    *busy_flag = 0;
    return 0;
}

/*
 * One program per table entry. Acquires and releases are seen on entry;
 * trylocks on exit, and only when they succeeded.
 */
#define LW_HOOK_ACQUIRE(symbol)                              \
    SEC("fentry/" #symbol)                                   \
    int BPF_PROG(lw_##symbol, void *lock)                    \
    {                                                        \
        return on_lock_op(ctx, LW_FN_##symbol);              \
    }
#define LW_HOOK_RELEASE(symbol) LW_HOOK_ACQUIRE(symbol)
#define LW_HOOK_TRYLOCK(symbol)                              \
    SEC("fexit/" #symbol)                                    \
    int BPF_PROG(lw_##symbol, void *lock, int acquired)      \
    {                                                        \
        return acquired ? on_lock_op(ctx, LW_FN_##symbol) : 0; \
    }

#define LW_LOCK_FUNCTION(symbol, kind, op, variant) LW_HOOK_##op(symbol)
LW_LOCK_FUNCTIONS
#undef LW_LOCK_FUNCTION
