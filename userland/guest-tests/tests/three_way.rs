//! Never lose a file, never bring one back (issue "three-way sync"): what
//! must be there afterwards is said by a model of the test's own, not only
//! by the two sides agreeing.

use guest_tests::{arrives, assert_mirrored, base_records, eventually, pair, Syncer, ARRIVAL, BASE_FILE};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn sh(script: &str) {
    let status = Command::new("sh").args(["-c", script]).status().expect("run sh");
    assert!(status.success(), "{script}");
}

/// Regular files below `root` with their content (for a file over 1 MiB,
/// its size), relative to `root`.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    paths(root)
        .into_iter()
        .filter(|rel| root.join(rel).is_file())
        .map(|rel| (rel.clone(), content(&root.join(&rel))))
        .collect()
}

/// The paths below `root` (relative, the base file aside), sorted, without
/// reading any file: `guest_tests::tree` reads them all, which for two
/// copies of a 384 MiB file in the test's memory beside the two on the
/// tmpfs is more than a 2 GiB guest holds. One gone meanwhile is left out.
fn paths(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel == guest_tests::BASE_FILE {
                continue;
            }
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                stack.push(path);
            }
            out.push(rel);
        }
    }
    out.sort();
    out
}

fn content(path: &Path) -> Vec<u8> {
    match fs::metadata(path) {
        Ok(meta) if meta.len() > 1 << 20 => format!("{} bytes", meta.len()).into_bytes(),
        _ => fs::read(path).unwrap_or_default(),
    }
}

#[test]
fn a_directory_and_a_newer_file_under_one_name_at_start_keep_both() {
    let (s, a, b) = pair("kind-clash");
    s.dir("a/proj/src");
    s.file("a/proj/src/main.c", b"int main;");
    s.file("b/proj", b"a newer file");
    sh(&format!("touch -d @1600000000 {0}/proj {0}/proj/src {0}/proj/src/main.c", a.display()));
    let sync = Syncer::start(&a, &b);
    // The newer file takes the name; the directory is kept beside it.
    for side in [&a, &b] {
        assert!(arrives(&side.join("proj"), b"a newer file"), "the newer file lost its name");
        let kept = || {
            fs::read_dir(side).unwrap().flatten().find(|e| {
                e.file_name().to_string_lossy().starts_with("proj.sync-conflict-")
                    && fs::read(e.path().join("src/main.c")).is_ok_and(|c| c == b"int main;")
            })
        };
        assert!(eventually(ARRIVAL, || kept().is_some()), "the directory was not kept on {side:?}");
    }
    assert_mirrored(&a, &b);
    sync.stop();
}

#[test]
fn two_files_with_the_same_bytes_are_no_conflict() {
    let (s, a, b) = pair("same-bytes");
    s.file("a/same", b"identical");
    s.file("b/same", b"identical");
    sh(&format!("touch -d @1600000000 {}/same && touch -d @1700000000 {}/same", a.display(), b.display()));
    let sync = Syncer::start(&a, &b);
    fs::write(a.join("sentinel"), b"x").unwrap();
    assert!(arrives(&b.join("sentinel"), b"x"));
    assert_mirrored(&a, &b);
    let names: Vec<_> = fs::read_dir(&a).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names.len(), 2, "a conflict copy for equal bytes: {names:?}");
    sync.stop();
}

