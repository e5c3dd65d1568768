// SPDX-License-Identifier: GPL-2.0

//! tamalloc(2): private anonymous memory that costs nothing until touched.

use kernel::bindings;
use kernel::error::Error;
use kernel::ffi::{c_long, c_ulong};
use kernel::prelude::*;

/// `size` rounded up to whole pages, or `None` when that overflows.
fn page_align(size: usize) -> Option<usize> {
    let mask = bindings::PAGE_SIZE - 1;
    Some(size.checked_add(mask)? & !mask)
}

/// Maps `size` bytes (rounded up to whole pages) of readable, writable,
/// private anonymous memory into the caller's address space and returns
/// its address.
///
/// `MAP_NORESERVE`: no page and no swap reservation (unless overcommit is
/// strict) until first touch, when the page fault maps a zeroed page.
pub(crate) fn tamalloc(size: usize) -> Result<usize> {
    if size == 0 {
        return Err(EINVAL);
    }
    let len = page_align(size).ok_or(ENOMEM)?;
    let prot = bindings::PROT_READ | bindings::PROT_WRITE;
    let flags = bindings::MAP_PRIVATE | bindings::MAP_ANONYMOUS | bindings::MAP_NORESERVE;
    // SAFETY: no file, no address hint; `vm_mmap` takes the caller's
    // mmap_lock itself and checks the length against the address space,
    // `RLIMIT_AS` and the overcommit policy.
    let addr = unsafe {
        bindings::vm_mmap(
            core::ptr::null_mut(),
            0,
            len as c_ulong,
            prot as c_ulong,
            flags as c_ulong,
            0,
        )
    };
    // IS_ERR_VALUE(): the last MAX_ERRNO values are negative errnos.
    if addr >= (bindings::MAX_ERRNO as c_ulong).wrapping_neg() {
        return Err(Error::from_errno(addr as c_long as i32));
    }
    Ok(addr as usize)
}
