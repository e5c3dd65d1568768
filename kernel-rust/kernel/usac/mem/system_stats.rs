// SPDX-License-Identifier: GPL-2.0

//! `/proc/system_stats`: memory, CPU time and root file system space, one
//! `key: value unit` line each.
//!
//! ```text
//! mem_total: <kB> kB        MemTotal of /proc/meminfo
//! mem_used: <kB> kB         MemTotal - MemFree
//! mem_free: <kB> kB         MemFree
//! mem_available: <kB> kB    MemAvailable
//! cpu_user: <n> USER_HZ     first line of /proc/stat: user, summed over CPUs
//! cpu_system: <n> USER_HZ   system
//! cpu_idle: <n> USER_HZ     idle
//! disk_total: <kB> kB       statfs("/"): f_blocks * f_frsize
//! disk_free: <kB> kB        f_bfree * f_frsize
//! disk_available: <kB> kB   f_bavail * f_frsize
//! ```
//!
//! The root is the reader's (`chroot` moves it). The keys and their order
//! are stable; new keys are only ever appended.

use core::fmt::Write;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::error::to_result;
use kernel::ffi::{c_int, c_ulong, c_void};
use kernel::prelude::*;

module! {
    type: SystemStats,
    name: "system_stats",
    author: "usac dev",
    description: "/proc/system_stats: memory, CPU time and root file system space",
    license: "GPL",
}

/// The entry's name under `/proc`.
const NAME: &CStr = kernel::c_str!("system_stats");

/// The loaded module: owns the `/proc` entry.
struct SystemStats {
    entry: NonNull<bindings::proc_dir_entry>,
}

// SAFETY: the entry pointer is only used to remove the entry on drop;
// `proc_remove()` may be called from any thread.
unsafe impl Send for SystemStats {}
// SAFETY: `&SystemStats` gives no access to the entry.
unsafe impl Sync for SystemStats {}

impl kernel::Module for SystemStats {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: `NAME` is a static NUL-terminated string; `show` matches
        // the callback type and lives as long as the entry (the module
        // removes the entry before its code goes).
        let entry = unsafe {
            bindings::proc_create_single_data(
                NAME.as_char_ptr(),
                0o444,
                core::ptr::null_mut(),
                Some(show),
                core::ptr::null_mut(),
            )
        };
        let entry = NonNull::new(entry).ok_or(ENOMEM)?;
        Ok(SystemStats { entry })
    }
}

impl Drop for SystemStats {
    fn drop(&mut self) {
        // SAFETY: the entry `init` created; `proc_remove()` waits for the
        // readers inside `show` and makes later opens fail.
        unsafe { bindings::proc_remove(self.entry.as_ptr()) };
    }
}

/// A `seq_file` being filled by a `show` callback.
struct SeqFile(NonNull<bindings::seq_file>);

