//! Ignore rules: `.real-time-sync-ignore` at the top of either tree, in
//! gitignore(5)'s syntax (issue 24). Each test checks, name by name, what
//! must be on each side, against a list written from the rules alone.

use guest_tests::{arrives, eventually, pair, LogMark, Syncer, ARRIVAL, BASE_FILE};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const RULES: &str = ".real-time-sync-ignore";

/// The name [`settle`] writes, left out of [`names`].
const SENTINEL: &str = "sentinel";

/// Every entry below `root` (the base and the sentinel aside), relative,
/// sorted, directories with a trailing `/`.
fn names(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            if rel == BASE_FILE || rel == SENTINEL {
                continue;
            }
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &path, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Waits until everything done on `from` before it was acted on: a change
/// written after it arrives on `to`. A wrong late action (a copy of an
/// ignored name) would have come before it.
fn settle(from: &Path, to: &Path) {
    static ROUND: AtomicU32 = AtomicU32::new(0);
    let round = ROUND.fetch_add(1, Ordering::Relaxed).to_string();
    fs::write(from.join(SENTINEL), &round).unwrap();
    assert!(arrives(&to.join(SENTINEL), round.as_bytes()), "the sentinel never arrived");
}

/// Writes the rules on `side` and waits until they are mirrored to `other`:
/// the thread reads them again once it mirrored them.
fn set_rules(side: &Path, other: &Path, rules: &str) {
    fs::write(side.join(RULES), rules).unwrap();
    assert!(arrives(&other.join(RULES), rules.as_bytes()), "the rules never arrived");
}

#[test]
fn anchored_negated_directory_only_and_double_star_rules_decide_what_is_mirrored() {
    let (_s, a, b) = pair("ignore-syntax");
    let rules = "# build outputs\n*.o\n!keep.o\n/build/\ncache/\ndocs/**/*.tmp\n/top-only\n";
    write(&a, RULES, rules);
    for rel in [
        "main.c",
        "main.o",
        "keep.o",
        "sub/x.o",
        "sub/keep.o",
        "build/out",
        "sub/build/out",
        "cache/big",
        "sub/cache",
        "docs/a.tmp",
        "docs/x/y/b.tmp",
        "docs/b.txt",
        "top-only",
        "sub/top-only",
    ] {
        write(&a, rel, rel);
    }
    // Ignored names B holds already, other than A's: left as they are.
    write(&b, "main.o", "B's own");
    write(&b, "b.o", "B's own");
    write(&b, "from-b.c", "from B");
    let a_before = names(&a);
    let sync = Syncer::start(&a, &b);
    settle(&a, &b);
    settle(&b, &a);
    let mirrored = [
        RULES,
        "main.c",
        "keep.o",
        "sub/",
        "sub/keep.o",
        "sub/build/",
        "sub/build/out",
        "sub/cache",
        "docs/",
        "docs/b.txt",
        "docs/x/",
        "docs/x/y/",
        "sub/top-only",
        "from-b.c",
    ];
    let mut on_b = mirrored.to_vec();
    on_b.extend(["main.o", "b.o"]);
    assert_eq!(names(&b), sorted(&on_b), "B");
    let mut on_a: Vec<String> = a_before.clone();
    on_a.push("from-b.c".into());
    on_a.sort();
    assert_eq!(names(&a), on_a, "A");
    assert_eq!(read(&a, "main.o"), "main.o");
    assert_eq!(read(&b, "main.o"), "B's own");
    // Live: new and changed ignored names stay where they are; an editor's
    // swap file renamed to its real name arrives under that name.
    set_rules(&a, &b, &format!("{rules}*.swp\n"));
    write(&a, "new.o", "new");
    write(&a, "main.o", "changed on A");
    fs::remove_file(b.join("b.o")).unwrap();
    write(&a, "sub/new.c", "new source");
    write(&a, "doc.swp", "saved");
    fs::rename(a.join("doc.swp"), a.join("doc")).unwrap();
    assert!(arrives(&b.join("doc"), b"saved"));
    // Renamed to an ignored name: gone from B, not renamed there.
    fs::rename(a.join("doc"), a.join("doc.swp")).unwrap();
    assert!(eventually(ARRIVAL, || !b.join("doc").exists()), "the rename away never arrived");
    assert!(arrives(&b.join("sub/new.c"), b"new source"));
    settle(&a, &b);
    settle(&b, &a);
    assert!(!b.join("new.o").exists() && !b.join("doc.swp").exists(), "B: {:?}", names(&b));
    assert_eq!(read(&b, "main.o"), "B's own");
    assert!(!b.join("b.o").exists() && !a.join("b.o").exists());
    assert!(a.join("keep.o").exists() && a.join("new.o").exists());
    sync.stop();
}

#[test]
fn a_rule_added_live_deletes_nothing_and_stops_mirroring_its_names() {
    let (_s, a, b) = pair("ignore-added");
    write(&a, "app.log", "v1");
    write(&a, "logs/old.log", "old");
    write(&a, "keep", "k");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("logs/old.log"), b"old") && arrives(&b.join("app.log"), b"v1"));
    set_rules(&b, &a, "*.log\nlogs/\n");
    // Names mirrored before stay on both sides, and are no longer mirrored.
    write(&a, "app.log", "v2 on A");
    fs::remove_file(a.join("logs/old.log")).unwrap();
    write(&b, "logs/new.log", "new on B");
    write(&a, "keep", "k2");
    assert!(arrives(&b.join("keep"), b"k2"));
    settle(&a, &b);
    settle(&b, &a);
    assert_eq!(read(&b, "app.log"), "v1");
    assert_eq!(read(&b, "logs/old.log"), "old");
    assert!(!a.join("logs/new.log").exists());
    assert_eq!(names(&a), sorted(&[RULES, "app.log", "keep", "logs/"]));
    assert_eq!(names(&b), sorted(&[RULES, "app.log", "keep", "logs/", "logs/old.log", "logs/new.log"]));
    sync.stop();
    // A new call with the rules agrees: nothing is deleted at its start.
    let sync = Syncer::start(&a, &b);
    settle(&a, &b);
    assert_eq!(names(&b), sorted(&[RULES, "app.log", "keep", "logs/", "logs/old.log", "logs/new.log"]));
    sync.stop();
}

