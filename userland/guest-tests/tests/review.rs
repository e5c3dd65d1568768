//! The defects a review of the engine found by reading (issue "Ten
//! defects found by reading the engine"): each test fails on the kernel
//! before the fix, for the reason it names.

use guest_tests::disk::{Disk, Fs};
use guest_tests::{arrives, assert_mirrored, eventually, gone, kernel_log, pair, Syncer, ARRIVAL, BASE_FILE};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

fn sh(script: &str) {
    let status = Command::new("sh").args(["-c", script]).status().expect("run sh");
    assert!(status.success(), "{script}");
}

/// How many lines of the kernel log hold `needle` (the runner empties the
/// log before each test).
fn logged(needle: &str) -> usize {
    kernel_log().lines().filter(|line| line.contains(needle)).count()
}

/// Writes `len` bytes of a pattern to `path`, a MiB at a time.
fn write_big(path: &Path, len: usize) {
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let mut file = fs::File::create(path).unwrap();
    for _ in 0..len >> 20 {
        file.write_all(&chunk).unwrap();
    }
}

fn append(path: &Path, bytes: &[u8]) {
    OpenOptions::new().append(true).open(path).unwrap().write_all(bytes).unwrap();
}

/// The sync's temporary name in `dir`, if a copy is under way there.
fn temp_in(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with(guest_tests::TEMP_PREFIX))
        .map(|e| e.path())
}

fn copy_under_way(dir: &Path) -> bool {
    eventually(ARRIVAL, || temp_in(dir).is_some())
}

/// Size and last eight bytes of every regular file in `dir` whose name
/// starts with `stem`: what tells the versions of a large file apart.
fn versions(dir: &Path, stem: &str) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(stem) || name.starts_with(guest_tests::TEMP_PREFIX) {
            continue;
        }
        let Ok(file) = fs::File::open(entry.path()) else { continue };
        let len = file.metadata().unwrap().len();
        let mut tail = vec![0; 8.min(len as usize)];
        let at = len - tail.len() as u64;
        if file.read_exact_at(&mut tail, at).is_ok() {
            out.push((len, tail));
        }
    }
    out.sort();
    out
}

fn ends_with(tail: &[u8], end: &[u8]) -> bool {
    tail.ends_with(end)
}

/// Defect 1: A writer that opens the destination while a copy is in flight: what
/// it writes after the copy would have landed must survive, in the file or
/// in a conflict copy, on both sides.
#[test]
fn a_write_through_a_descriptor_opened_on_b_during_a_copy_is_kept() {
    let (_s, a, b) = pair("write-during-copy");
    let len = 128 << 20;
    write_big(&a.join("big"), len);
    let sync = Syncer::start(&a, &b);
    assert!(eventually(ARRIVAL * 3, || versions(&b, "big") == versions(&a, "big") && temp_in(&b).is_none()));
    append(&a.join("big"), b"APPEND");
    assert!(copy_under_way(&b), "no copy of the appended file began");
    let mut writer = OpenOptions::new().append(true).open(b.join("big")).unwrap();
    assert!(temp_in(&b).is_some(), "the copy ended before the writer opened B/big: the test proves nothing");
    assert!(eventually(ARRIVAL * 3, || temp_in(&b).is_none()), "the copy never ended");
    writer.write_all(b"X").unwrap();
    drop(writer);
    let want_a = (len as u64 + 6, b"APPEND".as_slice());
    let want_b = (len as u64 + 1, b"X".as_slice());
    for side in [&a, &b] {
        let both = || {
            let v = versions(side, "big");
            v.iter().any(|(l, t)| *l == want_a.0 && ends_with(t, want_a.1))
                && v.iter().any(|(l, t)| *l == want_b.0 && ends_with(t, want_b.1))
        };
        assert!(eventually(ARRIVAL * 3, both), "a version was lost on {side:?}: {:?}", versions(side, "big"));
    }
    sync.stop();
}

