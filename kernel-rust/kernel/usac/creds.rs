// SPDX-License-Identifier: GPL-2.0

//! The caller's credentials, captured at the call and assumed by the sync
//! thread for all its file work.

use core::marker::PhantomData;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::types::{ARef, AlwaysRefCounted, Opaque};

/// A set of credentials (`struct cred`), always reference counted.
///
/// # Invariants
///
/// Instances are only reached through a reference count ([`ARef<Cred>`]) or
/// a borrow of one, so the credentials are valid while they are used.
#[repr(transparent)]
pub(crate) struct Cred(Opaque<bindings::cred>);

// SAFETY: credentials are immutable once published and reference counted;
// a reference may be used and dropped from any task.
unsafe impl Send for Cred {}
// SAFETY: as above, shared access only reads them.
unsafe impl Sync for Cred {}

// SAFETY: `get_cred` and `put_cred` keep the object alive while a count is
// held, from any context the sync code runs in.
unsafe impl AlwaysRefCounted for Cred {
    fn inc_ref(&self) {
        // SAFETY: `self` is valid (type invariant), so its count is not zero.
        unsafe { bindings::get_cred(self.0.get()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller gives up one count it owned; `Cred` wraps
        // `struct cred` transparently.
        unsafe { bindings::put_cred(obj.cast::<bindings::cred>().as_ptr()) };
    }
}

impl Cred {
    /// The subjective credentials of the calling task (fsuid, fsgid,
    /// groups, capabilities, LSM labels).
    pub(crate) fn of_caller() -> ARef<Self> {
        // SAFETY: always valid in process context; returns a new count.
        let cred = unsafe { bindings::get_current_cred() };
        // SAFETY: `cred` is valid and non-null, and the count taken above is
        // handed to the `ARef`; `Cred` wraps `struct cred` transparently.
        unsafe { ARef::from_raw(NonNull::new_unchecked(cred.cast_mut().cast::<Self>())) }
    }

    /// The real user ID, which per-user limits count against.
    pub(crate) fn uid(&self) -> u32 {
        // SAFETY: `self` is valid (type invariant); `uid` never changes.
        unsafe { (*self.0.get()).uid.val }
    }

    /// The file system user ID: whose files the caller's are.
    pub(crate) fn fsuid(&self) -> u32 {
        // SAFETY: `self` is valid (type invariant); `fsuid` never changes.
        unsafe { (*self.0.get()).fsuid.val }
    }

    /// Makes the current task act with these credentials until the guard is
    /// dropped.
    pub(crate) fn assume(&self) -> Assumed<'_> {
        // SAFETY: `self` is valid; `override_creds` takes its own count on
        // it and returns the previous credentials for `revert_creds`.
        let previous = unsafe { bindings::override_creds(self.0.get()) };
        Assumed {
            previous,
            _creds: PhantomData,
            _not_send: PhantomData,
        }
    }
}

/// The current task acts with other credentials while this lives.
pub(crate) struct Assumed<'a> {
    previous: *const bindings::cred,
    _creds: PhantomData<&'a Cred>,
    // Credentials are per task: the guard must be dropped where it was made.
    _not_send: PhantomData<*mut ()>,
}

impl Drop for Assumed<'_> {
    fn drop(&mut self) {
        // SAFETY: `previous` came from `override_creds` in this same task
        // and is restored exactly once.
        unsafe { bindings::revert_creds(self.previous) };
    }
}