#[test]
fn files_created_during_an_rm_rf_on_the_other_side_survive_on_both() {
    let (s, a, b) = pair("rm-rf-race");
    s.dir("a/d");
    sh(&format!("cd {}/d && seq -f f%04g 1 1000 | xargs touch", a.display()));
    let sync = Syncer::start(&a, &b);
    assert!(eventually(ARRIVAL, || fs::read_dir(b.join("d")).is_ok_and(|d| d.count() == 1000)), "not mirrored");
    // A large copy keeps the sync busy: the whole rm and the creates on B
    // happen before it looks at either, as on a loaded machine.
    fs::write(a.join("big"), vec![1u8; 384 << 20]).unwrap();
    sh(&format!("rm -rf {}/d", a.display()));
    // The model: what B's user created after the rm, in the directory it removed.
    let mut created = BTreeMap::new();
    for i in 0..200 {
        let name = format!("d/new-{i:03}");
        fs::write(b.join(&name), name.as_bytes()).unwrap();
        created.insert(name.clone(), name.into_bytes());
    }
    assert!(fs::metadata(b.join("big")).map_or(true, |m| m.len() < 384 << 20), "the sync was not busy: no race");
    created.insert("big".into(), format!("{} bytes", 384 << 20).into_bytes());
    let matches = |root: &Path| files(root) == created;
    if !eventually(ARRIVAL, || matches(&a) && matches(&b)) {
        for root in [&a, &b] {
            let have: Vec<String> = files(root).into_keys().collect();
            let missing: Vec<_> = created.keys().filter(|n| !have.contains(n)).collect();
            let extra: Vec<_> = have.iter().filter(|n| !created.contains_key(*n)).collect();
            eprintln!("{root:?}: missing {missing:?}, {} extra, first {:?}", extra.len(), extra.first());
        }
        panic!("files created on B during the rm -rf on A were lost, or deleted ones came back");
    }
    sync.stop();
}

/// Waits until both sides hold exactly the files `want` (name, content)
/// and the directories that hold them, nothing else (the base file aside).
fn both_hold(a: &Path, b: &Path, want: &[(&str, &[u8])]) {
    let model: BTreeMap<String, Vec<u8>> = want.iter().map(|(n, c)| (n.to_string(), c.to_vec())).collect();
    let mut model_names: Vec<String> = model.keys().cloned().collect();
    for name in model.keys() {
        let mut dir = Path::new(name).parent();
        while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
            model_names.push(d.to_string_lossy().into_owned());
            dir = d.parent();
        }
    }
    model_names.sort();
    model_names.dedup();
    let visible = |root: &Path| (files(root), paths(root));
    let want_now = (model.clone(), model_names.clone());
    let ok = eventually(ARRIVAL, || visible(a) == want_now && visible(b) == want_now);
    assert!(ok, "want {model_names:?}\nA {:?}\nB {:?}", paths(a), paths(b));
}

#[test]
fn ctrl_z_then_a_delete_and_a_rename_are_mirrored_after_fg() {
    let (s, a, b) = pair("ctrl-z");
    s.dir("a/d");
    s.file("a/f", b"f");
    s.file("a/d/x", b"x");
    let mut sync = Syncer::start(&a, &b);
    both_hold(&a, &b, &[("f", b"f"), ("d/x", b"x")]);
    sync.signal(libc::SIGTSTP);
    assert!(eventually(ARRIVAL, || sync.state() == 'T'), "not stopped");
    fs::remove_file(a.join("f")).unwrap();
    fs::rename(a.join("d"), a.join("e")).unwrap();
    sync.signal(libc::SIGCONT);
    sync.wait_in_call(ARRIVAL);
    both_hold(&a, &b, &[("e/x", b"x")]);
    assert!(!b.join("d").exists(), "d came back");
    sync.stop();
}

#[test]
fn a_restart_mirrors_what_changed_while_no_call_ran() {
    let (s, a, b) = pair("restart");
    s.file("a/deleted", b"old");
    s.file("a/changed", b"v1");
    s.file("a/kept", b"kept");
    let sync = Syncer::start(&a, &b);
    both_hold(&a, &b, &[("deleted", b"old"), ("changed", b"v1"), ("kept", b"kept")]);
    sync.stop();
    assert!(a.join(BASE_FILE).is_file(), "no base left in A");
    assert!(!b.join(BASE_FILE).exists(), "the base file was mirrored");
    // Offline: a delete on B, a change on A.
    fs::remove_file(b.join("deleted")).unwrap();
    fs::write(a.join("changed"), b"v2, longer").unwrap();
    let sync = Syncer::start(&a, &b);
    both_hold(&a, &b, &[("changed", b"v2, longer"), ("kept", b"kept")]);
    assert!(!b.join(BASE_FILE).exists(), "the base file was mirrored");
    sync.stop();
}