/// Defect 2: A file rewritten in place (same size, its mtime set back) while its
/// copy runs: the base must record the version that was copied, so the
/// rewrite still counts as a change and reaches B.
#[test]
fn a_same_size_rewrite_of_the_source_during_its_copy_is_mirrored() {
    let (_s, a, b) = pair("rewrite-during-copy");
    let len = 128 << 20;
    let big = a.join("big");
    write_big(&big, len);
    let sync = Syncer::start(&a, &b);
    assert!(eventually(ARRIVAL * 3, || versions(&b, "big") == versions(&a, "big") && temp_in(&b).is_none()));
    append(&big, b"APPEND");
    let mtime = fs::metadata(&big).unwrap().modified().unwrap();
    assert!(copy_under_way(&b), "no copy began");
    let file = OpenOptions::new().write(true).open(&big).unwrap();
    file.write_all_at(b"REWRITE!", len as u64 - 2).unwrap();
    file.set_modified(mtime).unwrap();
    drop(file);
    assert!(temp_in(&b).is_some(), "the copy ended before the rewrite: the test proves nothing");
    assert!(
        eventually(ARRIVAL * 3, || versions(&b, "big") == vec![(len as u64 + 6, b"REWRITE!".to_vec())]),
        "B kept the version from before the rewrite: {:?}",
        versions(&b, "big")
    );
    assert_mirrored(&a, &b);
    sync.stop();
}

/// Defect 3: A close without a write (a reader that opened read-write) is no
/// change: a delete on the other side meanwhile holds.
#[test]
fn a_close_without_a_write_does_not_bring_a_delete_back() {
    let (s, a, b) = pair("close-no-write");
    s.file("a/f", b"content");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("f"), b"content"));
    let opened = OpenOptions::new().append(true).open(a.join("f")).unwrap();
    fs::remove_file(b.join("f")).unwrap();
    sleep(Duration::from_secs(1));
    drop(opened);
    assert!(gone(&a.join("f")), "the delete on B was not mirrored to A");
    // Long enough for a late wrong copy back.
    sleep(Duration::from_secs(2));
    assert!(!b.join("f").exists(), "the deleted file came back to B");
    assert!(!a.join("f").exists(), "the deleted file came back to A");
    sync.stop();
}

/// Defect 4: Content from a side that keeps no modes (a vfat stick anyone may
/// write) never lands in a setuid file.
#[test]
fn a_copy_from_vfat_never_keeps_a_setuid_bit() {
    let disk = Disk::new(Fs::Vfat, 64);
    let a = disk.side("a");
    let (_s, _, b) = pair("setuid-from-vfat");
    fs::write(b.join("tool"), b"trusted").unwrap();
    fs::set_permissions(b.join("tool"), fs::Permissions::from_mode(0o4755)).unwrap();
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&a.join("tool"), b"trusted"));
    fs::write(a.join("tool"), b"anyone's bytes").unwrap();
    assert!(arrives(&b.join("tool"), b"anyone's bytes"));
    let mode = fs::metadata(b.join("tool")).unwrap().mode() & 0o7777;
    assert_eq!(mode & 0o6000, 0, "the copy is setuid or setgid: {mode:o}");
    sync.stop();
}

/// A pair mirrored once, with `gone` deleted from B while no call runs.
fn pair_with_a_delete_to_mirror(name: &str) -> (guest_tests::Scratch, PathBuf, PathBuf) {
    let (s, a, b) = pair(name);
    s.file("a/keep", b"kept");
    s.file("a/gone", b"deleted on B");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("gone"), b"deleted on B"));
    assert!(arrives(&b.join("keep"), b"kept"));
    sync.stop();
    assert!(a.join(BASE_FILE).exists(), "no base was saved");
    fs::remove_file(b.join("gone")).unwrap();
    (s, a, b)
}

/// Starts `a`/`b` and checks that the base was refused for `why`: a union,
/// the delete undone, and one message.
fn start_refuses_the_base(a: &Path, b: &Path, why: &str) {
    let log = guest_tests::LogMark::now();
    let sync = Syncer::start(a, b);
    assert!(arrives(&b.join("gone"), b"deleted on B"), "a base it must not use deleted A/gone");
    assert!(a.join("gone").exists());
    let said = format!("is not usable ({why})");
    assert_eq!(log.lines_with(&said), 1, "no single message: {}", log.log());
    sync.stop();
}

