//! What a call costs and whose it is: kernel memory charged to the caller's
//! memory cgroup, a small remembered base, and lost events that cost a
//! listing of one directory, not of the tree.

use guest_tests::{eventually, pair, Syncer, BASE_FILE};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn sh(script: &str) {
    let status = Command::new("sh").args(["-c", script]).status().expect("run sh");
    assert!(status.success(), "{script}");
}

/// A fresh cgroup2 directory with the memory controller, removed on drop.
struct Cgroup(PathBuf);

impl Cgroup {
    fn new(name: &str) -> Cgroup {
        let root = Path::new("/sys/fs/cgroup");
        if !root.join("cgroup.controllers").exists() {
            sh("mkdir -p /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup");
        }
        let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap();
        assert!(controllers.contains("memory"), "no memory controller: {controllers:?}");
        fs::write(root.join("cgroup.subtree_control"), "+memory").unwrap();
        let dir = root.join(format!("{name}-{}", std::process::id()));
        fs::create_dir(&dir).unwrap();
        Cgroup(dir)
    }

    /// One counter of `memory.stat`, in bytes.
    fn stat(&self, key: &str) -> u64 {
        let stat = fs::read_to_string(self.0.join("memory.stat")).unwrap();
        stat.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in memory.stat"))
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Emptied once the call's process exited; freed memory stays
        // charged until reclaimed, which rmdir does not wait for.
        let _ = eventually(Duration::from_secs(5), || fs::remove_dir(&self.0).is_ok());
    }
}

/// `dirs` directories of `per_dir` names each, on both sides already (a
/// start then only has to agree on them). The names are hard links of one
/// empty file: a million of them fit in the guest's memory.
fn twin_trees(a: &Path, b: &Path, dirs: usize, per_dir: usize) {
    let seed = a.parent().unwrap().join("seed");
    fs::File::create(&seed).unwrap();
    for d in 0..dirs {
        let dir = a.join(format!("d{d:04}"));
        fs::create_dir(&dir).unwrap();
        for f in 0..per_dir {
            fs::hard_link(&seed, dir.join(format!("file{f:05}"))).unwrap();
        }
    }
    fs::remove_dir(b).unwrap();
    sh(&format!("cp -a {} {}", a.display(), b.display()));
}

/// Waits until the base file stops growing (the start has agreed on every
/// name and saved them), and returns its size.
fn settled_base(a: &Path) -> u64 {
    settled_base_within(a, Duration::from_secs(120))
}

fn settled_base_within(a: &Path, limit: Duration) -> u64 {
    let size = || fs::metadata(a.join(BASE_FILE)).map(|m| m.len()).unwrap_or(0);
    let mut last = 0;
    assert!(
        eventually(limit, || {
            std::thread::sleep(Duration::from_millis(1500));
            let now = size();
            let settled = now > 0 && now == last;
            last = now;
            settled
        }),
        "the base was never saved"
    );
    last
}

#[test]
fn a_calls_kernel_memory_is_charged_to_the_callers_memory_cgroup() {
    let (_s, a, b) = pair("memcg");
    let names = 20_000u64;
    twin_trees(&a, &b, 20, 1000);
    let cgroup = Cgroup::new("rts-memcg");
    let before = cgroup.stat("slab_unreclaimable");
    let sync = Syncer::start_in_cgroup(&a, &b, &cgroup.0);
    settled_base(&a);
    let during = cgroup.stat("slab_unreclaimable");
    let charged = during.saturating_sub(before);
    println!("METRIC memcg: {charged} bytes of unreclaimable slab charged for {names} remembered names");
    // Bounded both ways by what a remembered name costs (README: a 96-byte
    // tree node plus the name, 15 bytes here, and the memory cgroup's 8
    // bytes per charged object): less than the nodes alone means the
    // thread allocated uncharged; more than all of it (measured: 129 bytes
    // a name), memory the call should not hold. 64 KiB for the marks of 21
    // directories and slab pages caught half full.
    let (least, most) = (names * 96, names * (96 + 15 + 2 * 8 + 8) + (64 << 10));
    assert!(
        (least..=most).contains(&charged),
        "{charged} bytes charged to the caller's cgroup for {names} names: not within {least}..={most}"
    );
    sync.stop();
    // What the call held goes with it (the base is freed on a workqueue,
    // and charged objects may sit in per-CPU caches a while).
    let freed = eventually(Duration::from_secs(20), || cgroup.stat("slab_unreclaimable") < before + charged / 4);
    assert!(freed, "still {} bytes charged after the call ended", cgroup.stat("slab_unreclaimable"));
}

#[test]
fn kernel_memory_per_remembered_name_is_small() {
    let (_s, a, b) = pair("pername");
    // RTS_PER_NAME_DIRS=1000 measures a million names (a guest with 4 GiB).
    let dirs = std::env::var("RTS_PER_NAME_DIRS").ok().and_then(|d| d.parse().ok()).unwrap_or(100);
    let per_dir = 1000;
    let names = (dirs * per_dir + dirs) as u64;
    twin_trees(&a, &b, dirs, per_dir);
    let cgroup = Cgroup::new("rts-pername");
    let before = cgroup.stat("slab_unreclaimable");
    let sync = Syncer::start_in_cgroup(&a, &b, &cgroup.0);
    // A start over a million names takes minutes under emulation.
    let base_bytes = settled_base_within(&a, Duration::from_secs(120 + names / 1000));
    let charged = cgroup.stat("slab_unreclaimable").saturating_sub(before);
    // "d0042/file00042": the path each name is remembered under.
    let path_len = 15;
    let per_name = charged / names;
    println!(
        "METRIC memory per name: {per_name} bytes of kernel memory per remembered name \
         ({charged} bytes for {names} names, paths of {path_len} bytes; base file {base_bytes} bytes)"
    );
    // A 96-byte tree node and the name's own allocation, and what the
    // memory cgroup keeps per charged object (8 bytes each); a little for
    // the directories' marks.
    assert!(per_name <= 96 + path_len + 2 * 8 + 8, "{per_name} bytes per remembered name");
    sync.stop();
}

