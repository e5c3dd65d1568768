//! Helpers for the tests that run inside the booted, patched kernel.
//!
//! The guest runner (`ci/guest-run.sh`) mounts a fresh tmpfs and points
//! `TMPDIR` at it, runs every test on its own and checks the kernel log
//! after each.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

pub mod disk;

/// A fresh directory for one test, removed when dropped.
pub struct Scratch {
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = tempfile::Builder::new().prefix(&format!("{name}-")).tempdir().expect("create scratch dir");
        // Searchable by all: some tests run the call as nobody below it.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod scratch dir");
        Scratch { root: dir.path().to_path_buf(), _dir: dir }
    }

    /// Creates (with parents) and returns the directory `rel`.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let path = self.root.join(rel);
        fs::create_dir_all(&path).expect("create dir");
        path
    }

    /// Writes the file `rel` and returns its path.
    pub fn file(&self, rel: &str, content: &[u8]) -> PathBuf {
        let path = self.root.join(rel);
        fs::write(&path, content).expect("write file");
        path
    }
}

/// Everything observable about a tree: to prove that a call changed nothing.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, u32, u64, i64, i64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let meta = fs::symlink_metadata(&dir).expect("stat");
        out.push((dir.clone(), meta.mode(), meta.size(), meta.mtime(), meta.mtime_nsec()));
        if meta.is_dir() {
            for entry in fs::read_dir(&dir).expect("read_dir") {
                stack.push(entry.expect("dir entry").path());
            }
        }
    }
    out.sort();
    out
}

pub fn cstr(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in test paths")
}

/// The errno of a call that must fail (and must not block).
// Any pointer is fine: the kernel checks it, and bad ones are what the
// callers test.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn call_errno(a: *const libc::c_char, b: *const libc::c_char) -> i32 {
    // SAFETY: the kernel checks user pointers; invalid ones give EFAULT.
    match unsafe { realtimesync::real_time_sync_raw(a, b) } {
        Ok(()) => 0,
        Err(err) => err.raw_os_error().expect("an errno"),
    }
}

/// Runs the call in a child process with the credentials of `nobody`
/// (uid/gid 65534, no groups) and returns its errno (0 if it succeeded
/// and was ended by the alarm).
pub fn call_errno_as_nobody(a: &Path, b: &Path) -> i32 {
    let (a, b) = (cstr(a), cstr(b));
    // SAFETY: the child only makes raw system calls and leaves with _exit,
    // which is safe after fork even in a multi-threaded parent.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            libc::alarm(20);
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setresgid(65534, 65534, 65534) != 0
                || libc::setresuid(65534, 65534, 65534) != 0
            {
                libc::_exit(255);
            }
            let ret = libc::syscall(realtimesync::SYS_REAL_TIME_SYNC, a.as_ptr(), b.as_ptr());
            libc::_exit(if ret < 0 { *libc::__errno_location() } else { 0 });
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status), "child died: status {status:#x}");
        let code = libc::WEXITSTATUS(status);
        assert_ne!(code, 255, "could not drop privileges");
        code
    }
}

/// Mounts a fresh tmpfs on the directory `at`.
pub fn mount_tmpfs(at: &Path) {
    let status = Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(at).status().expect("run mount");
    assert!(status.success(), "mount tmpfs on {at:?}");
}

