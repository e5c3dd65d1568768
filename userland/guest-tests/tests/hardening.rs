//! What a user next to a running call can do to it: extreme times, setuid
//! files, unreadable directories, renames over a root, names that look like
//! the sync's own, work too long to wait for (issue "Hardening").

use guest_tests::{arrives, assert_mirrored, eventually, pair, Scratch, Syncer, ARRIVAL};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

/// Runs `script` with `sh -c` as user and group `uid` (no other groups).
fn sh_as(uid: u32, script: &str) {
    let status = Command::new("setpriv")
        .args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".into()])
        .args(["sh", "-c", script])
        .status()
        .expect("run setpriv");
    assert!(status.success(), "as {uid}: {script}");
}

fn sh(script: &str) {
    let status = Command::new("sh").args(["-c", script]).status().expect("run sh");
    assert!(status.success(), "{script}");
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

fn mtime_secs(p: &Path) -> i64 {
    fs::symlink_metadata(p).unwrap().mtime()
}

#[test]
fn dates_past_2262_and_before_1970_are_mirrored_without_a_crash() {
    let (s, a, b) = pair("far-dates");
    let sync = Syncer::start(&a, &b);
    for (name, date) in [("future", "@9300000000"), ("past", "@-2000000000"), ("max", "@253402300799")] {
        let f = s.file(&format!("a/{name}"), name.as_bytes());
        sh(&format!("touch -d {date} {}", f.display()));
        let want = mtime_secs(&f);
        assert!(
            eventually(ARRIVAL, || fs::symlink_metadata(b.join(name)).is_ok_and(|m| m.mtime() == want)),
            "{name} ({date}) did not arrive with its mtime"
        );
        assert_eq!(fs::read(b.join(name)).unwrap(), name.as_bytes());
    }
    // A conflict whose losing version is dated 2264: the kept copy is named
    // from that date, and both versions stay on both sides.
    sync.signal(libc::SIGSTOP);
    fs::write(a.join("future"), b"the a side").unwrap();
    fs::write(b.join("future"), b"b side").unwrap();
    sh(&format!("touch -d @9300000000 {}", a.join("future").display()));
    sh(&format!("touch -d @9400000000 {}", b.join("future").display()));
    sync.signal(libc::SIGCONT);
    let kept = "future.sync-conflict-22640914-212000";
    for side in [&a, &b] {
        assert!(
            arrives(&side.join(kept), b"the a side"),
            "{side:?} lacks A's version as {kept}: {:?}",
            fs::read_dir(side).unwrap().flatten().map(|e| e.file_name()).collect::<Vec<_>>()
        );
        assert!(arrives(&side.join("future"), b"b side"), "{side:?} lacks B's version");
    }
    assert_mirrored(&a, &b);
    sync.stop_within(Duration::from_millis(100));
}

#[test]
fn a_root_caller_never_makes_a_root_owned_setuid_copy() {
    let (_s, a, b) = pair("setuid-root");
    fs::set_permissions(&a, fs::Permissions::from_mode(0o777)).unwrap();
    let sync = Syncer::start(&a, &b);
    sh_as(65534, &format!("echo '#!/bin/sh' > {0}/prog && chmod 6755 {0}/prog", a.display()));
    let copy = b.join("prog");
    assert!(arrives(&copy, b"#!/bin/sh\n"), "not mirrored");
    // As `cp -a` run by root: the copy belongs to the source's owner.
    let meta = fs::metadata(&copy).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "copy owned by {}:{}", meta.uid(), meta.gid());
    assert_eq!(mode(&copy), 0o6755);
    // A later chmod reaches the same inode with the same owner.
    sh_as(65534, &format!("chmod 4711 {}/prog", a.display()));
    assert!(eventually(ARRIVAL, || mode(&copy) == 0o4711), "mode {:o}", mode(&copy));
    assert_eq!(fs::metadata(&copy).unwrap().uid(), 65534);
    sync.stop();
}

