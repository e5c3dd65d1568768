//! Device errors on B (issue "real disks"): a full disk, a read-only
//! remount, a device that fails every I/O. The call stays in, A is never
//! harmed, B never shows a partial file, and the kernel log says so once
//! rather than once per attempt.

use guest_tests::disk::{Disk, Fs};
use guest_tests::{arrives, assert_mirrored, eventually, LogMark, Scratch, Syncer, ARRIVAL, TEMP_PREFIX};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::Duration;

/// 1 MiB of content of its own for the file number `i`.
fn megabyte(i: u64) -> Vec<u8> {
    let mut content = vec![0; 1 << 20];
    Xoshiro256PlusPlus::seed_from_u64(i).fill(&mut content[..]);
    content
}

fn holds_temp_names(root: &Path) -> bool {
    fs::read_dir(root).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
}

#[test]
fn files_that_do_not_fit_on_b_stay_whole_on_a_and_arrive_once_space_is_freed() {
    let s = Scratch::new("enospc");
    let (a, staging) = (s.dir("a"), s.dir("staging"));
    let disk = Disk::new(Fs::Ext4, 16);
    let b = disk.side("b");
    let log_mark = LogMark::now();
    let mut sync = Syncer::start(&a, &b);
    // 40 MiB for a disk of 16: written beside A and renamed in, so that
    // the sync never reads one half written.
    let name = |i: u64| format!("f{i:02}");
    for i in 0..40 {
        fs::write(staging.join(name(i)), megabyte(i)).unwrap();
        fs::rename(staging.join(name(i)), a.join(name(i))).unwrap();
    }
    assert!(log_mark.eventually_logged("error -28"), "no ENOSPC reported:\n{}", log_mark.log());
    sync.wait_in_call(ARRIVAL);
    for i in 0..40 {
        assert!(fs::read(a.join(name(i))).unwrap() == megabyte(i), "A's {} changed", name(i));
    }
    // A copy is either whole under its name or a temporary one, which
    // goes (retries make new ones for a moment).
    for entry in fs::read_dir(&b).unwrap().flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        if file.starts_with(TEMP_PREFIX) {
            continue;
        }
        let i = (0..40).find(|&i| name(i) == file).unwrap_or_else(|| panic!("B holds a stranger: {file:?}"));
        assert!(fs::read(entry.path()).unwrap() == megabyte(i), "B's {file} is not A's");
    }
    assert!(eventually(ARRIVAL, || !holds_temp_names(&b)), "temporary names stay on B");

    // Space again: the names that failed are retried without a new event.
    for i in 0..30 {
        fs::remove_file(a.join(name(i))).unwrap();
    }
    let listed = |root: &Path| {
        let mut names: Vec<String> =
            fs::read_dir(root).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    };
    let want: Vec<String> = (30..40).map(name).collect();
    assert!(eventually(ARRIVAL, || listed(&b) == want), "B holds {:?}", listed(&b));
    assert_mirrored(&a, &b);
    sync.stop();
}

#[test]
fn a_read_only_b_is_reported_once_and_caught_up_after_it_is_writable_again() {
    let s = Scratch::new("erofs");
    let a = s.dir("a");
    let disk = Disk::new(Fs::Ext4, 64);
    let b = disk.side("b");
    let log_mark = LogMark::now();
    let mut sync = Syncer::start(&a, &b);
    disk.remount("ro");
    let content = |i: usize| format!("written while B was read-only: {i}");
    for i in 0..5 {
        fs::write(a.join(format!("f{i}")), content(i)).unwrap();
    }
    assert!(log_mark.eventually_logged("B is read-only"), "nothing said of the read-only B:\n{}", log_mark.log());
    // Time for retries, which must not say it again.
    sleep(Duration::from_secs(3));
    sync.wait_in_call(ARRIVAL);
    assert_eq!(log_mark.lines_with("B is read-only"), 1, "{}", log_mark.log());

    // No new event on A: the sync retries by itself.
    disk.remount("rw");
    for i in 0..5 {
        assert!(arrives(&b.join(format!("f{i}")), content(i).as_bytes()), "f{i} did not arrive");
    }
    assert_mirrored(&a, &b);
    sync.stop();
}

#[test]
fn a_b_failing_every_io_leaves_a_intact_and_the_call_answering_sigint() {
    let s = Scratch::new("eio");
    let a = s.dir("a");
    let disk = Disk::on_dm(Fs::Ext4, 64);
    let b = disk.side("b");
    s.file("a/pre", b"mirrored before the device failed");
    let mut sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("pre"), b"mirrored before the device failed"), "pre did not arrive");
    let log_mark = LogMark::now();
    disk.load_table(&disk.error_table());
    let mut written = vec![("pre".to_string(), b"changed after the device failed".to_vec())];
    written.extend((0..5).map(|i| (format!("f{i}"), format!("new after the device failed: {i}").into_bytes())));
    for (name, content) in &written {
        fs::write(a.join(name), content).unwrap();
    }
    // Time for a few attempts and the back-offs between them.
    sleep(Duration::from_secs(5));
    sync.wait_in_call(ARRIVAL);
    for (name, content) in &written {
        assert_eq!(&fs::read(a.join(name)).unwrap(), content, "A's {name} changed");
    }
    let log = log_mark.log();
    for (name, _) in &written {
        let said = log.lines().filter(|l| l.contains(&format!("cannot sync \"{name}\""))).count();
        assert!(said <= 1, "{name} reported {said} times:\n{log}");
    }
    // Said per name, or once for all when ext4 turned read-only after the
    // failed journal writes (the retry is proved by the read-error test).
    let told = log.lines().filter(|l| l.contains("cannot sync") || l.contains("dir_B is read-only")).count();
    assert!(told >= 1, "the failing device was never said:\n{log}");
    sync.stop_within(Duration::from_secs(2));
}

/// A source file whose blocks cannot be read (EIO on A's device) is said
/// once, retried after a back-off, and arrives once the device reads
/// again: the documented retry, with no second message.
#[test]
fn a_file_that_cannot_be_read_is_said_once_and_arrives_once_its_device_reads_again() {
    let s = Scratch::new("eio-read");
    let b = s.dir("b");
    let disk = Disk::on_dm(Fs::Ext4, 64);
    let a = disk.side("a");
    let content = megabyte(7);
    fs::write(a.join("f"), &content).unwrap();
    disk.sync();
    disk.load_table(&disk.table_failing_blocks_of(&a.join("f")));
    // Read from the device from now on, not from the page cache.
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    assert!(fs::read(a.join("f")).is_err(), "A/f can still be read: the test proves nothing");
    let log = LogMark::now();
    let sync = Syncer::start(&a, &b);
    let said = "cannot sync \"f\"";
    assert!(log.eventually_logged(said), "the read error was not said: {}", log.log());
    // Several retries (0.5, 1, 2 s apart) while the device still fails.
    sleep(Duration::from_secs(4));
    assert!(!b.join("f").exists(), "B/f arrived from a device that cannot be read");
    disk.load_table(&disk.linear_table());
    assert!(arrives(&b.join("f"), &content), "A/f did not arrive once its device read again");
    assert_eq!(log.lines_with(said), 1, "not said exactly once: {}", log.log());
    sync.stop();
}
