// SPDX-License-Identifier: GPL-2.0
/*
 * Lock bugs on demand, for lockwatch's live tests: each scenario takes its
 * own locks in the pattern that lockdep reports, once, when the module is
 * loaded (insmod lockwatch_scenarios.ko scenario=NAME), and then returns
 * -EAGAIN so that the module never stays loaded and can be loaded again.
 *
 *   recursion  spin_lock(&l) while this task already holds l: lockdep's
 *              "possible recursive locking detected". A real self-deadlock:
 *              the CPU spins on itself until a hrtimer, armed before, lets
 *              the lock go behind lockdep's and lockwatch's backs (a raw
 *              store to the lock word, no unlock call), so the guest lives on.
 */
#include <linux/hrtimer.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/spinlock.h>
#include <linux/string.h>

static char *scenario = "";
module_param(scenario, charp, 0444);
MODULE_PARM_DESC(scenario, "which lock bug to make: recursion");

static DEFINE_SPINLOCK(recursion_lock);
static struct hrtimer rescue_timer;

/* Hardirq context, while the task spins on the lock it holds. */
static enum hrtimer_restart rescue_spinning_task(struct hrtimer *timer)
{
	smp_store_release(&recursion_lock.rlock.raw_lock.locked, 0);
	return HRTIMER_NORESTART;
}

static void make_recursion(void)
{
	hrtimer_init(&rescue_timer, CLOCK_MONOTONIC, HRTIMER_MODE_REL_HARD);
	rescue_timer.function = rescue_spinning_task;

	spin_lock(&recursion_lock);
	hrtimer_start(&rescue_timer, ms_to_ktime(50), HRTIMER_MODE_REL_HARD);
	spin_lock(&recursion_lock); /* the bug: spins until the timer fires */
	spin_unlock(&recursion_lock);
	hrtimer_cancel(&rescue_timer);
	/* The outer acquire's unlock: the lock word is already 0, the unlock
	 * hook pops the outer held entry. */
	spin_unlock(&recursion_lock);
}

static int __init scenarios_init(void)
{
	if (!strcmp(scenario, "recursion")) {
		make_recursion();
	} else {
		pr_err("lockwatch_scenarios: unknown scenario '%s' (known: recursion)\n", scenario);
		return -EINVAL;
	}
	pr_info("lockwatch_scenarios: %s done\n", scenario);
	return -EAGAIN;
}

module_init(scenarios_init);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("lockwatch test scenarios: lock bugs on demand");