#[test]
fn a_renamed_directory_can_be_removed_with_rm_rf_at_once() {
    let (s, a, b) = pair("mv-rm");
    let sync = Syncer::start(&a, &b);
    for round in 0..4 {
        s.dir("a/d");
        for i in 0..20 {
            s.file(&format!("a/d/f{i}"), format!("{round}-{i}").as_bytes());
        }
        assert!(eventually(ARRIVAL, || fs::read_dir(b.join("d")).is_ok_and(|d| d.count() == 20)), "round {round}");
        fs::rename(a.join("d"), a.join("e")).unwrap();
        assert!(eventually(ARRIVAL, || b.join("e").is_dir() && !b.join("d").exists()), "round {round}: rename");
        let rm = Command::new("rm").arg("-rf").arg(a.join("e")).output().unwrap();
        assert!(rm.status.success(), "round {round}: {}", String::from_utf8_lossy(&rm.stderr));
        both_hold(&a, &b, &[]);
    }
    sync.stop();
}

#[test]
fn an_emptied_side_at_start_does_not_empty_the_other() {
    let (s, a, b) = pair("interlock");
    s.dir("a/many");
    sh(&format!("cd {}/many && seq -f f%03g 1 300 | xargs touch", a.display()));
    let sync = Syncer::start(&a, &b);
    assert!(eventually(ARRIVAL, || fs::read_dir(b.join("many")).is_ok_and(|d| d.count() == 300)));
    sync.stop();
    // B emptied while no call ran, as an empty disk mounted in its place
    // looks: the same root (a new one would make the base another pair's,
    // and the interlock would never be asked).
    let root = guest_tests::ino(&b);
    fs::remove_dir_all(b.join("many")).unwrap();
    assert_eq!(guest_tests::ino(&b), root);
    let log = guest_tests::LogMark::now();
    let sync = Syncer::start(&a, &b);
    assert!(
        log.eventually_logged("301 of 301 remembered names are missing from dir_B: not deleting them"),
        "no interlock message:\n{}",
        log.log()
    );
    assert!(eventually(ARRIVAL, || fs::read_dir(b.join("many")).is_ok_and(|d| d.count() == 300)), "not restored");
    assert_eq!(fs::read_dir(a.join("many")).unwrap().count(), 300, "A was emptied");
    sync.stop();
}

#[test]
fn a_damaged_base_deletes_nothing() {
    let (s, a, b) = pair("bad-base");
    s.file("a/x", b"x");
    let sync = Syncer::start(&a, &b);
    both_hold(&a, &b, &[("x", b"x")]);
    sync.stop();
    let mut base = fs::read(a.join(BASE_FILE)).unwrap();
    let last = base.len() - 1;
    base[last] ^= 1;
    fs::write(a.join(BASE_FILE), &base).unwrap();
    fs::remove_file(b.join("x")).unwrap();
    let sync = Syncer::start(&a, &b);
    // Without a usable base, a name on one side is copied, never deleted.
    both_hold(&a, &b, &[("x", b"x")]);
    sync.stop();
}

/// After `spoil` did something to the base while no call ran, a delete made
/// meanwhile is not mirrored: without a usable base the start is a union.
/// What `said` names is in the kernel log, once.
fn union_start_after(spoil: impl FnOnce(&Path), said: Option<&str>) {
    let (s, a, b) = pair("union-start");
    s.file("a/removed-from-b", b"x");
    s.file("a/kept", b"y");
    let sync = Syncer::start(&a, &b);
    both_hold(&a, &b, &[("removed-from-b", b"x"), ("kept", b"y")]);
    // Saved while the call runs, so that its last save, which ends after
    // it returned, has nothing left to write over what `spoil` does.
    assert!(eventually(ARRIVAL, || base_records(&a, "removed-from-b") && base_records(&a, "kept")));
    sync.stop();
    spoil(&a.join(BASE_FILE));
    fs::remove_file(b.join("removed-from-b")).unwrap();
    let log = guest_tests::LogMark::now();
    let sync = Syncer::start(&a, &b);
    both_hold(&a, &b, &[("removed-from-b", b"x"), ("kept", b"y")]);
    if let Some(said) = said {
        assert_eq!(log.lines_with(said), 1, "{}", log.log());
    }
    sync.stop();
}