#[test]
fn a_rule_removed_live_brings_its_names_in_as_a_union_never_a_delete() {
    let (_s, a, b) = pair("ignore-removed");
    write(&a, "gone.log", "mirrored before the rule");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("gone.log"), b"mirrored before the rule"));
    set_rules(&a, &b, "*.log\n");
    // While ignored: deleted on A, different versions on each side.
    fs::remove_file(a.join("gone.log")).unwrap();
    // Of other sizes: alike in size and mtime, two files look the same.
    write(&a, "both.log", "A's own version");
    write(&b, "both.log", "B's version");
    write(&a, "only-a.log", "a");
    write(&b, "only-b.log", "b");
    settle(&a, &b);
    assert!(b.join("gone.log").exists(), "a delete of an ignored name was mirrored");
    // The rule goes: no base for what it ignored, so a union.
    fs::remove_file(a.join(RULES)).unwrap();
    assert!(eventually(ARRIVAL, || !b.join(RULES).exists()), "the removal of the rules never arrived");
    for (rel, content) in [("gone.log", "mirrored before the rule"), ("only-a.log", "a"), ("only-b.log", "b")] {
        assert!(arrives(&a.join(rel), content.as_bytes()), "{rel} on A");
        assert!(arrives(&b.join(rel), content.as_bytes()), "{rel} on B");
    }
    // Both versions kept on both sides, one under a conflict name.
    let versions = |root: &Path| {
        let mut found: Vec<String> = fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("both"))
            .map(|p| fs::read_to_string(p).unwrap())
            .collect();
        found.sort();
        found
    };
    let both = vec!["A's own version".to_string(), "B's version".to_string()];
    assert!(
        eventually(ARRIVAL, || versions(&a) == both && versions(&b) == both),
        "A {:?}, B {:?}",
        versions(&a),
        versions(&b)
    );
    settle(&a, &b);
    assert_eq!(names(&a), names(&b));
    sync.stop();
}

/// The base of a call that ran before a rule came knows names the rule now
/// ignores; a delete made while no call ran is no reason to delete the
/// other side's copy once the rule goes.
#[test]
fn names_a_rule_ignores_at_start_are_forgotten_by_the_base() {
    let (_s, a, b) = pair("ignore-start");
    write(&a, "old.log", "mirrored by the first call");
    write(&a, "keep", "k");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("old.log"), b"mirrored by the first call"));
    assert!(eventually(ARRIVAL, || guest_tests::base_records(&a, "old.log")), "the base was never saved");
    sync.stop();
    write(&a, RULES, "*.log\n");
    write(&b, RULES, "*.log\n");
    fs::remove_file(a.join("old.log")).unwrap();
    let sync = Syncer::start(&a, &b);
    settle(&a, &b);
    assert!(b.join("old.log").exists(), "an ignored name was deleted");
    fs::remove_file(a.join(RULES)).unwrap();
    assert!(eventually(ARRIVAL, || !b.join(RULES).exists()), "the removal of the rules never arrived");
    assert!(arrives(&a.join("old.log"), b"mirrored by the first call"), "not brought back as a union");
    settle(&a, &b);
    assert_eq!(names(&a), sorted(&["keep", "old.log"]));
    assert_eq!(names(&b), names(&a));
    sync.stop();
}

