// SPDX-License-Identifier: GPL-2.0
/*
 * Lock bugs, and healthy look-alikes, on demand for lockwatch's live tests.
 * The module loads once and stays loaded (the test kernels cannot unload
 * modules); a scenario runs when its name is written to the parameter `run`:
 *
 *   echo circular_two > /sys/module/lockwatch_scenarios/parameters/run
 *
 * The write runs the scenario synchronously, in the writer's process
 * context, and returns when it is over; the kernel log says
 * "lockwatch_scenarios: NAME start" before and "... NAME done" after. An unknown name fails with EINVAL and
 * logs the known ones; reading `run` lists them too. Every scenario has its
 * own static locks, named with its own prefix, so scenarios never share a
 * lock class. Hardirq context is a hrtimer (HRTIMER_MODE_REL_HARD), softirq
 * context a timer_list callback; each waits until its callback has run.
 *
 * Lockdep's verdict on each, as measured on the lockdep test kernel (one
 * boot per bug: lockdep reports only the first bug of a boot); the table the
 * tests read is scenarios.tsv beside this file:
 *
 *   circular_two                circular (a->b, then b->a)
 *   circular_three              circular (a->b, b->c, then c->a)
 *   recursive                   recursive (spin_lock twice on one instance;
 *                               a hrtimer stores 0 to the lock word behind
 *                               everyone's back so the task can go on)
 *   inconsistent_hardirq_first  inconsistent lock state,
 *                               {IN-HARDIRQ-W} -> {HARDIRQ-ON-W}
 *   inconsistent_hardirq_last   inconsistent lock state,
 *                               {HARDIRQ-ON-W} -> {IN-HARDIRQ-W}
 *   inconsistent_softirq_first  inconsistent lock state,
 *                               {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W}
 *   inconsistent_softirq_last   inconsistent lock state,
 *                               {SOFTIRQ-ON-W} -> {IN-SOFTIRQ-W}
 *   hardirq_safe_unsafe         HARDIRQ-safe -> HARDIRQ-unsafe lock order
 *   softirq_safe_unsafe         SOFTIRQ-safe -> SOFTIRQ-unsafe lock order
 *   irq_inversion               possible irq lock inversion dependency (the
 *                               safe->unsafe order first, the hardirq use
 *                               of the safe lock last)
 *   rwlock_read_hardirq         inconsistent lock state (read_lock in
 *                               hardirq, write_lock with irqs on)
 *   rwlock_write_hardirq        inconsistent lock state (write_lock in
 *                               hardirq, read_lock with irqs on)
 *   chain_safe_unsafe           HARDIRQ-safe -> HARDIRQ-unsafe lock order
 *                               (safe -> mid -> unsafe, one nesting)
 *   cache_reuse                 circular (a->b, then b->a, two locks of one
 *                               slab object, in a cache made where another
 *                               was just destroyed)
 *   kmalloc_reuse               circular (a->b, then b->a, two locks of one
 *                               kmalloc object at the address of one just
 *                               freed that came from another call site)
 *   irqs_on_held                inconsistent lock state, {IN-HARDIRQ-W} ->
 *                               {HARDIRQ-ON-W}: a hardirq lock still held
 *                               when spin_unlock_irqrestore() of an outer
 *                               lock turns interrupts back on
 *   healthy_irqsave             none: hardirq lock taken with irqsave
 *   healthy_bh                  none: softirq lock taken with _bh
 *   healthy_order               none: a->b, twice
 *   healthy_trylock_reverse     none: a->b, then b->a only by trylock
 *   healthy_nested              none: two instances of one class,
 *                               the inner by spin_lock_nested
 *   healthy_local_irq_save      none: hardirq lock, local_irq_save +
 *                               spin_lock
 *   healthy_rwlock_read         none: read_lock in hardirq and read_lock
 *                               with irqs on
 *   split_usage, split_order    none alone, softirq_safe_unsafe together:
 *                               its two halves (split_safe used in
 *                               softirq; split_safe -> split_unsafe with
 *                               split_unsafe taken with softirqs on), for
 *                               runs that each see one half (not in
 *                               scenarios.tsv: one boot runs every scenario
 *                               of the table)
 *   healthy_read_trylock        none: read_lock, then read_trylock of the
 *                               same lock (lockdep runs no deadlock check
 *                               for a trylock)
 *   healthy_read_bh_abba        none: read_lock_bh(r); spin_lock(x), then
 *                               with softirqs off spin_lock(x);
 *                               read_lock(r): readers with softirqs off are
 *                               recursive (qrwlock lets them past a waiting
 *                               writer), so there is no cycle
 */
