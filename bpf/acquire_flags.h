/* SPDX-License-Identifier: GPL-2.0 */
/*
 * How a lock was acquired, in the words both sides of the ring buffer use:
 * the interrupt context, the acquire flags, and lockdep's read level that
 * follows from them. Plain C without includes, so that the BPF programs and
 * the user-space engine (which does not depend on BPF) share one definition.
 */
#ifndef LOCKWATCH_ACQUIRE_FLAGS_H
#define LOCKWATCH_ACQUIRE_FLAGS_H

/* lockdep's irq_context: each context has its own held-lock stack. */
enum lw_context {
    LW_CTX_TASK = 0,
    LW_CTX_SOFTIRQ = 1,
    LW_CTX_HARDIRQ = 2,
    LW_CTX_NMI = 3,
    LW_CTX_COUNT
};

enum lw_acquire_flags {
    LW_ACQ_READ = 1 << 0,     /* read_lock*(), or lockdep's read != 0: shared */
    LW_ACQ_TRYLOCK = 1 << 1,  /* a trylock that succeeded */
    LW_ACQ_IRQS_OFF = 1 << 2, /* _irq / _irqsave: this acquire disabled hardirqs */
    LW_ACQ_BH = 1 << 3,       /* _bh: this acquire disabled softirqs */
    /* The reader's level as lockdep said it (lockdep backend, traces). A read
     * with neither takes its level from lw_read_level()'s rule. */
    LW_ACQ_RECURSIVE_READ = 1 << 4,    /* lockdep's read == 2 */
    LW_ACQ_NONRECURSIVE_READ = 1 << 5, /* lockdep's read == 1 */
    /* Softirqs were already disabled where the lock was taken (a
     * local_bh_disable() section, or a held _bh lock): in_interrupt() is
     * true there, as in softirq context. */
    LW_ACQ_SOFTIRQS_OFF = 1 << 6,
};

/*
 * lockdep's held_lock->read: 0 write, 1 read, 2 recursive read. A reader
 * whose level nobody said is a queued rwlock's (x86 has
 * CONFIG_QUEUED_RWLOCKS), and read_lock_is_recursive() makes those recursive
 * only where in_interrupt() is true:
 *
 *     return force_read_lock_recursive ||
 *            !IS_ENABLED(CONFIG_QUEUED_RWLOCKS) ||
 *            in_interrupt();                      (lockdep.c, v6.1)
 *
 * in_interrupt() counts softirq-disabled sections too (softirq_count()),
 * and read_lock_bh() disables softirqs before rwlock_acquire_read(): a
 * task-context reader under _bh or local_bh_disable() is recursive.
 */
static inline unsigned int lw_read_level(unsigned int acquire_flags, unsigned int context)
{
    if (!(acquire_flags & LW_ACQ_READ))
        return 0;
    if (acquire_flags & LW_ACQ_RECURSIVE_READ)
        return 2;
    if (acquire_flags & LW_ACQ_NONRECURSIVE_READ)
        return 1;
    if (context == LW_CTX_TASK && !(acquire_flags & (LW_ACQ_BH | LW_ACQ_SOFTIRQS_OFF)))
        return 1;
    return 2;
}

#endif /* LOCKWATCH_ACQUIRE_FLAGS_H */
