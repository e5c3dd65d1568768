// SPDX-License-Identifier: GPL-2.0

//! A kernel thread that owns what it runs and is stopped by its owner, and
//! the few task services the sync thread needs.

use crate::memcg::GFP;
use crate::wait::Sleeper;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::bindings;
use kernel::error::{code::EINTR, from_err_ptr, Result};
use kernel::ffi::{c_int, c_void};
use kernel::prelude::*;
use kernel::sync::{Arc, SpinLock};
use kernel::task::Task;
use kernel::types::{ARef, ForeignOwnable};
use kernel::workqueue::{self, impl_has_work, new_work, Work, WorkItem};

/// What a kernel thread runs.
pub(crate) trait Runs: Send + Sync + 'static {
    /// The thread's body, which owns `this`; returns soon after
    /// [`should_stop`] turns true.
    fn run(this: Arc<Self>);
}

/// A kernel thread running `T::run`, stopped on drop.
///
/// # Invariants
///
/// `data` came from `Arc::<T>::into_foreign` and is owned by the thread
/// function once it runs; if the thread is stopped before it ran (then
/// `kthread_stop` returns `-EINTR`), it is still ours.
pub(crate) struct Thread<T: Runs> {
    task: ARef<Task>,
    data: *const c_void,
    _owns: PhantomData<Arc<T>>,
}

impl<T: Runs> Thread<T> {
    /// Creates a kernel thread called `name` that will run `data.run()`
    /// once [`Thread::start`] is called.
    pub(crate) fn spawn(name: &kernel::str::CStr, data: Arc<T>) -> Result<Self> {
        let data = data.into_foreign();
        // SAFETY: `run_thread::<T>` matches `data`; the name is a plain
        // format string without conversions, so no variadic argument is read.
        let created = from_err_ptr(unsafe {
            bindings::kthread_create_on_node(
                Some(run_thread::<T>),
                data.cast_mut(),
                bindings::NUMA_NO_NODE,
                name.as_char_ptr(),
            )
        });
        let task = match created {
            Ok(task) => task,
            Err(e) => {
                // SAFETY: no thread was made, so `data` is still ours.
                drop(unsafe { Arc::<T>::from_foreign(data) });
                return Err(e);
            }
        };
        // SAFETY: `task` was just created and not yet woken, so it is alive;
        // `Task` wraps `task_struct` transparently; `ARef::from` takes a
        // count that keeps it valid past `kthread_stop`.
        let task = ARef::from(unsafe { &*task.cast::<Task>() });
        // INVARIANT: `data` came from `into_foreign` above.
        Ok(Self {
            task,
            data,
            _owns: PhantomData,
        })
    }

    /// Lets the created thread run.
    pub(crate) fn start(&self) {
        // SAFETY: the task is referenced; a freshly created kthread waits
        // for this first wake-up, and later wake-ups are harmless.
        unsafe { bindings::wake_up_process(raw_task(&self.task)) };
    }

    /// The thread's task.
    pub(crate) fn task(&self) -> &Task {
        &self.task
    }
}

impl<T: Runs> Drop for Thread<T> {
    fn drop(&mut self) {
        // SAFETY: the task is referenced. The thread takes SIGKILL once it
        // runs: a write throttled for a slow disk's dirty pages waits for
        // nothing else, and the stop must not wait for that disk.
        unsafe { bindings::send_sig(bindings::SIGKILL as c_int, raw_task(&self.task), 1) };
        // SAFETY: the task is referenced; `kthread_stop` sets should-stop,
        // interrupts its waits (TIF_NOTIFY_SIGNAL) and waits for the thread
        // function to return, or for the thread to exit without running it.
        let ret = unsafe { bindings::kthread_stop(raw_task(&self.task)) };
        if ret == EINTR.to_errno() {
            // SAFETY: the thread function never ran (`run_thread` returns
            // 0), so `data` is still ours (type invariant).
            drop(unsafe { Arc::<T>::from_foreign(self.data) });
        }
    }
}

/// The thread function: takes ownership of the `Arc` and runs it.
///
/// # Safety
///
/// `data` comes from `Arc::<T>::into_foreign`, and ownership of it passes
/// to this function (called at most once per thread).
unsafe extern "C" fn run_thread<T: Runs>(data: *mut c_void) -> c_int {
    // SAFETY: by the function's contract.
    let data = unsafe { Arc::<T>::from_foreign(data) };
    // SAFETY: the current task is this kthread, which may take signals.
    unsafe { bindings::usac_allow_sigkill() };
    T::run(data);
    0
}

fn raw_task(task: &Task) -> *mut bindings::task_struct {
    (task as *const Task)
        .cast::<bindings::task_struct>()
        .cast_mut()
}

/// True when the current kthread has been asked to stop.
pub(crate) fn should_stop() -> bool {
    // SAFETY: only called from the sync kthread.
    unsafe { bindings::kthread_should_stop() }
}

