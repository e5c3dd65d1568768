//! /proc/system_stats (the system_stats module) in the booted kernel:
//! against /proc/meminfo, /proc/stat and statvfs("/"), and loaded and
//! unloaded 100 times.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const ENTRY: &str = "/proc/system_stats";

/// The module the kernel build made: `SYSTEM_STATS_KO`, set by the guest
/// runner.
fn module_path() -> PathBuf {
    let ko = std::env::var_os("SYSTEM_STATS_KO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root/.cache/real-time-sync/build/kernel/usac/mem/system_stats.ko"));
    assert!(ko.exists(), "no module at {ko:?} (set SYSTEM_STATS_KO)");
    ko
}

fn built_in() -> bool {
    !Path::new("/sys/module/system_stats/initstate").exists() && Path::new(ENTRY).exists()
}

fn insmod() {
    let out = Command::new("insmod").arg(module_path()).output().expect("run insmod");
    assert!(out.status.success(), "insmod: {}", String::from_utf8_lossy(&out.stderr));
}

fn rmmod() {
    let out = Command::new("rmmod").arg("system_stats").output().expect("run rmmod");
    assert!(out.status.success(), "rmmod: {}", String::from_utf8_lossy(&out.stderr));
}

/// The module loaded for one test (unless it is built in), unloaded after.
struct Loaded(bool);

impl Loaded {
    fn new() -> Loaded {
        if built_in() {
            return Loaded(false);
        }
        if Path::new("/sys/module/system_stats").exists() {
            rmmod();
        }
        insmod();
        Loaded(true)
    }
}

impl Drop for Loaded {
    fn drop(&mut self) {
        if self.0 {
            let _ = Command::new("rmmod").arg("system_stats").status();
        }
    }
}

/// `key: value unit` lines as key -> (value, unit).
fn system_stats() -> Vec<(String, u64, String)> {
    let text = fs::read_to_string(ENTRY).expect("read /proc/system_stats");
    text.lines()
        .map(|l| {
            let (key, rest) = l.split_once(": ").unwrap_or_else(|| panic!("not `key: value unit`: {l:?}"));
            let (value, unit) = rest.split_once(' ').unwrap_or_else(|| panic!("no unit: {l:?}"));
            (key.to_owned(), value.parse().unwrap_or_else(|_| panic!("not a number: {l:?}")), unit.to_owned())
        })
        .collect()
}

fn as_map(lines: &[(String, u64, String)]) -> HashMap<String, u64> {
    lines.iter().map(|(k, v, _)| (k.clone(), *v)).collect()
}

/// MemTotal, MemFree and MemAvailable of /proc/meminfo, in kB.
fn meminfo() -> HashMap<&'static str, u64> {
    use procfs::Current;
    let m = procfs::Meminfo::current().expect("meminfo");
    // procfs gives bytes; /proc/meminfo and /proc/system_stats say kB.
    let available = m.mem_available.expect("MemAvailable");
    HashMap::from([
        ("MemTotal", m.mem_total / 1024),
        ("MemFree", m.mem_free / 1024),
        ("MemAvailable", available / 1024),
    ])
}

/// user, system, idle of the first line of /proc/stat.
fn proc_stat_cpu() -> (u64, u64, u64) {
    use procfs::CurrentSI;
    let total = procfs::KernelStats::current().expect("/proc/stat").total;
    (total.user, total.system, total.idle)
}

/// (total, free, available) of statvfs("/") in KiB.
fn statvfs_root() -> (u64, u64, u64) {
    let root = CString::new("/").expect("no NUL");
    // SAFETY: `st` is written by statvfs before it is read.
    let st = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(root.as_ptr(), &mut st), 0);
        st
    };
    let kb = |blocks: u64| blocks * st.f_frsize / 1024;
    (kb(st.f_blocks), kb(st.f_bfree), kb(st.f_bavail))
}

fn within(v: u64, a: u64, b: u64, slack: u64) -> bool {
    v + slack >= a.min(b) && v <= a.max(b) + slack
}

