// SPDX-License-Identifier: GPL-2.0
/* How a C program calls real_time_sync(2). */
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef __NR_real_time_sync
#define __NR_real_time_sync 555
#endif

/* Returns 0 once a signal ended the mirroring, or the errno of the failure. */
int real_time_sync_example(const char *dir_a, const char *dir_b)
{
	if (syscall(__NR_real_time_sync, dir_a, dir_b) < 0)
		return errno;
	return 0;
}