impl Write for SeqFile {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // SAFETY: the seq_file is valid during `show`; `s` is valid for
        // `s.len()` bytes. On overflow seq_file marks itself full and calls
        // `show` again with a larger buffer, so the result can be ignored.
        unsafe { bindings::seq_write(self.0.as_ptr(), s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}

/// Memory as `/proc/meminfo` counts it, in KiB.
struct Memory {
    total: u64,
    free: u64,
    available: u64,
}

/// A number of pages in KiB (`c_ulong` is 64 bits wide here: lossless).
fn pages_to_kb(pages: c_ulong) -> u64 {
    (pages as u64).saturating_mul((bindings::PAGE_SIZE / 1024) as u64)
}

impl Memory {
    fn read() -> Memory {
        let mut info = bindings::sysinfo::default();
        // SAFETY: `info` is a valid `struct sysinfo` to fill.
        unsafe { bindings::si_meminfo(&mut info) };
        // SAFETY: no arguments; reads global counters.
        let available = unsafe { bindings::si_mem_available() };
        Memory {
            total: pages_to_kb(info.totalram),
            free: pages_to_kb(info.freeram),
            available: pages_to_kb(c_ulong::try_from(available).unwrap_or(0)),
        }
    }
}

/// CPU time as the first line of `/proc/stat` counts it, in USER_HZ ticks.
struct CpuTime {
    user: u64,
    system: u64,
    idle: u64,
}

impl CpuTime {
    fn read() -> CpuTime {
        let (mut user, mut system, mut idle) = (0u64, 0u64, 0u64);
        let mut cpu: c_int = -1;
        loop {
            // SAFETY: walks `cpu_possible_mask`, as `/proc/stat` does.
            cpu = unsafe { bindings::usac_next_possible_cpu(cpu) };
            if cpu < 0 {
                break;
            }
            let mut kcs = bindings::kernel_cpustat::default();
            // SAFETY: `cpu` is a possible CPU; `kcs` is a buffer to fill.
            unsafe { bindings::usac_kcpustat_cpu_fetch(&mut kcs, cpu) };
            let stat = |i: u32| kcs.cpustat.get(i as usize).copied().unwrap_or(0);
            user = user.wrapping_add(stat(bindings::cpu_usage_stat_CPUTIME_USER));
            system = system.wrapping_add(stat(bindings::cpu_usage_stat_CPUTIME_SYSTEM));
            // SAFETY: `kcs` was filled for `cpu` above.
            idle = idle.wrapping_add(unsafe { bindings::usac_cpu_idle_ns(&kcs, cpu) });
        }
        // SAFETY: a pure conversion (ns to USER_HZ ticks).
        let ticks = |ns: u64| unsafe { bindings::usac_nsec_to_clock_t(ns) };
        CpuTime {
            user: ticks(user),
            system: ticks(system),
            idle: ticks(idle),
        }
    }
}

/// Space of the reader's root file system, as `statfs("/")`, in KiB.
struct Disk {
    total: u64,
    free: u64,
    available: u64,
}

impl Disk {
    fn read() -> Result<Disk> {
        let mut root = bindings::path::default();
        // SAFETY: `root` is a `struct path` to fill with a reference.
        to_result(unsafe { bindings::usac_get_current_root(&mut root) })?;
        let mut st = bindings::kstatfs::default();
        // SAFETY: `root` holds a reference; `st` is a buffer to fill.
        let ret = unsafe { bindings::vfs_statfs(&root, &mut st) };
        // SAFETY: drops the reference `usac_get_current_root` took.
        unsafe { bindings::path_put(&root) };
        to_result(ret)?;
        // statfs(2) reports f_frsize, or f_bsize when a file system has none.
        let frsize = if st.f_frsize != 0 {
            st.f_frsize
        } else {
            st.f_bsize
        };
        let unit = u64::try_from(frsize).map_err(|_| EINVAL)?;
        let kb = |blocks: u64| blocks.saturating_mul(unit) / 1024;
        Ok(Disk {
            total: kb(st.f_blocks),
            free: kb(st.f_bfree),
            available: kb(st.f_bavail),
        })
    }
}

fn write_stats(m: &mut SeqFile) -> Result {
    let mem = Memory::read();
    let cpu = CpuTime::read();
    let disk = Disk::read()?;
    let used = mem.total.saturating_sub(mem.free);
    let lines = [
        ("mem_total", mem.total, "kB"),
        ("mem_used", used, "kB"),
        ("mem_free", mem.free, "kB"),
        ("mem_available", mem.available, "kB"),
        ("cpu_user", cpu.user, "USER_HZ"),
        ("cpu_system", cpu.system, "USER_HZ"),
        ("cpu_idle", cpu.idle, "USER_HZ"),
        ("disk_total", disk.total, "kB"),
        ("disk_free", disk.free, "kB"),
        ("disk_available", disk.available, "kB"),
    ];
    for (key, value, unit) in lines {
        writeln!(m, "{key}: {value} {unit}").map_err(|_| ENOMEM)?;
    }
    Ok(())
}

/// The `show` callback of `/proc/system_stats`.
///
/// # Safety
///
/// Called by seq_file with a valid `m`.
unsafe extern "C" fn show(m: *mut bindings::seq_file, _v: *mut c_void) -> c_int {
    let Some(m) = NonNull::new(m) else {
        return EINVAL.to_errno();
    };
    match write_stats(&mut SeqFile(m)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
