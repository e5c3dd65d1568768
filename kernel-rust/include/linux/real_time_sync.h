/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_REAL_TIME_SYNC_H
#define _LINUX_REAL_TIME_SYNC_H

struct vfsmount;

#ifdef CONFIG_REAL_TIME_SYNC
void real_time_sync_umount(struct vfsmount *mnt);
#else
static inline void real_time_sync_umount(struct vfsmount *mnt)
{
}
#endif

#endif /* _LINUX_REAL_TIME_SYNC_H */
