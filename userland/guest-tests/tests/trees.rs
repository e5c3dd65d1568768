//! Whole trees and every way the call ends (issue "Whole trees").

use guest_tests::{
    arrives, assert_mirrored, eventually, gone, ino, mount_tmpfs, pair, umount, LogMark, Scratch, Starved, Syncer,
    ARRIVAL, BASE_FILE,
};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[test]
fn nested_creates_five_levels_deep() {
    let (_s, a, b) = pair("nested");
    let sync = Syncer::start(&a, &b);
    // mkdir -p and a file right away: created before any mark could exist.
    fs::create_dir_all(a.join("1/2/3/4/5")).unwrap();
    fs::write(a.join("1/2/3/4/5/deep"), b"five levels").unwrap();
    fs::create_dir_all(b.join("x/y")).unwrap();
    fs::write(b.join("x/y/z"), b"from b").unwrap();
    assert!(arrives(&b.join("1/2/3/4/5/deep"), b"five levels"));
    assert!(arrives(&a.join("x/y/z"), b"from b"));
    // The new directories are watched: later changes in them arrive too.
    fs::write(a.join("1/2/3/later"), b"later").unwrap();
    assert!(arrives(&b.join("1/2/3/later"), b"later"));
    assert_mirrored(&a, &b);
    sync.stop();
}

#[test]
fn a_renamed_file_is_renamed_not_copied() {
    let (s, a, b) = pair("rename-file");
    s.file("a/old", b"content");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("old"), b"content"));
    let before = ino(&b.join("old"));
    fs::rename(a.join("old"), a.join("new")).unwrap();
    assert!(arrives(&b.join("new"), b"content") && gone(&b.join("old")));
    assert_eq!(ino(&b.join("new")), before, "B's file was copied, not renamed");
    assert_mirrored(&a, &b);
    sync.stop();
}

#[test]
fn a_renamed_directory_of_1000_files_is_renamed_not_copied() {
    let (s, a, b) = pair("rename-dir");
    s.dir("a/src/inner");
    for i in 0..1000 {
        s.file(&format!("a/src/f{i:04}"), format!("{i}").as_bytes());
    }
    s.file("a/src/inner/x", b"x");
    s.dir("a/moved");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("src/inner/x"), b"x"));
    assert!(eventually(ARRIVAL, || fs::read_dir(b.join("src")).unwrap().count() == 1001));
    let (dir_before, file_before) = (ino(&b.join("src")), ino(&b.join("src/f0500")));
    // Across directories: from the root into a subdirectory.
    fs::rename(a.join("src"), a.join("moved/dst")).unwrap();
    assert!(arrives(&b.join("moved/dst/f0500"), b"500") && gone(&b.join("src")));
    assert_eq!(ino(&b.join("moved/dst")), dir_before, "the directory was copied");
    assert_eq!(ino(&b.join("moved/dst/f0500")), file_before, "its files were copied");
    // Still watched under the new name.
    fs::write(a.join("moved/dst/inner/after"), b"after").unwrap();
    assert!(arrives(&b.join("moved/dst/inner/after"), b"after"));
    assert_mirrored(&a, &b);
    sync.stop();
}

#[test]
fn moves_out_of_and_into_the_tree_are_delete_and_create() {
    let (s, a, b) = pair("move-out-in");
    let outside = s.dir("outside");
    s.file("a/leaving", b"bye");
    s.dir("outside/arriving");
    s.file("outside/arriving/f", b"hello");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("leaving"), b"bye"));
    fs::rename(a.join("leaving"), outside.join("left")).unwrap();
    assert!(gone(&b.join("leaving")));
    fs::rename(outside.join("arriving"), b.join("arrived")).unwrap();
    assert!(arrives(&a.join("arrived/f"), b"hello"));
    assert_mirrored(&a, &b);
    sync.stop();
}

