//! File systems other than tmpfs (issue "real disks"): each as B in a round
//! of changes both ways, a few as A, and what FAT cannot hold or tell
//! apart. 9p is virtme-ng's share of the checkout, which refuses rename
//! flags and keeps times set through it to whole seconds; the others are
//! made for the test (`guest_tests::disk`).

use guest_tests::disk::{Bindfs, Disk, Fs, Nfs, Overlay};
use guest_tests::{eventually, kernel_log, snapshot, LogMark, Scratch, Syncer, ARRIVAL, BASE_FILE};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::io::Write;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

/// What B's file system can hold; A is always a full POSIX one here.
#[derive(Clone, Copy)]
struct Holds {
    symlinks: bool,
    /// Permission bits: without them a file from B arrives on A as 0644, a
    /// directory as 0755, and a file A has keeps its bits.
    modes: bool,
    /// Times in 2-second steps (FAT) rather than whole seconds.
    two_second_times: bool,
}

const POSIX: Holds = Holds { symlinks: true, modes: true, two_second_times: false };

fn holds(fs: Fs) -> Holds {
    match fs {
        Fs::Ext4 | Fs::Xfs | Fs::Btrfs => POSIX,
        Fs::Vfat => Holds { symlinks: false, modes: false, two_second_times: true },
        Fs::Exfat => Holds { symlinks: false, modes: false, two_second_times: false },
    }
}

/// A writable 9p mount of the guest (virtme-ng's `--rwdir`, the checkout).
fn writable_9p_mount() -> PathBuf {
    let mounts = fs::read_to_string("/proc/self/mounts").expect("read /proc/self/mounts");
    mounts
        .lines()
        .map(|line| line.split(' ').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[2] == "9p" && f[1] != "/" && f[3].split(',').any(|o| o == "rw"))
        .map(|f| PathBuf::from(f[1]))
        .expect("no writable 9p mount in the guest (virtme-ng --rwdir)")
}

/// A fresh directory on 9p: in the checkout's build directory where there
/// is one, out of git's sight.
fn dir_on_9p() -> tempfile::TempDir {
    let mount = writable_9p_mount();
    let under = [mount.join("userland/target"), mount].into_iter().find(|p| p.is_dir()).unwrap();
    tempfile::Builder::new().prefix("rts-9p-").tempdir_in(under).expect("dir on 9p")
}

/// What a side holds: for each entry, its kind with a regular file's
/// content and (with `modes`) permission bits, or a symlink's target. An
/// entry gone between listing and reading (a temporary copy) is left out:
/// the caller looks again.
fn model(root: &Path, modes: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir != root => continue,
            Err(e) => panic!("list {dir:?}: {e}"),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == BASE_FILE {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            let bits = if modes { format!(" {:o}", meta.mode() & 0o7777) } else { String::new() };
            let what = if meta.is_dir() {
                stack.push(path.clone());
                format!("dir{bits}")
            } else if meta.file_type().is_symlink() {
                let Ok(target) = fs::read_link(&path) else { continue };
                format!("symlink -> {}", target.display())
            } else {
                let Ok(content) = fs::read(&path) else { continue };
                format!("file{bits} {}", String::from_utf8_lossy(&content))
            };
            out.insert(rel, what);
        }
    }
    out
}

/// `expected` (a model with modes) as B shows it: without what B cannot
/// hold.
fn as_b_shows(expected: &BTreeMap<String, String>, b_holds: Holds) -> BTreeMap<String, String> {
    let mut out = expected.clone();
    if !b_holds.symlinks {
        out.retain(|_, what| !what.starts_with("symlink"));
    }
    if !b_holds.modes {
        for what in out.values_mut() {
            if let Some((kind @ ("dir" | "file"), rest)) = what.split_once(' ') {
                *what = match rest.split_once(' ') {
                    Some((_, content)) => format!("{kind} {content}"),
                    None => kind.to_string(),
                };
            }
        }
    }
    out
}

