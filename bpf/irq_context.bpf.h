/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Interrupt context and softirq state from preempt_count, as lockdep's
 * irq_context and softirqs_enabled see them.
 */
#ifndef LOCKWATCH_IRQ_CONTEXT_BPF_H
#define LOCKWATCH_IRQ_CONTEXT_BPF_H

#include "lockwatch.h"

/* include/linux/preempt.h */
#define LW_SOFTIRQ_MASK 0x0000ff00U
#define LW_HARDIRQ_MASK 0x000f0000U
#define LW_NMI_MASK 0x00f00000U
#define LW_SOFTIRQ_OFFSET 0x00000100U
#define LW_SOFTIRQ_DISABLE_OFFSET (2 * LW_SOFTIRQ_OFFSET) /* local_bh_disable() */
#define LW_PREEMPT_NEED_RESCHED 0x80000000U

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

static __always_inline __u32 read_preempt_count(void)
{
    __u32 pc = 0;

    if (bpf_core_type_exists(struct pcpu_hot___lw) && &pcpu_hot)
        pc = BPF_CORE_READ((struct pcpu_hot___lw *)bpf_this_cpu_ptr(&pcpu_hot), preempt_count);
    else if (&__preempt_count)
        pc = *(int *)bpf_this_cpu_ptr(&__preempt_count);
    /* x86 folds an inverted need-resched bit into the top of the count. */
    return pc & ~LW_PREEMPT_NEED_RESCHED;
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

static __always_inline bool softirqs_enabled(__u32 preempt_count)
{
    return (preempt_count & LW_SOFTIRQ_MASK) == 0;
}

#endif /* LOCKWATCH_IRQ_CONTEXT_BPF_H */