/// Unmounts `at` (detaching it lazily if `lazy`); on failure, umount's
/// message.
pub fn umount(at: &Path, lazy: bool) -> Result<(), String> {
    let out = Command::new("umount").args(lazy.then_some("-l")).arg(at).output().expect("run umount");
    out.status.success().then_some(()).ok_or_else(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The `real-time-sync` command built beside the test binaries.
pub fn cli_path() -> PathBuf {
    if let Some(path) = std::env::var_os("REAL_TIME_SYNC_CLI") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/real-time-sync
    exe.parent().and_then(Path::parent).expect("target dir").join("real-time-sync")
}

/// A running `real-time-sync A B`; killed when dropped.
pub struct Syncer {
    child: Child,
}

impl Syncer {
    /// Starts mirroring and returns once the process is inside the call.
    pub fn start(a: &Path, b: &Path) -> Syncer {
        let mut cli = Command::new(cli_path());
        cli.arg(a).arg(b);
        Syncer::spawn(cli)
    }

    /// Spawns `command` (which runs the CLI in the end), in a group of its
    /// own whose parent (we) is outside it: never an orphaned group, in which
    /// the kernel drops SIGTSTP. Returns once it is inside the call.
    fn spawn(mut command: Command) -> Syncer {
        let child = command
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let mut syncer = Syncer { child };
        syncer.wait_in_call(Duration::from_secs(60));
        syncer
    }

    /// Starts mirroring and returns once the CLI has said it enters the
    /// call, blocking in it or not: a start that loads a large base runs in
    /// the call for a while before it blocks.
    pub fn start_entering(a: &Path, b: &Path) -> Syncer {
        let mut child = Command::new(cli_path())
            .arg(a)
            .arg(b)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("spawn real-time-sync");
        // Byte by byte, so that what follows the line stays in the pipe.
        let err = child.stderr.as_mut().expect("piped stderr");
        let mut line = Vec::new();
        let mut byte = [0u8];
        while !line.ends_with(b"(Ctrl-C stops)\n") {
            let n = io::Read::read(err, &mut byte).expect("read real-time-sync's stderr");
            assert_eq!(n, 1, "real-time-sync ended before the call: {}", String::from_utf8_lossy(&line));
            line.push(byte[0]);
        }
        Syncer { child }
    }

    /// True while the process runs (rather than sleeps) in a system call or
    /// in user space: /proc/PID/syscall says "running".
    pub fn running(&self) -> bool {
        fs::read_to_string(format!("/proc/{}/syscall", self.pid())).is_ok_and(|s| s.trim() == "running")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits until the process blocks in system call 555; panics with what
    /// it said if it exits instead.
    pub fn wait_in_call(&mut self, limit: Duration) {
        let nr = realtimesync::SYS_REAL_TIME_SYNC.to_string();
        let path = format!("/proc/{}/syscall", self.pid());
        let deadline = Instant::now() + limit;
        loop {
            let now = fs::read_to_string(&path).unwrap_or_default();
            if now.split_whitespace().next() == Some(nr.as_str()) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("wait for real-time-sync") {
                panic!("real-time-sync exited ({status}) instead of staying in the call: {}", self.stderr());
            }
            assert!(Instant::now() < deadline, "not in the call after {limit:?}: {now:?}");
            sleep(Duration::from_millis(2));
        }
    }

    /// The state letter of /proc/PID/stat (R, S, T, ...).
    pub fn state(&self) -> char {
        procfs::process::Process::new(self.pid()).and_then(|p| p.stat()).map_or('?', |s| s.state)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child, which we have not reaped yet.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// Waits for the exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> io::Result<Option<ExitStatus>> {
        self.child.wait_timeout(limit)
    }

    /// What the command printed on stderr (after it exited).
    pub fn stderr(&mut self) -> String {
        let mut out = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = io::Read::read_to_string(&mut err, &mut out);
        }
        out
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many times longer than on the test kernel work may take to converge
/// (`RTS_SLOWDOWN`, default 1): `scripts/test --kasan` sets it, since its
/// sanitizer kernel runs three to eight times slower. Bounds on latency (a
/// signal ends the call within 100 ms) are not scaled.
fn slowdown() -> u32 {
    std::env::var("RTS_SLOWDOWN").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

/// Polls (in the test, not in the kernel) until `cond` holds or `limit`
/// (times the slowdown) passes.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit * slowdown();
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(1));
    }
}

impl Syncer {
    /// Like [`Syncer::start`], as user and group 65534 without supplementary
    /// groups.
    pub fn start_as_nobody(a: &Path, b: &Path) -> Syncer {
        let mut setpriv = Command::new("setpriv");
        setpriv.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        Syncer::start_with(setpriv, a, b)
    }

    /// Like [`Syncer::start`], through `wrapper` (a command that runs its
    /// arguments, as `setpriv` does).
    pub fn start_with(mut wrapper: Command, a: &Path, b: &Path) -> Syncer {
        wrapper.arg(cli_path()).arg(a).arg(b);
        Syncer::spawn(wrapper)
    }

    /// Like [`Syncer::start`], in the cgroup `cgroup` (a cgroup2 directory)
    /// from before the call.
    pub fn start_in_cgroup(a: &Path, b: &Path, cgroup: &Path) -> Syncer {
        let mut sh = Command::new("sh");
        sh.args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""]).arg(cgroup).arg(cli_path()).arg(a).arg(b);
        Syncer::spawn(sh)
    }

    /// Ends the call with SIGINT and checks it returned 0 within `limit`:
    /// the call must still answer, whatever it was doing.
    pub fn stop_within(mut self, limit: Duration) {
        let sent = Instant::now();
        self.signal(libc::SIGINT);
        let status = self.wait_exit(Duration::from_secs(20)).unwrap().expect("still running after SIGINT");
        let took = sent.elapsed();
        let stderr = self.stderr();
        assert!(status.success() && stderr.contains("stopped"), "{status:?}: {stderr}");
        assert!(took < limit, "SIGINT took {took:?}");
    }

    /// Ends the call with SIGINT and checks it returned 0.
    pub fn stop(mut self) {
        self.signal(libc::SIGINT);
        let status = self.wait_exit(Duration::from_secs(20)).unwrap().expect("still running after SIGINT");
        let stderr = self.stderr();
        assert!(status.success() && stderr.contains("stopped"), "{status:?}: {stderr}");
    }
}