#include <linux/completion.h>
#include <linux/hrtimer.h>
#include <linux/jiffies.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timer.h>

#define PFX "lockwatch_scenarios: "

/* ---- running a lock operation in hardirq or softirq context ---------- */

enum take_op { TAKE_SPIN, TAKE_READ, TAKE_WRITE };

/*
 * A tracer on kprobes cannot see a lock taken in an interrupt that lands
 * while a kprobe program runs on that CPU: the kernel skips the nested
 * program (bpf_prog_active) and only counts a recursion miss. Under TCG on a
 * loaded host, the 1 ms timer often fires before the waiting task has gone to
 * sleep, in the middle of its own lock hooks, and a scenario then fails for
 * a fact the tracer could not have had. So the callback takes the lock only
 * over the idle task, or over ksoftirqd, which serves softirqs outside any
 * program; otherwise it asks to be armed again. The last try takes it
 * wherever it lands. Lockdep's verdict is the same either way.
 */
#define IRQ_JOB_TRIES 20

static struct {
	enum take_op op;
	void *lock;
	bool last_try;
	bool taken;
} irq_job;

static struct hrtimer hardirq_timer;
static struct timer_list softirq_timer;
static DECLARE_COMPLETION(irq_job_done);
static bool irq_job_timed_out;

static void take_and_release(void)
{
	switch (irq_job.op) {
	case TAKE_SPIN:
		spin_lock(irq_job.lock);
		spin_unlock(irq_job.lock);
		break;
	case TAKE_READ:
		read_lock(irq_job.lock);
		read_unlock(irq_job.lock);
		break;
	case TAKE_WRITE:
		write_lock(irq_job.lock);
		write_unlock(irq_job.lock);
		break;
	}
}

/* Whether the interrupted task cannot be in the middle of a BPF program. */
static bool over_quiet_task(bool softirq)
{
	if (is_idle_task(current))
		return true;
	return softirq && (current->flags & PF_KTHREAD) &&
	       strncmp(current->comm, "ksoftirqd/", 10) == 0;
}

static void run_irq_job(bool softirq)
{
	irq_job.taken = irq_job.last_try || over_quiet_task(softirq);
	if (irq_job.taken)
		take_and_release();
	complete(&irq_job_done);
}

static enum hrtimer_restart hardirq_call(struct hrtimer *timer)
{
	run_irq_job(false);
	return HRTIMER_NORESTART;
}

static void softirq_call(struct timer_list *timer)
{
	run_irq_job(true);
}

static void arm_hardirq_timer(void)
{
	hrtimer_start(&hardirq_timer, ms_to_ktime(1),
		      HRTIMER_MODE_REL_PINNED_HARD);
}

static void arm_softirq_timer(void)
{
	mod_timer(&softirq_timer, jiffies + 1);
}

