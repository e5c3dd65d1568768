// SPDX-License-Identifier: GPL-2.0

//! Small safe abstractions over tasks and address spaces: a task reference,
//! its memory counters and OOM score as `/proc` shows them, and an RCU walk
//! over the processes of the caller's pid namespace.

use core::marker::PhantomData;
use core::ptr::{addr_of, NonNull};
use kernel::alloc::{flags::GFP_ATOMIC, flags::GFP_KERNEL, KVec};
use kernel::bindings;
use kernel::ffi::{c_long, c_ulong};
use kernel::prelude::*;
use kernel::rbtree::RBTree;

/// A number of pages in KiB (`usize` is 64 bits wide on every target
/// with `CONFIG_64BIT`; the product saturates rather than wrap).
fn pages_to_kb(pages: c_ulong) -> u64 {
    (pages as u64).saturating_mul((bindings::PAGE_SIZE / 1024) as u64)
}

/// The memory counters of one address space, in KiB.
#[derive(Clone, Copy)]
pub(crate) struct MmStats {
    /// Virtual size: `VmSize` of `/proc/PID/status`.
    pub(crate) reserved_kb: u64,
    /// Resident set: `VmRSS` of `/proc/PID/status`.
    pub(crate) committed_kb: u64,
}

impl MmStats {
    /// Reads the counters of `mm` as `task_mem()` (fs/proc/task_mmu.c) does.
    ///
    /// # Safety
    ///
    /// `mm` must point to a live `mm_struct` (one held by `mmget()` or
    /// `mmgrab()`, or found under the lock of a task that uses it).
    unsafe fn of(mm: *mut bindings::mm_struct) -> MmStats {
        // SAFETY: `mm` is live (caller); `total_vm` is read without a lock
        // by `/proc/PID/status` too, so a volatile read is READ_ONCE().
        let total_vm =
            unsafe { core::ptr::read_volatile(addr_of!((*mm).__bindgen_anon_1.total_vm)) };
        // SAFETY: `mm` is live; the rss counters live until its last mmdrop.
        // Summed over CPUs, as VmRSS is.
        let rss = unsafe { bindings::usac_mm_rss_sum(mm) };
        MmStats {
            reserved_kb: pages_to_kb(total_vm),
            committed_kb: pages_to_kb(rss),
        }
    }
}

/// An RCU read-side critical section, from `new` to drop. Not `Send`: it
/// ends on the CPU context that began it.
struct RcuReadGuard(PhantomData<*mut ()>);

impl RcuReadGuard {
    fn new() -> Self {
        // SAFETY: balanced by the `rcu_read_unlock()` of `drop`.
        unsafe { bindings::usac_rcu_read_lock() };
        RcuReadGuard(PhantomData)
    }
}

impl Drop for RcuReadGuard {
    fn drop(&mut self) {
        // SAFETY: `new` took the read lock; this guard ends it once.
        unsafe { bindings::usac_rcu_read_unlock() };
    }
}

/// A counted reference to a task.
pub(crate) struct Task(NonNull<bindings::task_struct>);

impl Task {
    /// The calling thread.
    pub(crate) fn current() -> Task {
        // SAFETY: in a system call `current` is the calling task: never
        // null, and alive until the call returns.
        let task = unsafe { NonNull::new_unchecked(bindings::get_current()) };
        // SAFETY: `task` is valid (above); the reference is dropped in
        // `drop`.
        unsafe { bindings::get_task_struct(task.as_ptr()) };
        Task(task)
    }

    /// The task `pid` names in the caller's pid namespace.
    pub(crate) fn find_in_caller_ns(pid: i32) -> Result<Task> {
        let _rcu = RcuReadGuard::new();
        // SAFETY: under RCU, as `find_task_by_vpid()` requires.
        let task = unsafe { bindings::find_task_by_vpid(pid) };
        // SAFETY: a task found under RCU stays valid until the RCU read
        // section ends, which is after the reference is taken.
        unsafe { Task::get(task) }.ok_or(ESRCH)
    }

