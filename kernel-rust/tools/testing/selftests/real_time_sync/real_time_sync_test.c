// SPDX-License-Identifier: GPL-2.0
/*
 * real_time_sync(2), system call 555: the error table, the ways the call
 * ends (a signal ends it with 0, a job-control stop does not), a mirror
 * round trip both ways, and EBUSY for a directory another call mirrors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../kselftest_harness.h"

#ifndef __NR_real_time_sync
#error "__NR_real_time_sync missing: build against the patched kernel's headers (KHDR_INCLUDES)"
#endif

/* How long a change may take to arrive: emulated test machines are slow. */
#define ARRIVAL_MS 20000

static long rts(const char *a, const char *b)
{
	return syscall(__NR_real_time_sync, a, b);
}

/* The errno of a call that must fail at once, or 0. */
static int rts_errno(const char *a, const char *b)
{
	return rts(a, b) == -1 ? errno : 0;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The number of the system call that @pid is blocked in, or -1. */
static long in_syscall(pid_t pid)
{
	char path[64];
	long nr = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/syscall", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &nr) != 1)
		nr = -1;
	fclose(f);
	return nr;
}

/* The state letter of @pid (R, S, T, ...), or '?'. */
static char state(pid_t pid)
{
	char path[64], buf[512], *paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return '?';
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return '?';
	buf[n] = '\0';
	paren = strrchr(buf, ')');
	return paren && paren[1] && paren[2] ? paren[2] : '?';
}

/* Waits until @pid blocks in the call; 0 if it left (and was reaped). */
static int wait_in_call(pid_t pid)
{
	long deadline = now_ms() + ARRIVAL_MS;
	int status;

	while (now_ms() < deadline) {
		if (in_syscall(pid) == __NR_real_time_sync)
			return 1;
		if (waitpid(pid, &status, WNOHANG) == pid)
			return 0;
		usleep(2000);
	}
	return 0;
}

static void on_signal(int sig)
{
}

/*
 * Runs the call on @a and @b in a child that catches SIGINT (without
 * SA_RESTART, so that the call returns to the handler) and exits with
 * the call's errno, or 0 when it returned 0. Returns the child's pid
 * once it is inside the call, or -1.
 */
static pid_t start_sync(const char *a, const char *b)
{
	pid_t pid = fork();

	if (pid == 0) {
		struct sigaction sa = { .sa_handler = on_signal };

		sigaction(SIGINT, &sa, NULL);
		_exit(rts(a, b) == -1 ? errno : 0);
	}
	if (pid < 0 || !wait_in_call(pid))
		return -1;
	return pid;
}

/* Ends the child with SIGINT; its exit status, or -1 if it died otherwise. */
static int stop_sync(pid_t pid)
{
	int status;

	kill(pid, SIGINT);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

static int write_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t len = strlen(content);

	if (fd < 0)
		return -1;
	if (write(fd, content, len) != len) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/* Waits until @path holds exactly @content. */
static int arrives(const char *path, const char *content)
{
	long deadline = now_ms() + ARRIVAL_MS;
	size_t len = strlen(content);
	char buf[256];

	while (now_ms() < deadline) {
		int fd = open(path, O_RDONLY);

		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf));

			close(fd);
			if (n == (ssize_t)len && !memcmp(buf, content, len))
				return 1;
		}
		usleep(2000);
	}
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	return remove(path);
}

FIXTURE(pair) {
	char root[256];
	char a[PATH_MAX];
	char b[PATH_MAX];
	char c[PATH_MAX];
	char file[PATH_MAX];
};

FIXTURE_SETUP(pair)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(self->root, sizeof(self->root), "%s/rts-XXXXXX",
		 tmp ? tmp : "/tmp");
	ASSERT_NE(NULL, mkdtemp(self->root));
	/* Reachable by nobody, for the EACCES test. */
	ASSERT_EQ(0, chmod(self->root, 0755));
	snprintf(self->a, sizeof(self->a), "%s/a", self->root);
	snprintf(self->b, sizeof(self->b), "%s/b", self->root);
	snprintf(self->c, sizeof(self->c), "%s/c", self->root);
	snprintf(self->file, sizeof(self->file), "%s/file", self->root);
	ASSERT_EQ(0, mkdir(self->a, 0777));
	ASSERT_EQ(0, mkdir(self->b, 0777));
	ASSERT_EQ(0, mkdir(self->c, 0777));
	ASSERT_EQ(0, write_file(self->file, "not a directory"));
}