/* Arms the timer until its callback has taken `lock` once. */
static void take_in_irq(enum take_op op, void *lock, void (*arm)(void))
{
	int try;

	irq_job.op = op;
	irq_job.lock = lock;
	for (try = 1; try <= IRQ_JOB_TRIES; try++) {
		irq_job.last_try = try == IRQ_JOB_TRIES;
		reinit_completion(&irq_job_done);
		arm();
		if (!wait_for_completion_timeout(&irq_job_done, 5 * HZ)) {
			irq_job_timed_out = true;
			pr_err(PFX "the interrupt-context callback did not run\n");
			return;
		}
		if (irq_job.taken)
			break;
	}
	if (try > 1)
		pr_info(PFX "the interrupt-context callback waited for a quiet CPU: try %d\n",
			try);
}

/* Takes and releases `lock` in hardirq context, once. */
static void hardirq_take(enum take_op op, void *lock)
{
	take_in_irq(op, lock, arm_hardirq_timer);
}

/* Takes and releases `lock` in softirq context (a timer_list callback). */
static void softirq_take(enum take_op op, void *lock)
{
	take_in_irq(op, lock, arm_softirq_timer);
}

static void take_plain(spinlock_t *lock)
{
	spin_lock(lock);
	spin_unlock(lock);
}

/* ---- lock order cycles --------------------------------------------------- */

static DEFINE_SPINLOCK(circ2_a);
static DEFINE_SPINLOCK(circ2_b);

static void circular_two(void)
{
	spin_lock(&circ2_a);
	spin_lock(&circ2_b);
	spin_unlock(&circ2_b);
	spin_unlock(&circ2_a);

	spin_lock(&circ2_b);
	spin_lock(&circ2_a);
	spin_unlock(&circ2_a);
	spin_unlock(&circ2_b);
}

static DEFINE_SPINLOCK(circ3_a);
static DEFINE_SPINLOCK(circ3_b);
static DEFINE_SPINLOCK(circ3_c);

static void nest_two(spinlock_t *outer, spinlock_t *inner)
{
	spin_lock(outer);
	spin_lock(inner);
	spin_unlock(inner);
	spin_unlock(outer);
}

static void circular_three(void)
{
	nest_two(&circ3_a, &circ3_b);
	nest_two(&circ3_b, &circ3_c);
	nest_two(&circ3_c, &circ3_a);
}

/*
 * A cycle between two locks of one slab object, in a cache made right after
 * another was destroyed: most often in the kmem_cache the old one had, and
 * on the page the old one's slab had. The old cache's objects are 64 bytes
 * apart; the new one's 128, its second lock at 64. A tracer that kept the
 * old cache's sizes for that address would put both locks at offset 0, one
 * class, and see no cycle; one that kept the old cache's classes, or the
 * class of each old lock's address, would name the new lock at offset 0
 * after the old cache. The caches' own locks (their ctors init them) are
 * the only ones here.
 */
struct geomreuse_small {
	spinlock_t lock;
} __aligned(64);

struct geomreuse_pair {
	spinlock_t lock_a __aligned(64);
	spinlock_t lock_b __aligned(64);
};

/* lockdep names a lock class after spin_lock_init()'s argument. */
static void geomreuse_small_init(void *object)
{
	spinlock_t *geomreuse_small_lock = &((struct geomreuse_small *)object)->lock;

	spin_lock_init(geomreuse_small_lock);
}

static void geomreuse_pair_init(void *object)
{
	spinlock_t *geomreuse_pair_a = &((struct geomreuse_pair *)object)->lock_a;
	spinlock_t *geomreuse_pair_b = &((struct geomreuse_pair *)object)->lock_b;

	spin_lock_init(geomreuse_pair_a);
	spin_lock_init(geomreuse_pair_b);
}

/* A cache of `size`-byte objects, in *cache, and one object from it; NULL
 * (logged, the cache destroyed) when there is no memory. A ctor also keeps
 * the cache from being merged into another. */
static void *geomreuse_object(const char *name, size_t size, void (*ctor)(void *),
			      struct kmem_cache **cache)
{
	void *object;

