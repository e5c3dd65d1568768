// SPDX-License-Identifier: GPL-2.0

//! Sleeping in the calling task until a signal arrives.

use kernel::bindings;

/// Why the wait ended.
pub(crate) enum Woken {
    /// A signal that ends the call: fatal, or one the process handles.
    BySignal,
    /// Only a job-control stop or continue: the call restarts afterwards.
    ByJobControl,
}

/// Sleeps interruptibly, without polling, until a signal is pending.
pub(crate) fn until_signal() -> Woken {
    loop {
        // SAFETY: setting the state of the current task is always allowed;
        // it is set before the check so a signal arriving in between wakes
        // the `schedule()` below.
        unsafe { bindings::set_current_state_interruptible() };
        // SAFETY: `get_current` returns the running task, valid while it runs.
        if unsafe { bindings::signal_pending(bindings::get_current()) } != 0 {
            break;
        }
        // SAFETY: we are in process context holding no locks.
        unsafe { bindings::schedule() };
    }
    // SAFETY: as above, current's own state.
    unsafe { bindings::set_current_state_running() };
    // SAFETY: reads current's signal state under its own siglock.
    if unsafe { bindings::usac_only_job_control_pending() } {
        Woken::ByJobControl
    } else {
        Woken::BySignal
    }
}