#[test]
fn lines_are_stable_key_value_unit() {
    let _m = Loaded::new();
    let lines = system_stats();
    let keys: Vec<(&str, &str)> = lines.iter().map(|(k, _, u)| (k.as_str(), u.as_str())).collect();
    assert_eq!(
        keys,
        [
            ("mem_total", "kB"),
            ("mem_used", "kB"),
            ("mem_free", "kB"),
            ("mem_available", "kB"),
            ("cpu_user", "USER_HZ"),
            ("cpu_system", "USER_HZ"),
            ("cpu_idle", "USER_HZ"),
            ("disk_total", "kB"),
            ("disk_free", "kB"),
            ("disk_available", "kB"),
        ]
    );
    let mode = fs::metadata(ENTRY).expect("stat").permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o444);
}

#[test]
fn memory_matches_meminfo() {
    let _m = Loaded::new();
    let before = meminfo();
    let s = as_map(&system_stats());
    let after = meminfo();
    println!(
        "METRIC system_stats mem: {} total, {} free; meminfo free {} / {}",
        s["mem_total"], s["mem_free"], before["MemFree"], after["MemFree"]
    );
    assert_eq!(s["mem_total"], before["MemTotal"]);
    // Free memory moves as we read: 4 MiB of slack around the two readings.
    assert!(within(s["mem_free"], before["MemFree"], after["MemFree"], 4096), "MemFree");
    assert!(within(s["mem_available"], before["MemAvailable"], after["MemAvailable"], 4096), "MemAvailable");
    assert_eq!(s["mem_used"], s["mem_total"] - s["mem_free"], "used = total - free");
}

#[test]
fn cpu_time_matches_proc_stat() {
    let _m = Loaded::new();
    let before = proc_stat_cpu();
    let s = as_map(&system_stats());
    let after = proc_stat_cpu();
    println!(
        "METRIC system_stats cpu: user {} system {} idle {}; /proc/stat {before:?} then {after:?}",
        s["cpu_user"], s["cpu_system"], s["cpu_idle"]
    );
    // The same counters read a moment apart: between the two readings (and
    // one tick of rounding).
    assert!(within(s["cpu_user"], before.0, after.0, 1), "user");
    assert!(within(s["cpu_system"], before.1, after.1, 1), "system");
    assert!(within(s["cpu_idle"], before.2, after.2, 1), "idle");
}

#[test]
fn disk_matches_statvfs_of_the_root() {
    let _m = Loaded::new();
    let before = statvfs_root();
    let s = as_map(&system_stats());
    let after = statvfs_root();
    println!(
        "METRIC system_stats disk: {} total, {} free; statvfs {before:?} then {after:?}",
        s["disk_total"], s["disk_free"]
    );
    // The root comes from the host, where other work writes: 1% of the
    // total of slack around the two readings.
    let slack = before.0 / 100;
    assert!(within(s["disk_total"], before.0, after.0, slack), "total");
    assert!(within(s["disk_free"], before.1, after.1, slack), "free");
    assert!(within(s["disk_available"], before.2, after.2, slack), "available");
    assert!(s["disk_free"] <= s["disk_total"]);
}

#[test]
fn load_and_unload_100_times_leaves_nothing_behind() {
    if built_in() {
        panic!("system_stats is built in: cannot test unloading");
    }
    if Path::new("/sys/module/system_stats").exists() {
        rmmod();
    }
    for i in 0..100 {
        insmod();
        assert!(Path::new(ENTRY).exists(), "round {i}: no entry after insmod");
        assert!(fs::read_to_string(ENTRY).expect("read").starts_with("mem_total: "));
        rmmod();
        assert!(!Path::new(ENTRY).exists(), "round {i}: entry left after rmmod");
        assert!(!Path::new("/sys/module/system_stats").exists(), "round {i}: module left");
    }
    // An open file outlives nothing: reading after an unload fails cleanly.
    insmod();
    let file = fs::File::open(ENTRY).expect("open");
    rmmod();
    let mut buf = String::new();
    assert!(std::io::Read::read_to_string(&mut &file, &mut buf).is_err(), "read after rmmod: {buf:?}");
    // Leaks: the suite's final kmemleak scan covers these 100 rounds.
}