	*cache = kmem_cache_create(name, size, 64, 0, ctor);
	object = *cache ? kmem_cache_alloc(*cache, GFP_KERNEL) : NULL;
	if (!object) {
		pr_err(PFX "cache_reuse: no memory for %s\n", name);
		kmem_cache_destroy(*cache);
	}
	return object;
}

/* A page's worth of the old cache's objects, each lock taken, so that the
 * new object's locks most likely lie where old ones did. */
#define GEOMREUSE_OLD_OBJECTS (PAGE_SIZE / sizeof(struct geomreuse_small))

/* Compared, never used: the old objects are freed. */
static bool geomreuse_where_old_locks_were(struct geomreuse_small **old,
					   struct geomreuse_pair *pair)
{
	size_t i;

	for (i = 0; i < GEOMREUSE_OLD_OBJECTS; i++)
		if ((void *)old[i] == &pair->lock_a || (void *)old[i] == &pair->lock_b)
			return true;
	return false;
}

static void cache_reuse(void)
{
	struct geomreuse_small *old[GEOMREUSE_OLD_OBJECTS] = {};
	struct kmem_cache *small, *pairs;
	struct geomreuse_pair *pair;
	size_t i;

	/* One CPU throughout: a tracer keeps what it knows of caches per CPU. */
	set_cpus_allowed_ptr(current, cpumask_of(raw_smp_processor_id()));
	old[0] = geomreuse_object("geomreuse_small", sizeof(*old[0]), geomreuse_small_init, &small);
	if (!old[0])
		goto out;
	for (i = 1; i < GEOMREUSE_OLD_OBJECTS; i++)
		old[i] = kmem_cache_alloc(small, GFP_KERNEL);
	for (i = 0; i < GEOMREUSE_OLD_OBJECTS; i++) {
		if (!old[i])
			continue;
		spin_lock(&old[i]->lock);
		spin_unlock(&old[i]->lock);
	}
	for (i = 0; i < GEOMREUSE_OLD_OBJECTS; i++)
		if (old[i])
			kmem_cache_free(small, old[i]);
	kmem_cache_destroy(small);

	pair = geomreuse_object("geomreuse_pair", sizeof(*pair), geomreuse_pair_init, &pairs);
	if (!pair)
		goto out;
	/* small is compared, never used: its kmem_cache is freed. */
	pr_info(PFX "cache_reuse: the new cache %s where the old one was\n",
		pairs == small ? "is" : "is not");
	pr_info(PFX "cache_reuse: a new lock %s where an old one was\n",
		geomreuse_where_old_locks_were(old, pair) ? "is" : "is not");
	nest_two(&pair->lock_a, &pair->lock_b);
	nest_two(&pair->lock_b, &pair->lock_a);
	kmem_cache_free(pairs, pair);
	kmem_cache_destroy(pairs);
out:
	set_cpus_allowed_ptr(current, cpu_possible_mask);
}

/*
 * A cycle between two locks of a generic kmalloc object whose address was
 * just another's, from another call site. Such a lock's class is (cache,
 * offset, allocation site), since any struct of the size may come from
 * kmalloc-N: a tracer that kept the old object's classes for the address
 * would see the cycle between kmreuse_old_alloc's locks, or none.
 */
struct kmreuse_object {
	spinlock_t lock_a __aligned(64);
	spinlock_t lock_b __aligned(64);
};

static noinline struct kmreuse_object *kmreuse_old_alloc(void)
{
	struct kmreuse_object *old = kmalloc(sizeof(*old), GFP_KERNEL);
	spinlock_t *kmreuse_old_a, *kmreuse_old_b;

	if (old) {
		kmreuse_old_a = &old->lock_a;
		kmreuse_old_b = &old->lock_b;
		spin_lock_init(kmreuse_old_a);
		spin_lock_init(kmreuse_old_b);
	}
	return old;
}

/* kzalloc, not kmalloc: were the two functions the same code, the
 * compiler could fold them into one, and the two sites would be one. */
