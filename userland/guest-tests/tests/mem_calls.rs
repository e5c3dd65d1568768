//! tamalloc(2), get_mem_stats(2) and get_total_mem_stats(2) in the booted
//! kernel, checked against /proc, plus the C example and the two commands.

use realtimesync::mem::{
    get_mem_stats, get_mem_stats_raw, get_total_mem_stats, get_total_mem_stats_raw, tamalloc_raw, Allocation, MemStats,
    TotalMemStats,
};
// The crate's library carries the C examples (built by build.rs).
use guest_tests as _;
use procfs::process::Process;
use procfs::Current;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use std::{io, ptr};

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

fn me() -> MemStats {
    get_mem_stats(0).expect("get_mem_stats(0)")
}

fn errno<T>(r: io::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().expect("an errno"),
    }
}

/// `key:` (VmSize or VmRSS) of /proc/PID/status in kB, or None when the
/// line is absent.
fn status_kb(pid: libc::pid_t, key: &str) -> Option<u64> {
    let status = Process::new(pid).ok()?.status().ok()?;
    match key {
        "VmSize" => status.vmsize,
        "VmRSS" => status.vmrss,
        _ => panic!("status_kb reads VmSize or VmRSS, not {key}"),
    }
}

fn proc_oom_score(pid: libc::pid_t) -> u32 {
    Process::new(pid).and_then(|p| p.oom_score()).expect("read oom_score").into()
}

/// What /proc says about `pid`: (VmSize, VmRSS, oom_score); zeros without
/// an address space.
fn from_proc(pid: libc::pid_t) -> (u64, u64, u32) {
    (status_kb(pid, "VmSize").unwrap_or(0), status_kb(pid, "VmRSS").unwrap_or(0), proc_oom_score(pid))
}

/// Checks the call against /proc for a process that does not change (a
/// sleeping child): the same numbers exactly.
fn assert_matches_proc(pid: libc::pid_t) -> MemStats {
    let before = from_proc(pid);
    let s = get_mem_stats(pid).expect("get_mem_stats");
    let after = from_proc(pid);
    assert_eq!(before, after, "pid {pid} changed while we looked");
    assert_eq!((s.reserved_kb, s.committed_kb, s.oom_score), before, "pid {pid}: call vs /proc");
    assert_eq!(s.pad, 0);
    s
}

/// A child that sleeps until dropped.
struct Sleeper(Child);