#[test]
fn symlinks_modes_mtimes_and_hard_links() {
    let (s, a, b) = pair("kinds");
    let sync = Syncer::start(&a, &b);
    symlink("../../etc/passwd", a.join("link")).unwrap();
    assert!(eventually(ARRIVAL, || fs::read_link(b.join("link")).ok() == Some(PathBuf::from("../../etc/passwd"))));
    let f = s.file("a/file", b"data");
    fs::hard_link(&f, a.join("hard")).unwrap();
    assert!(arrives(&b.join("hard"), b"data") && arrives(&b.join("file"), b"data"));
    assert_ne!(ino(&b.join("hard")), ino(&b.join("file")), "hard links are separate files");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert!(eventually(ARRIVAL, || mode(&b.join("file")) == 0o640));
    let past = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options().write(true).open(&f).unwrap().set_modified(past).unwrap();
    assert!(eventually(ARRIVAL, || fs::metadata(b.join("file")).unwrap().modified().unwrap() == past));
    // FIFOs are skipped, said once, and the call goes on.
    let log_mark = guest_tests::LogMark::now();
    guest_tests::mkfifo(&a.join("fifo")).unwrap();
    s.file("a/after-fifo", b"still syncing");
    assert!(arrives(&b.join("after-fifo"), b"still syncing"));
    assert!(!b.join("fifo").exists());
    // Its mode changed: looked at again, said no more.
    fs::set_permissions(a.join("fifo"), fs::Permissions::from_mode(0o600)).unwrap();
    s.file("a/after-chmod", b"still syncing");
    assert!(arrives(&b.join("after-chmod"), b"still syncing"));
    let said = "\"fifo\" not mirrored: A holds a FIFO, socket or device node there";
    assert_eq!(log_mark.lines_with(said), 1, "{}", log_mark.log());
    assert_eq!(log_mark.lines_with("cannot sync"), 0, "{}", log_mark.log());
    sync.stop();
}

#[test]
fn rm_rf_of_1000_entries_is_mirrored() {
    let (s, a, b) = pair("rm-rf");
    for d in 0..10 {
        for f in 0..99 {
            s.dir(&format!("a/top/d{d}/sub"));
            s.file(&format!("a/top/d{d}/sub/f{f}"), b"x");
        }
    }
    let sync = Syncer::start(&a, &b);
    assert_mirrored(&a, &b);
    fs::remove_dir_all(a.join("top")).unwrap();
    assert!(gone(&b.join("top")));
    assert_mirrored(&a, &b);
    sync.stop();
}

/// The contents of the entries of `dir` whose names start with `prefix`,
/// sorted; an entry that vanished meanwhile reads as empty.
fn contents_of_names_starting(dir: &Path, prefix: &str) -> Vec<Vec<u8>> {
    let mut contents: Vec<Vec<u8>> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            e.file_name().to_string_lossy().starts_with(prefix).then(|| fs::read(e.path()).unwrap_or_default())
        })
        .collect();
    contents.sort();
    contents
}

#[test]
fn both_sides_writing_one_name_keeps_both_versions() {
    let (_s, a, b) = pair("conflict");
    fs::write(a.join("doc"), b"base").unwrap();
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("doc"), b"base"));
    // Stopped, the call mirrors nothing: both edits land in one window.
    sync.signal(libc::SIGSTOP);
    assert!(eventually(ARRIVAL, || sync.state() == 'T'));
    fs::write(a.join("doc"), b"edit on a").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    fs::write(b.join("doc"), b"newer edit on b").unwrap();
    sync.signal(libc::SIGCONT);
    assert!(arrives(&a.join("doc"), b"newer edit on b"), "the newer version did not win");
    let kept = |dir: &Path| contents_of_names_starting(dir, "doc.sync-conflict-");
    assert!(
        eventually(ARRIVAL, || kept(&a) == vec![b"edit on a".to_vec()] && kept(&b) == kept(&a)),
        "a: {:?} b: {:?}",
        kept(&a),
        kept(&b)
    );
    assert_mirrored(&a, &b);
    sync.stop();
}

