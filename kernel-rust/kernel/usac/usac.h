/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _KERNEL_USAC_USAC_H
#define _KERNEL_USAC_USAC_H

struct vfsmount;
struct wait_queue_head;

/* In rust/helpers/usac.c: woken when a call let go of its pair. */
extern struct wait_queue_head usac_call_ended_wq;

/* The Rust core of real_time_sync(2), in usac.rs. */
long usac_real_time_sync(const char *dir_a, const char *dir_b);
bool usac_end_calls_on(const struct vfsmount *mnt);

#endif /* _KERNEL_USAC_USAC_H */
