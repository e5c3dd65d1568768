// SPDX-License-Identifier: GPL-2.0

//! Sleeping in the calling task until a signal arrives or the engine ends
//! the call.

use core::marker::PhantomData;
use kernel::bindings;
use kernel::ffi::c_long;
use kernel::time::Jiffies;

/// Why the wait ended.
pub(crate) enum Woken {
    /// A signal that ends the call: fatal, or one the process handles.
    BySignal,
    /// Only a job-control stop or continue: the call restarts afterwards.
    ByJobControl,
    /// `done()` turned true.
    Done,
}

/// How a signal pending now ends a call that has not started yet.
pub(crate) fn woken_by_pending_signal() -> Woken {
    // SAFETY: reads current's signal state under its own siglock.
    if unsafe { bindings::usac_only_job_control_pending() } {
        Woken::ByJobControl
    } else {
        Woken::BySignal
    }
}

/// True when a signal is pending for the current task: the caller's long
/// work before the wait (loading a large base) ends for it.
pub(crate) fn signal_pending() -> bool {
    // SAFETY: `get_current` returns the running task, valid while it runs.
    unsafe { bindings::signal_pending(bindings::get_current()) != 0 }
}

/// Sleeps interruptibly, without polling, until a signal is pending or
/// `done()` holds; whoever makes `done()` true must wake this task.
pub(crate) fn until_signal_or(done: impl Fn() -> bool) -> Woken {
    let woken = loop {
        // SAFETY: setting the state of the current task is always allowed;
        // it is set before the checks so a wake-up in between is not lost.
        unsafe { bindings::set_current_state_interruptible() };
        // SAFETY: `get_current` returns the running task, valid while it runs.
        if unsafe { bindings::signal_pending(bindings::get_current()) } != 0 {
            break woken_by_pending_signal();
        }
        if done() {
            break Woken::Done;
        }
        // SAFETY: we are in process context holding no locks.
        unsafe { bindings::schedule() };
    };
    // SAFETY: as above, current's own state.
    unsafe { bindings::set_current_state_running() };
    woken
}

/// The current task, marked as about to sleep interruptibly: a wake-up
/// from then on is not lost, so a check for work made after [`prepare`]
/// and before [`Sleeper::sleep`] cannot miss one. Dropped without
/// sleeping, it makes the task plainly runnable again (needed before
/// anything that may itself sleep).
///
/// [`prepare`]: Sleeper::prepare
pub(crate) struct Sleeper {
    // The state belongs to the task that set it.
    _not_send: PhantomData<*mut ()>,
}

impl Sleeper {
    pub(crate) fn prepare() -> Self {
        // SAFETY: setting the state of the current task is always allowed.
        unsafe { bindings::set_current_state_interruptible() };
        Self {
            _not_send: PhantomData,
        }
    }

    /// Sleeps until woken (or interrupted).
    pub(crate) fn sleep(self) {
        // SAFETY: `schedule` has no precondition beyond process context,
        // which every `Sleeper` is made in (sleeping in atomic context is a
        // bug the scheduler's checks report, not a memory error).
        unsafe { bindings::schedule() };
    }

    /// Sleeps until woken or `timeout` passed; returns the jiffies left.
    pub(crate) fn sleep_for(self, timeout: Jiffies) -> Jiffies {
        let timeout = c_long::try_from(timeout).unwrap_or(c_long::MAX);
        // SAFETY: as for `sleep`; a timeout of `c_long::MAX` is
        // `MAX_SCHEDULE_TIMEOUT`, an unbounded sleep.
        let left = unsafe { bindings::schedule_timeout(timeout) };
        Jiffies::try_from(left).unwrap_or(0)
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        // SAFETY: the current task's own state.
        unsafe { bindings::set_current_state_running() };
    }
}