#[test]
fn a_deleted_base_means_a_union_start() {
    union_start_after(|base| fs::remove_file(base).unwrap(), None);
}

#[test]
fn a_truncated_base_means_a_union_start_and_is_said() {
    union_start_after(
        // Cut within its header: a cut further on fails the checksum, and
        // is said as damaged (a_damaged_base_deletes_nothing).
        |base| fs::OpenOptions::new().write(true).open(base).unwrap().set_len(16).unwrap(),
        Some("is not usable (Truncated): nothing is deleted at start"),
    );
}

/// Found by the model run (seed 2, two-sided phase): `rm -rf` of a
/// directory on one side and, at once, the same directory made again with a
/// new version of a file in it. The new version must reach the other side,
/// whichever moment the thread looks in between.
#[test]
fn a_directory_removed_and_made_again_at_once_holds_the_new_files() {
    let (s, a, b) = pair("rm-mkdir");
    s.dir("a/d/e");
    s.file("a/d/e/n", b"round -1");
    s.file("a/d/e/m", b"m");
    let sync = Syncer::start(&a, &b);
    both_hold(&a, &b, &[("d/e/n", b"round -1"), ("d/e/m", b"m")]);
    for round in 0..120 {
        let content = format!("round {round}");
        fs::remove_dir_all(b.join("d/e")).unwrap();
        if round % 3 == 1 {
            std::thread::sleep(std::time::Duration::from_micros(200 * (round % 10)));
        }
        fs::create_dir_all(b.join("d/e")).unwrap();
        fs::write(b.join("d/e/n"), &content).unwrap();
        let model = [("d/e/n", content.as_bytes())];
        let ok = eventually(ARRIVAL, || {
            files(&a) == files(&b) && files(&a).get("d/e/n").map(|c| c.as_slice()) == Some(content.as_bytes())
        });
        assert!(ok, "round {round}: A {:?} B {:?}", files(&a), files(&b));
        both_hold(&a, &b, &model);
    }
    sync.stop();
}

/// Found by the model run (a SIGSTOP restarts the call): a file rewritten
/// in place while no call ran, with the same size and the same timestamp
/// (one tick, or times set back), looks unchanged by size and time; its
/// inode's change cookie tells.
#[test]
fn a_rewrite_in_place_with_the_same_size_and_time_while_stopped_is_mirrored() {
    let (s, a, b) = pair("same-tick");
    s.file("a/f", b"aaa");
    let sync = Syncer::start(&a, &b);
    both_hold(&a, &b, &[("f", b"aaa")]);
    sync.stop();
    let times = s.root.join("times");
    sh(&format!("touch -r {0}/f {1} && printf bbb > {0}/f && touch -r {1} {0}/f", a.display(), times.display()));
    let sync = Syncer::start(&a, &b);
    both_hold(&a, &b, &[("f", b"bbb")]);
    sync.stop();
}

#[test]
fn a_file_the_user_creates_while_a_copy_is_in_flight_is_never_replaced() {
    // A new file's copy lands on B by a rename that must not replace a file
    // the user put under that name meanwhile (`vfs_rename` leaves that check
    // to its caller): the user's version stays, and both sides keep both.
    let (s, a, b) = pair("in-flight");
    let sync = Syncer::start(&a, &b);
    let in_flight = || fs::read_dir(&b).unwrap().flatten().any(|e| e.file_name().as_bytes().starts_with(b".usac-tmp-"));
    let mut hit = None;
    for round in 0..20 {
        let name = format!("big{round}");
        // Written outside the roots and renamed in: one event, one copy.
        let staged = s.file(&format!("staged{round}"), &vec![b'a'; 32 << 20]);
        fs::rename(&staged, a.join(&name)).unwrap();
        assert!(eventually(ARRIVAL, || in_flight() || b.join(&name).exists()), "{name} never reached B");
        // Only a name created while the copy's temporary file is still
        // there (checked after the create) meets the rename that places it.
        let created = fs::OpenOptions::new().write(true).create_new(true).open(b.join(&name));
        if let Ok(mut mine) = created {
            mine.write_all(b"mine").unwrap();
            if in_flight() {
                hit = Some(name);
                break;
            }
        }
    }
    let name = hit.expect("in 20 rounds the user never wrote while a copy was in flight");
    let kept = |side: &Path, want: &[u8]| {
        files(side).iter().any(|(rel, content)| rel.starts_with(name.as_str()) && content == want)
    };
    for side in [&a, &b] {
        let both = eventually(ARRIVAL, || kept(side, b"mine") && kept(side, b"33554432 bytes"));
        assert!(both, "{side:?} does not hold both versions of {name}: {:?}", files(side).keys().collect::<Vec<_>>());
    }
    sync.stop();
}

