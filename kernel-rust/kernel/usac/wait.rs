// SPDX-License-Identifier: GPL-2.0

//! Sleeping in the calling task until a signal arrives or the engine ends
//! the call.

use kernel::bindings;

/// Why the wait ended.
pub(crate) enum Woken {
    /// A signal that ends the call: fatal, or one the process handles.
    BySignal,
    /// Only a job-control stop or continue: the call restarts afterwards.
    ByJobControl,
    /// `done()` turned true.
    Done,
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
            // SAFETY: reads current's signal state under its own siglock.
            break if unsafe { bindings::usac_only_job_control_pending() } {
                Woken::ByJobControl
            } else {
                Woken::BySignal
            };
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