    /// Takes a reference to `task`, or `None` when it is null.
    ///
    /// # Safety
    ///
    /// `task` must be null or point to a task that stays valid during the
    /// call.
    unsafe fn get(task: *mut bindings::task_struct) -> Option<Task> {
        let task = NonNull::new(task)?;
        // SAFETY: `task` is valid (caller); the reference is dropped in
        // `drop`.
        unsafe { bindings::get_task_struct(task.as_ptr()) };
        Some(Task(task))
    }

    /// Whether the caller may read this task's `/proc/PID/status` when
    /// `/proc` hides what it may not trace (`hidepid=`):
    /// `ptrace_may_access(PTRACE_MODE_READ_FSCREDS)`.
    pub(crate) fn may_read_status(&self) -> bool {
        // SAFETY: we hold a reference to the task.
        unsafe { bindings::ptrace_may_access(self.0.as_ptr(), bindings::PTRACE_MODE_READ_FSCREDS) }
    }

    /// The counters of the task's address space, or `None` without one
    /// (kernel thread, zombie).
    pub(crate) fn mm_stats(&self) -> Option<MmStats> {
        // SAFETY: we hold a reference to the task; `get_task_mm()` answers
        // null for kernel threads and tasks past `exit_mm()`.
        let mm = unsafe { bindings::get_task_mm(self.0.as_ptr()) };
        if mm.is_null() {
            return None;
        }
        // SAFETY: `get_task_mm()` took a user reference (mm_users).
        let stats = unsafe { MmStats::of(mm) };
        // SAFETY: drops the reference `get_task_mm()` took.
        unsafe { bindings::mmput(mm) };
        Some(stats)
    }

    /// What `/proc/PID/oom_score` shows: `proc_oom_score()` of
    /// fs/proc/base.c, on the kernel's own `oom_badness()`.
    pub(crate) fn oom_score(&self) -> u32 {
        // SAFETY: no arguments; reads global page counters.
        let totalpages = unsafe { bindings::usac_oom_totalpages() };
        // SAFETY: we hold a reference to the task; `oom_badness()` locks
        // what it reads.
        let badness = unsafe { bindings::oom_badness(self.0.as_ptr(), totalpages) };
        scale_badness(badness, totalpages)
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // SAFETY: drops the reference taken in `Task::get`.
        unsafe { bindings::put_task_struct(self.0.as_ptr()) };
    }
}

/// `proc_oom_score()`: the badness scaled into [0, 2000], 0 for
/// `LONG_MIN` (unkillable: kernel thread, zombie, `oom_score_adj` -1000).
/// C's `long` arithmetic wraps; so does this, and it never panics.
fn scale_badness(badness: c_long, totalpages: c_ulong) -> u32 {
    if badness == c_long::MIN {
        return 0;
    }
    let total = totalpages as c_long;
    let scaled = badness.wrapping_mul(1000).checked_div(total).unwrap_or(0);
    let points: c_long = (1000 as c_long).wrapping_add(scaled).wrapping_mul(2) / 3;
    // C keeps it in an unsigned long: it fits 32 bits for any real badness.
    u32::try_from(points as u64).unwrap_or(u32::MAX)
}

/// An `mmgrab()` reference: keeps the `mm_struct` (not its pages) alive, so
/// that its address names it alone while we compare addresses.
struct MmGrab(NonNull<bindings::mm_struct>);

impl MmGrab {
    /// # Safety
    ///
    /// `mm` must point to a live `mm_struct`.
    unsafe fn new(mm: NonNull<bindings::mm_struct>) -> MmGrab {
        // SAFETY: `mm` is live (caller); `drop` gives the reference back.
        unsafe { bindings::usac_mmgrab(mm.as_ptr()) };
        MmGrab(mm)
    }
}

impl Drop for MmGrab {
    fn drop(&mut self) {
        // SAFETY: the reference `new` took. Dropped outside RCU: the last
        // `mmdrop()` may free page tables.
        unsafe { bindings::usac_mmdrop(self.0.as_ptr()) };
    }
}

/// Sums over a pid namespace, in KiB.
pub(crate) struct Total {
    pub(crate) reserved_kb: u64,
    pub(crate) committed_kb: u64,
}

