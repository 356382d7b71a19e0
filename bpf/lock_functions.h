/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel's out-of-line lock API (kernel/locking/spinlock.c), one line per
 * function: LW_LOCK_FUNCTION(symbol, lock kind, operation, variant).
 *
 * Which of these a kernel really has out of line depends on its config
 * (CONFIG_INLINE_*, CONFIG_UNINLINE_SPIN_UNLOCK, lockdep for the _nested
 * ones), so the loader discovers them at run time and attaches only those.
 * The table is an X-macro so that the BPF programs, the function ids and the
 * user-space names can never drift apart.
 *
 * Never add the slowpaths (queued_spin_lock_slowpath, queued_*_lock_slowpath):
 * BPF map updates take spinlocks themselves, and a program on the slowpath
 * can deadlock against a hash-map bucket lock.
 */
#ifndef LOCKWATCH_LOCK_FUNCTIONS_H
#define LOCKWATCH_LOCK_FUNCTIONS_H

#define LW_LOCK_FUNCTIONS                                                        \
    LW_LOCK_FUNCTION(_raw_spin_lock, SPIN, ACQUIRE, PLAIN)                       \
    LW_LOCK_FUNCTION(_raw_spin_lock_bh, SPIN, ACQUIRE, BH)                       \
    LW_LOCK_FUNCTION(_raw_spin_lock_irq, SPIN, ACQUIRE, IRQ)                     \
    LW_LOCK_FUNCTION(_raw_spin_lock_irqsave, SPIN, ACQUIRE, IRQSAVE)             \
    LW_LOCK_FUNCTION(_raw_spin_lock_nested, SPIN, ACQUIRE, PLAIN)                \
    LW_LOCK_FUNCTION(_raw_spin_lock_irqsave_nested, SPIN, ACQUIRE, IRQSAVE)      \
    LW_LOCK_FUNCTION(_raw_spin_lock_nest_lock, SPIN, ACQUIRE, PLAIN)             \
    LW_LOCK_FUNCTION(_raw_spin_trylock, SPIN, TRYLOCK, PLAIN)                    \
    LW_LOCK_FUNCTION(_raw_spin_trylock_bh, SPIN, TRYLOCK, BH)                    \
    LW_LOCK_FUNCTION(_raw_spin_unlock, SPIN, RELEASE, PLAIN)                     \
    LW_LOCK_FUNCTION(_raw_spin_unlock_bh, SPIN, RELEASE, BH)                     \
    LW_LOCK_FUNCTION(_raw_spin_unlock_irq, SPIN, RELEASE, IRQ)                   \
    LW_LOCK_FUNCTION(_raw_spin_unlock_irqrestore, SPIN, RELEASE, IRQSAVE)        \
    LW_LOCK_FUNCTION(_raw_read_lock, READ, ACQUIRE, PLAIN)                       \
    LW_LOCK_FUNCTION(_raw_read_lock_bh, READ, ACQUIRE, BH)                       \
    LW_LOCK_FUNCTION(_raw_read_lock_irq, READ, ACQUIRE, IRQ)                     \
    LW_LOCK_FUNCTION(_raw_read_lock_irqsave, READ, ACQUIRE, IRQSAVE)             \
    LW_LOCK_FUNCTION(_raw_read_trylock, READ, TRYLOCK, PLAIN)                    \
    LW_LOCK_FUNCTION(_raw_read_unlock, READ, RELEASE, PLAIN)                     \
    LW_LOCK_FUNCTION(_raw_read_unlock_bh, READ, RELEASE, BH)                     \
    LW_LOCK_FUNCTION(_raw_read_unlock_irq, READ, RELEASE, IRQ)                   \
    LW_LOCK_FUNCTION(_raw_read_unlock_irqrestore, READ, RELEASE, IRQSAVE)        \
    LW_LOCK_FUNCTION(_raw_write_lock, WRITE, ACQUIRE, PLAIN)                     \
    LW_LOCK_FUNCTION(_raw_write_lock_nested, WRITE, ACQUIRE, PLAIN)              \
    LW_LOCK_FUNCTION(_raw_write_lock_bh, WRITE, ACQUIRE, BH)                     \
    LW_LOCK_FUNCTION(_raw_write_lock_irq, WRITE, ACQUIRE, IRQ)                   \
    LW_LOCK_FUNCTION(_raw_write_lock_irqsave, WRITE, ACQUIRE, IRQSAVE)           \
    LW_LOCK_FUNCTION(_raw_write_trylock, WRITE, TRYLOCK, PLAIN)                  \
    LW_LOCK_FUNCTION(_raw_write_unlock, WRITE, RELEASE, PLAIN)                   \
    LW_LOCK_FUNCTION(_raw_write_unlock_bh, WRITE, RELEASE, BH)                   \
    LW_LOCK_FUNCTION(_raw_write_unlock_irq, WRITE, RELEASE, IRQ)                 \
    LW_LOCK_FUNCTION(_raw_write_unlock_irqrestore, WRITE, RELEASE, IRQSAVE)

enum lw_lock_function_id {
#define LW_LOCK_FUNCTION(symbol, kind, op, variant) LW_FN_##symbol,
    LW_LOCK_FUNCTIONS
#undef LW_LOCK_FUNCTION
    LW_FN_COUNT
};

#endif /* LOCKWATCH_LOCK_FUNCTIONS_H */