fn entries(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The mtimes of a side's regular files, in whole seconds (9p keeps no more
/// of a time set through it), or in 2-second steps (FAT).
fn mtimes(root: &Path, two_second_steps: bool) -> BTreeMap<String, i64> {
    let step = if two_second_steps { 2 } else { 1 };
    guest_tests::tree(root)
        .into_iter()
        .filter_map(|(rel, _)| {
            let meta = fs::symlink_metadata(root.join(&rel)).ok()?;
            meta.is_file().then(|| (rel.to_string_lossy().into_owned(), meta.mtime().div_euclid(step)))
        })
        .collect()
}

/// Nothing moves on either side for 3 s once the sync had 2 s to settle
/// (the base follows the last change within a second, which moves A's
/// root).
fn assert_still(a: &Path, b: &Path) {
    let still = |root: &Path| {
        let mut all = snapshot(root);
        all.retain(|(path, ..)| !path.ends_with(BASE_FILE));
        all
    };
    sleep(Duration::from_secs(2));
    let (settled_a, settled_b) = (still(a), still(b));
    sleep(Duration::from_secs(3));
    assert_eq!(still(a), settled_a, "A changed after it had settled");
    assert_eq!(still(b), settled_b, "B changed after it had settled");
}

fn assert_nothing_failed() {
    let log = kernel_log();
    assert!(!log.contains("cannot sync"), "the call reported files it could not sync:\n{log}");
}

/// A round of changes on both sides, B on a file system that holds what
/// `b_holds` says: a file there before the start, files and a subtree made
/// on A, renames of a file and a directory with a delete inside right
/// after, a chmod, a symlink, a file made on B, a conflict; then the times
/// agree and nothing moves. Returns the sync still running, for a caller
/// that adds to the round.
fn round(a: &Path, b: &Path, b_holds: Holds) -> Syncer {
    fs::create_dir(a.join("pre")).unwrap();
    fs::write(a.join("pre/file"), b"before the start").unwrap();
    // What either side held before the start (an overlay's lower layer)
    // ends on both.
    let mut expected = model(a, true);
    expected.extend(model(b, true));
    let log_mark = LogMark::now();
    let sync = Syncer::start(a, b);
    // A is compared with its modes even where B keeps none: they must
    // survive there.
    let both_hold = |expected: &BTreeMap<String, String>| {
        let on_b = as_b_shows(expected, b_holds);
        let held = eventually(ARRIVAL, || model(a, true) == *expected && model(b, b_holds.modes) == on_b);
        assert!(held, "expected {expected:#?}\nA {:#?}\nB {:#?}", model(a, true), model(b, b_holds.modes));
    };

    // New files and a subtree on A arrive on B.
    fs::write(a.join("f1"), b"one").unwrap();
    fs::create_dir_all(a.join("d/e")).unwrap();
    fs::write(a.join("d/e/f0"), b"zero").unwrap();
    expected.extend(entries(&[
        ("f1", "file 644 one"),
        ("d", "dir 755"),
        ("d/e", "dir 755"),
        ("d/e/f0", "file 644 zero"),
    ]));
    both_hold(&expected);

    // A rename of a file and of a directory, a delete inside the renamed
    // directory right after, a chmod, a symlink; and a file made on B.
    fs::rename(a.join("f1"), a.join("f1r")).unwrap();
    fs::rename(a.join("d"), a.join("dr")).unwrap();
    fs::remove_file(a.join("dr/e/f0")).unwrap();
    fs::set_permissions(a.join("f1r"), fs::Permissions::from_mode(0o640)).unwrap();
    symlink("f1r", a.join("ln")).unwrap();
    fs::write(b.join("fromb"), b"made on B").unwrap();
    for gone in ["f1", "d", "d/e", "d/e/f0"] {
        expected.remove(gone);
    }
    expected.extend(entries(&[
        ("f1r", "file 640 one"),
        ("dr", "dir 755"),
        ("dr/e", "dir 755"),
        ("ln", "symlink -> f1r"),
        ("fromb", "file 644 made on B"),
    ]));
    both_hold(&expected);

    // Both writes at once on the two sides: a conflict keeps both versions.
    // Both files are open before either is written, so neither version can
    // reach the other side first (the sync copies no file open for
    // writing): one written after the other arrived would be an overwrite.
    let mut on_a = fs::File::create(a.join("both")).unwrap();
    let mut on_b = fs::File::create(b.join("both")).unwrap();
    on_a.write_all(b"A's").unwrap();
    on_b.write_all(b"B's, longer").unwrap();
    drop((on_a, on_b));
    let kept = |side: &Path| {
        let m = model(side, false);
        let versions: Vec<&String> = m.iter().filter(|(k, _)| k.starts_with("both")).map(|(_, v)| v).collect();
        versions.len() == 2
            && versions.iter().any(|v| v.ends_with(" A's"))
            && versions.iter().any(|v| v.ends_with(" B's, longer"))
    };
    assert!(eventually(ARRIVAL, || kept(a) && kept(b)), "A {:#?}\nB {:#?}", model(a, true), model(b, false));

    // Settled: the same times as far as B keeps them, and nothing copied
    // again (a copy whose time B cut must not look changed).
    let steps = b_holds.two_second_times;
    assert!(
        eventually(ARRIVAL, || mtimes(a, steps) == mtimes(b, steps)),
        "mtimes: A {:?} B {:?}",
        mtimes(a, steps),
        mtimes(b, steps)
    );
    assert_still(a, b);
    assert_nothing_failed();
    if !b_holds.symlinks {
        let said = log_mark.lines_with("\"ln\" not mirrored: B holds no symlinks");
        assert_eq!(said, 1, "lines saying the symlink was not mirrored:\n{}", log_mark.log());
    }
    sync
}

/// A round with A in TMPDIR and B on a fresh `fs` (of 64 MiB, or what the
/// file system needs at least).
fn round_with_b_on(fs: Fs) {
    let s = Scratch::new(&format!("on-{}", fs.name()));
    let a = s.dir("a");
    let disk = Disk::new(fs, 64);
    round(&a, &disk.side("b"), holds(fs)).stop();
}

#[test]
fn a_9p_share_as_b_mirrors_a_round_of_changes_both_ways() {
    let s = Scratch::new("on-9p");
    let share = dir_on_9p();
    round(&s.dir("a"), share.path(), POSIX).stop();
}

#[test]
fn ext4_as_b_mirrors_a_round_of_changes_both_ways() {
    round_with_b_on(Fs::Ext4);
}

#[test]
fn xfs_as_b_mirrors_a_round_of_changes_both_ways() {
    round_with_b_on(Fs::Xfs);
}

#[test]
fn btrfs_as_b_mirrors_a_round_of_changes_both_ways() {
    round_with_b_on(Fs::Btrfs);
}

#[test]
fn vfat_as_b_mirrors_a_round_without_symlinks_modes_or_odd_seconds() {
    round_with_b_on(Fs::Vfat);
}

#[test]
fn exfat_as_b_mirrors_a_round_without_symlinks_or_modes() {
    round_with_b_on(Fs::Exfat);
}

/// An overlay's lower layer: a directory that cannot be renamed on it.
const LOWER: &[(&str, &[u8])] = &[("old/one", b"one"), ("old/two", b"two"), ("old/three", b"three")];

#[test]
fn overlayfs_as_b_mirrors_a_round_and_a_rename_of_a_lower_directory() {
    let s = Scratch::new("on-overlay");
    let a = s.dir("a");
    let overlay = Overlay::new(LOWER);
    let b = overlay.mnt();
    let sync = round(&a, b, POSIX);

    // Renamed on A, `old` cannot be renamed on B (EXDEV): it must arrive
    // as a delete and a create, and what was deleted right after the
    // rename must not come back on either side.
    let mut expected: BTreeMap<String, String> = model(&a, true)
        .into_iter()
        .map(|(rel, what)| match rel.strip_prefix("old") {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => (format!("old2{rest}"), what),
            _ => (rel, what),
        })
        .collect();
    expected.remove("old2/two");
    fs::rename(a.join("old"), a.join("old2")).unwrap();
    fs::remove_file(a.join("old2/two")).unwrap();
    let held = eventually(ARRIVAL, || model(&a, true) == expected && model(b, true) == expected);
    assert!(held, "expected {expected:#?}\nA {:#?}\nB {:#?}", model(&a, true), model(b, true));
    assert_still(&a, b);
    assert_nothing_failed();
    sync.stop();
}

#[test]
fn fuse_bindfs_as_b_mirrors_a_round_of_changes_both_ways() {
    let s = Scratch::new("on-fuse");
    let fuse = Bindfs::mount();
    round(&s.dir("a"), fuse.mnt(), POSIX).stop();
}

#[test]
fn nfs_as_b_mirrors_a_round_of_changes_both_ways() {
    let s = Scratch::new("on-nfs");
    let nfs = Nfs::mount();
    let b = nfs.mnt().join("b");
    fs::create_dir(&b).unwrap();
    round(&s.dir("a"), &b, POSIX).stop();
}

#[test]
fn ext4_as_a_with_vfat_as_b_mirrors_a_round_of_changes_both_ways() {
    let (disk_a, disk_b) = (Disk::new(Fs::Ext4, 64), Disk::new(Fs::Vfat, 64));
    round(&disk_a.side("a"), &disk_b.side("b"), holds(Fs::Vfat)).stop();
}

#[test]
fn xfs_as_a_with_btrfs_as_b_mirrors_a_round_of_changes_both_ways() {
    let (disk_a, disk_b) = (Disk::new(Fs::Xfs, 300), Disk::new(Fs::Btrfs, 256));
    round(&disk_a.side("a"), &disk_b.side("b"), POSIX).stop();
}

#[test]
fn overlayfs_as_a_with_9p_as_b_mirrors_a_round_of_changes_both_ways() {
    let overlay = Overlay::new(LOWER);
    let share = dir_on_9p();
    round(overlay.mnt(), share.path(), POSIX).stop();
}

/// The names in the directory `root` (the base aside), sorted, as the file
/// system spells them.
fn names(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(root)
        .unwrap_or_else(|e| panic!("list {root:?}: {e}"))
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|name| name != BASE_FILE)
        .collect();
    out.sort();
    out
}

