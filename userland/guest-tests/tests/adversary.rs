//! A hostile user next to a live call (issue "Hardening"): for two minutes
//! (`RTS_ADVERSARY_SECS`), with a fixed seed, user 65534 does what a shell
//! allows in a directory it shares with the caller (user 1000): extreme
//! times, setuid bits, FIFOs and sockets renamed over files, symlink swaps
//! of directories, hard links to files outside the tree, renames over the
//! roots, `chmod 000` on subtrees, 255-byte names, paths near PATH_MAX,
//! names that are not UTF-8, and files the caller may not read. Afterwards
//! the kernel log is clean (the runner checks it), the call still answers
//! SIGINT within 100 ms, a sentinel tree outside both roots is unchanged,
//! and no content the caller could not read reached B.

use guest_tests::{tree, Scratch, Syncer};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SEED: u64 = 0xad7e_5a41;
const CALLER: u32 = 1000;
const ADVERSARY: u32 = 65534;
/// What only files the caller may not read hold.
const SECRET: &str = "SECRET-";
/// Set in the adversary's own process, which runs this same test.
const ROLE: &str = "RTS_ADVERSARY_IN";

struct Rng(Xoshiro256PlusPlus);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n)
    }

    fn name(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", self.below(6))
    }
}

/// Times a file system may hold and a careless sync could overflow on.
const EXTREME_TIMES: [i64; 6] = [9_300_000_000, -2_000_000_000, 253_402_300_799, i64::MAX / 2, i64::MIN / 2, 0];

fn set_mtime(path: &Path, secs: i64) {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return };
    let times = [libc::timespec { tv_sec: secs, tv_nsec: 0 }; 2];
    // SAFETY: a NUL-terminated path and two timespecs.
    unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
}

/// One random operation in the shared tree `a`, as the adversary. Secret
/// files (names `s…`, mode 0600 from their creation) are never made
/// readable: renames keep the prefix, chmod leaves them alone.
fn random_operation(rng: &mut Rng, a: &Path, outside: &Path, n: u64) {
    let dirs = ["", "d0", "d0/e", "d1"];
    let dir = a.join(dirs[rng.below(dirs.len() as u64) as usize]);
    let prefix = if rng.below(4) == 0 { "s" } else { "f" };
    let name = dir.join(rng.name(prefix));
    let other = a.join(dirs[rng.below(dirs.len() as u64) as usize]).join(rng.name(prefix));
    // Made beside the roots: a rename over a root comes from there.
    let scratch = a.parent().unwrap().join(format!(".adv{n}"));
    // Failures are part of the game: a name may be missing, or a directory.
    let _ = match rng.below(16) {
        0..=2 => fs::create_dir_all(&dir).and_then(|()| {
            let mode = if prefix == "s" { 0o600 } else { 0o644 };
            let body = if prefix == "s" { format!("{SECRET}{n}") } else { format!("open {n}") };
            write_new(&name, mode, body.as_bytes())
        }),
        3 => {
            set_mtime(&name, EXTREME_TIMES[rng.below(EXTREME_TIMES.len() as u64) as usize]);
            Ok(())
        }
        4 if prefix == "f" => fs::set_permissions(
            &name,
            fs::Permissions::from_mode([0o6755, 0o4711, 0o2755, 0o644][rng.below(4) as usize]),
        ),
        5 => guest_tests::mkfifo(&scratch).and_then(|()| fs::rename(&scratch, &name)),
        6 => UnixListener::bind(&scratch).and_then(|_| fs::rename(&scratch, &name)),
        // A directory swapped for a symlink out of the tree, and back.
        7 => {
            let d = a.join("d0");
            fs::rename(&d, a.join("d0.away"))
                .and_then(|()| symlink(outside, &d))
                .and_then(|()| {
                    std::thread::sleep(Duration::from_millis(rng.below(20)));
                    fs::remove_file(&d)
                })
                .and_then(|()| fs::rename(a.join("d0.away"), &d))
        }
        8 => fs::hard_link(outside.join("linked"), &name),
        9 => fs::rename(&name, &other),
        10 => {
            // chmod 000 on a subtree for a moment.
            let d = a.join("d1");
            fs::create_dir_all(&d).and_then(|()| fs::set_permissions(&d, fs::Permissions::from_mode(0o000))).and_then(
                |()| {
                    std::thread::sleep(Duration::from_millis(rng.below(50)));
                    fs::set_permissions(&d, fs::Permissions::from_mode(0o777))
                },
            )
        }
        11 => {
            // 255 bytes, written on both sides' names at once by the next
            // rounds: the conflict copy must be shortened.
            let long = format!("{prefix}{}", "x".repeat(254));
            fs::create_dir_all(&dir)
                .and_then(|()| write_new(&dir.join(long), 0o644, format!("open long {n}").as_bytes()))
        }
        12 => deep_path(a, n),
        13 => fs::create_dir_all(&dir).and_then(|()| {
            let raw = [b'f', 0xff, 0xfe, b'0' + (n % 3) as u8];
            write_new(&dir.join(OsStr::from_bytes(&raw)), 0o644, format!("open raw {n}").as_bytes())
        }),
        // A rename over a root: refused while it holds anything.
        14 => fs::create_dir_all(&scratch).and_then(|()| fs::rename(&scratch, a)),
        _ => fs::remove_dir_all(&dir),
    };
    let _ = fs::remove_dir(&scratch);
    let _ = fs::remove_file(&scratch);
}

