// SPDX-License-Identifier: GPL-2.0
/*
 * tamalloc(2), get_mem_stats(2) and get_total_mem_stats(2). These entries
 * only check the plain arguments and copy the results to user space; the
 * work is done by the Rust core (usac_mem.rs).
 */

#include <linux/errno.h>
#include <linux/syscalls.h>
#include <linux/uaccess.h>
#include <uapi/linux/usac.h>

#include "usac_mem.h"

SYSCALL_DEFINE1(tamalloc, size_t, size)
{
	return usac_tamalloc(size);
}

SYSCALL_DEFINE2(get_mem_stats, pid_t, pid, struct mem_stats __user *, stats)
{
	struct mem_stats out = {};
	long ret;

	if (pid < 0)
		return -EINVAL;
	ret = usac_get_mem_stats(pid, &out);
	if (ret)
		return ret;
	if (copy_to_user(stats, &out, sizeof(out)))
		return -EFAULT;
	return 0;
}

SYSCALL_DEFINE1(get_total_mem_stats, struct total_mem_stats __user *, stats)
{
	struct total_mem_stats out = {};
	long ret;

	ret = usac_get_total_mem_stats(&out);
	if (ret)
		return ret;
	if (copy_to_user(stats, &out, sizeof(out)))
		return -EFAULT;
	return 0;
}