#[test]
fn a_close_on_one_side_does_not_overwrite_a_writer_on_the_other() {
    let (_s, a, b) = pair("busy-other-side");
    fs::write(a.join("log"), b"base").unwrap();
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("log"), b"base"));
    // B's writer has the file open while A's new version is closed: copying
    // over it now would leave B's next writes in an unlinked inode.
    let mut writer_on_b = fs::OpenOptions::new().write(true).open(b.join("log")).unwrap();
    fs::write(a.join("log"), b"closed on a").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    writer_on_b.set_len(0).unwrap();
    std::io::Write::write_all(&mut writer_on_b, b"written on b meanwhile").unwrap();
    drop(writer_on_b);
    let versions = |dir: &Path| contents_of_names_starting(dir, "log");
    let both = vec![b"closed on a".to_vec(), b"written on b meanwhile".to_vec()];
    assert!(eventually(ARRIVAL, || versions(&a) == both && versions(&b) == both), "a: {:?}", versions(&a));
    assert_mirrored(&a, &b);
    sync.stop();
}

/// What a tree holds: every file's path, content and permission bits.
fn files_with_modes(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut files = BTreeMap::new();
    for dir in fs::read_dir(root).unwrap().flatten().filter(|e| e.file_type().unwrap().is_dir()) {
        for file in fs::read_dir(dir.path()).unwrap().flatten() {
            // A copy under way is not there yet: its temporary name, gone
            // by the time it is read, is not a file of the tree.
            let (Ok(meta), Ok(content)) = (file.metadata(), fs::read(file.path())) else { continue };
            let rel = file.path().strip_prefix(root).unwrap().to_path_buf();
            files.insert(rel, (content, meta.permissions().mode() & 0o777));
        }
    }
    files
}

/// The queue of 65,536 names overflows while the thread is starved, and
/// more directories lose events than are tracked one by one (64): the
/// whole tree is reconciled, which is said, and both sides end as the
/// operations alone say, deletes and rewrites included.
#[test]
fn events_lost_in_more_than_64_directories_reconcile_the_whole_tree() {
    const DIRS: usize = 100;
    const FILES: usize = 200;
    let (_s, a, b) = pair("overflow");
    let name = |d: usize, f: usize| PathBuf::from(format!("d{d:03}/f{f:03}"));
    let mut model = BTreeMap::new();
    for d in 0..DIRS {
        fs::create_dir(a.join(format!("d{d:03}"))).unwrap();
        for f in 0..FILES {
            fs::write(a.join(name(d, f)), b"v0").unwrap();
            fs::set_permissions(a.join(name(d, f)), fs::Permissions::from_mode(0o644)).unwrap();
            model.insert(name(d, f), (b"v0".to_vec(), 0o644));
        }
    }
    // Twins: the start agrees on every name and copies nothing.
    fs::remove_dir(&b).unwrap();
    assert!(Command::new("cp").arg("-a").arg(&a).arg(&b).status().unwrap().success());
    let sync = Syncer::start(&a, &b);
    assert!(eventually(ARRIVAL, || a.join(BASE_FILE).exists()), "the start never ended");
    let log = LogMark::now();
    let starved = Starved::sync_threads();
    // 100,000 changes, one directory after another, so that once the queue
    // is full every directory loses events.
    for round in 0..5 {
        for f in 0..FILES {
            for d in 0..DIRS {
                let rel = name(d, f);
                if round == 1 && f < 20 {
                    fs::remove_file(a.join(&rel)).unwrap();
                    model.remove(&rel);
                } else if round == 3 && f % 50 == 49 {
                    fs::write(a.join(&rel), b"v1").unwrap();
                    model.get_mut(&rel).unwrap().0 = b"v1".to_vec();
                } else if model.contains_key(&rel) {
                    let mode = if round % 2 == 0 { 0o600 } else { 0o640 };
                    fs::set_permissions(a.join(&rel), fs::Permissions::from_mode(mode)).unwrap();
                    model.get_mut(&rel).unwrap().1 = mode;
                }
            }
        }
    }
    drop(starved);
    let converged = eventually(ARRIVAL * 3, || files_with_modes(&b) == model);
    assert!(converged, "B never became what the operations made: {}", guest_tests::tree_diff(&a, &b));
    assert_eq!(files_with_modes(&a), model, "the sync changed A");
    assert!(
        log.lines_with("events lost beyond what is tracked: reconciling the whole tree") > 0,
        "the queue never overflowed, or the whole tree was reconciled unsaid: the test proves nothing\n{}",
        log.log()
    );
    sync.stop();
}

