// SPDX-License-Identifier: GPL-2.0

//! real_time_sync(2): keep two directory trees mirrored both ways, live, until
//! the calling process gets a signal.
//!
//! `entry.c` copies the two paths from user space and calls
//! [`usac_real_time_sync`]; everything else lives here.

use kernel::error::code::{EINVAL, ERESTARTNOINTR};
use kernel::ffi::{c_char, c_long};
use kernel::prelude::*;
use kernel::str::CStr;

mod path;
mod wait;

use path::{Access, DirPath};

const __LOG_PREFIX: &[u8] = b"usac\0";

/// Entry point from the C system call.
///
/// # Safety
///
/// `dir_a` and `dir_b` must be valid NUL-terminated strings that stay alive
/// for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn usac_real_time_sync(dir_a: *const c_char, dir_b: *const c_char) -> c_long {
    // SAFETY: the caller guarantees both are NUL-terminated strings that live
    // until we return.
    let (dir_a, dir_b) = unsafe { (CStr::from_char_ptr(dir_a), CStr::from_char_ptr(dir_b)) };
    match real_time_sync(dir_a, dir_b) {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

fn real_time_sync(dir_a: &CStr, dir_b: &CStr) -> Result {
    let (a, b) = resolve_pair(dir_a, dir_b)?;
    match wait::until_signal() {
        wait::Woken::ByJobControl => Err(ERESTARTNOINTR),
        wait::Woken::BySignal => {
            drop((a, b));
            Ok(())
        }
    }
}

/// Resolves both paths as `open(2)` would and checks that they form a valid
/// pair; every error of the contract is answered here, before any change.
fn resolve_pair(dir_a: &CStr, dir_b: &CStr) -> Result<(DirPath, DirPath)> {
    let a = DirPath::lookup(dir_a)?;
    a.check_access(Access::ReadWriteSearch)?;
    let b = DirPath::lookup(dir_b)?;
    b.check_access(Access::ReadWriteSearch)?;
    if a.overlaps(&b) {
        return Err(EINVAL);
    }
    Ok((a, b))
}