impl Sleeper {
    fn new(uid: Option<u32>) -> Sleeper {
        let mut cmd = Command::new("sleep");
        cmd.arg("600").stdin(Stdio::null());
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        let child = cmd.spawn().expect("spawn sleep");
        let s = Sleeper(child);
        // Settled once it runs sleep itself (its VmSize is sleep's).
        let start = Instant::now();
        while fs::read_to_string(format!("/proc/{}/comm", s.pid())).map_or(true, |c| c.trim() != "sleep") {
            assert!(start.elapsed() < Duration::from_secs(20), "sleep did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        s
    }

    fn pid(&self) -> libc::pid_t {
        self.0.id() as libc::pid_t
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `f` in a forked child and returns its exit code. `f` may only make
/// system calls (no allocation: the parent has other threads).
fn in_child(f: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `f` (raw system calls) and leaves with
    // _exit, which is safe after fork in a multi-threaded parent.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            libc::alarm(60);
            libc::_exit(f());
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        libc::WEXITSTATUS(status)
    }
}

/// Becomes nobody (uid/gid 65534, no groups); false if that failed.
fn become_nobody() -> bool {
    // SAFETY: plain system calls on our own credentials.
    unsafe {
        libc::setgroups(0, ptr::null()) == 0
            && libc::setresgid(65534, 65534, 65534) == 0
            && libc::setresuid(65534, 65534, 65534) == 0
    }
}

/// True if all of `bytes` are zero (compared a page at a time: memcmp).
fn all_zero(bytes: &[u8]) -> bool {
    static ZERO: [u8; PAGE] = [0; PAGE];
    bytes.chunks(PAGE).all(|c| c == &ZERO[..c.len()])
}

#[test]
fn syscalls_556_to_558_exist() {
    // NULL buffers answer EFAULT and a zero size EINVAL: ENOSYS would mean a
    // kernel without CONFIG_USAC_MEM.
    assert_eq!(errno(tamalloc_raw(0)), libc::EINVAL);
    // SAFETY: the kernel checks the pointer.
    assert_eq!(errno(unsafe { get_mem_stats_raw(0, ptr::null_mut()) }), libc::EFAULT);
    // SAFETY: as above.
    assert_eq!(errno(unsafe { get_total_mem_stats_raw(ptr::null_mut()) }), libc::EFAULT);
}

#[test]
fn tamalloc_256_mib_commits_only_what_is_touched() {
    let before = me();
    let mut mem = Allocation::new(256 * MIB).expect("tamalloc(256 MiB)");
    assert_eq!(mem.as_ptr() as usize % PAGE, 0, "page aligned");
    let allocated = me();
    let reserved = allocated.reserved_kb - before.reserved_kb;
    assert!(reserved >= 256 * 1024, "reserved grew by {reserved} kB");
    let grew = allocated.committed_kb.saturating_sub(before.committed_kb);
    assert!(grew < 1024, "committed grew by {grew} kB at allocation");
    let vm_size = status_kb(std::process::id() as i32, "VmSize").expect("VmSize");
    assert!(vm_size.abs_diff(allocated.reserved_kb) < 1024, "VmSize {vm_size} vs {}", allocated.reserved_kb);

    // Every byte reads zero, and reading commits nothing (the zero page).
    assert!(all_zero(mem.as_mut_slice()), "a byte did not read zero");
    let read = me();
    let grew = read.committed_kb.saturating_sub(before.committed_kb);
    assert!(grew < 1024, "committed grew by {grew} kB after reading it all");

    // Writing 64 MiB commits 64 MiB (+-10%).
    mem.as_mut_slice()[..64 * MIB].fill(0x5a);
    let touched = me();
    let grew = touched.committed_kb.saturating_sub(read.committed_kb) as f64;
    let want = (64 * 1024) as f64;
    println!("METRIC tamalloc 256 MiB: +{reserved} kB reserved; 64 MiB touched: +{grew} kB committed");
    assert!((grew - want).abs() <= want * 0.10, "committed grew by {grew} kB for 64 MiB touched");
    let rss = status_kb(std::process::id() as i32, "VmRSS").expect("VmRSS") as f64;
    assert!((rss - touched.committed_kb as f64).abs() < 1024.0, "VmRSS {rss} vs {}", touched.committed_kb);
    // The untouched rest still reads zero.
    assert!(all_zero(&mem.as_mut_slice()[64 * MIB..]));
}

#[test]
fn tamalloc_rounds_up_to_whole_pages() {
    let before = me();
    let addr = tamalloc_raw(1).expect("tamalloc(1)");
    let after = me();
    assert_eq!(addr % PAGE, 0);
    assert_eq!(after.reserved_kb - before.reserved_kb, 4, "one page");
    // The whole page is readable and writable.
    // SAFETY: tamalloc(1) mapped one read-write page at `addr`.
    unsafe {
        let p = addr as *mut u8;
        assert_eq!(p.add(PAGE - 1).read_volatile(), 0);
        p.add(PAGE - 1).write_volatile(7);
        assert_eq!(p.add(PAGE - 1).read_volatile(), 7);
        libc::munmap(p.cast(), PAGE);
    }
    let addr = tamalloc_raw(PAGE + 1).expect("tamalloc(PAGE + 1)");
    assert_eq!(me().reserved_kb - before.reserved_kb, 8, "two pages");
    // SAFETY: our own mapping of two pages.
    unsafe { libc::munmap(addr as *mut libc::c_void, 2 * PAGE) };
}

#[test]
fn tamalloc_error_rows() {
    let before = me();
    assert_eq!(errno(tamalloc_raw(0)), libc::EINVAL, "size 0");
    // Page rounding overflows.
    assert_eq!(errno(tamalloc_raw(usize::MAX)), libc::ENOMEM, "SIZE_MAX");
    assert_eq!(errno(tamalloc_raw(usize::MAX - PAGE + 2)), libc::ENOMEM, "rounds past SIZE_MAX");
    // Larger than the address space.
    assert_eq!(errno(tamalloc_raw(1 << 62)), libc::ENOMEM, "2^62 bytes");
    assert_eq!(errno(tamalloc_raw(usize::MAX & !(PAGE - 1))), libc::ENOMEM, "SIZE_MAX rounded down");
    assert_eq!(me().reserved_kb, before.reserved_kb, "a failed call mapped something");
}

#[test]
fn tamalloc_respects_rlimit_as() {
    let code = in_child(|| {
        let Ok(s) = get_mem_stats(0) else { return 10 };
        let limit = s.reserved_kb * 1024 + 64 * MIB as u64;
        let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
        // SAFETY: a plain system call on our own limits.
        if unsafe { libc::setrlimit(libc::RLIMIT_AS, &rl) } != 0 {
            return 11;
        }
        if errno(tamalloc_raw(128 * MIB)) != libc::ENOMEM {
            return 12;
        }
        let mut n = 0;
        loop {
            match tamalloc_raw(MIB) {
                Ok(_) => n += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => break,
                Err(_) => return 13,
            }
            if n > 64 {
                return 14; // past RLIMIT_AS
            }
        }
        if n < 60 {
            return 15;
        }
        0
    });
    assert_eq!(code, 0, "child failed at step {code}");
}

#[test]
fn tamalloc_until_the_address_space_is_full_gives_enomem() {
    // 1 TiB at a time, nothing touched: the 128 TiB of user address space
    // run out after about 127 calls, with ENOMEM and no crash.
    let code = in_child(|| {
        let mut n = 0;
        loop {
            match tamalloc_raw(1 << 40) {
                Ok(_) => n += 1,
                Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => break,
                Err(_) => return 20,
            }
            if n > 200 {
                return 21;
            }
        }
        if n < 100 {
            return 22;
        }
        // Smaller pieces still fit where the big ones did not.
        if tamalloc_raw(MIB).is_err() {
            return 23;
        }
        0
    });
    assert_eq!(code, 0, "child failed at step {code}");
}

/// Strict overcommit (mode 2) with a commit limit of what is committed
/// now plus `headroom_kb`: the rest of the guest (the test runner's own
/// forks) keeps working meanwhile. The old mode and ratio come back on drop
/// (writing the ratio clears `overcommit_kbytes`).
struct StrictOvercommit {
    mode: String,
    ratio: String,
}

const VM: &str = "/proc/sys/vm";

impl StrictOvercommit {
    fn with_headroom(headroom_kb: u64) -> StrictOvercommit {
        let read = |name: &str| fs::read_to_string(format!("{VM}/{name}")).expect("read vm sysctl");
        let saved = StrictOvercommit { mode: read("overcommit_memory"), ratio: read("overcommit_ratio") };
        // procfs gives bytes.
        let committed_kb = procfs::Meminfo::current().expect("read meminfo").committed_as / 1024;
        fs::write(format!("{VM}/overcommit_kbytes"), (committed_kb + headroom_kb).to_string())
            .expect("write overcommit_kbytes");
        fs::write(format!("{VM}/overcommit_memory"), "2").expect("write overcommit_memory");
        saved
    }
}

impl Drop for StrictOvercommit {
    fn drop(&mut self) {
        let _ = fs::write(format!("{VM}/overcommit_memory"), self.mode.trim());
        let _ = fs::write(format!("{VM}/overcommit_ratio"), self.ratio.trim());
    }
}

#[test]
fn tamalloc_under_strict_overcommit_gives_enomem() {
    let size = 8usize << 30; // 8 GiB, four times the guest's memory
    let code = in_child(|| if tamalloc_raw(size).is_ok() { 0 } else { 30 });
    assert_eq!(code, 0, "8 GiB with MAP_NORESERVE under heuristic overcommit");
    // A limit 1 GiB above what is committed now: far below the 8 GiB asked.
    let _strict = StrictOvercommit::with_headroom(1 << 20);
    let code = in_child(|| match tamalloc_raw(size) {
        Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => 0,
        Ok(_) => 31,
        Err(_) => 32,
    });
    assert_eq!(code, 0, "8 GiB under strict overcommit must be refused with ENOMEM");
}

#[test]
fn get_mem_stats_of_the_caller_matches_proc() {
    let pid = std::process::id() as libc::pid_t;
    // Our own numbers move a little (reading /proc allocates): between the
    // readings before and after, give or take a few pages.
    for who in [0, pid] {
        let (size0, rss0, oom0) = from_proc(pid);
        let s = get_mem_stats(who).expect("get_mem_stats");
        let (size1, rss1, oom1) = from_proc(pid);
        let within = |v: u64, a: u64, b: u64, slack: u64| v + slack >= a.min(b) && v <= a.max(b) + slack;
        assert!(within(s.reserved_kb, size0, size1, 256), "VmSize {size0}/{size1} vs {}", s.reserved_kb);
        assert!(within(s.committed_kb, rss0, rss1, 256), "VmRSS {rss0}/{rss1} vs {}", s.committed_kb);
        assert!(s.oom_score == oom0 || s.oom_score == oom1, "oom_score {oom0}/{oom1} vs {}", s.oom_score);
        assert_eq!(s.pad, 0);
    }
}

#[test]
fn get_mem_stats_of_another_users_process_matches_proc() {
    let other = Sleeper::new(Some(65534));
    let s = assert_matches_proc(other.pid());
    assert!(s.reserved_kb > 0 && s.committed_kb > 0);
    // nobody sees its own process, but not root's (init): EACCES.
    let pid = other.pid();
    let code = in_child(|| {
        if !become_nobody() {
            return 40;
        }
        if get_mem_stats(pid).is_err() {
            return 41;
        }
        match get_mem_stats(1) {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => 0,
            Ok(_) => 42,
            Err(_) => 43,
        }
    });
    assert_eq!(code, 0, "child failed at step {code}");
}

#[test]
fn oom_score_is_procs_for_every_oom_score_adj() {
    let child = Sleeper::new(None);
    let mut seen = Vec::new();
    for adj in ["-1000", "-500", "0", "500", "1000"] {
        fs::write(format!("/proc/{}/oom_score_adj", child.pid()), adj).expect("write oom_score_adj");
        let s = assert_matches_proc(child.pid());
        println!("oom_score_adj {adj}: oom_score {}", s.oom_score);
        seen.push(s.oom_score);
    }
    assert_eq!(seen[0], 0, "OOM_SCORE_ADJ_MIN shows 0");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "not monotonic in oom_score_adj: {seen:?}");
    // About (1000 + 1000) * 2 / 3: `oom_badness()` rounds the adjustment down.
    assert!(seen[4] >= 1300, "oom_score_adj 1000 gives about 1333: {seen:?}");
}

#[test]
fn kernel_thread_has_zeros() {
    // pid 2 is kthreadd.
    let comm = fs::read_to_string("/proc/2/comm").expect("comm of pid 2");
    assert_eq!(comm.trim(), "kthreadd");
    assert_eq!(status_kb(2, "VmSize"), None);
    let s = get_mem_stats(2).expect("get_mem_stats(kthreadd)");
    assert_eq!(s, MemStats::default());
    assert_eq!(proc_oom_score(2), 0);
}

#[test]
fn zombie_has_zeros() {
    // SAFETY: the child leaves at once with _exit.
    let pid = unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            libc::_exit(0);
        }
        pid
    };
    let start = Instant::now();
    while Process::new(pid).and_then(|p| p.stat()).expect("stat").state != 'Z' {
        assert!(start.elapsed() < Duration::from_secs(20), "no zombie");
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = get_mem_stats(pid);
    let oom = proc_oom_score(pid);
    // SAFETY: reaps our own child.
    unsafe { libc::waitpid(pid, ptr::null_mut(), 0) };
    assert_eq!(s.expect("get_mem_stats(zombie)"), MemStats::default());
    assert_eq!(oom, 0);
}

#[test]
fn bad_pids() {
    let pid_max: i32 =
        fs::read_to_string("/proc/sys/kernel/pid_max").expect("pid_max").trim().parse().expect("a number");
    assert_eq!(errno(get_mem_stats(pid_max)), libc::ESRCH, "pid_max itself is never used");
    assert_eq!(errno(get_mem_stats(i32::MAX)), libc::ESRCH);
    assert_eq!(errno(get_mem_stats(-1)), libc::EINVAL);
    assert_eq!(errno(get_mem_stats(i32::MIN)), libc::EINVAL);
}

#[test]
fn bad_buffers_are_efault() {
    // SAFETY: fresh mappings that Rust never borrows.
    let (none, read_only) = unsafe {
        let m = |prot| libc::mmap(ptr::null_mut(), PAGE, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        (m(libc::PROT_NONE), m(libc::PROT_READ))
    };
    assert!(none != libc::MAP_FAILED && read_only != libc::MAP_FAILED);
    let bad: [usize; 5] = [0, none as usize, read_only as usize, usize::MAX - 7, 0xffff_8880_0000_0000];
    for p in bad {
        // SAFETY: the kernel checks the pointers; none is ours to borrow.
        assert_eq!(errno(unsafe { get_mem_stats_raw(0, p as *mut MemStats) }), libc::EFAULT, "{p:#x}");
        // SAFETY: as above.
        assert_eq!(errno(unsafe { get_total_mem_stats_raw(p as *mut TotalMemStats) }), libc::EFAULT, "{p:#x}");
    }
    // SAFETY: our own mappings.
    unsafe {
        libc::munmap(none, PAGE);
        libc::munmap(read_only, PAGE);
    }
}

/// VmSize and VmRSS (kB) of every process in /proc but those in `skip`.
fn proc_sizes(skip: &[i32]) -> BTreeMap<i32, (u64, u64)> {
    procfs::process::all_processes()
        .expect("read /proc")
        .flatten()
        .filter(|process| !skip.contains(&process.pid))
        .filter_map(|process| {
            let status = process.status().ok()?;
            Some((process.pid, (status.vmsize.unwrap_or(0), status.vmrss.unwrap_or(0))))
        })
        .collect()
}

fn sums(sizes: &BTreeMap<i32, (u64, u64)>) -> (u64, u64) {
    sizes.values().fold((0, 0), |(size, rss), v| (size + v.0, rss + v.1))
}

/// The call's totals lie within 1 MiB of the sums over /proc, with `skip`
/// (a process that shares an address space listed already) left out. They
/// are compared only when /proc held still around the call (the same
/// processes with the same sizes before and after it): a process that lives
/// only while the call runs, such as a shell's fork before it execs, counts
/// in the call alone. Our own process is read right beside the call, since
/// reading all of /proc moves its VmSize by megabytes (the allocator).
fn assert_total_near_proc(skip: Option<i32>) -> TotalMemStats {
    let me = std::process::id() as i32;
    let skip: Vec<i32> = [me].into_iter().chain(skip).collect();
    let own = || (status_kb(me, "VmSize").unwrap(), status_kb(me, "VmRSS").unwrap());
    for attempt in 1..=20 {
        let before = proc_sizes(&skip);
        let own_before = own();
        let t = get_total_mem_stats().expect("get_total_mem_stats");
        let own_after = own();
        if proc_sizes(&skip) != before {
            println!("attempt {attempt}: a process started, ended or changed size around the call");
            continue;
        }
        let others = sums(&before);
        let bounds = |others: u64, ours: (u64, u64)| (others + ours.0.min(ours.1), others + ours.0.max(ours.1));
        let near = |v: u64, (lo, hi): (u64, u64)| v + 1024 >= lo && v <= hi + 1024;
        let size = bounds(others.0, (own_before.0, own_after.0));
        let rss = bounds(others.1, (own_before.1, own_after.1));
        let (call_size, call_rss) = (t.total_reserved_kb, t.total_committed_kb);
        println!("METRIC total: call {call_size}/{call_rss} kB, /proc bounds {size:?} / {rss:?}");
        assert!(near(call_size, size), "VmSize: call {call_size}, /proc {size:?}");
        assert!(near(call_rss, rss), "VmRSS: call {call_rss}, /proc {rss:?}");
        return t;
    }
    panic!("/proc never held still around the call in 20 attempts");
}

#[test]
fn get_total_mem_stats_matches_the_sums_over_proc() {
    let _children: Vec<Sleeper> = (0..3).map(|_| Sleeper::new(None)).collect();
    assert_total_near_proc(None);
}

extern "C" fn paused(_: *mut libc::c_void) -> libc::c_int {
    loop {
        // SAFETY: a plain system call; the child shares our memory and
        // touches none of it.
        unsafe { libc::syscall(libc::SYS_pause) };
    }
}

#[test]
fn get_total_mem_stats_counts_a_shared_address_space_once() {
    // A second process in our address space (clone(CLONE_VM) without
    // CLONE_THREAD, as vfork): /proc lists it with our numbers, the call
    // counts the address space once.
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: the child runs `paused` on its own stack, which outlives it
    // (it is killed and reaped below, before `stack` is dropped).
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(stack.len()).cast();
        libc::clone(paused, top, libc::CLONE_VM | libc::SIGCHLD, ptr::null_mut())
    };
    assert!(pid > 0, "clone");
    std::thread::sleep(Duration::from_millis(200));
    let shared = status_kb(pid, "VmSize").unwrap_or(0);
    // Counted once: the sums without the second process, and well below
    // the sums with it (which count our address space twice).
    let result = std::panic::catch_unwind(|| {
        let t = assert_total_near_proc(Some(pid));
        let twice = sums(&proc_sizes(&[])).0;
        assert!(
            t.total_reserved_kb + shared / 2 < twice,
            "{} kB counts {shared} kB twice ({twice})",
            t.total_reserved_kb
        );
    });
    // SAFETY: our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, ptr::null_mut(), 0);
    }
    drop(stack);
    assert!(shared > 0);
    result.expect("total vs /proc");
}