#[test]
fn an_unprivileged_caller_never_makes_setuid_copies_of_others_files() {
    let s = Scratch::new("setuid-user");
    let (a, b) = (s.dir("a"), s.dir("b"));
    sh(&format!("chown 65534:65534 {} {}", a.display(), b.display()));
    let sync = Syncer::start_as_nobody(&a, &b);
    sh(&format!("echo x > {0}/prog && chown 1000:1000 {0}/prog && chmod 6755 {0}/prog", a.display()));
    let copy = b.join("prog");
    assert!(arrives(&copy, b"x\n"), "not mirrored");
    let meta = fs::metadata(&copy).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
    assert_eq!(mode(&copy), 0o755, "setuid/setgid bits kept on a copy owned by the caller");
    // A mode change of the source brings no setuid bit either.
    sh(&format!("chmod 4711 {}/prog", a.display()));
    assert!(eventually(ARRIVAL, || mode(&copy) == 0o711), "mode {:o}", mode(&copy));
    sleep(Duration::from_millis(300));
    assert_eq!(mode(&copy), 0o711);
    sync.stop();
}

#[test]
fn a_directory_the_caller_cannot_list_is_neither_watched_nor_copied() {
    let s = Scratch::new("drop-box");
    let (a, b) = (s.dir("a"), s.dir("b"));
    // A drop box of root's: others may put files in, but not list them.
    s.dir("a/drop");
    s.file("a/drop/before", b"secret before");
    sh(&format!("chown 65534:65534 {} {} && chmod 0733 {}/drop", a.display(), b.display(), a.display()));
    let sync = Syncer::start_as_nobody(&a, &b);
    fs::write(a.join("sentinel"), b"visible").unwrap();
    assert!(arrives(&b.join("sentinel"), b"visible"), "the pair does not mirror");
    // Once the start is over, a watch on the drop box would report this.
    fs::write(a.join("drop/after"), b"secret after").unwrap();
    fs::write(a.join("sentinel"), b"later").unwrap();
    assert!(arrives(&b.join("sentinel"), b"later"), "the pair does not mirror");
    sleep(Duration::from_millis(500));
    for leaked in ["drop/before", "drop/after"] {
        assert!(fs::symlink_metadata(b.join(leaked)).is_err(), "{leaked} leaked to B");
    }
    assert_eq!(fs::read(a.join("drop/before")).unwrap(), b"secret before");
    sync.stop();
}

#[test]
fn a_rename_over_a_root_ends_the_call_with_enoent() {
    let (s, a, b) = pair("rename-over-root");
    let replacement = s.dir("replacement");
    fs::write(replacement.join("f"), b"not ours").unwrap();
    let mut sync = Syncer::start(&a, &b);
    fs::rename(&replacement, &a).unwrap();
    let status = sync.wait_exit(ARRIVAL).unwrap().expect("still running after its root was replaced");
    let stderr = sync.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert!(fs::symlink_metadata(b.join("f")).is_err(), "mirrored the directory renamed over the root");
}

#[test]
fn a_users_file_named_like_a_temporary_is_mirrored_and_kept() {
    let (s, a, b) = pair("temp-lookalike");
    s.file("a/.usac-tmp-notes", b"my notes");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join(".usac-tmp-notes"), b"my notes"), "not mirrored at start");
    fs::write(b.join(".usac-tmp-0000000000000001"), b"live").unwrap();
    assert!(arrives(&a.join(".usac-tmp-0000000000000001"), b"live"), "not mirrored live");
    assert_eq!(fs::read(a.join(".usac-tmp-notes")).unwrap(), b"my notes");
    sync.stop();
}

/// A temporary name of the calls' exact form whose call no longer runs (a
/// crash left it behind) is never mirrored: the call that meets it removes
/// it and says so once, and mirrors the rest.
#[test]
fn a_stale_temporary_is_removed_said_once_and_never_mirrored() {
    let (s, a, b) = pair("stale-temp");
    let stale = ".usac-tmp-00000000deadbeef-0000000000000001";
    s.file(&format!("a/{stale}"), b"half a copy");
    s.file("a/f", b"whole");
    let log = guest_tests::LogMark::now();
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("f"), b"whole"));
    assert!(guest_tests::gone(&a.join(stale)), "the stale temporary stayed in A");
    assert!(
        log.eventually_logged("a temporary copy left by a call that did not end"),
        "its removal was not said: {}",
        log.log()
    );
    assert_eq!(log.lines_with(stale), 1, "{}", log.log());
    assert!(!b.join(stale).exists(), "the stale temporary was mirrored");
    sync.stop();
}

