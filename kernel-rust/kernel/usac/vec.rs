// SPDX-License-Identifier: GPL-2.0

//! What the 6.12 `KVec` lacks.

use crate::memcg::GFP;
use kernel::alloc::{AllocError, Allocator, KBox, KVec, Vec};

/// Takes the last element out of `v`.
pub(crate) fn pop<T, A: Allocator>(v: &mut Vec<T, A>) -> Option<T> {
    let last = v.len().checked_sub(1)?;
    // SAFETY: the element at `last` is initialised; reading it out and
    // shrinking the length by one transfers its ownership to the caller.
    unsafe {
        let item = core::ptr::read(v.as_ptr().add(last));
        v.set_len(last);
        Some(item)
    }
}

/// `bytes` copied into a box of exactly their size: two words where a
/// vector takes three.
pub(crate) fn boxed_copy(bytes: &[u8]) -> Result<KBox<[u8]>, AllocError> {
    let mut v = KVec::with_capacity(bytes.len(), GFP)?;
    v.extend_from_slice(bytes, GFP)?;
    let (ptr, len, capacity) = v.into_raw_parts();
    if capacity != len {
        // SAFETY: the parts just taken from a vector, given back whole.
        drop(unsafe { KVec::from_raw_parts(ptr, len, capacity) });
        return Err(AllocError);
    }
    // SAFETY: `ptr` holds `len` initialised bytes in an allocation of
    // exactly `len` bytes made by `Kmalloc` (the vector's allocator), which
    // a `KBox<[u8]>` frees with that same layout (none for zero bytes).
    Ok(unsafe { KBox::from_raw(core::ptr::slice_from_raw_parts_mut(ptr, len)) })
}
