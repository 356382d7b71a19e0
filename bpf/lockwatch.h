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

#include "lock_functions.h"

#define LW_TASK_COMM_LEN 16

/* lockdep's irq_context: each context has its own held-lock stack. */
enum lw_context {
    LW_CTX_TASK = 0,
    LW_CTX_SOFTIRQ = 1,
    LW_CTX_HARDIRQ = 2,
    LW_CTX_NMI = 3,
    LW_CTX_COUNT
};

/* Why a lock operation was seen but not processed: each is a counted loss. */
enum lw_loss {
    /* Another lockwatch program was already running in this context on this
     * CPU (our own map and ring-buffer operations take spinlocks). */
    LW_LOSS_RECURSION = 0,
    /* The ring buffer had no room for a record. */
    LW_LOSS_RINGBUF_FULL = 1,
    /* bpf_get_stackid() failed (stack map full or bucket busy). */
    LW_LOSS_STACK = 2,
    LW_LOSS_COUNT
};

enum lw_record_type {
    /* The first time a lock function ran: who called it. */
    LW_RECORD_FIRST_CALL = 1,
};

struct lw_record {
    __u32 type;           /* enum lw_record_type */
    __u32 function;       /* enum lw_lock_function_id */
    __u64 time_ns;        /* bpf_ktime_get_ns() */
    __s32 stack_id;       /* id in the stacks map, < 0 when unavailable */
    __u32 cpu;
    __u32 pid;            /* thread id */
    __u32 context;        /* enum lw_context */
    char comm[LW_TASK_COMM_LEN];
};

#endif /* LOCKWATCH_H */