/// Writes `body` to `path`, created with `mode` if new; a FIFO renamed
/// over the name refuses (no reader) instead of blocking.
fn write_new(path: &Path, mode: u32, body: &[u8]) -> std::io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    std::io::Write::write_all(&mut f, body)
}

/// Directories of long names until the path nears PATH_MAX.
fn deep_path(a: &Path, n: u64) -> std::io::Result<()> {
    let mut path = a.join("deep");
    let part = "p".repeat(200);
    while path.as_os_str().len() + part.len() + 1 < 4000 {
        path.push(&part);
    }
    fs::create_dir_all(&path)?;
    write_new(&path.join(format!("f{}", n % 2)), 0o644, b"open deep")
}

/// The adversary's process: operations until the deadline.
fn adversary(a: &Path, outside: &Path, secs: u64) {
    let mut rng = Rng(Xoshiro256PlusPlus::seed_from_u64(SEED));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut n = 0;
    while Instant::now() < deadline {
        random_operation(&mut rng, a, outside, n);
        n += 1;
    }
    println!("METRIC adversary: {n} operations in {secs} s, seed {SEED:#x}");
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

#[test]
fn two_minutes_of_a_hostile_user_next_to_a_live_call() {
    if let Ok(dirs) = std::env::var(ROLE) {
        let (a, outside) = dirs.split_once('\n').unwrap();
        let secs = std::env::var("RTS_ADVERSARY_SECS").map_or(120, |s| s.parse().unwrap());
        return adversary(Path::new(a), Path::new(outside), secs);
    }
    let s = Scratch::new("adversary");
    // The adversary may rename over the roots.
    fs::set_permissions(&s.root, fs::Permissions::from_mode(0o777)).unwrap();
    // The caller's pair; A is shared with the adversary.
    let (a, b) = (s.dir("a"), s.dir("b"));
    chown(&a, CALLER);
    chown(&b, CALLER);
    // Shared as /tmp is (sticky): the adversary's renames over the root
    // meet a file it may not remove, as in any directory in use.
    fs::set_permissions(&a, fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(a.join("keep"), "the caller's").unwrap();
    chown(&a.join("keep"), CALLER);
    // The sentinel: the caller's files outside both roots, which the
    // adversary may link and point to from inside, but not change; the
    // caller's call could, by writing through a link.
    let outside = s.dir("outside");
    fs::write(outside.join("linked"), "sentinel linked").unwrap();
    fs::write(outside.join("target"), "sentinel target").unwrap();
    for p in [&outside, &outside.join("linked"), &outside.join("target")] {
        chown(p, CALLER);
    }
    let sentinel = tree(&outside);

    let start = || {
        let mut cli = Command::new("setpriv");
        cli.args([format!("--reuid={CALLER}"), format!("--regid={CALLER}"), "--clear-groups".into()]);
        Syncer::start_with(cli, &a, &b)
    };
    let mut sync = start();
    let mut adversary = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "two_minutes_of_a_hostile_user_next_to_a_live_call", "--nocapture", "--test-threads=1"])
        .env(ROLE, format!("{}\n{}", a.display(), outside.display()))
        .uid(ADVERSARY)
        .gid(ADVERSARY)
        .spawn()
        .expect("spawn the adversary");
    let mut restarts = 0;
    loop {
        if let Some(status) = adversary.try_wait().unwrap() {
            assert!(status.success(), "the adversary failed: {status:?}");
            break;
        }
        // A rename over a root ends the call with ENOENT (exit 1): the
        // caller starts it again on the directory now there, once an
        // administrator gave it back to the caller.
        if let Some(status) = sync.wait_exit(Duration::from_millis(100)).unwrap() {
            let stderr = sync.stderr();
            assert_eq!(status.code(), Some(1), "the call ended: {stderr}");
            chown(&a, CALLER);
            fs::set_permissions(&a, fs::Permissions::from_mode(0o1777)).unwrap();
            restarts += 1;
            sync = start();
        }
    }
    println!("METRIC adversary: call restarted {restarts} times after a rename over its root");
    sync.stop_within(Duration::from_millis(100));
    assert_eq!(tree(&outside), sentinel, "the sentinel outside both roots changed");
    for (rel, content) in tree(&b) {
        assert!(
            !String::from_utf8_lossy(&content).contains(SECRET),
            "B holds {rel:?}, which the caller could not read in A"
        );
    }
}