/// A signal that comes while the sync compares two large files byte by
/// byte ends the call within 100 ms: the compare checks for a stop between
/// its reads.
#[test]
fn sigint_while_comparing_two_large_files_ends_within_100ms() {
    let (s, a, b) = pair("stop-compare");
    let len = 256 << 20;
    // Twins: the start compares them, finds them equal and agrees on them,
    // and then has nothing left to do.
    let mut content = vec![7u8; len];
    fs::write(a.join("big"), &content).unwrap();
    fs::write(b.join("big"), &content).unwrap();
    sh(&format!("touch -d @1700000000 {}/big {}/big", a.display(), b.display()));
    let sync = Syncer::start(&a, &b);
    assert!(
        eventually(ARRIVAL, || guest_tests::base_records(&a, "big")),
        "no base with the twins saved after the start"
    );
    // A third version renamed onto A's name from outside the tree, with the
    // same size and mtime: only the bytes can tell, so the sync compares
    // them, to the last byte, where they differ.
    content[len - 1] = 9;
    let outside = s.root.join("third");
    fs::write(&outside, &content).unwrap();
    drop(content);
    sh(&format!("touch -d @1700000000 {}", outside.display()));
    // The compare's first read of A's file is an IN_ACCESS, and its end
    // the close of the file (IN_CLOSE_NOWRITE). inotify merges repeated
    // events, so only "one read seen" and "no close yet" can be known.
    let reads = guest_tests::Landings::watch_for(&a, libc::IN_ACCESS);
    let closes = guest_tests::Landings::watch_for(&a, libc::IN_CLOSE_NOWRITE);
    fs::rename(&outside, a.join("big")).unwrap();
    assert!(eventually(ARRIVAL, || reads.count("big") > 0), "the sync never began comparing");
    assert_eq!(closes.count("big"), 0, "the compare had ended before the signal: the test timed nothing");
    sync.stop_within(Duration::from_millis(100));
}

#[test]
fn sigint_while_removing_a_large_tree_ends_within_100ms() {
    let (s, a, b) = pair("stop-remove");
    s.dir("a/d");
    sh(&format!("cd {}/d && seq 1 20000 | xargs touch && cp -a {0}/d {1}/d", a.display(), b.display()));
    let sync = Syncer::start(&a, &b);
    fs::write(a.join("sentinel"), b"x").unwrap();
    assert!(arrives(&b.join("sentinel"), b"x"), "the start scan did not end");
    fs::rename(a.join("d"), s.root.join("away")).unwrap();
    assert!(eventually(ARRIVAL, || fs::read_dir(b.join("d")).map_or(true, |d| d.count() < 19900)));
    sync.stop_within(Duration::from_millis(100));
    // What is left shows the removal was still running when the signal came.
    let left = fs::read_dir(b.join("d")).map_or(0, |d| d.count());
    assert!(left > 0, "the removal had ended before the signal: the test timed nothing");
}

/// A FIFO renamed over a file between the sync's look at the name and its
/// open must not block the thread in `open` (which waits for a writer that
/// never comes): what is opened is the inode that was looked at.
#[test]
fn a_fifo_swapped_in_for_a_file_never_blocks_the_sync() {
    let (s, a, b) = pair("fifo-swap");
    let sync = Syncer::start(&a, &b);
    let spare = s.root.join("spare");
    fs::create_dir(&spare).unwrap();
    for round in 0..400 {
        let name = a.join(format!("f{}", round % 4));
        // Never open a FIFO here: the test would wait for a reader.
        let _ = fs::remove_file(&name);
        fs::write(&name, format!("round {round}")).unwrap();
        let fifo = spare.join("fifo");
        guest_tests::mkfifo(&fifo).unwrap();
        // Same file system: the rename replaces the file the sync is about
        // to copy, at any moment of its work.
        fs::rename(&fifo, &name).unwrap();
    }
    // The thread still works, and a stop still ends the call at once.
    fs::write(a.join("sentinel"), b"x").unwrap();
    assert!(arrives(&b.join("sentinel"), b"x"), "the sync thread is stuck");
    sync.stop_within(Duration::from_millis(100));
}