/// A with a vfat B, in a scratch directory and a disk.
fn pair_with_b_on(fs: Fs, name: &str) -> (Scratch, Disk, PathBuf, PathBuf) {
    let s = Scratch::new(name);
    let a = s.dir("a");
    let disk = Disk::new(fs, 64);
    let b = disk.side("b");
    (s, disk, a, b)
}

#[test]
fn a_file_rewritten_100_times_on_a_settles_on_vfat_without_conflict_copies() {
    rewrites_settle_without_conflict_copies(Fs::Vfat);
}

#[test]
fn a_file_rewritten_100_times_on_a_settles_on_exfat_without_conflict_copies() {
    rewrites_settle_without_conflict_copies(Fs::Exfat);
}

fn rewrites_settle_without_conflict_copies(fs: Fs) {
    let (_s, _disk, a, b) = pair_with_b_on(fs, "rewrites");
    let sync = Syncer::start(&a, &b);
    // B cuts each copy's time (to 2 s on vfat, 10 ms on exfat): that must
    // never pass for a change made on B, which would make a conflict copy
    // or a copy back to A.
    let no_conflict_copy = || {
        for side in [&a, &b] {
            let names = names(side);
            assert!(!names.iter().any(|n| n.contains("sync-conflict")), "a conflict copy in {side:?}: {names:?}");
        }
    };
    let mut last = Vec::new();
    for i in 0..100 {
        last = format!("version {i}: {}", "x".repeat(i)).into_bytes();
        fs::write(a.join("hot"), &last).unwrap();
        no_conflict_copy();
        sleep(Duration::from_millis(5));
    }
    let written = fs::metadata(a.join("hot")).unwrap().modified().unwrap();
    let settled = eventually(ARRIVAL, || {
        no_conflict_copy();
        names(&b) == ["hot"] && fs::read(b.join("hot")).ok() == Some(last.clone())
    });
    assert!(settled, "B holds {:?}", fs::read(b.join("hot")).map(|c| String::from_utf8_lossy(&c).into_owned()));
    assert_eq!(names(&a), ["hot"]);
    assert_eq!(fs::read(a.join("hot")).unwrap(), last, "A's last version was replaced");
    // B's copy, its time cut, never came back: A keeps its own time.
    assert_eq!(fs::metadata(a.join("hot")).unwrap().modified().unwrap(), written, "a copy came back to A");
    assert_eq!(mtimes(&a, true), mtimes(&b, true), "the times differ by 2 s or more");
    assert_still(&a, &b);
    no_conflict_copy();
    sync.stop();
}

