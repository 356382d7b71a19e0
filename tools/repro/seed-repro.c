// SPDX-License-Identifier: GPL-2.0
/*
 * seed-repro: drive the seed bug's lock pattern from user space.
 *
 * On the seed kernel, pid->wait_pidfd.lock (the lock of a pidfd's wait
 * queue) is also taken by /proc when it makes the inode of a /proc/<pid>
 * directory. Three facts make lockdep's verdict:
 *
 *   unsafe : open("/proc/<pid>/stat") -> proc_pid_make_base_inode() takes
 *            wait_pidfd.lock with softirqs enabled: SOFTIRQ-unsafe.
 *   safe   : io_destroy() -> kill_ioctx() -> percpu_ref_kill(); after an RCU
 *            grace period free_ioctx_users() runs from the RCU softirq and
 *            takes kioctx.ctx_lock there: ctx_lock is SOFTIRQ-safe.
 *   edge   : io_submit(IOCB_CMD_POLL on a pidfd) -> aio_poll() holds ctx_lock
 *            (irqs off) and takes wait_pidfd.lock: ctx_lock -> wait_pidfd.
 *
 * The order decides which check fires (lockdep reports only the first):
 *
 *   edge-last  : unsafe, safe, then edge. check_irq_usage() on the new edge
 *                finds a SOFTIRQ-safe lock behind it and a SOFTIRQ-unsafe
 *                one ahead: "SOFTIRQ-safe -> SOFTIRQ-unsafe lock order
 *                detected".
 *   usage-last : edge, unsafe, then safe. mark_lock_irq() on the new
 *                IN-SOFTIRQ usage of ctx_lock finds the SOFTIRQ-unsafe lock
 *                ahead of it: "possible irq lock inversion dependency
 *                detected".
 *
 * Build: gcc -static -O2 -o seed-repro seed-repro.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434 /* same number on x86_64 and i386 */
#endif

static const char *order_name;