FIXTURE_TEARDOWN(pair)
{
	nftw(self->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TEST_F(pair, efault)
{
	void *unmapped = mmap(NULL, 4096, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	ASSERT_NE(MAP_FAILED, unmapped);
	ASSERT_EQ(0, munmap(unmapped, 4096));
	EXPECT_EQ(EFAULT, rts_errno(NULL, self->b));
	EXPECT_EQ(EFAULT, rts_errno(self->a, NULL));
	EXPECT_EQ(EFAULT, rts_errno(unmapped, self->b));
	EXPECT_EQ(EFAULT, rts_errno(self->a, unmapped));
}

TEST_F(pair, enametoolong)
{
	char *path = malloc(PATH_MAX + 2);

	ASSERT_NE(NULL, path);
	memset(path, 'x', PATH_MAX + 1);
	path[PATH_MAX + 1] = '\0';
	EXPECT_EQ(ENAMETOOLONG, rts_errno(path, self->b));
	EXPECT_EQ(ENAMETOOLONG, rts_errno(self->a, path));
	free(path);
}

TEST_F(pair, enoent)
{
	char missing[PATH_MAX + 16];

	snprintf(missing, sizeof(missing), "%s/missing", self->root);
	EXPECT_EQ(ENOENT, rts_errno("", self->b));
	EXPECT_EQ(ENOENT, rts_errno(self->a, ""));
	EXPECT_EQ(ENOENT, rts_errno(missing, self->b));
	EXPECT_EQ(ENOENT, rts_errno(self->a, missing));
}

TEST_F(pair, enotdir)
{
	EXPECT_EQ(ENOTDIR, rts_errno(self->file, self->b));
	EXPECT_EQ(ENOTDIR, rts_errno(self->a, self->file));
}

TEST_F(pair, einval_same_or_nested)
{
	char inner[PATH_MAX + 16];

	snprintf(inner, sizeof(inner), "%s/inner", self->a);
	ASSERT_EQ(0, mkdir(inner, 0755));
	EXPECT_EQ(EINVAL, rts_errno(self->a, self->a));
	EXPECT_EQ(EINVAL, rts_errno(self->a, inner));
	EXPECT_EQ(EINVAL, rts_errno(inner, self->a));
}

TEST_F(pair, eacces)
{
	int status;
	pid_t pid;

	if (geteuid() != 0)
		SKIP(return, "needs root to switch to nobody");
	ASSERT_EQ(0, chmod(self->b, 0700));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(255);
		alarm(20);
		_exit(rts_errno(self->a, self->b));
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(EACCES, WEXITSTATUS(status));
}

TEST_F(pair, ebusy)
{
	pid_t pid = start_sync(self->a, self->b);

	ASSERT_LT(0, pid);
	EXPECT_EQ(EBUSY, rts_errno(self->a, self->c));
	EXPECT_EQ(EBUSY, rts_errno(self->c, self->b));
	EXPECT_EQ(0, stop_sync(pid));
}

TEST_F(pair, sigint_ends_the_call_with_0)
{
	pid_t pid = start_sync(self->a, self->b);
	long sent;
	int status;

	ASSERT_LT(0, pid);
	sent = now_ms();
	kill(pid, SIGINT);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	/* The contract's bound is 100 ms; this leaves room for slow machines. */
	EXPECT_GT(1000, now_ms() - sent);
}

TEST_F(pair, a_stop_does_not_end_the_call)
{
	pid_t pid = start_sync(self->a, self->b);
	long deadline;
	int ended;

	ASSERT_LT(0, pid);
	kill(pid, SIGSTOP);
	deadline = now_ms() + ARRIVAL_MS;
	while (state(pid) != 'T' && now_ms() < deadline)
		usleep(2000);
	ASSERT_EQ('T', state(pid));
	kill(pid, SIGCONT);
	ASSERT_TRUE(wait_in_call(pid));
	ended = stop_sync(pid);
	/* EINTR: the SIGINT came before the call was back in the kernel. */
	EXPECT_TRUE(ended == 0 || ended == EINTR);
}

TEST_F(pair, mirror_round_trip)
{
	char from_a[PATH_MAX + 16], in_b[PATH_MAX + 16];
	char from_b[PATH_MAX + 16], in_a[PATH_MAX + 16];
	pid_t pid;

	snprintf(from_a, sizeof(from_a), "%s/from-a", self->a);
	snprintf(in_b, sizeof(in_b), "%s/from-a", self->b);
	snprintf(from_b, sizeof(from_b), "%s/from-b", self->b);
	snprintf(in_a, sizeof(in_a), "%s/from-b", self->a);
	ASSERT_EQ(0, write_file(from_a, "before the call"));
	pid = start_sync(self->a, self->b);
	ASSERT_LT(0, pid);
	EXPECT_TRUE(arrives(in_b, "before the call"));
	ASSERT_EQ(0, write_file(from_b, "written in b"));
	EXPECT_TRUE(arrives(in_a, "written in b"));
	ASSERT_EQ(0, write_file(from_a, "changed in a"));
	EXPECT_TRUE(arrives(in_b, "changed in a"));
	EXPECT_EQ(0, stop_sync(pid));
}

TEST_HARNESS_MAIN
