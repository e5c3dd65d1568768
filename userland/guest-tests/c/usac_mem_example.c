// SPDX-License-Identifier: GPL-2.0
/* How a C program calls tamalloc(2), get_mem_stats(2), get_total_mem_stats(2). */
#include <errno.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#if __has_include(<linux/usac.h>)
#include <linux/usac.h>
#else
#include <linux/types.h>
struct mem_stats {
	__u64 reserved_kb;
	__u64 committed_kb;
	__u32 oom_score;
	__u32 pad;
};

struct total_mem_stats {
	__u64 total_reserved_kb;
	__u64 total_committed_kb;
};
#endif

#ifndef __NR_tamalloc
#define __NR_tamalloc 556
#endif
#ifndef __NR_get_mem_stats
#define __NR_get_mem_stats 557
#endif
#ifndef __NR_get_total_mem_stats
#define __NR_get_total_mem_stats 558
#endif

/* The new mapping, or NULL with errno set. */
void *tamalloc_example(size_t size)
{
	long addr = syscall(__NR_tamalloc, size);

	return addr < 0 ? NULL : (void *)addr;
}

/* 0, or the errno of the failure. */
int get_mem_stats_example(pid_t pid, struct mem_stats *stats)
{
	return syscall(__NR_get_mem_stats, pid, stats) < 0 ? errno : 0;
}

/* 0, or the errno of the failure. */
int get_total_mem_stats_example(struct total_mem_stats *stats)
{
	return syscall(__NR_get_total_mem_stats, stats) < 0 ? errno : 0;
}