/// Symlinks are told apart by their exact targets, not by a hash or by
/// size and time: targets of one length differing in one byte, changed
/// within one timestamp tick.
#[test]
fn symlinks_whose_targets_differ_in_one_byte_are_mirrored_exactly() {
    let (_s, a, b) = pair("link-bytes");
    std::os::unix::fs::symlink("target-0000", a.join("l")).unwrap();
    let sync = Syncer::start(&a, &b);
    assert!(eventually(ARRIVAL, || fs::read_link(b.join("l")).is_ok_and(|t| t == Path::new("target-0000"))));
    for i in 1..50 {
        let target = format!("target-{i:04}");
        let tmp = a.join("l.new");
        std::os::unix::fs::symlink(&target, &tmp).unwrap();
        fs::rename(&tmp, a.join("l")).unwrap();
        let ok = eventually(ARRIVAL, || fs::read_link(b.join("l")).is_ok_and(|t| t == Path::new(&target)));
        assert!(ok, "B's link points to {:?}, not {target}", fs::read_link(b.join("l")));
    }
    sync.stop();
}

/// The ACL of `p` as `getfacl` prints it, without the header naming the file.
fn acl(p: &Path) -> String {
    let out = Command::new("getfacl").args(["--omit-header", "--absolute-names"]).arg(p).output().expect("run getfacl");
    assert!(out.status.success(), "getfacl {}: {}", p.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// True when user 65534 (with no groups) can read the file `p`.
fn nobody_reads(p: &Path) -> bool {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(p)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run setpriv")
        .success()
}

/// A pair that user 65534 may walk into, as a shared backup tree would be.
fn open_pair(name: &str) -> (Scratch, std::path::PathBuf, std::path::PathBuf) {
    let (s, a, b) = pair(name);
    for dir in [&s.root, &a, &b] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    (s, a, b)
}

#[test]
fn a_deny_entry_for_a_user_holds_on_the_copy() {
    let (s, a, b) = open_pair("acl-deny");
    s.file("a/open", b"anyone");
    s.file("a/before", b"not for 65534");
    sh(&format!("chmod 0644 {0}/open {0}/before && setfacl -m u:65534:--- {0}/before", a.display()));
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("open"), b"anyone") && arrives(&b.join("before"), b"not for 65534"));
    // The control: 65534 reaches B's files, and reads the one without an ACL.
    assert!(nobody_reads(&b.join("open")), "65534 cannot read B/open: the check below would prove nothing");
    assert!(
        !nobody_reads(&b.join("before")),
        "copy readable by the user its source denies:\n{}",
        acl(&b.join("before"))
    );
    assert_eq!(acl(&b.join("before")), acl(&a.join("before")));
    // An ACL set later, on a file already mirrored: setfacl keeps the mode.
    s.file("a/later", b"denied later");
    fs::set_permissions(a.join("later"), fs::Permissions::from_mode(0o644)).unwrap();
    assert!(arrives(&b.join("later"), b"denied later"));
    assert!(nobody_reads(&b.join("later")));
    sh(&format!("setfacl -m u:65534:--- {}/later", a.display()));
    assert_eq!(mode(&a.join("later")), 0o644, "setfacl changed the mode: the test would not test an ACL alone");
    assert!(
        eventually(ARRIVAL, || !nobody_reads(&b.join("later"))),
        "ACL set later not mirrored:\n{}",
        acl(&b.join("later"))
    );
    assert_eq!(acl(&b.join("later")), acl(&a.join("later")));
    // Taken away on B: mirrored back to A.
    sh(&format!("setfacl -b {}/later", b.display()));
    assert!(
        eventually(ARRIVAL, || nobody_reads(&a.join("later"))),
        "ACL removal not mirrored:\n{}",
        acl(&a.join("later"))
    );
    sync.stop();
}