#[test]
fn a_name_differing_only_in_case_becomes_a_conflict_copy_with_vfat_as_b() {
    case_collision_becomes_a_conflict_copy(Fs::Vfat);
}

#[test]
fn a_name_differing_only_in_case_becomes_a_conflict_copy_with_exfat_as_b() {
    case_collision_becomes_a_conflict_copy(Fs::Exfat);
}

fn case_collision_becomes_a_conflict_copy(fs: Fs) {
    let (_s, _disk, a, b) = pair_with_b_on(fs, "case");
    let sync = Syncer::start(&a, &b);
    let (upper, lower) = (b"Foo's content".as_slice(), b"foo's, another content".as_slice());
    fs::write(a.join("Foo"), upper).unwrap();
    let arrived =
        eventually(ARRIVAL, || names(&b) == ["Foo"] && fs::read(b.join("Foo")).ok().as_deref() == Some(upper));
    assert!(arrived, "Foo did not arrive: B holds {:?}", names(&b));

    // B can hold only one of `Foo` and `foo`: the newcomer is kept as a
    // conflict copy, on both sides, and nothing is lost or goes round.
    fs::write(a.join("foo"), lower).unwrap();
    let kept_apart = |side: &Path| {
        let names = names(side);
        let copy = names.iter().find(|n| n.starts_with("foo.sync-conflict-"));
        names.len() == 2
            && names.iter().any(|n| n == "Foo")
            && fs::read(side.join("Foo")).ok().as_deref() == Some(upper)
            && copy.is_some_and(|copy| fs::read(side.join(copy)).ok().as_deref() == Some(lower))
    };
    let settled = eventually(ARRIVAL, || kept_apart(&a) && kept_apart(&b));
    assert!(settled, "A {:?}\nB {:?}", names(&a), names(&b));
    assert_still(&a, &b);
    assert!(kept_apart(&a) && kept_apart(&b), "A {:?}\nB {:?}", names(&a), names(&b));
    sync.stop();
}

