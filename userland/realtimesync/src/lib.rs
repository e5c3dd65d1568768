//! Safe wrapper for `real_time_sync(2)`, system call 555 of our patched Linux
//! 6.12: it keeps two directory trees mirrored both ways, live, and blocks
//! until the calling process gets a signal.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::raw::c_char;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub mod mem;

/// The system call number, read from the patched kernel's headers at build
/// time (555 when none were found).
pub const SYS_REAL_TIME_SYNC: libc::c_long = include!(concat!(env!("OUT_DIR"), "/syscall_nr.rs"));

/// Mirrors `dir_a` and `dir_b` until a signal ends the call.
///
/// Returns `Ok(())` when a signal ended the mirroring cleanly. To get here on
/// Ctrl-C, install a handler for SIGINT (without `SA_RESTART`): with the
/// default action the process is killed after the kernel's teardown.
pub fn real_time_sync(dir_a: impl AsRef<Path>, dir_b: impl AsRef<Path>) -> io::Result<()> {
    let a = c_path(dir_a.as_ref().as_os_str())?;
    let b = c_path(dir_b.as_ref().as_os_str())?;
    // SAFETY: both pointers are NUL-terminated strings that outlive the call.
    unsafe { real_time_sync_raw(a.as_ptr(), b.as_ptr()) }
}

/// The raw call, for callers that must pass arbitrary pointers (tests of the
/// kernel's argument checking).
///
/// # Safety
///
/// The kernel validates the pointers, so any value is memory safe for this
/// process; the caller only has to accept that an invalid pointer yields
/// `EFAULT`.
pub unsafe fn real_time_sync_raw(dir_a: *const c_char, dir_b: *const c_char) -> io::Result<()> {
    // SAFETY: the system call reads the user pointers through copy_from_user.
    let ret = unsafe { libc::syscall(SYS_REAL_TIME_SYNC, dir_a, dir_b) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn c_path(path: &OsStr) -> io::Result<CString> {
    CString::new(path.as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// What an error of the call means, in the words of its manual page.
pub fn explain(err: &io::Error) -> &'static str {
    match err.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel has no real_time_sync(2): boot a kernel built with CONFIG_REAL_TIME_SYNC",
        Some(libc::EFAULT) => "a path points outside the process's memory",
        Some(libc::ENAMETOOLONG) => "a path is longer than PATH_MAX",
        Some(libc::ENOENT) => "a directory does not exist (or went away while mirroring)",
        Some(libc::ENOTDIR) => "a path is not a directory",
        Some(libc::EACCES) => "you may not read, write or search one of the directories",
        Some(libc::EINVAL) => "the two directories are the same, or one is inside the other",
        Some(libc::EBUSY) => "a directory is already mirrored by another real_time_sync call",
        Some(libc::ENOMEM) => "the kernel is out of memory",
        Some(libc::EMFILE) => "you have reached the limit of concurrent real_time_sync calls",
        _ if err.kind() == io::ErrorKind::InvalidInput => "a path contains a NUL byte",
        _ => "unexpected error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where build.rs found the numbers: fails when it fell back on its own
    /// constants, which would only compare them with themselves.
    pub(crate) fn assert_read_from_headers() {
        let source = env!("REAL_TIME_SYNC_NR_SOURCE");
        assert!(
            !source.starts_with("fallback"),
            "no patched kernel headers ({source}): set REAL_TIME_SYNC_HEADERS to the headers_install output"
        );
    }

    #[test]
    fn syscall_number_matches_the_table_entry() {
        // Read from the headers: a parse slip would silently call another
        // system call.
        assert_read_from_headers();
        assert_eq!(SYS_REAL_TIME_SYNC, 555);
    }

    #[test]
    fn nul_in_a_path_is_refused_before_the_call() {
        let err = real_time_sync("a\0b", "c").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(explain(&err), "a path contains a NUL byte");
    }
}