#[test]
fn a_removed_directory_stays_for_its_ignored_names_unless_they_match_deletable_rules() {
    let (_s, a, b) = pair("ignore-rmrf");
    write(&a, RULES, "node_modules/\n(?d).DS_Store\n(?d)thumbs/\n");
    write(&a, "proj/src/main.js", "main");
    write(&a, "proj/node_modules/dep/index.js", "A's dep");
    write(&a, "tidy/src/y", "y");
    write(&a, "tidy/.DS_Store", "A's finder");
    write(&b, "tidy/.DS_Store", "B's finder");
    write(&b, "tidy/thumbs/t1", "thumb");
    write(&b, "proj/node_modules/other/index.js", "B's dep");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("proj/src/main.js"), b"main") && arrives(&b.join("tidy/src/y"), b"y"));
    settle(&a, &b);
    let log = LogMark::now();
    fs::remove_dir_all(a.join("proj")).unwrap();
    fs::remove_dir_all(a.join("tidy")).unwrap();
    // Only ignored names of `(?d)` rules kept `tidy`: they go with it.
    assert!(eventually(ARRIVAL, || !b.join("tidy").exists()), "tidy on B: {:?}", names(&b));
    assert!(eventually(ARRIVAL, || !b.join("proj/src").exists()), "proj/src on B: {:?}", names(&b));
    assert!(log.eventually_logged("\"proj\" not mirrored: B holds ignored names in it"));
    // The call goes on, and nothing comes back or is said again.
    write(&a, "after", "still mirroring");
    assert!(arrives(&b.join("after"), b"still mirroring"));
    std::thread::sleep(Duration::from_secs(2));
    settle(&a, &b);
    settle(&b, &a);
    assert_eq!(names(&a), sorted(&[RULES, "after"]));
    assert_eq!(
        names(&b),
        sorted(&[
            RULES,
            "after",
            "proj/",
            "proj/node_modules/",
            "proj/node_modules/other/",
            "proj/node_modules/other/index.js"
        ])
    );
    assert_eq!(log.lines_with("holds ignored names"), 1, "{}", log.log());
    sync.stop();
    // The directory stays agreed on: a new call does not bring it back to A.
    let sync = Syncer::start(&a, &b);
    settle(&a, &b);
    settle(&b, &a);
    assert_eq!(names(&a), sorted(&[RULES, "after"]));
    sync.stop();
}

#[test]
fn a_bad_line_is_said_once_and_the_other_rules_apply() {
    let (_s, a, b) = pair("ignore-bad");
    let log = LogMark::now();
    write(&a, RULES, "[unclosed\n*.o\n");
    write(&a, "x.o", "object");
    write(&a, "x.c", "source");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("x.c"), b"source"));
    settle(&a, &b);
    assert!(!b.join("x.o").exists(), "the valid rule did not apply");
    assert!(log.eventually_logged("line 1 of dir_A/.real-time-sync-ignore is no valid pattern"));
    write(&a, "y.c", "more");
    assert!(arrives(&b.join("y.c"), b"more"));
    settle(&a, &b);
    assert_eq!(log.lines_with("line 1 of dir_A/"), 1, "{}", log.log());
    assert_eq!(log.lines_with("line 2 of"), 0, "{}", log.log());
    sync.stop();
}

#[test]
fn a_rules_file_over_64_kib_is_said_once_and_not_used() {
    let (_s, a, b) = pair("ignore-large");
    let log = LogMark::now();
    let large = "*\n".repeat(512 << 10);
    write(&a, RULES, &large);
    write(&a, "x", "mirrored all the same");
    let sync = Syncer::start(&a, &b);
    assert!(arrives(&b.join("x"), b"mirrored all the same"));
    assert!(arrives(&b.join(RULES), large.as_bytes()));
    write(&a, "y", "and this");
    assert!(arrives(&b.join("y"), b"and this"));
    settle(&a, &b);
    assert_eq!(log.lines_with("dir_A/.real-time-sync-ignore cannot be used"), 1, "{}", log.log());
    sync.stop();
}