/// How long the tests wait for a change to arrive (TCG guests are slow).
pub const ARRIVAL: Duration = Duration::from_secs(20);

/// The file in which the call remembers the base of a pair, at the top of
/// `dir_a`: part of the contract, never mirrored.
pub const BASE_FILE: &str = ".real-time-sync-base";

/// True when the base saved in `a` names `name`.
pub fn base_records(a: &Path, name: &str) -> bool {
    fs::read(a.join(BASE_FILE)).is_ok_and(|base| base.windows(name.len()).any(|w| w == name.as_bytes()))
}

/// Makes a FIFO at `path`.
pub fn mkfifo(path: &Path) -> io::Result<()> {
    let c = cstr(path);
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o644) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Every entry below `root` (the base file aside), relative to `root`,
/// sorted, with what the contract mirrors of it: a regular file's
/// permission bits, mtime and content; a directory's permission bits (its
/// mtime moves with its own entries on each side, and is not mirrored); a
/// symlink's target; a FIFO, socket or device node's kind and bits.
///
/// Panics when `root` is missing or an entry cannot be read: an unreadable
/// file must not pass for an empty one.
pub fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    tree_reading(root, &|path, _| fs::read(path))
}

/// [`tree`], with the content of each regular file as `read` gives it from
/// its path and metadata (a test that must not open some of them).
pub fn tree_reading(
    root: &Path,
    read: &dyn Fn(&Path, &fs::Metadata) -> io::Result<Vec<u8>>,
) -> Vec<(PathBuf, Vec<u8>)> {
    // Entries may come and go while the sync works (its temporary files, a
    // test's writer, a kind conflict it settles): one gone or of another
    // kind between listing and reading is skipped here and caught by the
    // caller's next look.
    let raced = |err: &io::Error| {
        matches!(
            err.kind(),
            io::ErrorKind::NotFound
                | io::ErrorKind::NotADirectory
                | io::ErrorKind::IsADirectory
                | io::ErrorKind::InvalidInput
        )
    };
    let meta = fs::metadata(root).unwrap_or_else(|err| panic!("tree root {root:?}: {err}"));
    assert!(meta.is_dir(), "tree root {root:?} is not a directory");
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if raced(&err) && dir != root => continue,
            Err(err) => panic!("list {dir:?}: {err}"),
        };
        for entry in entries {
            let entry = entry.unwrap_or_else(|err| panic!("list {dir:?}: {err}"));
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel.as_os_str() == BASE_FILE {
                continue;
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(err) if raced(&err) => continue,
                Err(err) => panic!("stat {path:?}: {err}"),
            };
            let mode = format!("{:o} ", meta.permissions().mode() & 0o7777).into_bytes();
            let kind = meta.file_type();
            let value = if kind.is_dir() {
                stack.push(path);
                [&mode[..], b"<dir>"].concat()
            } else if kind.is_symlink() {
                match fs::read_link(&path) {
                    Ok(target) => [b"-> ", target.as_os_str().as_bytes()].concat(),
                    Err(err) if raced(&err) => continue,
                    Err(err) => panic!("readlink {path:?}: {err}"),
                }
            } else if kind.is_file() {
                let mtime = format!("mtime {}.{:09} ", meta.mtime(), meta.mtime_nsec()).into_bytes();
                match read(&path, &meta) {
                    Ok(content) => [mode, mtime, content].concat(),
                    Err(err) if raced(&err) => continue,
                    Err(err) => panic!("read {path:?}: {err}"),
                }
            } else {
                [&mode[..], b"<special>"].concat()
            };
            out.push((rel, value));
        }
    }
    out.sort();
    out
}