extern "C" {
    fn tamalloc_example(size: usize) -> *mut libc::c_void;
    fn get_mem_stats_example(pid: libc::pid_t, stats: *mut MemStats) -> libc::c_int;
    fn get_total_mem_stats_example(stats: *mut TotalMemStats) -> libc::c_int;
}

#[test]
fn c_examples_call_the_same_syscalls() {
    // SAFETY: the C functions make the system calls; the buffers are ours.
    unsafe {
        let p = tamalloc_example(3 * PAGE).cast::<u8>();
        assert!(!p.is_null());
        assert_eq!(p.add(3 * PAGE - 1).read_volatile(), 0);
        let mut s = MemStats::default();
        assert_eq!(get_mem_stats_example(0, &mut s), 0);
        assert!(s.reserved_kb > 0);
        assert_eq!(get_mem_stats_example(-1, &mut s), libc::EINVAL);
        let mut t = TotalMemStats::default();
        assert_eq!(get_total_mem_stats_example(&mut t), 0);
        assert!(t.total_reserved_kb >= s.reserved_kb);
        assert!(tamalloc_example(0).is_null());
        libc::munmap(p.cast(), 3 * PAGE);
    }
}

/// A command built beside the test binaries (the guest runner copies them
/// to `USAC_MEM_BIN_DIR`).
fn command(name: &str) -> Command {
    let dir = std::env::var_os("USAC_MEM_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("current_exe");
        exe.parent().and_then(|p| p.parent()).expect("target dir").to_path_buf()
    });
    Command::new(dir.join(name))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run the command");
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn usac_mem_command() {
    let child = Sleeper::new(None);
    let out = run(command("usac-mem").arg(child.pid().to_string()));
    let row: Vec<&str> = out.lines().nth(1).expect("a row").split_whitespace().collect();
    let (size, rss, oom) = from_proc(child.pid());
    assert_eq!(row[..4], [child.pid().to_string(), size.to_string(), rss.to_string(), oom.to_string()]);
    assert!(row[4].ends_with('%'));

    let all = run(command("usac-mem").arg("--all"));
    assert!(all.lines().count() > 3, "{all}");
    assert!(all.lines().any(|l| l.split_whitespace().next() == Some(&child.pid().to_string())));

    let total = run(command("usac-mem").arg("--total"));
    assert!(total.contains("total reserved: ") && total.contains("total committed: "), "{total}");

    let out = command("usac-mem").arg("-5").output().expect("run");
    assert!(!out.status.success());
    let out = command("usac-mem").arg(i32::MAX.to_string()).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such process"));
}

#[test]
fn tamalloc_demo_command() {
    let out = run(command("tamalloc-demo").arg("64M"));
    print!("{out}");
    assert!(out.contains("all 67108864 bytes read zero"), "{out}");
    let grew: Vec<u64> = out
        .lines()
        .find(|l| l.starts_with("reserved +"))
        .expect("the summary line")
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    // reserved +N kB, committed +M kB after tamalloc, +K kB after touching half
    assert!(grew[0] >= 65536, "{grew:?}");
    assert!(grew[1] < 1024, "{grew:?}");
    assert!((grew[2] as f64 - 32768.0).abs() <= 3276.8, "{grew:?}");
    let out = command("tamalloc-demo").arg("0").output().expect("run");
    assert!(!out.status.success());
}