static noinline struct kmreuse_object *kmreuse_pair_alloc(void)
{
	struct kmreuse_object *pair = kzalloc(sizeof(*pair), GFP_KERNEL);
	spinlock_t *kmreuse_pair_a, *kmreuse_pair_b;

	if (pair) {
		kmreuse_pair_a = &pair->lock_a;
		kmreuse_pair_b = &pair->lock_b;
		spin_lock_init(kmreuse_pair_a);
		spin_lock_init(kmreuse_pair_b);
	}
	return pair;
}

static void kmalloc_reuse(void)
{
	struct kmreuse_object *old, *pair;
	bool reused;

	/* One CPU throughout: kmalloc hands this CPU's last freed object out
	 * first, and a tracer keeps what it knows of addresses per CPU. */
	set_cpus_allowed_ptr(current, cpumask_of(raw_smp_processor_id()));
	old = kmreuse_old_alloc();
	pair = old ? NULL : ERR_PTR(-ENOMEM);
	if (old) {
		take_plain(&old->lock_a);
		take_plain(&old->lock_b);
		kfree(old);
		pair = kmreuse_pair_alloc();
	}
	if (IS_ERR_OR_NULL(pair)) {
		pr_err(PFX "kmalloc_reuse: no memory\n");
		goto out;
	}
	reused = pair == old; /* compared, never used: old is freed */
	/* No lock between the two objects' (printk takes several), so that
	 * what a tracer kept of the old locks is still there to be misused. */
	nest_two(&pair->lock_a, &pair->lock_b);
	nest_two(&pair->lock_b, &pair->lock_a);
	kfree(pair);
	pr_info(PFX "kmalloc_reuse: the new object %s where the old one was\n",
		reused ? "is" : "is not");
out:
	set_cpus_allowed_ptr(current, cpu_possible_mask);
}

/* ---- recursion ------------------------------------------------------------- */

static DEFINE_SPINLOCK(rec_lock);
static struct hrtimer rescue_timer;

/* Hardirq context, while the task spins on the lock it holds. */
static enum hrtimer_restart rescue_spinning_task(struct hrtimer *timer)
{
	smp_store_release(&rec_lock.rlock.raw_lock.locked, 0);
	return HRTIMER_NORESTART;
}

static void recursive(void)
{
	spin_lock(&rec_lock);
	hrtimer_start(&rescue_timer, ms_to_ktime(50), HRTIMER_MODE_REL_HARD);
	spin_lock(&rec_lock); /* the bug: spins until the timer fires */
	spin_unlock(&rec_lock);
	hrtimer_cancel(&rescue_timer);
	/* The outer acquire's unlock: the lock word is already 0. */
	spin_unlock(&rec_lock);
}

/* ---- inconsistent irq state ---------------------------------------------- */

static DEFINE_SPINLOCK(ihf_lock);
static DEFINE_SPINLOCK(ihl_lock);
static DEFINE_SPINLOCK(isf_lock);
static DEFINE_SPINLOCK(isl_lock);

static void inconsistent_hardirq_first(void)
{
	hardirq_take(TAKE_SPIN, &ihf_lock);
	take_plain(&ihf_lock); /* hardirqs on */
}

static void inconsistent_hardirq_last(void)
{
	take_plain(&ihl_lock); /* hardirqs on */
	hardirq_take(TAKE_SPIN, &ihl_lock);
}

static void inconsistent_softirq_first(void)
{
	softirq_take(TAKE_SPIN, &isf_lock);
	take_plain(&isf_lock); /* softirqs on */
}

static void inconsistent_softirq_last(void)
{
	take_plain(&isl_lock); /* softirqs on */
	softirq_take(TAKE_SPIN, &isl_lock);
}

/* ---- irq-safe lock before an irq-unsafe one ------------------------------ */

static DEFINE_SPINLOCK(hsu_safe);
static DEFINE_SPINLOCK(hsu_unsafe);

