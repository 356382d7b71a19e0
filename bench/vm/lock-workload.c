// SPDX-License-Identifier: GPL-2.0
/*
 * lock-workload: a lock-heavy micro-benchmark for lockwatch's cost in a
 * test VM (bench/vm/cost.sh). Four loops that each spend their time in the
 * kernel's spin and rw lock functions:
 *
 *   pipe  : one byte back and forth between a parent and a child (wait
 *           queue locks, the runqueue locks of two wakeups per round)
 *   proc  : open, read and close /proc/self/stat (dentry, inode and task
 *           locks, the seed's pid->wait_pidfd.lock)
 *   fork  : fork, exit, wait (tasklist_lock, sighand, mm and page-table
 *           locks)
 *   aio   : io_submit of a poll on a readable pipe, io_getevents
 *           (kioctx.ctx_lock, the seed's aio_poll path, wait-queue locks)
 *
 * Usage: lock-workload [ROUNDS]   (default 20000; fork does ROUNDS/10)
 * Prints one line per loop and a total, in seconds of CLOCK_MONOTONIC. In
 * a guest run with `-icount shift=0,sleep=off` that clock advances one
 * nanosecond per executed instruction, so the seconds are instructions.
 *
 * Build: gcc -static -O2 -o lock-workload lock-workload.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
	perror(what);
	exit(1);
}

static void pipe_rounds(long rounds)
{
	int to_child[2], to_parent[2];
	char byte = 'x';
	pid_t child;

	if (pipe(to_child) || pipe(to_parent))
		fail("pipe");
	child = fork();
	if (child < 0)
		fail("fork");
	if (child == 0) {
		for (long i = 0; i < rounds; i++)
			if (read(to_child[0], &byte, 1) != 1 || write(to_parent[1], &byte, 1) != 1)
				_exit(1);
		_exit(0);
	}
	for (long i = 0; i < rounds; i++)
		if (write(to_child[1], &byte, 1) != 1 || read(to_parent[0], &byte, 1) != 1)
			fail("pipe round");
	waitpid(child, NULL, 0);
	close(to_child[0]);
	close(to_child[1]);
	close(to_parent[0]);
	close(to_parent[1]);
}

static void proc_rounds(long rounds)
{
	char buf[512];

	for (long i = 0; i < rounds; i++) {
		int fd = open("/proc/self/stat", O_RDONLY);

		if (fd < 0)
			fail("open /proc/self/stat");
		if (read(fd, buf, sizeof(buf)) <= 0)
			fail("read /proc/self/stat");
		close(fd);
	}
}

static void fork_rounds(long rounds)
{
	for (long i = 0; i < rounds; i++) {
		pid_t child = fork();

		if (child < 0)
			fail("fork");
		if (child == 0)
			_exit(0);
		waitpid(child, NULL, 0);
	}
}

/* One aio context for the whole loop: io_destroy() waits for an RCU grace
 * period, which is idle time, not lock work (under -icount it is a jump of
 * the guest clock to the next timer). */
static aio_context_t aio_ctx;

static void aio_rounds(long rounds)
{
	struct iocb cb = { .aio_lio_opcode = IOCB_CMD_POLL, .aio_buf = POLLIN };
	struct iocb *cbs[1] = { &cb };
	struct io_event event;
	int fds[2];
	char byte = 'x';

	if (pipe(fds) || write(fds[1], &byte, 1) != 1)
		fail("pipe");
	cb.aio_fildes = fds[0];
	for (long i = 0; i < rounds; i++) {
		/* The pipe stays readable: the poll completes at once, under
		 * kioctx.ctx_lock and the pipe's wait-queue lock. */
		if (syscall(__NR_io_submit, aio_ctx, 1, cbs) != 1)
			fail("io_submit");
		if (syscall(__NR_io_getevents, aio_ctx, 1, 1, &event, NULL) != 1)
			fail("io_getevents");
	}
	close(fds[0]);
	close(fds[1]);
}

static double timed(const char *name, void (*loop)(long), long rounds)
{
	double start = now(), spent;

	loop(rounds);
	spent = now() - start;
	printf("lock-workload %-5s %7ld rounds %10.6f s\n", name, rounds, spent);
	return spent;
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
	double total = 0;

	if (rounds <= 0) {
		fprintf(stderr, "usage: lock-workload [ROUNDS] (a positive number)\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	total += timed("pipe", pipe_rounds, rounds);
	total += timed("proc", proc_rounds, rounds);
	total += timed("fork", fork_rounds, rounds / 10 ? rounds / 10 : 1);
	if (syscall(__NR_io_setup, 16, &aio_ctx))
		fail("io_setup");
	total += timed("aio", aio_rounds, rounds);
	syscall(__NR_io_destroy, aio_ctx);
	printf("lock-workload total %10.6f s\n", total);
	return 0;
}