static void step(const char *fmt, ...)
{
	va_list ap;

	printf("seed-repro %s: ", order_name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void fail(const char *fmt, ...)
{
	va_list ap;
	int err = errno;

	fflush(stdout);
	fprintf(stderr, "seed-repro: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (err)
		fprintf(stderr, ": %s", strerror(err));
	fputc('\n', stderr);
	exit(1);
}

static long sys_io_setup(unsigned nr, aio_context_t *ctx)
{
	return syscall(__NR_io_setup, nr, ctx);
}

static long sys_io_destroy(aio_context_t ctx)
{
	return syscall(__NR_io_destroy, ctx);
}

static long sys_io_submit(aio_context_t ctx, long nr, struct iocb **iocbs)
{
	return syscall(__NR_io_submit, ctx, nr, iocbs);
}

/*
 * Wait for events with a 64-bit timeout: io_pgetevents (x86_64) or
 * io_pgetevents_time64 (i386), so that a 32-bit build does not need the
 * kernel's COMPAT_32BIT_TIME. Falls back to io_getevents on kernels < 4.18.
 */
static long sys_io_getevents(aio_context_t ctx, long min_nr, long nr,
			     struct io_event *events, long timeout_sec)
{
	struct timespec ts = { .tv_sec = timeout_sec };
	long ret = -1;

#if defined(__NR_io_pgetevents_time64)
	struct { int64_t tv_sec, tv_nsec; } ts64 = { .tv_sec = timeout_sec };

	ret = syscall(__NR_io_pgetevents_time64, ctx, min_nr, nr, events, &ts64, NULL);
#elif defined(__NR_io_pgetevents) && defined(__LP64__)
	ret = syscall(__NR_io_pgetevents, ctx, min_nr, nr, events, &ts, NULL);
#else
	errno = ENOSYS;
#endif
	if (ret < 0 && errno == ENOSYS)
		ret = syscall(__NR_io_getevents, ctx, min_nr, nr, events, &ts);
	return ret;
}

static int sys_pidfd_open(pid_t pid, unsigned flags)
{
	return (int)syscall(__NR_pidfd_open, pid, flags);
}

static aio_context_t aio_context(void)
{
	aio_context_t ctx = 0;

	if (sys_io_setup(8, &ctx) < 0) {
		if (errno == ENOSYS)
			fail("io_setup: the kernel has no AIO (CONFIG_AIO=n)");
		fail("io_setup");
	}
	return ctx;
}

/* SOFTIRQ-unsafe usage of wait_pidfd.lock. */
static void do_unsafe(pid_t child)
{
	char path[64], buf[512];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open %s (is /proc mounted?)", path);
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		fail("read %s", path);
	close(fd);
	step("opened %s: proc_pid_make_base_inode took pid->wait_pidfd.lock "
	     "with softirqs on (wait_pidfd is SOFTIRQ-unsafe)", path);
}

/* IN-SOFTIRQ usage of ctx_lock. */
static void do_safe(void)
{
	aio_context_t ctx = aio_context();

	step("io_setup: aio context %#llx (no requests)", (unsigned long long)ctx);
	/*
	 * io_destroy() waits until the context's request refs are gone, and
	 * that happens only after free_ioctx_users() ran from the RCU softirq
	 * (an RCU grace period later): no extra wait is needed.
	 */
	if (sys_io_destroy(ctx) < 0)
		fail("io_destroy");
	step("io_destroy: free_ioctx_users took kioctx.ctx_lock in the RCU "
	     "softirq (ctx_lock is SOFTIRQ-safe)");
}

/* The edge ctx_lock -> wait_pidfd.lock; returns the context holding the
 * pending poll request. */
static aio_context_t do_edge(int pidfd, struct iocb *cb)
{
	aio_context_t ctx = aio_context();
	struct iocb *cbs[1] = { cb };
	long ret;

	step("io_setup: aio context %#llx", (unsigned long long)ctx);
	memset(cb, 0, sizeof(*cb));
	cb->aio_lio_opcode = IOCB_CMD_POLL;
	cb->aio_fildes = (uint32_t)pidfd;
	cb->aio_buf = POLLIN;
	cb->aio_data = 0x5eed;
	ret = sys_io_submit(ctx, 1, cbs);
	if (ret < 0) {
		if (errno == EINVAL)
			fail("io_submit(IOCB_CMD_POLL) on a pidfd (no aio poll support?)");
		fail("io_submit(IOCB_CMD_POLL) on a pidfd");
	}
	if (ret != 1)
		fail("io_submit(IOCB_CMD_POLL) submitted %ld of 1 requests", ret);
	step("io_submit IOCB_CMD_POLL on pidfd %d: aio_poll took "
	     "pid->wait_pidfd.lock under kioctx.ctx_lock (edge ctx_lock -> wait_pidfd)",
	     pidfd);
	return ctx;
}

/* Let the child exit, collect the poll completion, free the context. */
static void cleanup(pid_t child, int pidfd, aio_context_t ctx)
{
	struct io_event ev;
	long ret;

	if (kill(child, SIGKILL) < 0)
		fail("kill child %d", (int)child);
	if (waitpid(child, NULL, 0) < 0)
		fail("waitpid child %d", (int)child);
	ret = sys_io_getevents(ctx, 1, 1, &ev, 5);
	if (ret < 0)
		fail("io_getevents");
	if (ret == 0) {
		errno = 0;
		fail("the pidfd poll did not complete after the child exited");
	}
	step("child %d reaped; poll completed (data %#llx, res %#llx)",
	     (int)child, (unsigned long long)ev.data, (unsigned long long)ev.res);
	if (sys_io_destroy(ctx) < 0)
		fail("io_destroy");
	close(pidfd);
}

int main(int argc, char **argv)
{
	struct iocb cb;
	aio_context_t ctx;
	int edge_last, pidfd;
	pid_t child;

	if (argc != 2 || (strcmp(argv[1], "edge-last") && strcmp(argv[1], "usage-last"))) {
		fprintf(stderr,
			"usage: %s edge-last|usage-last\n"
			"  edge-last   SOFTIRQ-unsafe and -safe usages first, the edge last\n"
			"              (lockdep: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected)\n"
			"  usage-last  the edge and the unsafe usage first, the softirq usage last\n"
			"              (lockdep: possible irq lock inversion dependency detected)\n",
			argc > 0 ? argv[0] : "seed-repro");
		return 2;
	}
	order_name = argv[1];
	edge_last = !strcmp(argv[1], "edge-last");
	setvbuf(stdout, NULL, _IOLBF, 0);

	child = fork();
	if (child < 0)
		fail("fork");
	if (child == 0) {
		for (;;)
			pause();
	}
	step("forked child %d", (int)child);
	pidfd = sys_pidfd_open(child, 0);
	if (pidfd < 0) {
		int err = errno;

		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		errno = err;
		fail("pidfd_open(%d)%s", (int)child,
		     err == ENOSYS ? " (kernel older than 5.3)" : "");
	}
	step("pidfd_open(%d) = %d", (int)child, pidfd);

	if (edge_last) {
		do_unsafe(child);
		do_safe();
		ctx = do_edge(pidfd, &cb);
	} else {
		ctx = do_edge(pidfd, &cb);
		do_unsafe(child);
		do_safe();
	}
	cleanup(child, pidfd, ctx);
	step("done; with the seed bug and lockdep, dmesg now shows %s",
	     edge_last ? "\"SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected\""
		       : "\"possible irq lock inversion dependency detected\"");
	return 0;
}
