/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _KERNEL_USAC_USAC_H
#define _KERNEL_USAC_USAC_H

struct vfsmount;

/* The Rust core of real_time_sync(2), in usac.rs. */
long usac_real_time_sync(const char *dir_a, const char *dir_b);
bool usac_end_calls_on(const struct vfsmount *mnt);

#endif /* _KERNEL_USAC_USAC_H */
