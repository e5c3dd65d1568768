// SPDX-License-Identifier: GPL-2.0

//! What the 6.12 `KVec` lacks.

use kernel::alloc::KVec;

/// Takes the last element out of `v`.
pub(crate) fn pop<T>(v: &mut KVec<T>) -> Option<T> {
    let last = v.len().checked_sub(1)?;
    // SAFETY: the element at `last` is initialised; reading it out and
    // shrinking the length by one transfers its ownership to the caller.
    unsafe {
        let item = core::ptr::read(v.as_ptr().add(last));
        v.set_len(last);
        Some(item)
    }
}