/// The base `saved` with its records replaced by `names` made-up ones
/// (`gone/0000000`, ...), checksummed as the call would.
fn forged_base(saved: &[u8], names: usize) -> Vec<u8> {
    let mut base = saved[..plan::record::HEADER_LEN].to_vec();
    let entry = plan::Entry {
        kind: plan::Kind::File,
        size: 1,
        mtime: plan::Time { secs: 1_600_000_000, nanos: 0 },
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    for i in 0..names {
        let path = format!("gone/{i:07}");
        let len = plan::record::record_len(path.len(), plan::Kind::File, 0).unwrap();
        let at = base.len();
        base.resize(at + len, 0);
        plan::record::put_record(&mut base[at..], path.as_bytes(), &entry, &[1, 2], &[0, 0], b"");
    }
    let sum = plan::record::checksum(&base);
    base.extend_from_slice(&sum.to_le_bytes());
    base
}

/// Defect 5: A base with more names than both trees have inodes in use, or
/// more bytes than that many names need, is not used: a forged one cannot
/// make the start take memory beyond the trees'. A union start, said once.
#[test]
fn a_base_larger_than_the_trees_is_not_used() {
    let s = guest_tests::Scratch::new("base-larger");
    let (a, b) = (s.dir("a"), s.dir("b"));
    // File systems of their own: a handful of inodes in use.
    guest_tests::mount_tmpfs(&a);
    guest_tests::mount_tmpfs(&b);
    // 20 names fit in the bytes allowed and are refused while decoding;
    // 1000 are refused by the file's size.
    for forged in [20, 1000] {
        fs::write(a.join("keep"), b"kept").unwrap();
        fs::write(a.join("gone"), b"deleted on B").unwrap();
        let sync = Syncer::start(&a, &b);
        assert!(arrives(&b.join("gone"), b"deleted on B"));
        sync.stop();
        fs::remove_file(b.join("gone")).unwrap();
        let saved = fs::read(a.join(BASE_FILE)).unwrap();
        fs::write(a.join(BASE_FILE), forged_base(&saved, forged)).unwrap();
        start_refuses_the_base(&a, &b, "LargerThanTheTrees");
    }
    for side in [&a, &b] {
        guest_tests::umount(side, false).unwrap();
    }
}

/// Defect 5: A base file another user owns is not trusted: a union start.
#[test]
fn a_base_owned_by_another_user_is_not_trusted() {
    let (_s, a, b) = pair_with_a_delete_to_mirror("base-other-owner");
    std::os::unix::fs::chown(a.join(BASE_FILE), Some(65534), Some(65534)).unwrap();
    start_refuses_the_base(&a, &b, "Untrusted");
}

/// Defect 5: Nor one that others may write.
#[test]
fn a_base_others_may_write_is_not_trusted() {
    let (_s, a, b) = pair_with_a_delete_to_mirror("base-others-write");
    fs::set_permissions(a.join(BASE_FILE), fs::Permissions::from_mode(0o666)).unwrap();
    start_refuses_the_base(&a, &b, "Untrusted");
}

/// Defect 5: The trusted base still works: the same delete is mirrored.
#[test]
fn the_callers_own_base_is_trusted() {
    let (_s, a, b) = pair_with_a_delete_to_mirror("base-trusted");
    let sync = Syncer::start(&a, &b);
    assert!(gone(&a.join("gone")), "the delete made while no call ran was not mirrored");
    assert!(b.join("keep").exists());
    sync.stop();
}

/// Defect 6: A write lease on one file (any owner can take one) does not stall
/// the mirroring of the others.
#[test]
fn a_write_lease_on_one_file_does_not_stall_the_others() {
    let (s, a, b) = pair("lease");
    s.file("a/f", b"leased");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("f"), b"leased"));
    // SAFETY: ignoring SIGIO, the lease-break signal, in this test process.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    let lease = fs::File::open(a.join("f")).unwrap();
    // SAFETY: a plain fcntl on our own descriptor.
    let ret = unsafe { libc::fcntl(lease.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
    assert_eq!(ret, 0, "F_SETLEASE: {}", std::io::Error::last_os_error());
    sh(&format!("touch {} {}", a.join("f").display(), a.join("g").display()));
    // The lease holder ignores the break: a blocking open waits the whole
    // lease-break-time (45 s).
    assert!(arrives(&b.join("g"), b""), "A/g waited behind the leased A/f");
    drop(lease);
    let want = fs::metadata(a.join("f")).unwrap().mtime_nsec();
    assert!(
        eventually(ARRIVAL, || fs::metadata(b.join("f")).is_ok_and(|m| m.mtime_nsec() == want)),
        "A/f's change never arrived once the lease was gone"
    );
    sync.stop();
}

/// Defect 6: A FIFO renamed over the winner's name while `keep_both` still
/// copies the loser's version (which takes long: it is large) is not opened
/// as the file it replaced: the sync does not block waiting for a writer,
/// the loser's version is kept on both sides, and the FIFO is said as not
/// mirrored.
#[test]
fn a_fifo_renamed_over_a_conflicts_winner_during_keep_both_never_blocks_the_sync() {
    let (s, a, b) = pair("fifo-keep-both");
    s.file("a/f", b"v0");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("f"), b"v0"));
    sync.stop();
    // Both sides change f while no call runs; A's version is the newer.
    write_big(&b.join("f"), 64 << 20);
    sleep(Duration::from_millis(20));
    fs::write(a.join("f"), b"winner").unwrap();
    let sync = Syncer::start(&a, &b);
    // B's version moved aside and is on its way to A: next comes the copy
    // of A's version, looked up afresh.
    assert!(copy_under_way(&a), "the loser's version was never copied");
    let fifo = s.root.join("fifo");
    guest_tests::mkfifo(&fifo).unwrap();
    let log = guest_tests::LogMark::now();
    fs::rename(&fifo, a.join("f")).unwrap();
    assert!(temp_in(&a).is_some(), "the loser's copy had ended before the FIFO came: the test proves nothing");
    // FIFOs are not mirrored: said, and B keeps no version under the name.
    assert!(
        log.eventually_logged("\"f\" not mirrored: A holds a FIFO, socket or device node there"),
        "the FIFO was not said: {}",
        log.log()
    );
    // By their metadata only: opening the FIFO would wait for a writer.
    let big = |dir: &Path| {
        fs::read_dir(dir).unwrap().flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("f")
                && !name.starts_with(guest_tests::TEMP_PREFIX)
                && e.metadata().is_ok_and(|m| m.is_file() && m.len() == 64 << 20)
        })
    };
    assert!(eventually(ARRIVAL, || big(&a) && big(&b)), "B's version was not kept on both sides");
    assert!(!b.join("f").exists(), "B holds a version of what A replaced by a FIFO");
    fs::write(a.join("sentinel"), b"x").unwrap();
    assert!(arrives(&b.join("sentinel"), b"x"), "the sync thread is stuck");
    sync.stop_within(Duration::from_millis(100));
}