fn ends_with_enoent(remove: impl FnOnce(&Path, &Path)) {
    let (s, a, b) = pair("root-gone");
    let mut sync = Syncer::start(&a, &b);
    remove(&s.root, &b);
    let status = sync.wait_exit(ARRIVAL).unwrap().expect("still running without its directory");
    let stderr = sync.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn a_deleted_root_ends_the_call_with_enoent() {
    ends_with_enoent(|_, b| fs::remove_dir(b).unwrap());
}

#[test]
fn a_root_moved_away_ends_the_call_with_enoent() {
    ends_with_enoent(|root, b| fs::rename(b, root.join("elsewhere")).unwrap());
}

/// The filesystem of one root is unmounted (lazily or not, with the root
/// on side A or B): the unmount succeeds, as the call lets go of the mount
/// first, and the call ends with `ENOENT`.
fn unmount_ends_with_enoent(lazy: bool, on_a: bool) {
    let s = Scratch::new("umount-root");
    let mnt = s.dir("fs");
    mount_tmpfs(&mnt);
    let (on_mount, other) = (mnt.join("root"), s.dir("other"));
    fs::create_dir(&on_mount).unwrap();
    let (a, b) = if on_a { (&on_mount, &other) } else { (&other, &on_mount) };
    let mut sync = Syncer::start(a, b);
    fs::write(a.join("f"), b"x").unwrap();
    assert!(arrives(&b.join("f"), b"x"), "not mirrored");
    let unmounted = umount(&mnt, lazy);
    assert!(unmounted.is_ok(), "umount: {unmounted:?}");
    let status = sync.wait_exit(ARRIVAL).unwrap().expect("still running without its filesystem");
    let stderr = sync.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(fs::read_dir(&mnt).unwrap().next().is_none(), "the tmpfs is still mounted");
}

#[test]
fn unmounting_a_roots_filesystem_ends_the_call_with_enoent() {
    unmount_ends_with_enoent(false, true);
}

#[test]
fn a_lazy_unmount_of_a_roots_filesystem_ends_the_call_with_enoent() {
    unmount_ends_with_enoent(true, false);
}

/// An unmount that fails (a shell's working directory is on the file
/// system) must not end the call: it ends it only once it unmounts.
#[test]
fn an_unmount_that_fails_busy_leaves_the_call_running() {
    let s = Scratch::new("umount-busy");
    let mnt = s.dir("fs");
    mount_tmpfs(&mnt);
    let (a, b) = (mnt.join("a"), s.dir("b"));
    fs::create_dir(&a).unwrap();
    let mut sync = Syncer::start(&a, &b);
    let mut shell = std::process::Command::new("sleep").arg("600").current_dir(&mnt).spawn().unwrap();
    let refused = umount(&mnt, false);
    assert!(refused.is_err(), "umount with a working directory on it succeeded");
    fs::write(a.join("after"), b"still mirrored").unwrap();
    assert!(arrives(&b.join("after"), b"still mirrored"), "a failed unmount ended the call");
    assert!(sync.wait_exit(Duration::from_millis(10)).unwrap().is_none(), "the call ended");
    shell.kill().unwrap();
    shell.wait().unwrap();
    let unmounted = umount(&mnt, false);
    assert!(unmounted.is_ok(), "umount: {unmounted:?}");
    let status = sync.wait_exit(ARRIVAL).unwrap().expect("still running without its filesystem");
    assert_eq!(status.code(), Some(1), "{}", sync.stderr());
}

/// A file system mounted below a root is not crossed: the call mirrors
/// the root's own file system (as `rsync -x` would), and unmounting the
/// one below ends nothing.
#[test]
fn a_mount_below_a_root_is_not_crossed() {
    let (s, a, b) = pair("mount-below");
    s.dir("a/sub");
    s.file("a/sub/under", b"under the mount");
    mount_tmpfs(&a.join("sub"));
    fs::write(a.join("sub/on-top"), b"on the other file system").unwrap();
    let mut sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("sub/under"), b"under the mount"), "the root's own directory was not mirrored");
    fs::write(a.join("beside"), b"x").unwrap();
    assert!(arrives(&b.join("beside"), b"x"));
    assert!(fs::symlink_metadata(b.join("sub/on-top")).is_err(), "crossed into the mount below the root");
    let unmounted = umount(&a.join("sub"), false);
    assert!(unmounted.is_ok(), "umount: {unmounted:?}");
    assert!(sync.wait_exit(Duration::from_millis(200)).unwrap().is_none(), "unmounting below a root ended the call");
    sync.stop();
}

