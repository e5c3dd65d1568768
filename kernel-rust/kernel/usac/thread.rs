// SPDX-License-Identifier: GPL-2.0

//! A kernel thread that runs one function and is stopped by its owner.

use kernel::bindings;
use kernel::error::{from_err_ptr, Result};
use kernel::ffi::{c_int, c_void};
use kernel::task::Task;

/// A running kernel thread, stopped and released on drop.
///
/// # Invariants
///
/// `task` is a kthread on which we hold a task reference, and its data
/// outlives it (see [`Thread::spawn`]).
pub(crate) struct Thread {
    task: *mut bindings::task_struct,
}

impl Thread {
    /// Creates a kernel thread called `name` that will run `run(data)`
    /// once [`Thread::start`] is called.
    ///
    /// # Safety
    ///
    /// `data` must stay valid until the returned [`Thread`] is dropped, and
    /// `run` must return once `kthread_should_stop()` turns true.
    pub(crate) unsafe fn spawn<T: Sync>(
        name: &kernel::str::CStr,
        run: unsafe extern "C" fn(*mut c_void) -> c_int,
        data: &T,
    ) -> Result<Self> {
        let data = (data as *const T).cast_mut().cast::<c_void>();
        // SAFETY: `run` and `data` are valid for the thread's lifetime by the
        // caller's promise; the name is a plain format string without
        // conversions, so no variadic arguments are read.
        let task = from_err_ptr(unsafe {
            bindings::kthread_create_on_node(
                Some(run),
                data,
                bindings::NUMA_NO_NODE,
                name.as_char_ptr(),
            )
        })?;
        // SAFETY: `task` was just created and not yet woken, so it is alive;
        // the extra reference keeps it valid until `kthread_stop` returned.
        unsafe { bindings::get_task_struct(task) };
        // INVARIANT: referenced above; data validity is the caller's promise.
        Ok(Self { task })
    }

    /// Lets the created thread run.
    pub(crate) fn start(&self) {
        // SAFETY: the task is referenced; a freshly created kthread waits
        // for this first wake-up, and later wake-ups are harmless.
        unsafe { bindings::wake_up_process(self.task) };
    }

    /// The thread's task.
    pub(crate) fn task(&self) -> &Task {
        // SAFETY: we hold a reference on the task (type invariant) for as
        // long as `self` lives; `Task` wraps `task_struct` transparently.
        unsafe { &*self.task.cast::<Task>() }
    }
}

impl Drop for Thread {
    fn drop(&mut self) {
        // SAFETY: we hold a reference on the task (type invariant);
        // `kthread_stop` sets should-stop, interrupts its waits
        // (TIF_NOTIFY_SIGNAL) and waits for `run` to return.
        unsafe { bindings::kthread_stop(self.task) };
        // SAFETY: drops the reference taken in `spawn`.
        unsafe { bindings::put_task_struct(self.task) };
    }
}

/// True when the current kthread has been asked to stop.
pub(crate) fn should_stop() -> bool {
    // SAFETY: only called from the sync kthread.
    unsafe { bindings::kthread_should_stop() }
}

/// A random number from the kernel's CRNG.
pub(crate) fn random_u64() -> u64 {
    // SAFETY: no preconditions; may be called from any context.
    unsafe { bindings::get_random_u64() }
}
