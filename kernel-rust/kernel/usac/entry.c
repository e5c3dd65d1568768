// SPDX-License-Identifier: GPL-2.0
/*
 * real_time_sync(2): keep two directory trees mirrored both ways until the
 * caller gets a signal. This entry only copies the two paths from user space;
 * the work is done by the Rust core (usac.rs).
 */

#include <linux/fs.h>
#include <linux/syscalls.h>

#include "usac.h"

SYSCALL_DEFINE2(real_time_sync, const char __user *, dir_a,
		const char __user *, dir_b)
{
	struct filename *a, *b;
	long ret;

	/* getname() answers -EFAULT, -ENAMETOOLONG and -ENOENT (empty). */
	a = getname(dir_a);
	if (IS_ERR(a))
		return PTR_ERR(a);
	b = getname(dir_b);
	if (IS_ERR(b)) {
		putname(a);
		return PTR_ERR(b);
	}
	ret = usac_real_time_sync(a->name, b->name);
	putname(b);
	putname(a);
	return ret;
}