/// Defect 7: SIGINT while a base of 500,000 names loads ends the call within
/// 100 ms.
#[test]
fn sigint_while_a_base_of_500000_names_loads_ends_within_100ms() {
    let (_s, _, b) = pair("big-base");
    // On btrfs, which counts no inodes: nothing bounds the base by the
    // trees (see a_base_larger_than_the_trees_is_not_used).
    let disk = Disk::new(Fs::Btrfs, 256);
    let a = disk.side("a");
    fs::write(a.join("f"), b"f").unwrap();
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("f"), b"f"));
    sync.stop();
    // The last save ends after the call, flushing btrfs.
    assert!(eventually(ARRIVAL, || a.join(BASE_FILE).exists()), "no base was saved");
    let saved = fs::read(a.join(BASE_FILE)).unwrap();
    fs::write(a.join(BASE_FILE), forged_base(&saved, 500_000)).unwrap();
    let sync = Syncer::start_entering(&a, &b);
    sleep(Duration::from_millis(300));
    // Still loading: in the call (the CLI said so before it), running rather
    // than blocked in it, and the interlock's message (which ends the look at
    // side A) not yet given.
    assert!(sync.running(), "the base loaded within 300 ms: the test proves nothing");
    assert_eq!(logged("remembered names are missing"), 0, "the base loaded within 300 ms: the test proves nothing");
    sync.stop_within(Duration::from_millis(100));
}

/// How much longer each write to [`slow_disk`] takes: a USB stick that
/// stalls, a network block device far away.
const SLOW_WRITE_MS: u32 = 1000;

/// ext4 on a device whose every write and flush takes [`SLOW_WRITE_MS`]
/// longer, with a side `b` on it.
fn slow_disk() -> (Disk, PathBuf) {
    let disk = Disk::on_dm(Fs::Ext4, 256);
    let b = disk.side("b");
    disk.load_table(&disk.delay_table(SLOW_WRITE_MS));
    (disk, b)
}

