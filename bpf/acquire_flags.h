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

/* lockdep's usage bits (kernel/locking/lockdep_states.h order). */
enum lw_usage_bit {
    LW_USED_IN_HARDIRQ = 0,
    LW_USED_IN_HARDIRQ_READ = 1,
    LW_ENABLED_HARDIRQ = 2,
    LW_ENABLED_HARDIRQ_READ = 3,
    LW_USED_IN_SOFTIRQ = 4,
    LW_USED_IN_SOFTIRQ_READ = 5,
    LW_ENABLED_SOFTIRQ = 6,
    LW_ENABLED_SOFTIRQ_READ = 7,
    LW_USED = 8,      /* "INITIAL USE", any use outside NMI */
    LW_USED_READ = 9, /* "INITIAL READ USE" */
    LW_USAGE_BITS = 10
};

/*
 * lockdep's mark_usage(): the usage bits an acquire sets, the one rule the
 * BPF programs (which send the new bits as facts) and the engine (which
 * marks them from raw events) share. A reader (read level != 0) sets the
 * _READ bits; a trylock is no use in irq; hardirqs_on / softirqs_on are the
 * state after the lock function's own disabling (softirqs count only with
 * hardirqs on).
 */
static inline unsigned int lw_usage_mask(unsigned int acquire_flags, unsigned int context,
                                         int hardirqs_on, int softirqs_on)
{
    unsigned int read = lw_read_level(acquire_flags, context) != 0;
    unsigned int mask = 0;

    if (!(acquire_flags & LW_ACQ_TRYLOCK)) {
        if (context == LW_CTX_HARDIRQ)
            mask |= 1U << (LW_USED_IN_HARDIRQ + read);
        if (context == LW_CTX_SOFTIRQ)
            mask |= 1U << (LW_USED_IN_SOFTIRQ + read);
    }
    if (hardirqs_on) {
        mask |= 1U << (LW_ENABLED_HARDIRQ + read);
        if (softirqs_on)
            mask |= 1U << (LW_ENABLED_SOFTIRQ + read);
    }
    return mask | 1U << (LW_USED + read);
}

/*
 * The order mark_usage() marks them in, which decides the report when one
 * acquire sets two bits that each make one (in softirq context with
 * hardirqs on: IN-SOFTIRQ before HARDIRQ-ON): used-in, then enabled, hardirq
 * before softirq, then USED. i < LW_USAGE_BITS.
 */
static inline unsigned int lw_usage_bit_at(unsigned int i)
{
    static const unsigned char order[LW_USAGE_BITS] = {
        LW_USED_IN_HARDIRQ, LW_USED_IN_HARDIRQ_READ, LW_USED_IN_SOFTIRQ, LW_USED_IN_SOFTIRQ_READ,
        LW_ENABLED_HARDIRQ, LW_ENABLED_HARDIRQ_READ, LW_ENABLED_SOFTIRQ, LW_ENABLED_SOFTIRQ_READ,
        LW_USED,            LW_USED_READ,
    };

    return order[i < LW_USAGE_BITS ? i : 0];
}

#endif /* LOCKWATCH_ACQUIRE_FLAGS_H */