/// What `walk` found: false when there were more address spaces than room.
struct Walk {
    complete: bool,
}

/// The number of processes on the task list (of every pid namespace).
fn count_processes() -> usize {
    let _rcu = RcuReadGuard::new();
    let mut p: *mut bindings::task_struct = core::ptr::null_mut();
    let mut n: usize = 0;
    loop {
        // SAFETY: under RCU; `p` is null or a process of this walk.
        p = unsafe { bindings::usac_next_process(p) };
        if p.is_null() {
            return n;
        }
        n = n.saturating_add(1);
    }
}

/// Collects, under RCU, one entry per process of the caller's pid
/// namespace that has an address space, until `found` is full.
fn walk(found: &mut KVec<(MmGrab, MmStats)>) -> Walk {
    let _rcu = RcuReadGuard::new();
    let mut p: *mut bindings::task_struct = core::ptr::null_mut();
    loop {
        // SAFETY: under RCU; `p` is null or a process of this walk.
        p = unsafe { bindings::usac_next_process(p) };
        if p.is_null() {
            return Walk { complete: true };
        }
        // SAFETY: `p` is valid during the RCU read section; a null
        // namespace means the caller's active one.
        let nr = unsafe {
            bindings::__task_pid_nr_ns(p, bindings::pid_type_PIDTYPE_TGID, core::ptr::null_mut())
        };
        if nr == 0 {
            continue; // not visible in the caller's namespace
        }
        // SAFETY: `p` is valid; `task_lock()` keeps `p->mm` stable.
        unsafe { bindings::usac_task_lock(p) };
        // SAFETY: `p` is valid and locked.
        let (mm, flags) = unsafe { ((*p).mm, (*p).flags) };
        let mut full = false;
        if let Some(mm) = NonNull::new(mm).filter(|_| flags & bindings::PF_KTHREAD == 0) {
            if found.len() < found.capacity() {
                // SAFETY: `mm` is `p->mm` under `p`'s lock: live.
                let entry = unsafe { (MmGrab::new(mm), MmStats::of(mm.as_ptr())) };
                // Within capacity: no allocation, cannot fail. (Were it to,
                // the entry's `mmdrop()` could not be the last: `p` uses it.)
                full = found.push(entry, GFP_ATOMIC).is_err();
            } else {
                full = true;
            }
        }
        // SAFETY: locked above.
        unsafe { bindings::usac_task_unlock(p) };
        if full {
            return Walk { complete: false };
        }
    }
}

/// The sums of [`MmStats`] over every process of the caller's pid
/// namespace, each address space once (a `vfork()` child shares its
/// parent's). The list is walked under RCU, without a global lock; the
/// buffer is sized before, and grown and walked again if processes came.
pub(crate) fn total_in_caller_ns() -> Result<Total> {
    // Room for every process there is now, and some that may come.
    let mut room = count_processes().checked_add(32).ok_or(ENOMEM)?;
    let found = loop {
        let mut found = KVec::with_capacity(room, GFP_KERNEL)?;
        if walk(&mut found).complete {
            break found;
        }
        // More processes than room: the references go, then a larger walk.
        drop(found);
        room = room.checked_mul(2).ok_or(ENOMEM)?;
    };
    let mut total = Total {
        reserved_kb: 0,
        committed_kb: 0,
    };
    // Each address space once, by its address. A tree, not a sort: the
    // core sort's panic on an inconsistent order is a call objtool 6.12
    // does not know as noreturn (a build warning).
    let mut counted = RBTree::new();
    for (grab, stats) in found.as_slice() {
        let key = grab.0.as_ptr() as usize;
        if counted
            .try_create_and_insert(key, (), GFP_KERNEL)?
            .is_none()
        {
            total.reserved_kb = total.reserved_kb.saturating_add(stats.reserved_kb);
            total.committed_kb = total.committed_kb.saturating_add(stats.committed_kb);
        }
    }
    // `found` drops here, outside RCU: the `mmdrop()`s may free.
    Ok(total)
}