/// Waits until both trees are equal; panics with the difference if not.
pub fn assert_mirrored(a: &Path, b: &Path) {
    let ok = eventually(ARRIVAL, || tree(a) == tree(b));
    assert!(ok, "trees differ:\n{}", tree_diff(a, b));
    assert_temp_names_go(a);
    assert_temp_names_go(b);
}

/// What differs between two trees, one line per entry, for failure messages.
pub fn tree_diff(a: &Path, b: &Path) -> String {
    let (ta, tb) = (tree(a), tree(b));
    let show = |c: &Vec<u8>| String::from_utf8_lossy(&c[..c.len().min(80)]).into_owned();
    let mut out = String::new();
    for (path, content) in &ta {
        match tb.iter().find(|e| &e.0 == path) {
            None => out += &format!("only in A: {path:?} {:?}\n", show(content)),
            Some(other) if &other.1 != content => {
                out += &format!("differs:   {path:?} A {:?} B {:?}\n", show(content), show(&other.1))
            }
            _ => {}
        }
    }
    for (path, content) in &tb {
        if !ta.iter().any(|e| &e.0 == path) {
            out += &format!("only in B: {path:?} {:?}\n", show(content));
        }
    }
    out
}

/// How the sync's temporary names begin (`TEMP_PREFIX` in the kernel's
/// naming.rs).
pub const TEMP_PREFIX: &str = ".usac-tmp-";

/// The sync's temporary names under `root`.
fn temp_names(root: &Path) -> Vec<PathBuf> {
    tree(root)
        .into_iter()
        .map(|(rel, _)| rel)
        .filter(|rel| rel.file_name().unwrap().to_string_lossy().starts_with(TEMP_PREFIX))
        .collect()
}

/// A stopped pair holds none of the sync's temporary names.
pub fn assert_no_temp_names(root: &Path) {
    let left = temp_names(root);
    assert!(left.is_empty(), "temporary names left under {root:?}: {left:?}");
}

/// In a live pair a temporary name exists while a copy or a save of the
/// base is under way; none may stay behind.
pub fn assert_temp_names_go(root: &Path) {
    let gone = eventually(ARRIVAL, || temp_names(root).is_empty());
    assert!(gone, "temporary names left under {root:?}: {:?}", temp_names(root));
}