static void hardirq_safe_unsafe(void)
{
	unsigned long flags;

	take_plain(&hsu_unsafe);
	hardirq_take(TAKE_SPIN, &hsu_safe);
	spin_lock_irqsave(&hsu_safe, flags);
	spin_lock(&hsu_unsafe); /* the new dependency safe -> unsafe */
	spin_unlock(&hsu_unsafe);
	spin_unlock_irqrestore(&hsu_safe, flags);
}

static DEFINE_SPINLOCK(ssu_safe);
static DEFINE_SPINLOCK(ssu_unsafe);

static void softirq_safe_unsafe(void)
{
	take_plain(&ssu_unsafe);
	softirq_take(TAKE_SPIN, &ssu_safe);
	spin_lock_bh(&ssu_safe);
	spin_lock(&ssu_unsafe); /* the new dependency safe -> unsafe */
	spin_unlock(&ssu_unsafe);
	spin_unlock_bh(&ssu_safe);
}

static DEFINE_SPINLOCK(split_safe);
static DEFINE_SPINLOCK(split_unsafe);

static void split_usage(void)
{
	softirq_take(TAKE_SPIN, &split_safe);
}

static void split_order(void)
{
	take_plain(&split_unsafe);
	spin_lock_bh(&split_safe); /* softirqs off: no SOFTIRQ-ON use of split_safe */
	spin_lock(&split_unsafe);
	spin_unlock(&split_unsafe);
	spin_unlock_bh(&split_safe);
}

static DEFINE_SPINLOCK(inv_safe);
static DEFINE_SPINLOCK(inv_unsafe);

static void irq_inversion(void)
{
	unsigned long flags;

	take_plain(&inv_unsafe);
	spin_lock_irqsave(&inv_safe, flags);
	spin_lock(&inv_unsafe); /* not a bug yet: inv_safe has no irq use */
	spin_unlock(&inv_unsafe);
	spin_unlock_irqrestore(&inv_safe, flags);
	hardirq_take(TAKE_SPIN, &inv_safe); /* the usage comes last */
}

static DEFINE_SPINLOCK(chain_safe);
static DEFINE_SPINLOCK(chain_mid);
static DEFINE_SPINLOCK(chain_unsafe);

static void chain_safe_unsafe(void)
{
	unsigned long flags;

	take_plain(&chain_unsafe);
	hardirq_take(TAKE_SPIN, &chain_safe);
	spin_lock_irqsave(&chain_safe, flags);
	spin_lock(&chain_mid);
	spin_lock(&chain_unsafe); /* mid -> unsafe joins safe to unsafe */
	spin_unlock(&chain_unsafe);
	spin_unlock(&chain_mid);
	spin_unlock_irqrestore(&chain_safe, flags);
}

/* ---- rwlocks ------------------------------------------------------------- */

static DEFINE_RWLOCK(rwrh_lock);
static DEFINE_RWLOCK(rwwh_lock);

static void rwlock_read_hardirq(void)
{
	hardirq_take(TAKE_READ, &rwrh_lock);
	write_lock(&rwrh_lock); /* hardirqs on */
	write_unlock(&rwrh_lock);
}

static void rwlock_write_hardirq(void)
{
	hardirq_take(TAKE_WRITE, &rwwh_lock);
	read_lock(&rwwh_lock); /* hardirqs on */
	read_unlock(&rwwh_lock);
}

/* ---- interrupts turned back on with a lock held ------------------------- */

static DEFINE_SPINLOCK(irqon_outer);
static DEFINE_SPINLOCK(irqon_held);

static void irqs_on_held(void)
{
	unsigned long flags;

	hardirq_take(TAKE_SPIN, &irqon_held);
	spin_lock_irqsave(&irqon_outer, flags);
	spin_lock(&irqon_held); /* hardirqs off: nothing wrong yet */
	spin_unlock_irqrestore(&irqon_outer, flags); /* on again, irqon_held held */
	spin_unlock(&irqon_held);
}