/// Regular files below `root`, found without following symlinks.
fn files_named(root: &Path, name: &str) -> Vec<PathBuf> {
    guest_tests::tree(root)
        .into_iter()
        .map(|(rel, _)| rel)
        .filter(|rel| rel.file_name().is_some_and(|n| n == name) && root.join(rel).is_file())
        .collect()
}

#[test]
fn a_directory_swapped_for_a_symlink_never_leads_outside() {
    let (s, a, b) = pair("swap-symlink");
    let outside = s.dir("outside");
    s.file("outside/outside-file", b"keep out");
    s.dir("a/sub");
    let sync = Syncer::start(&a, &b);
    assert!(eventually(ARRIVAL, || b.join("sub").is_dir()));
    // The writer writes by path, but never through a symlink (the sync
    // mirrors B's symlink into A too): its files are inside A or nowhere.
    let sub = a.join("sub");
    let writer = std::thread::spawn(move || {
        for i in 0..3000 {
            let path = guest_tests::cstr(&sub.join(format!("f{i}")));
            // SAFETY: `open_how` is plain data; zero is its default.
            let mut how: libc::open_how = unsafe { std::mem::zeroed() };
            how.flags = (libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC) as u64;
            how.mode = 0o644;
            how.resolve = libc::RESOLVE_NO_SYMLINKS;
            // SAFETY: a valid path string and a valid `open_how` of the size passed.
            let fd = unsafe {
                libc::syscall(libc::SYS_openat2, libc::AT_FDCWD, path.as_ptr(), &how, size_of::<libc::open_how>())
            } as i32;
            if fd >= 0 {
                // SAFETY: writing 4 bytes from a live buffer to our open file.
                assert_eq!(unsafe { libc::write(fd, b"data".as_ptr().cast(), 4) }, 4);
                // SAFETY: closing what we opened.
                unsafe { libc::close(fd) };
            }
        }
    });
    // Meanwhile B's copy of the directory keeps turning into a symlink to a
    // directory outside both trees and back. Steps may fail: the sync moves
    // these names too.
    while !writer.is_finished() {
        let _ = fs::rename(b.join("sub"), b.join("aside"));
        let _ = symlink(&outside, b.join("sub"));
        std::thread::sleep(Duration::from_millis(3));
        let _ = fs::remove_file(b.join("sub"));
        let _ = fs::rename(b.join("aside"), b.join("sub"));
    }
    writer.join().unwrap();
    assert_mirrored(&a, &b);
    let outside_now: Vec<_> = fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside_now, ["outside-file"], "the sync wrote outside both trees");
    assert_eq!(fs::read(outside.join("outside-file")).unwrap(), b"keep out");
    assert!(files_named(&a, "outside-file").is_empty() && files_named(&b, "outside-file").is_empty());
    sync.stop();
}
