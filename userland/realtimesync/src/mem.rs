//! Safe wrappers for the memory system calls of our patched Linux 6.12:
//! `tamalloc(2)` (556), `get_mem_stats(2)` (557) and
//! `get_total_mem_stats(2)` (558).

use std::io;
use std::ptr::NonNull;

/// `tamalloc(2)`, read from the patched kernel's headers at build time.
pub const SYS_TAMALLOC: libc::c_long = include!(concat!(env!("OUT_DIR"), "/nr_tamalloc.rs"));
/// `get_mem_stats(2)`, read from the patched kernel's headers at build time.
pub const SYS_GET_MEM_STATS: libc::c_long = include!(concat!(env!("OUT_DIR"), "/nr_get_mem_stats.rs"));
/// `get_total_mem_stats(2)`, read from the patched kernel's headers at build time.
pub const SYS_GET_TOTAL_MEM_STATS: libc::c_long = include!(concat!(env!("OUT_DIR"), "/nr_get_total_mem_stats.rs"));

/// `struct mem_stats` of `<linux/usac.h>`: one process, in KiB.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MemStats {
    /// Virtual size (`VmSize` of `/proc/PID/status`).
    pub reserved_kb: u64,
    /// Resident set (`VmRSS`).
    pub committed_kb: u64,
    /// What `/proc/PID/oom_score` shows (0 to 2000).
    pub oom_score: u32,
    /// Always 0.
    pub pad: u32,
}

impl MemStats {
    /// Committed as a percentage of reserved (0 when nothing is reserved).
    pub fn committed_percent(&self) -> f64 {
        if self.reserved_kb == 0 {
            0.0
        } else {
            self.committed_kb as f64 * 100.0 / self.reserved_kb as f64
        }
    }
}

/// `struct total_mem_stats` of `<linux/usac.h>`: sums over the caller's pid
/// namespace, each address space once, in KiB.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TotalMemStats {
    pub total_reserved_kb: u64,
    pub total_committed_kb: u64,
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The raw `tamalloc(2)`: maps `size` bytes (rounded up to pages) of zeroed,
/// lazily backed memory and returns its address. Nothing unmaps it.
pub fn tamalloc_raw(size: usize) -> io::Result<usize> {
    // SAFETY: the call only adds a new private mapping; it touches no
    // memory of ours.
    let addr = check(unsafe { libc::syscall(SYS_TAMALLOC, size) })?;
    Ok(addr as usize)
}

/// Memory from `tamalloc(2)`, unmapped on drop.
pub struct Allocation {
    ptr: NonNull<u8>,
    len: usize,
}

impl Allocation {
    /// Allocates `size` bytes (rounded up to whole pages by the kernel).
    pub fn new(size: usize) -> io::Result<Allocation> {
        let addr = tamalloc_raw(size)?;
        let ptr = NonNull::new(addr as *mut u8).ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        Ok(Allocation { ptr, len: size })
    }

    /// The requested size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the allocation is empty (never: the call refuses 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The memory as bytes: reading faults in zero pages, writing commits
    /// pages.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the kernel mapped at least `len` readable and writable
        // bytes at `ptr`, which only this value owns until drop.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no borrow of it outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The statistics of process `pid` (`0`: the caller).
pub fn get_mem_stats(pid: libc::pid_t) -> io::Result<MemStats> {
    let mut stats = MemStats::default();
    // SAFETY: `stats` is a valid, writable `struct mem_stats`.
    unsafe { get_mem_stats_raw(pid, &mut stats) }?;
    Ok(stats)
}

/// The raw `get_mem_stats(2)`, for callers that must pass arbitrary pointers
/// (tests of the kernel's argument checking).
///
/// # Safety
///
/// The kernel writes `sizeof(struct mem_stats)` bytes at `stats` when it is
/// writable: it must not point into memory Rust considers borrowed.
pub unsafe fn get_mem_stats_raw(pid: libc::pid_t, stats: *mut MemStats) -> io::Result<()> {
    // SAFETY: the kernel checks the pointer (caller's contract above).
    check(unsafe { libc::syscall(SYS_GET_MEM_STATS, pid, stats) }).map(drop)
}

/// The sums over every process of the caller's pid namespace.
pub fn get_total_mem_stats() -> io::Result<TotalMemStats> {
    let mut stats = TotalMemStats::default();
    // SAFETY: `stats` is a valid, writable `struct total_mem_stats`.
    unsafe { get_total_mem_stats_raw(&mut stats) }?;
    Ok(stats)
}

/// The raw `get_total_mem_stats(2)`.
///
/// # Safety
///
/// As [`get_mem_stats_raw`].
pub unsafe fn get_total_mem_stats_raw(stats: *mut TotalMemStats) -> io::Result<()> {
    // SAFETY: the kernel checks the pointer (caller's contract above).
    check(unsafe { libc::syscall(SYS_GET_TOTAL_MEM_STATS, stats) }).map(drop)
}

/// What an error of these calls means.
pub fn explain(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel has no usac memory calls: boot a kernel built with CONFIG_USAC_MEM",
        Some(libc::EINVAL) => "invalid argument (a size of 0, or a negative pid)",
        Some(libc::ENOMEM) => "the size does not fit the address space, a limit or the overcommit policy",
        Some(libc::ESRCH) => "no such process",
        Some(libc::EACCES) => "you may not read that process's /proc/PID/status",
        Some(libc::EFAULT) => "the result buffer points outside the process's memory",
        _ => "unexpected error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_numbers_match_the_table_entries() {
        crate::tests::assert_read_from_headers();
        assert_eq!((SYS_TAMALLOC, SYS_GET_MEM_STATS, SYS_GET_TOTAL_MEM_STATS), (556, 557, 558));
    }

    #[test]
    fn structs_have_the_uapi_layout() {
        assert_eq!(std::mem::size_of::<MemStats>(), 24);
        assert_eq!(std::mem::size_of::<TotalMemStats>(), 16);
    }

    #[test]
    fn committed_percent_of_nothing_is_zero() {
        assert_eq!(MemStats::default().committed_percent(), 0.0);
        let s = MemStats { reserved_kb: 200, committed_kb: 50, ..MemStats::default() };
        assert_eq!(s.committed_percent(), 25.0);
    }
}