/* ---- healthy look-alikes: no report ------------------------------------- */

static DEFINE_SPINLOCK(okirqsave_lock);
static DEFINE_SPINLOCK(okbh_lock);
static DEFINE_SPINLOCK(okorder_a);
static DEFINE_SPINLOCK(okorder_b);
static DEFINE_SPINLOCK(oktry_a);
static DEFINE_SPINLOCK(oktry_b);
static DEFINE_SPINLOCK(oklocal_lock);
static DEFINE_RWLOCK(okrw_lock);
static DEFINE_RWLOCK(okrtry_lock);
static DEFINE_RWLOCK(okrbh_r);
static DEFINE_SPINLOCK(okrbh_x);

/* Two instances of one lock class: spin_lock_init at one site. */
static struct oknest_obj {
	spinlock_t lock;
} oknest_objs[2];

static void healthy_irqsave(void)
{
	unsigned long flags;

	hardirq_take(TAKE_SPIN, &okirqsave_lock);
	spin_lock_irqsave(&okirqsave_lock, flags);
	spin_unlock_irqrestore(&okirqsave_lock, flags);
}

static void healthy_bh(void)
{
	softirq_take(TAKE_SPIN, &okbh_lock);
	spin_lock_bh(&okbh_lock);
	spin_unlock_bh(&okbh_lock);
}

static void healthy_order(void)
{
	nest_two(&okorder_a, &okorder_b);
	nest_two(&okorder_a, &okorder_b);
}

static void healthy_trylock_reverse(void)
{
	nest_two(&oktry_a, &oktry_b);
	spin_lock(&oktry_b);
	if (spin_trylock(&oktry_a)) /* a trylock cannot deadlock */
		spin_unlock(&oktry_a);
	spin_unlock(&oktry_b);
}

static void healthy_nested(void)
{
	spin_lock(&oknest_objs[0].lock);
	spin_lock_nested(&oknest_objs[1].lock, SINGLE_DEPTH_NESTING);
	spin_unlock(&oknest_objs[1].lock);
	spin_unlock(&oknest_objs[0].lock);
}

static void healthy_local_irq_save(void)
{
	unsigned long flags;

	hardirq_take(TAKE_SPIN, &oklocal_lock);
	local_irq_save(flags);
	spin_lock(&oklocal_lock);
	spin_unlock(&oklocal_lock);
	local_irq_restore(flags);
}

static void healthy_rwlock_read(void)
{
	hardirq_take(TAKE_READ, &okrw_lock);
	read_lock(&okrw_lock); /* hardirqs on */
	read_unlock(&okrw_lock);
}

static void healthy_read_trylock(void)
{
	read_lock(&okrtry_lock);
	if (read_trylock(&okrtry_lock)) /* another reader: it succeeds */
		read_unlock(&okrtry_lock);
	read_unlock(&okrtry_lock);
}

static void healthy_read_bh_abba(void)
{
	read_lock_bh(&okrbh_r);
	spin_lock(&okrbh_x);
	spin_unlock(&okrbh_x);
	read_unlock_bh(&okrbh_r);

	local_bh_disable();
	spin_lock(&okrbh_x);
	read_lock(&okrbh_r); /* in_interrupt(): a recursive read, no cycle */
	read_unlock(&okrbh_r);
	spin_unlock(&okrbh_x);
	local_bh_enable();
}

/* ---- the parameter ------------------------------------------------------- */