/// Lets other tasks run if this one used up its turn: a loop over a million
/// names would otherwise hold its CPU on a kernel without preemption.
pub(crate) fn yield_now() {
    // SAFETY: process context; the callers hold no spinlock.
    unsafe { bindings::usac_cond_resched() };
}

/// A random number from the kernel's CRNG.
pub(crate) fn random_u64() -> u64 {
    // SAFETY: no preconditions; may be called from any context.
    unsafe { bindings::get_random_u64() }
}

/// A task set once and referenced from then on, so that it can be read
/// without a lock.
///
/// # Invariants
///
/// The pointer is null, or a task on which we own a count; once set, it
/// never changes.
pub(crate) struct TaskOnce(AtomicPtr<Task>);

impl TaskOnce {
    pub(crate) fn new() -> Self {
        Self(AtomicPtr::new(ptr::null_mut()))
    }

    /// Sets the task, unless one is set already.
    pub(crate) fn set(&self, task: &Task) {
        let task = ARef::into_raw(ARef::from(task));
        // INVARIANT: the count taken above is stored, or dropped below.
        let stored = self.0.compare_exchange(
            ptr::null_mut(),
            task.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if stored.is_err() {
            // SAFETY: `task` carries the count taken above, not stored.
            drop(unsafe { ARef::from_raw(task) });
        }
    }

    pub(crate) fn get(&self) -> Option<&Task> {
        let task = NonNull::new(self.0.load(Ordering::Acquire))?;
        // SAFETY: a set task never changes and stays counted for as long as
        // `self` lives (type invariant).
        Some(unsafe { task.as_ref() })
    }
}

impl Drop for TaskOnce {
    fn drop(&mut self) {
        if let Some(task) = NonNull::new(*self.0.get_mut()) {
            // SAFETY: the count this owns (type invariant), dropped once.
            drop(unsafe { ARef::from_raw(task) });
        }
    }
}

/// Drops `value` on an unbound kworker: a base of half a million names
/// takes longer to free, on a debug kernel, than a signal may wait for the
/// call to end.
pub(crate) fn drop_later<T: Send + 'static>(value: T) {
    // When the work item cannot be allocated, the closure (and `value` in
    // it) is dropped right here instead: slower, never lost.
    let _ = workqueue::system_unbound().try_spawn(GFP, move || drop(value));
}

/// Runs `work` on an unbound kworker and waits for its result, unless
/// `stop()` turns true first: then `work` goes on alone and the wait ends
/// with `EINTR`. A flush to a slow disk takes seconds, which a signal must
/// not wait for. Without the memory for the work item, `work` runs here.
pub(crate) fn off_thread<R: Send + 'static>(
    work: impl FnOnce() -> R + Send + 'static,
    stop: impl Fn() -> bool,
) -> Result<R> {
    // SAFETY: `get_current` is the running task, alive while it runs;
    // `Task` wraps `task_struct` transparently, and `ARef::from` takes a
    // count that keeps it valid for the worker's wake-up.
    let waiter = ARef::from(unsafe { &*bindings::get_current().cast::<Task>() });
    let job = Arc::pin_init(
        pin_init!(Offloaded {
            work <- kernel::new_spinlock!(None, "usac_offloaded_work"),
            result <- kernel::new_spinlock!(None, "usac_offloaded_result"),
            waiter,
            item <- new_work!("usac_offloaded"),
        }),
        GFP,
    );
    let Ok(job) = job else {
        return Ok(work());
    };
    *job.work.lock() = Some(work);
    if let Err(job) = workqueue::system_unbound().enqueue(job.clone()) {
        // Never for a new item; were it queued already, it runs here.
        job.run_now();
    }
    loop {
        // Marked as sleeping before the checks: neither the worker's
        // wake-up nor a stop in between is lost.
        let asleep = Sleeper::prepare();
        if let Some(done) = job.result.lock().take() {
            return Ok(done);
        }
        if stop() {
            return Err(EINTR);
        }
        asleep.sleep();
    }
}

/// Work handed to a kworker by [`off_thread`], and its result.
#[pin_data]
struct Offloaded<F, R> {
    #[pin]
    work: SpinLock<Option<F>>,
    #[pin]
    result: SpinLock<Option<R>>,
    waiter: ARef<Task>,
    #[pin]
    item: Work<Offloaded<F, R>>,
}

impl_has_work! {
    impl{F, R} HasWork<Self> for Offloaded<F, R> { self.item }
}

impl<F: FnOnce() -> R, R> Offloaded<F, R> {
    fn run_now(&self) {
        let work = self.work.lock().take();
        if let Some(work) = work {
            let done = work();
            *self.result.lock() = Some(done);
            self.waiter.wake_up();
        }
    }
}

impl<F, R> WorkItem for Offloaded<F, R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    type Pointer = Arc<Self>;

    fn run(this: Arc<Self>) {
        this.run_now();
    }
}