#[test]
fn a_directorys_default_acl_is_mirrored_and_a_copy_gains_none_it_lacks() {
    let (s, a, b) = open_pair("acl-default");
    s.dir("a/d");
    sh(&format!("setfacl -d -m u:65534:--- {}/d", a.display()));
    // B's directory has a default ACL the source file does not carry.
    s.dir("b/inherit");
    sh(&format!("setfacl -d -m u:65534:--- {}/inherit", b.display()));
    s.dir("a/inherit");
    s.file("a/inherit/plain", b"plain");
    fs::set_permissions(a.join("inherit/plain"), fs::Permissions::from_mode(0o644)).unwrap();
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("inherit/plain"), b"plain"));
    assert!(eventually(ARRIVAL, || acl(&b.join("d")) == acl(&a.join("d"))), "default ACL:\n{}", acl(&b.join("d")));
    assert_eq!(acl(&b.join("inherit/plain")), acl(&a.join("inherit/plain")), "the copy kept an inherited ACL");
    // A file made in the mirrored directory inherits the same on both sides.
    s.file("a/d/new", b"new");
    assert!(arrives(&b.join("d/new"), b"new"));
    assert_eq!(acl(&b.join("d/new")), acl(&a.join("d/new")));
    sync.stop();
}

#[test]
fn a_copy_on_a_file_system_without_acls_keeps_its_owners_bits_alone() {
    let (s, a, b) = open_pair("acl-ramfs");
    sh(&format!("mount -t ramfs -o mode=755 ramfs {}", b.display()));
    let _unmount = Unmount(b.clone());
    s.file("a/denied", b"not for 65534");
    s.file("a/open", b"anyone");
    sh(&format!("chmod 0644 {0}/open {0}/denied && setfacl -m u:65534:--- {0}/denied", a.display()));
    let before = acl(&a.join("denied"));
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("denied"), b"not for 65534") && arrives(&b.join("open"), b"anyone"));
    assert!(nobody_reads(&b.join("open")));
    assert_eq!(mode(&b.join("open")), 0o644, "a file without an ACL was narrowed");
    assert_eq!(mode(&b.join("denied")), 0o600, "a copy more permissive than its source");
    assert!(!nobody_reads(&b.join("denied")));
    // Nothing flows back: the source keeps its mode and ACL.
    sleep(Duration::from_millis(500));
    assert_eq!(acl(&a.join("denied")), before);
    assert_eq!(mode(&a.join("denied")), 0o644);
    sync.stop();
}

/// Unmounts a test mount when the test ends, passed or not.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The value of the extended attribute `name` of `p`, if it has one.
fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let (path, name) = (guest_tests::cstr(p), std::ffi::CString::new(name).unwrap());
    let mut buf = vec![0u8; 4096];
    // SAFETY: NUL-terminated strings and a buffer of its length.
    let n = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

fn set_xattr(p: &Path, name: &str, value: Option<&[u8]>) {
    let (path, name) = (guest_tests::cstr(p), std::ffi::CString::new(name).unwrap());
    // SAFETY: NUL-terminated strings and a value of its length.
    let ret = unsafe {
        match value {
            Some(v) => libc::lsetxattr(path.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0),
            None => libc::lremovexattr(path.as_ptr(), name.as_ptr()),
        }
    };
    assert_eq!(ret, 0, "xattr {name:?} on {p:?}: {}", std::io::Error::last_os_error());
}

#[test]
fn user_extended_attributes_are_mirrored() {
    let (s, a, b) = pair("xattrs");
    s.file("a/f", b"f");
    set_xattr(&a.join("f"), "user.origin", Some(b"camera 1"));
    s.dir("a/d");
    set_xattr(&a.join("d"), "user.tag", Some(b"photos"));
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("f"), b"f"));
    assert!(
        eventually(ARRIVAL, || xattr(&b.join("f"), "user.origin").as_deref() == Some(&b"camera 1"[..])),
        "not copied"
    );
    assert!(eventually(ARRIVAL, || xattr(&b.join("d"), "user.tag").as_deref() == Some(&b"photos"[..])), "not made");
    // Set and removed alone, on either side.
    set_xattr(&b.join("f"), "user.rating", Some(b"5"));
    assert!(eventually(ARRIVAL, || xattr(&a.join("f"), "user.rating").as_deref() == Some(&b"5"[..])), "set alone");
    set_xattr(&a.join("f"), "user.origin", None);
    assert!(eventually(ARRIVAL, || xattr(&b.join("f"), "user.origin").is_none()), "removed alone");
    assert_eq!(xattr(&b.join("f"), "user.rating").as_deref(), Some(&b"5"[..]));
    sync.stop();
}
