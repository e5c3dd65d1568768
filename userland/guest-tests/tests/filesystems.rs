//! File systems other than tmpfs as B (issue "real disks"). The guest has
//! one without extra kernel options: virtme-ng's share of the checkout,
//! 9p, which refuses rename flags and keeps times set through it to whole
//! seconds.

use guest_tests::{eventually, Scratch, Syncer, ARRIVAL};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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

/// What a side holds: for each entry, its kind with a regular file's
/// content and permission bits, or a symlink's target. An entry gone
/// between listing and reading (a temporary copy) is left out: the caller
/// looks again.
fn model(root: &Path) -> BTreeMap<String, String> {
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
            if rel == guest_tests::BASE_FILE {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            let what = if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {:o}", meta.mode() & 0o7777)
            } else if meta.file_type().is_symlink() {
                let Ok(target) = fs::read_link(&path) else { continue };
                format!("symlink -> {}", target.display())
            } else {
                let Ok(content) = fs::read(&path) else { continue };
                format!("file {:o} {}", meta.mode() & 0o7777, String::from_utf8_lossy(&content))
            };
            out.insert(rel, what);
        }
    }
    out
}

/// The mtimes of a side's regular files, in whole seconds (9p keeps no more
/// of a time set through it).
fn mtimes(root: &Path) -> BTreeMap<String, i64> {
    guest_tests::tree(root)
        .into_iter()
        .filter(|(rel, _)| root.join(rel).is_file())
        .map(|(rel, _)| (rel.to_string_lossy().into_owned(), fs::metadata(root.join(&rel)).unwrap().mtime()))
        .collect()
}

fn kernel_log() -> String {
    String::from_utf8_lossy(&Command::new("dmesg").output().expect("dmesg").stdout).into_owned()
}

#[test]
fn a_9p_share_as_b_mirrors_a_round_of_changes_both_ways() {
    let s = Scratch::new("on-9p");
    let a = s.dir("a");
    // The checkout's build directory where there is one: out of git's sight.
    let mount = writable_9p_mount();
    let under = [mount.join("userland/target"), mount].into_iter().find(|p| p.is_dir()).unwrap();
    let share = tempfile::Builder::new().prefix("rts-9p-").tempdir_in(under).expect("dir on 9p");
    let b = share.path().to_path_buf();
    s.dir("a/pre");
    s.file("a/pre/file", b"before the start");
    Command::new("dmesg").arg("-C").status().unwrap();
    let sync = Syncer::start(&a, &b);
    let want = |expected: &[(&str, &str)]| -> BTreeMap<String, String> {
        expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let both_hold =
        |expected: &BTreeMap<String, String>| eventually(ARRIVAL, || model(&a) == *expected && model(&b) == *expected);

    // New files and a subtree on A arrive on B.
    fs::write(a.join("f1"), b"one").unwrap();
    fs::create_dir_all(a.join("d/e")).unwrap();
    fs::write(a.join("d/e/f0"), b"zero").unwrap();
    let mut expected = want(&[
        ("pre", "dir 755"),
        ("pre/file", "file 644 before the start"),
        ("f1", "file 644 one"),
        ("d", "dir 755"),
        ("d/e", "dir 755"),
        ("d/e/f0", "file 644 zero"),
    ]);
    assert!(both_hold(&expected), "A {:#?}\nB {:#?}", model(&a), model(&b));

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
    expected.extend(want(&[
        ("f1r", "file 640 one"),
        ("dr", "dir 755"),
        ("dr/e", "dir 755"),
        ("ln", "symlink -> f1r"),
        ("fromb", "file 644 made on B"),
    ]));
    assert!(both_hold(&expected), "A {:#?}\nB {:#?}", model(&a), model(&b));

    // Both writes at once on the two sides: a conflict keeps both versions.
    fs::write(a.join("both"), b"A's").unwrap();
    fs::write(b.join("both"), b"B's, longer").unwrap();
    let kept = |side: &Path| {
        let m = model(side);
        let versions: Vec<&String> = m.iter().filter(|(k, _)| k.starts_with("both")).map(|(_, v)| v).collect();
        versions.len() == 2
            && versions.iter().any(|v| v.ends_with(" A's"))
            && versions.iter().any(|v| v.ends_with(" B's, longer"))
    };
    assert!(eventually(ARRIVAL, || kept(&a) && kept(&b)), "A {:#?}\nB {:#?}", model(&a), model(&b));

    // Settled: the same times in whole seconds, and nothing copied again
    // (a copy whose time 9p cut must not look changed).
    assert!(eventually(ARRIVAL, || mtimes(&a) == mtimes(&b)), "mtimes: A {:?} B {:?}", mtimes(&a), mtimes(&b));
    let still = |root: &Path| {
        let mut all = guest_tests::snapshot(root);
        all.retain(|(path, ..)| !path.ends_with(guest_tests::BASE_FILE));
        all
    };
    // The base follows the last change within a second (which moves A's
    // root); then nothing may move.
    std::thread::sleep(Duration::from_secs(2));
    let (settled_a, settled_b) = (still(&a), still(&b));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(still(&a), settled_a, "A changed after it had settled");
    assert_eq!(still(&b), settled_b, "B changed after it had settled");
    let log = kernel_log();
    assert!(!log.contains("cannot sync"), "the call reported files it could not sync:\n{log}");
    sync.stop();
}
