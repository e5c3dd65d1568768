// SPDX-License-Identifier: GPL-2.0

//! The caller's credentials, captured at the call and assumed by the sync
//! thread for all its file work.

use core::marker::PhantomData;
use kernel::bindings;

/// A counted reference to a set of credentials.
///
/// # Invariants
///
/// `self.0` points to a valid `struct cred` on which we own one reference.
pub(crate) struct Credentials(*const bindings::cred);

// SAFETY: credentials are immutable once published and reference counted;
// the reference may be used and dropped from any task.
unsafe impl Send for Credentials {}
// SAFETY: as above, shared access only reads them.
unsafe impl Sync for Credentials {}

impl Credentials {
    /// The subjective credentials of the calling task (fsuid, fsgid,
    /// groups, capabilities, LSM labels).
    pub(crate) fn of_caller() -> Self {
        // SAFETY: always valid in process context; returns a new reference.
        // INVARIANT: we own that reference.
        Self(unsafe { bindings::get_current_cred() })
    }

    /// The real user ID, which per-user limits count against.
    pub(crate) fn uid(&self) -> u32 {
        // SAFETY: `self.0` is valid (type invariant); `uid` never changes.
        unsafe { (*self.0).uid.val }
    }

    /// Makes the current task act with these credentials until the guard is
    /// dropped.
    pub(crate) fn assume(&self) -> Assumed<'_> {
        // SAFETY: `self.0` is valid; `override_creds` takes its own reference
        // on it and returns the previous credentials for `revert_creds`.
        let previous = unsafe { bindings::override_creds(self.0) };
        Assumed {
            previous,
            _creds: PhantomData,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        // SAFETY: we own one reference (type invariant).
        unsafe { bindings::put_cred(self.0) };
    }
}

/// The current task acts with other credentials while this lives.
pub(crate) struct Assumed<'a> {
    previous: *const bindings::cred,
    _creds: PhantomData<&'a Credentials>,
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
