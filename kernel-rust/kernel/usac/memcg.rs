// SPDX-License-Identifier: GPL-2.0

//! Charging a call's kernel memory to its caller's memory cgroup: the sync
//! thread allocates on the caller's behalf, and a kernel thread's own
//! allocations would be charged to nobody.

use core::marker::PhantomData;
use kernel::alloc::{
    flags::{GFP_KERNEL, GFP_KERNEL_ACCOUNT, GFP_NOWAIT},
    Flags,
};
use kernel::bindings;

/// How the sync code allocates: charged to the active memory cgroup (the
/// caller's, see [`CallerMemcg::charge`]).
pub(crate) const GFP: Flags = GFP_KERNEL_ACCOUNT;

/// How the sync code allocates where it must not sleep (under a
/// spinlock): charged as [`GFP`].
pub(crate) fn nowait() -> Flags {
    GFP_NOWAIT | (GFP_KERNEL_ACCOUNT & !GFP_KERNEL)
}

/// The caller's memory cgroup, counted (null without memory cgroups, or
/// for the root cgroup: then nothing is charged).
///
/// # Invariants
///
/// `self.0` is null or a memory cgroup on which we own a reference.
pub(crate) struct CallerMemcg(*mut bindings::mem_cgroup);

// SAFETY: a counted memory cgroup may be used and put from any task.
unsafe impl Send for CallerMemcg {}
// SAFETY: shared use only reads the pointer.
unsafe impl Sync for CallerMemcg {}

impl CallerMemcg {
    /// The memory cgroup of the current task.
    pub(crate) fn of_current() -> Self {
        // SAFETY: process context; returns a counted cgroup or null.
        // INVARIANT: we own the count it took.
        Self(unsafe { bindings::usac_memcg_of_current() })
    }

    /// Charges what the current task allocates with `__GFP_ACCOUNT` to
    /// this cgroup until the guard is dropped.
    pub(crate) fn charge(&self) -> Charging<'_> {
        // SAFETY: the cgroup is counted for as long as the guard borrows it.
        unsafe { Charging::to(self.0) }
    }
}

impl Drop for CallerMemcg {
    fn drop(&mut self) {
        // SAFETY: the count we own (type invariant); null is allowed.
        unsafe { bindings::usac_memcg_put(self.0) };
    }
}

/// The current task charges its accounted allocations to another memory
/// cgroup while this lives.
pub(crate) struct Charging<'a> {
    previous: *mut bindings::mem_cgroup,
    _memcg: PhantomData<&'a CallerMemcg>,
    // The active cgroup is per task: the guard must be dropped where made.
    _not_send: PhantomData<*mut ()>,
}

impl Charging<'_> {
    /// # Safety
    ///
    /// `memcg` must be null or stay valid until the guard is dropped.
    pub(crate) unsafe fn to(memcg: *mut bindings::mem_cgroup) -> Self {
        // SAFETY: by the caller's promise; the previous one is restored on
        // drop, in this task.
        let previous = unsafe { bindings::usac_set_active_memcg(memcg) };
        Self {
            previous,
            _memcg: PhantomData,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Charging<'_> {
    fn drop(&mut self) {
        // SAFETY: restores what `to` replaced, in the same task.
        unsafe { bindings::usac_set_active_memcg(self.previous) };
    }
}