/// The inode number of `path`.
pub fn ino(path: &Path) -> u64 {
    fs::symlink_metadata(path).expect("stat").ino()
}

/// A scratch directory with two empty sides `a` and `b`.
pub fn pair(name: &str) -> (Scratch, PathBuf, PathBuf) {
    let s = Scratch::new(name);
    let a = s.dir("a");
    let b = s.dir("b");
    (s, a, b)
}

/// Waits until `path` holds exactly `content`.
pub fn arrives(path: &Path, content: &[u8]) -> bool {
    eventually(ARRIVAL, || fs::read(path).map(|c| c == content).unwrap_or(false))
}

/// Waits until `path` is gone.
pub fn gone(path: &Path) -> bool {
    eventually(ARRIVAL, || fs::symlink_metadata(path).is_err())
}

/// Counts the copies that land in one directory: each is a rename of the
/// sync's temporary file over its target (`IN_MOVED_TO`), watched with
/// inotify from its creation on.
pub struct Landings {
    fd: std::os::fd::OwnedFd,
}

impl Landings {
    pub fn watch(dir: &Path) -> Landings {
        Landings::watch_for(dir, libc::IN_MOVED_TO)
    }

    /// Counts the events of `mask` on the entries of `dir` instead (reads:
    /// `IN_ACCESS`).
    pub fn watch_for(dir: &Path, mask: u32) -> Landings {
        use std::os::fd::FromRawFd;
        // SAFETY: inotify_init1 has no memory arguments.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(raw >= 0, "inotify_init1: {}", io::Error::last_os_error());
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let path = cstr(dir);
        // SAFETY: a valid descriptor and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(raw, path.as_ptr(), mask) };
        assert!(wd >= 0, "inotify_add_watch {dir:?}: {}", io::Error::last_os_error());
        Landings { fd }
    }

    /// How many events (copies landed) `name` had since the watch (or the
    /// last count).
    pub fn count(&self, name: &str) -> usize {
        self.count_where(|event_name| event_name == name.as_bytes())
    }

    /// How many events had a name that `matches`, since the watch (or the
    /// last count).
    pub fn count_where(&self, matches: impl Fn(&[u8]) -> bool) -> usize {
        use std::os::fd::AsRawFd;
        let mut landed = 0;
        let mut buf = [0u8; 64 << 10];
        loop {
            // SAFETY: reading into a buffer of the given length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                let err = io::Error::last_os_error();
                assert!(n == 0 || err.kind() == io::ErrorKind::WouldBlock, "read inotify: {err}");
                return landed;
            }
            let mut at = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= n as usize {
                // SAFETY: the kernel wrote a whole event header at `at`.
                let event: libc::inotify_event = unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                assert!(event.mask & libc::IN_Q_OVERFLOW == 0, "inotify queue overflowed: the count is not known");
                let name_bytes = &buf[at + header..at + header + event.len as usize];
                let end = name_bytes.iter().position(|&c| c == 0).unwrap_or(name_bytes.len());
                if matches(&name_bytes[..end]) {
                    landed += 1;
                }
                at += header + event.len as usize;
            }
        }
    }
}

/// A real-time busy loop on CPU 0, where the calls' sync threads are moved,
/// while the test's own thread runs on CPU 1: the sync threads fall behind
/// (RT throttling leaves them 5% of CPU 0) and their queues overflow. The
/// loop ends when this is dropped.
pub struct Starved(Child);

impl Starved {
    pub fn sync_threads() -> Starved {
        let threads = sync_threads();
        assert!(!threads.is_empty(), "no usac-sync thread");
        for thread in threads {
            assert!(Command::new("taskset").args(["-p", "1", &thread.to_string()]).output().unwrap().status.success());
        }
        let me = std::process::id().to_string();
        assert!(Command::new("taskset").args(["-p", "2", &me]).output().unwrap().status.success());
        Starved(
            Command::new("chrt")
                .args(["-f", "50", "taskset", "-c", "0", "sh", "-c", "while :; do :; done"])
                .spawn()
                .expect("start the busy loop"),
        )
    }
}

