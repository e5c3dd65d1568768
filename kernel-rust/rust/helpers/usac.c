// SPDX-License-Identifier: GPL-2.0

#include <linux/fs.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>

int rust_helper_path_permission(const struct path *path, int mask)
{
	return path_permission(path, mask);
}

void rust_helper_set_current_state_interruptible(void)
{
	set_current_state(TASK_INTERRUPTIBLE);
}

void rust_helper_set_current_state_running(void)
{
	__set_current_state(TASK_RUNNING);
}

/*
 * True when nothing but job-control signals (stop, continue) or a
 * notification without a signal (TIF_NOTIFY_SIGNAL) interrupted current:
 * real_time_sync(2) then restarts instead of ending.
 */
bool rust_helper_usac_only_job_control_pending(void)
{
	const unsigned long job_control = sigmask(SIGSTOP) | sigmask(SIGTSTP) |
					  sigmask(SIGTTIN) | sigmask(SIGTTOU) |
					  sigmask(SIGCONT);
	sigset_t pending;

	spin_lock_irq(&current->sighand->siglock);
	sigorsets(&pending, &current->pending.signal,
		  &current->signal->shared_pending.signal);
	sigandnsets(&pending, &pending, &current->blocked);
	spin_unlock_irq(&current->sighand->siglock);
	sigdelsetmask(&pending, job_control);
	return sigisemptyset(&pending);
}