#[test]
fn lost_events_in_one_directory_rescan_only_that_directory() {
    let (_s, a, b) = pair("lost");
    // A large tree beside the directory that loses events: a rescan of the
    // whole tree would show in the kernel log.
    let hot_names = 30_000;
    let hot = a.join("hot");
    fs::create_dir(&hot).unwrap();
    for i in 0..hot_names {
        fs::File::create(hot.join(format!("f{i}"))).unwrap();
    }
    twin_trees(&a, &b, 20, 1000);
    let sync = Syncer::start(&a, &b);
    settled_base(&a);
    let log_mark = guest_tests::LogMark::now();
    // The sync thread shares CPU 0 with a real-time busy loop, the test has
    // CPU 1: the thread falls behind, and the queue overflows.
    let hog = guest_tests::Starved::sync_threads();
    // 150,000 changes of 30,000 names. Among them, deletes that must hold.
    let started = Instant::now();
    for round in 0..5 {
        let mode = if round % 2 == 0 { 0o600 } else { 0o644 };
        for i in 0..hot_names {
            let name = hot.join(format!("f{i}"));
            if round == 1 && i < 1000 {
                fs::remove_file(&name).unwrap();
            } else {
                let _ = fs::set_permissions(&name, fs::Permissions::from_mode(mode));
            }
        }
    }
    drop(hog);
    fs::write(hot.join("after"), b"v1").unwrap();
    let mode_on_b = |i: usize| fs::metadata(b.join(format!("hot/f{i}"))).map(|m| m.permissions().mode() & 0o777).ok();
    let converged = eventually(Duration::from_secs(120), || {
        fs::read(b.join("hot/after")).is_ok_and(|c| c == b"v1")
            && fs::read_dir(b.join("hot")).unwrap().count() == hot_names - 1000 + 1
            && (0..hot_names).step_by(97).all(|i| mode_on_b(i) == if i < 1000 { None } else { Some(0o600) })
    });
    println!("METRIC lost events: hot directory converged {:?} after the storm began", started.elapsed());
    assert!(converged, "hot/ on B never matched A after the lost events");
    let log = log_mark.log();
    assert!(log.contains("events lost in \"hot\""), "no message for the directory that lost events:\n{log}");
    assert!(!log.contains("whole tree"), "the whole tree was rescanned:\n{log}");
    assert_eq!(fs::read_dir(b.join("d0019")).unwrap().count(), 1000);
    sync.stop();
}

/// An ignored `node_modules/` of 30,000 files costs a call nothing: it is
/// neither listed nor watched, and no name of it is remembered. Measured
/// beside the same pair without it.
#[test]
fn an_ignored_directory_of_30000_files_costs_no_time_and_no_memory() {
    let first_sync = |with_modules: bool| {
        let (_s, a, b) = pair("ignored-cost");
        fs::write(a.join(".real-time-sync-ignore"), "node_modules/\n").unwrap();
        fs::create_dir(a.join("src")).unwrap();
        for i in 0..200 {
            fs::write(a.join(format!("src/f{i:03}")), format!("source {i}")).unwrap();
        }
        if with_modules {
            let seed = a.parent().unwrap().join("seed");
            fs::File::create(&seed).unwrap();
            for d in 0..30 {
                let dir = a.join(format!("node_modules/pkg{d:02}"));
                fs::create_dir_all(&dir).unwrap();
                for f in 0..1000 {
                    fs::hard_link(&seed, dir.join(format!("index{f:04}.js"))).unwrap();
                }
            }
        }
        let cgroup = Cgroup::new("rts-ignored");
        let before = cgroup.stat("slab_unreclaimable");
        let started = Instant::now();
        let sync = Syncer::start_in_cgroup(&a, &b, &cgroup.0);
        let complete = || fs::read_dir(b.join("src")).is_ok_and(|d| d.count() == 200);
        assert!(eventually(Duration::from_secs(120), complete), "the first sync never completed");
        let took = started.elapsed();
        let base = settled_base(&a);
        let charged = cgroup.stat("slab_unreclaimable").saturating_sub(before);
        sync.stop();
        assert!(!b.join("node_modules").exists(), "the ignored directory was mirrored");
        (took, charged, base)
    };
    let (plain_took, plain_charged, plain_base) = first_sync(false);
    let (took, charged, base) = first_sync(true);
    println!(
        "METRIC ignored node_modules: first sync {took:?} with 30,000 ignored files, {plain_took:?} without; \
         {charged} bytes of slab charged with them, {plain_charged} without"
    );
    assert_eq!(base, plain_base, "names of the ignored directory were remembered");
    // Remembered or watched, 30,000 names would take more than 2.8 MB (96
    // bytes a tree node); 64 KiB for slab pages caught half full.
    assert!(
        charged <= plain_charged + (64 << 10),
        "{charged} bytes charged, {plain_charged} without the ignored files"
    );
    // Mirrored, 30,000 names would take tens of seconds under emulation:
    // twice the plain start's time, and half a second for a slow moment.
    assert!(
        took <= plain_took * 2 + Duration::from_millis(500),
        "{took:?} with the ignored files, {plain_took:?} without"
    );
}