#[test]
fn names_vfat_refuses_stay_on_a_with_one_log_line_each() {
    refused_names_stay_on_a(Fs::Vfat);
}

#[test]
fn names_exfat_refuses_stay_on_a_with_one_log_line_each() {
    refused_names_stay_on_a(Fs::Exfat);
}

fn refused_names_stay_on_a(fs: Fs) {
    let (_s, _disk, a, b) = pair_with_b_on(fs, "refused");
    let log_mark = LogMark::now();
    let sync = Syncer::start(&a, &b);
    // A colon and a question mark are refused; a trailing dot would be
    // cut off (another name), a trailing space is refused.
    let refused = ["a:b", "q?", "trail.", "space "];
    for name in refused {
        fs::write(a.join(name), b"not for FAT").unwrap();
    }
    fs::write(a.join("ok"), b"fine anywhere").unwrap();
    assert!(guest_tests::arrives(&b.join("ok"), b"fine anywhere"), "ok did not arrive");
    for name in refused {
        assert!(
            log_mark.eventually_logged(&format!("\"{name}\" not mirrored")),
            "nothing said of {name:?}:\n{}",
            log_mark.log()
        );
    }
    assert_still(&a, &b);
    assert_eq!(names(&b), ["ok"]);
    let mut on_a = names(&a);
    on_a.retain(|n| n != "ok");
    let mut expected = refused.map(String::from).to_vec();
    expected.sort();
    assert_eq!(on_a, expected, "A lost a name B refused");
    let log = log_mark.log();
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("not mirrored: B refuses the name")).collect();
    for name in refused {
        let said = refusals.iter().filter(|l| l.contains(&format!("\"{name}\""))).count();
        assert_eq!(said, 1, "lines refusing {name:?}:\n{log}");
    }
    assert_eq!(refusals.len(), refused.len(), "refusals:\n{log}");
    assert_nothing_failed();
    sync.stop();
}