static const struct scenario {
	const char *name;
	void (*run)(void);
} scenarios[] = {
	{ "circular_two", circular_two },
	{ "circular_three", circular_three },
	{ "cache_reuse", cache_reuse },
	{ "kmalloc_reuse", kmalloc_reuse },
	{ "recursive", recursive },
	{ "inconsistent_hardirq_first", inconsistent_hardirq_first },
	{ "inconsistent_hardirq_last", inconsistent_hardirq_last },
	{ "inconsistent_softirq_first", inconsistent_softirq_first },
	{ "inconsistent_softirq_last", inconsistent_softirq_last },
	{ "hardirq_safe_unsafe", hardirq_safe_unsafe },
	{ "softirq_safe_unsafe", softirq_safe_unsafe },
	{ "irq_inversion", irq_inversion },
	{ "rwlock_read_hardirq", rwlock_read_hardirq },
	{ "rwlock_write_hardirq", rwlock_write_hardirq },
	{ "chain_safe_unsafe", chain_safe_unsafe },
	{ "irqs_on_held", irqs_on_held },
	{ "healthy_irqsave", healthy_irqsave },
	{ "healthy_bh", healthy_bh },
	{ "healthy_order", healthy_order },
	{ "healthy_trylock_reverse", healthy_trylock_reverse },
	{ "healthy_nested", healthy_nested },
	{ "healthy_local_irq_save", healthy_local_irq_save },
	{ "healthy_rwlock_read", healthy_rwlock_read },
	{ "healthy_read_trylock", healthy_read_trylock },
	{ "healthy_read_bh_abba", healthy_read_bh_abba },
	/* Not in scenarios.tsv, and last: see split_usage. */
	{ "split_usage", split_usage },
	{ "split_order", split_order },
};

static DEFINE_MUTEX(run_mutex);
static bool timers_ready; /* not when insmod passes run=: init comes after */

/* "name name ...", into buf of size len. */
static int list_scenarios(char *buf, size_t len)
{
	int n = 0;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(scenarios); i++)
		n += scnprintf(buf + n, len - n, "%s%s", i ? " " : "", scenarios[i].name);
	return n;
}

static int run_set(const char *val, const struct kernel_param *kp)
{
	static char known[1024];
	size_t i;

	if (!timers_ready) {
		pr_err(PFX "load first, then write the name to /sys/module/lockwatch_scenarios/parameters/run\n");
		return -EINVAL;
	}
	for (i = 0; i < ARRAY_SIZE(scenarios); i++) {
		if (!sysfs_streq(val, scenarios[i].name))
			continue;
		mutex_lock(&run_mutex);
		pr_info(PFX "%s start\n", scenarios[i].name);
		irq_job_timed_out = false;
		scenarios[i].run();
		mutex_unlock(&run_mutex);
		if (irq_job_timed_out)
			return -ETIMEDOUT;
		pr_info(PFX "%s done\n", scenarios[i].name);
		return 0;
	}
	list_scenarios(known, sizeof(known));
	pr_err(PFX "unknown scenario '%.*s' (known: %s)\n", (int)strcspn(val, "\n"), val, known);
	return -EINVAL;
}

static int run_get(char *buffer, const struct kernel_param *kp)
{
	int n = list_scenarios(buffer, PAGE_SIZE - 1);

	buffer[n++] = '\n';
	return n;
}

static const struct kernel_param_ops run_ops = {
	.set = run_set,
	.get = run_get,
};
module_param_cb(run, &run_ops, NULL, 0644);
MODULE_PARM_DESC(run, "write a scenario's name to run it; read for the list");

static int __init scenarios_init(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(oknest_objs); i++)
		spin_lock_init(&oknest_objs[i].lock);
	hrtimer_init(&hardirq_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_PINNED_HARD);
	hardirq_timer.function = hardirq_call;
	hrtimer_init(&rescue_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	rescue_timer.function = rescue_spinning_task;
	timer_setup(&softirq_timer, softirq_call, TIMER_PINNED);
	timers_ready = true;
	return 0;
}

static void __exit scenarios_exit(void)
{
	hrtimer_cancel(&hardirq_timer);
	hrtimer_cancel(&rescue_timer);
	del_timer_sync(&softirq_timer);
}

module_init(scenarios_init);
module_exit(scenarios_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lockwatch test scenarios: lock bugs and healthy look-alikes on demand");
