/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _KERNEL_USAC_MEM_USAC_MEM_H
#define _KERNEL_USAC_MEM_USAC_MEM_H

#include <linux/types.h>

struct mem_stats;
struct total_mem_stats;

/* The Rust core of the usac memory system calls, in usac_mem.rs. */
long usac_tamalloc(size_t size);
long usac_get_mem_stats(pid_t pid, struct mem_stats *stats);
long usac_get_total_mem_stats(struct total_mem_stats *stats);

#endif /* _KERNEL_USAC_MEM_USAC_MEM_H */