/// Defect 7: SIGINT while a copy's bytes go to a slow disk ends the call
/// within 100 ms (the flush goes on without the caller), and leaves no
/// temporary name; the next call brings the file.
#[test]
fn sigint_while_a_copy_flushes_to_a_slow_disk_ends_within_100ms() {
    let (_s, a, _) = pair("slow-copy");
    let (_disk, b) = slow_disk();
    let sync = Syncer::start(&a, &b);
    // In B's page cache at once, on its device seconds later.
    write_big(&a.join("f"), 32 << 20);
    let flushing = eventually(ARRIVAL, || {
        sleep(Duration::from_millis(10));
        temp_in(&b).is_some() && guest_tests::a_task_waits_in(&["usac", "ext4_sync_file"])
    });
    assert!(flushing, "never saw the copy's bytes on their way to the disk");
    sync.stop_within(Duration::from_millis(100));
    guest_tests::assert_no_temp_names(&b);
    assert!(!b.join("f").exists(), "the copy was put in place after the call returned");
    let sync = Syncer::start(&a, &b);
    assert!(eventually(ARRIVAL, || fs::metadata(b.join("f")).is_ok_and(|m| m.len() == 32 << 20)));
    assert_eq!(fs::read(b.join("f")).unwrap(), fs::read(a.join("f")).unwrap());
    sync.stop();
}

/// Defect 7: SIGKILL while the base's save flushes a slow disk ends the
/// call within 100 ms: the caller never waits for another device.
#[test]
fn sigkill_while_the_save_of_the_base_flushes_a_slow_disk_ends_within_100ms() {
    let (_s, a, _) = pair("slow-save");
    let (_disk, b) = slow_disk();
    let mut sync = Syncer::start(&a, &b);
    fs::write(a.join("f"), b"small").unwrap();
    assert!(arrives(&b.join("f"), b"small"));
    // The copy is on the disk and in place: the save comes next, and its
    // flush of B (the journal that holds the rename) waits for the disk.
    let saving = eventually(ARRIVAL, || {
        sleep(Duration::from_millis(10));
        guest_tests::a_task_waits_in(&["save_base", "sync_filesystem"])
    });
    assert!(saving, "never saw the save flush the slow disk");
    let sent = Instant::now();
    sync.signal(libc::SIGKILL);
    let status = sync.wait_exit(Duration::from_secs(20)).unwrap().expect("still running after SIGKILL");
    let took = sent.elapsed();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    assert!(took < Duration::from_millis(100), "SIGKILL took {took:?}");
}

/// Defect 7: a save of the base that keeps failing (dir_a is full) is tried
/// less and less often, since each try flushes both file systems; said once.
#[test]
fn a_save_that_keeps_failing_is_tried_less_and_less_often() {
    let s = guest_tests::Scratch::new("save-fails");
    let (a, b) = (s.dir("a"), s.dir("b"));
    sh(&format!("mount -t tmpfs -o size=1m tmpfs {}", a.display()));
    let sync = Syncer::start(&a, &b);
    fs::write(a.join("first"), b"first").unwrap();
    assert!(arrives(&b.join("first"), b"first"));
    assert!(eventually(ARRIVAL, || a.join(BASE_FILE).exists()), "the base was never saved");
    let log = guest_tests::LogMark::now();
    // Fills A: the filler is mirrored, and the base that records it no
    // longer fits.
    let mut filler = fs::File::create(a.join("filler")).unwrap();
    while filler.write_all(&[7u8; 4096]).is_ok() {}
    drop(filler);
    let filled = fs::metadata(a.join("filler")).unwrap().len();
    assert!(eventually(ARRIVAL, || fs::metadata(b.join("filler")).is_ok_and(|m| m.len() == filled)));
    let saves = guest_tests::Landings::watch_for(&a, libc::IN_CREATE);
    assert!(log.eventually_logged(BASE_FILE), "the failing save was not said: {}", log.log());
    let first = Instant::now();
    sleep(Duration::from_secs(8));
    let tries = saves.count_where(|name| name.starts_with(guest_tests::TEMP_PREFIX.as_bytes()));
    // Every second: 9 tries in 8 s. Backing off (1, 2, 4 s): 3.
    assert!((2..=4).contains(&tries), "{tries} tries to save in {:?}", first.elapsed());
    assert_eq!(log.lines_with(BASE_FILE), 1, "{}", log.log());
    sync.stop();
    guest_tests::umount(&a, false).unwrap();
}

