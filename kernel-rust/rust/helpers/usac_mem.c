// SPDX-License-Identifier: GPL-2.0
/*
 * Helpers for the usac memory system calls and /proc/system_stats: the
 * inline functions and macros they need, and the two computations of
 * fs/proc that are static there (the OOM score's page total, a CPU's idle
 * time), so that the numbers are exactly those /proc shows.
 */

#include <linux/cpumask.h>
#include <linux/fs_struct.h>
#include <linux/jiffies.h>
#include <linux/kernel_stat.h>
#include <linux/mm.h>
#include <linux/path.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/swap.h>
#include <linux/tick.h>

void rust_helper_usac_rcu_read_lock(void)
{
	rcu_read_lock();
}

void rust_helper_usac_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

void rust_helper_usac_task_lock(struct task_struct *p)
{
	task_lock(p);
}

void rust_helper_usac_task_unlock(struct task_struct *p)
{
	task_unlock(p);
}

/*
 * for_each_process(): the first process after @p on the task list, or NULL
 * after the last one (init_task starts and ends the walk). Under RCU.
 */
struct task_struct *rust_helper_usac_next_process(struct task_struct *p)
{
	struct task_struct *next;

	next = next_task(p ? p : &init_task);
	return next == &init_task ? NULL : next;
}

void rust_helper_usac_mmgrab(struct mm_struct *mm)
{
	mmgrab(mm);
}

void rust_helper_usac_mmdrop(struct mm_struct *mm)
{
	mmdrop(mm);
}

/*
 * The resident set as task_mem() (fs/proc/task_mmu.c) counts VmRSS: exact
 * per-CPU sums, where get_mm_rss() would only read the approximate totals.
 */
unsigned long rust_helper_usac_mm_rss_sum(struct mm_struct *mm)
{
	return get_mm_counter_sum(mm, MM_ANONPAGES) +
	       get_mm_counter_sum(mm, MM_FILEPAGES) +
	       get_mm_counter_sum(mm, MM_SHMEMPAGES);
}

/* The page total proc_oom_score() (fs/proc/base.c) scales the badness by. */
unsigned long rust_helper_usac_oom_totalpages(void)
{
	return totalram_pages() + total_swap_pages;
}

/* The next possible CPU after @cpu (-1 starts), or -1 after the last. */
int rust_helper_usac_next_possible_cpu(int cpu)
{
	unsigned int next = cpumask_next(cpu, cpu_possible_mask);

	return next < nr_cpu_ids ? next : -1;
}

/* kcpustat_cpu_fetch() is inline without VIRT_CPU_ACCOUNTING_GEN. */
void rust_helper_usac_kcpustat_cpu_fetch(struct kernel_cpustat *dst, int cpu)
{
	kcpustat_cpu_fetch(dst, cpu);
}

/* get_idle_time() of fs/proc/stat.c, in ns: what /proc/stat shows. */
u64 rust_helper_usac_cpu_idle_ns(const struct kernel_cpustat *kcs, int cpu)
{
	u64 idle_usecs = -1ULL;

	if (cpu_online(cpu))
		idle_usecs = get_cpu_idle_time_us(cpu, NULL);
	if (idle_usecs == -1ULL)
		/* !NO_HZ or cpu offline so we can rely on cpustat.idle */
		return kcs->cpustat[CPUTIME_IDLE];
	return idle_usecs * NSEC_PER_USEC;
}

/* nsec_to_clock_t() is not exported: modules reach it through here. */
u64 rust_helper_usac_nsec_to_clock_t(u64 ns)
{
	return nsec_to_clock_t(ns);
}

/* The caller's root directory, with a reference: path_put() it. */
int rust_helper_usac_get_current_root(struct path *root)
{
	if (!current->fs)
		return -ENOENT;
	get_fs_root(current->fs, root);
	return 0;
}