impl Drop for Starved {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The process ids of the calls' sync threads (`usac-sync`) now.
pub fn sync_threads() -> Vec<i32> {
    procfs::process::all_processes()
        .expect("list /proc")
        .flatten()
        .filter(|p| p.stat().is_ok_and(|s| s.comm == "usac-sync"))
        .map(|p| p.pid())
        .collect()
}

/// The tasks in uninterruptible sleep (state D) now, with their names.
pub fn tasks_in_d_state() -> Vec<String> {
    let mut stuck = Vec::new();
    for process in procfs::process::all_processes().expect("list /proc").flatten() {
        let Ok(tasks) = process.tasks() else { continue };
        for task in tasks.flatten() {
            if let Ok(stat) = task.stat() {
                if stat.state == 'D' {
                    stuck.push(format!("{} ({})", task.tid, stat.comm));
                }
            }
        }
    }
    stuck
}

/// True when some task waits in the kernel with every one of `frames` on
/// its stack (`/proc/PID/stack`, root only): the witness that a flush is
/// under way. A device's own in-flight count cannot be: device-mapper's
/// `delay` target holds its writes before they are counted.
pub fn a_task_waits_in(frames: &[&str]) -> bool {
    procfs::process::all_processes().expect("list /proc").flatten().any(|process| {
        fs::read_to_string(format!("/proc/{}/stack", process.pid()))
            .is_ok_and(|stack| frames.iter().all(|frame| stack.contains(frame)))
    })
}

/// The kernel log.
pub fn kernel_log() -> String {
    let out = Command::new("dmesg").output().expect("run dmesg");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A place in the kernel log: what was logged after it is what a test
/// caused. The log is never cleared (that would erase a WARNING or a lockdep
/// report before the runner reads it); the mark is the sequence number of
/// the last record logged before it.
pub struct LogMark {
    after: u64,
}

impl LogMark {
    pub fn now() -> LogMark {
        LogMark { after: kmsg_records().last().map_or(0, |(seq, _)| *seq) }
    }

    /// The messages logged since the mark, one per line.
    pub fn log(&self) -> String {
        kmsg_records().into_iter().filter(|(seq, _)| *seq > self.after).map(|(_, text)| text + "\n").collect()
    }

    /// How many lines logged since the mark contain `needle`.
    pub fn lines_with(&self, needle: &str) -> usize {
        self.log().lines().filter(|line| line.contains(needle)).count()
    }

    /// Waits until a message logged since the mark contains `needle`,
    /// looking every 100 ms (reading the log each millisecond would take a
    /// CPU from the sync).
    pub fn eventually_logged(&self, needle: &str) -> bool {
        eventually(ARRIVAL, || {
            sleep(Duration::from_millis(100));
            self.log().contains(needle)
        })
    }
}

/// Every record in the kernel's ring buffer, oldest first: its sequence
/// number and its text. `/dev/kmsg` gives one record per read, as
/// `PRIORITY,SEQ,TIME,FLAGS;TEXT` with continuation lines after it.
fn kmsg_records() -> Vec<(u64, String)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut kmsg =
        fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg").expect("open /dev/kmsg");
    let mut records = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match kmsg.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let record = String::from_utf8_lossy(&buf[..n]);
                let (prefix, text) = record.split_once(';').expect("a /dev/kmsg record has a ';'");
                let seq = prefix.split(',').nth(1).and_then(|s| s.parse().ok()).expect("a /dev/kmsg sequence number");
                let text = text.lines().next().unwrap_or("").to_string();
                records.push((seq, text));
            }
            // Overwritten while read: the next read gives the oldest left.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("read /dev/kmsg: {e}"),
        }
    }
    records
}