/// Defect 8: A name the caller can no longer look up (another user's `chmod 700`
/// while no call ran) is skipped at start, not a failed start; and what
/// is below it on B is not deleted.
#[test]
fn a_directory_the_caller_can_no_longer_search_does_not_stop_the_start() {
    let (s, a, b) = pair("start-eacces");
    for side in [&a, &b] {
        std::os::unix::fs::chown(side, Some(65534), Some(65534)).unwrap();
    }
    s.dir("a/theirs");
    s.file("a/theirs/f", b"readable once");
    let sync = Syncer::start_as_nobody(&a, &b);
    assert!(arrives(&b.join("theirs/f"), b"readable once"));
    sync.stop();
    fs::set_permissions(a.join("theirs"), fs::Permissions::from_mode(0o700)).unwrap();
    let sync = Syncer::start_as_nobody(&a, &b);
    assert!(
        eventually(ARRIVAL, || kernel_log().contains("theirs/f")),
        "no message names the skipped name: {}",
        kernel_log()
    );
    s.file("a/new", b"still mirrored");
    assert!(arrives(&b.join("new"), b"still mirrored"));
    assert!(b.join("theirs/f").exists(), "B's copy under the unsearchable directory was deleted");
    sync.stop();
}

/// Defect 9: `truncate(2)` by path and `touch -m` are changes too.
#[test]
fn truncate_by_path_and_touch_m_are_mirrored_live() {
    let (s, a, b) = pair("truncate-touch");
    s.file("a/t", b"hello world");
    s.file("a/m", b"mtime only");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("t"), b"hello world"));
    assert!(arrives(&b.join("m"), b"mtime only"));
    let path = guest_tests::cstr(&a.join("t"));
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::truncate(path.as_ptr(), 5) }, 0);
    assert!(arrives(&b.join("t"), b"hello"), "truncate(2) was not mirrored");
    sh(&format!("touch -m -d @1500000000 {}", a.join("m").display()));
    assert!(
        eventually(ARRIVAL, || fs::metadata(b.join("m")).is_ok_and(|m| m.mtime() == 1_500_000_000)),
        "touch -m was not mirrored"
    );
    sync.stop();
}

/// Defect 9: A name whose other side stays open for writing waits for its close,
/// says so once, and is mirrored as soon as it is closed.
#[test]
fn a_name_open_for_writing_on_the_other_side_is_said_once_and_mirrored_on_close() {
    let (s, a, b) = pair("open-other-side");
    s.file("a/log", b"v1");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("log"), b"v1"));
    let writer = OpenOptions::new().append(true).open(b.join("log")).unwrap();
    fs::write(a.join("log"), b"v2 from A").unwrap();
    assert!(eventually(ARRIVAL, || logged("open for writing") > 0), "nothing says why log waits: {}", kernel_log());
    fs::write(a.join("log"), b"v3 from A").unwrap();
    sleep(Duration::from_secs(1));
    assert_eq!(fs::read(b.join("log")).unwrap(), b"v1", "copied over a file open for writing");
    assert_eq!(logged("open for writing"), 1, "said more than once: {}", kernel_log());
    drop(writer);
    assert!(arrives(&b.join("log"), b"v3 from A"), "not mirrored once closed");
    assert_mirrored(&a, &b);
    let names: Vec<_> = fs::read_dir(&b).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names.len(), 1, "a close without a write made a conflict: {names:?}");
    sync.stop();
}

/// Defect 10: A conflict on a long name keeps both versions under a shortened
/// conflict name (keeping the suffix and the extension), on both sides.
#[test]
fn a_conflict_on_a_name_of_244_bytes_keeps_both_versions() {
    let (s, a, b) = pair("long-conflict");
    let name = format!("{}.txt", "n".repeat(240));
    s.file(&format!("a/{name}"), b"version of A");
    s.file(&format!("b/{name}"), b"version of B, newer");
    sh(&format!("touch -d @1600000000 '{}'", a.join(&name).display()));
    let started = Instant::now();
    let sync = Syncer::start(&a, &b);
    for side in [&a, &b] {
        let kept = || {
            fs::read_dir(side).unwrap().flatten().any(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n != name
                    && n.len() <= 255
                    && n.starts_with("nnnn")
                    && n.contains(".txt.sync-conflict-")
                    && fs::read(e.path()).is_ok_and(|c| c == b"version of A")
            })
        };
        assert!(eventually(ARRIVAL, kept), "A's version was not kept on {side:?} ({:?})", started.elapsed());
        assert!(arrives(&side.join(&name), b"version of B, newer"));
    }
    assert_mirrored(&a, &b);
    sync.stop();
}
