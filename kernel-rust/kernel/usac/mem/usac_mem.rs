// SPDX-License-Identifier: GPL-2.0

//! tamalloc(2), get_mem_stats(2) and get_total_mem_stats(2): an allocator
//! with lazy zeroing and the memory statistics of processes.
//!
//! `entry.c` checks the plain arguments, calls the functions below and
//! copies their results to user space; everything else lives here.

use kernel::bindings;
use kernel::ffi::c_long;
use kernel::prelude::*;

mod process;
mod tamalloc;

use process::{MmStats, Task};

/// Entry point of tamalloc(2): the address of the new mapping, or a
/// negative errno.
#[no_mangle]
pub extern "C" fn usac_tamalloc(size: usize) -> c_long {
    match tamalloc::tamalloc(size) {
        // A user-space address is below `TASK_SIZE`, far below `LONG_MAX`.
        Ok(addr) => c_long::try_from(addr).unwrap_or(ENOMEM.to_errno() as c_long),
        Err(e) => e.to_errno() as c_long,
    }
}

/// Entry point of get_mem_stats(2) for `pid >= 0`: fills `*stats` (a
/// kernel buffer the C entry then copies out) and returns 0 or a negative
/// errno.
///
/// # Safety
///
/// `stats` must be valid for writes of one `struct mem_stats`.
#[no_mangle]
pub unsafe extern "C" fn usac_get_mem_stats(pid: i32, stats: *mut bindings::mem_stats) -> c_long {
    match get_mem_stats(pid) {
        Ok(out) => {
            // SAFETY: the caller guarantees `stats` is valid for writes.
            unsafe { stats.write(out) };
            0
        }
        Err(e) => e.to_errno() as c_long,
    }
}

/// Entry point of get_total_mem_stats(2): fills `*stats` (a kernel buffer)
/// and returns 0 or a negative errno.
///
/// # Safety
///
/// `stats` must be valid for writes of one `struct total_mem_stats`.
#[no_mangle]
pub unsafe extern "C" fn usac_get_total_mem_stats(stats: *mut bindings::total_mem_stats) -> c_long {
    match process::total_in_caller_ns() {
        Ok(total) => {
            // SAFETY: the caller guarantees `stats` is valid for writes.
            unsafe {
                stats.write(bindings::total_mem_stats {
                    total_reserved_kb: total.reserved_kb,
                    total_committed_kb: total.committed_kb,
                })
            };
            0
        }
        Err(e) => e.to_errno() as c_long,
    }
}

/// The statistics of the process `pid` of the caller's pid namespace (`0`:
/// the caller), for a caller who may read its `/proc/PID/status`.
fn get_mem_stats(pid: i32) -> Result<bindings::mem_stats> {
    let task = if pid == 0 {
        Task::current()
    } else {
        Task::find_in_caller_ns(pid)?
    };
    if !task.may_read_status() {
        return Err(EACCES);
    }
    // A kernel thread or a zombie has no address space: zeros.
    let mm = task.mm_stats().unwrap_or(MmStats {
        reserved_kb: 0,
        committed_kb: 0,
    });
    Ok(bindings::mem_stats {
        reserved_kb: mm.reserved_kb,
        committed_kb: mm.committed_kb,
        oom_score: task.oom_score(),
        pad: 0,
    })
}
