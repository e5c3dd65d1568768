// SPDX-License-Identifier: GPL-2.0
/*
 * real_time_sync(2): keep two directory trees mirrored both ways until the
 * caller gets a signal. This entry only copies the two paths from user space
 * and lets umount(2) end the calls on a mount; the work is done by the Rust
 * core (usac.rs).
 */

#include <linux/fs.h>
#include <linux/real_time_sync.h>
#include <linux/sched/signal.h>
#include <linux/syscalls.h>
#include <linux/wait.h>

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

/*
 * Called by umount(2) once it has unmounted @mnt: every call with a root on
 * @mnt ends with -ENOENT, and the unmount waits until they have let go of
 * the file system (their private clones of @mnt), so that it is released
 * when umount(2) returns. The calls hold no reference on @mnt itself: an
 * unmount that fails with -EBUSY was busy for others, and ends nothing.
 */
void real_time_sync_umount(struct vfsmount *mnt)
{
	DEFINE_WAIT_FUNC(wait, woken_wake_function);

	add_wait_queue(&usac_call_ended_wq, &wait);
	while (usac_end_calls_on(mnt) && !fatal_signal_pending(current))
		wait_woken(&wait, TASK_KILLABLE, MAX_SCHEDULE_TIMEOUT);
	remove_wait_queue(&usac_call_ended_wq, &wait);
}