#[test]
fn the_base_is_saved_soon_after_the_last_change_while_the_call_runs() {
    // A crash keeps what the base last saved: it must follow the changes
    // within seconds, not wait for the next change or the end of the call.
    let (s, a, b) = pair("saved-soon");
    s.file("a/one", b"1");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("one"), b"1"));
    let saved = || fs::read(a.join(BASE_FILE)).ok();
    assert!(eventually(Duration::from_secs(3), || saved().is_some()), "no base saved 3 s after the start");
    let before = saved();
    fs::write(a.join("two"), b"2").unwrap();
    assert!(arrives(&b.join("two"), b"2"));
    assert!(eventually(Duration::from_secs(3), || saved() != before), "the base did not follow a change within 3 s");
    sync.stop();
}

/// B's user holds `d/n` open for writing while A's user removes `d`: the
/// rest of `d` goes at once, `d/n` waits for its writer. What the writer
/// writes after the delete is newer and comes back to A; a close without a
/// write brings nothing, and the delete wins.
fn a_removed_directory_with_a_writer_on_the_other_side(write: bool) {
    let (s, a, b) = pair(if write { "rm-rf-writer" } else { "rm-rf-idle-writer" });
    s.dir("a/d");
    s.file("a/d/n", b"one");
    s.file("a/d/m", b"m");
    let sync = Syncer::start(&a, &b);
    both_hold(&a, &b, &[("d/n", b"one"), ("d/m", b"m")]);
    let mut writer = fs::OpenOptions::new().append(true).open(b.join("d/n")).unwrap();
    sh(&format!("rm -rf {}/d", a.display()));
    assert!(guest_tests::gone(&b.join("d/m")), "the delete was not mirrored");
    std::thread::sleep(Duration::from_millis(300));
    if write {
        writer.write_all(b"two").unwrap();
    }
    drop(writer);
    both_hold(&a, &b, if write { &[("d/n", b"onetwo")] } else { &[] });
    sync.stop();
}

#[test]
fn a_write_after_the_other_side_removed_its_directory_is_kept_on_both() {
    a_removed_directory_with_a_writer_on_the_other_side(true);
}

#[test]
fn a_file_closed_unwritten_after_the_other_side_removed_its_directory_goes() {
    a_removed_directory_with_a_writer_on_the_other_side(false);
}

/// The same close, but taken in one batch with the delete (a large copy
/// keeps the sync busy meanwhile): it brought nothing new, so it must not
/// undo the delete (CI's model run had `rm -rf` undone this way).
#[test]
fn a_close_without_a_write_in_the_batch_of_a_removed_directory_does_not_undo_it() {
    let (s, a, b) = pair("rm-rf-close");
    s.dir("a/d");
    s.file("a/d/n", b"n");
    s.file("a/d/m", b"m");
    let sync = Syncer::start(&a, &b);
    both_hold(&a, &b, &[("d/n", b"n"), ("d/m", b"m")]);
    let writer = fs::OpenOptions::new().append(true).open(b.join("d/n")).unwrap();
    fs::write(a.join("big"), vec![1u8; 384 << 20]).unwrap();
    sh(&format!("rm -rf {}/d", a.display()));
    drop(writer);
    assert!(fs::metadata(b.join("big")).map_or(true, |m| m.len() < 384 << 20), "the sync was not busy: no race");
    let big = format!("{} bytes", 384 << 20);
    both_hold(&a, &b, &[("big", big.as_bytes())]);
    sync.stop();
}
