/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * Structures of the usac memory system calls: get_mem_stats(2) (557) and
 * get_total_mem_stats(2) (558). tamalloc(2) (556) takes and returns plain
 * integers. All sizes are in KiB (1024 bytes).
 */
#ifndef _UAPI_LINUX_USAC_H
#define _UAPI_LINUX_USAC_H

#include <linux/types.h>

/* One process, as /proc/PID/status and /proc/PID/oom_score show it. */
struct mem_stats {
	__u64 reserved_kb;	/* virtual size: VmSize */
	__u64 committed_kb;	/* resident set: VmRSS */
	__u32 oom_score;	/* /proc/PID/oom_score, 0 to 2000 */
	__u32 pad;		/* always 0 */
};

/* Sums over every process of the caller's pid namespace, each mm once. */
struct total_mem_stats {
	__u64 total_reserved_kb;
	__u64 total_committed_kb;
};

#endif /* _UAPI_LINUX_USAC_H */
