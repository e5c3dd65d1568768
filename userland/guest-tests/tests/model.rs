//! A model-based random run (issue "three-way sync"): thousands of random
//! operations on both sides, live, while the call is stopped with SIGSTOP,
//! and while no call runs at all. Every operation is made twice: on the side
//! under change and on a shadow tree that no call watches. The shadow, built
//! from the operations alone, is the model: every phase ends with both
//! sides holding what it holds (modes, kinds, contents, symlink targets) and
//! with the two sides equal to each other (mtimes included). Nothing lost,
//! nothing brought back, no conflict copy (the run makes no real conflict),
//! and nothing the sync did can creep into the model.
//!
//! Some operations hold what they open across the operations that follow
//! (issue 21): a writer that goes on appending while the sync copies its
//! file, a descriptor opened for writing and closed without a write (on
//! either side), a write lease on the side not under change; truncate(2) by
//! path is one of the operations. Writers and idle descriptors are closed
//! before a phase's end is checked; leases are held while the sides
//! converge (a sync that blocked on one would not converge in time), then
//! released. `RTS_OPS` sets the number of operations; the seed is printed,
//! and a failing seed becomes a fixed test below.
//!
//! Ignore rules (issue 24): the run starts with a rules file that makes
//! every top-level `i*` name private to each side, and edits it now and
//! then, live and as an editor saves (under an ignored name, then renamed
//! over it), to re-include `i2` and to ignore it again. Operations reach
//! the ignored names too, renames between them and mirrored names among
//! them. Each side has a private shadow for what the rules keep to it; a
//! side must hold the shared shadow and its own private one, nothing of
//! the other side's.

use guest_tests::{assert_temp_names_go, eventually, pair, Syncer, ARRIVAL};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const RULES_FILE: &str = ".real-time-sync-ignore";
/// The rules the run switches between: every top-level `i*` name kept to
/// its side, or all of them but `i2`.
const RULES_ALL: &str = "# names each side keeps to itself\n/i*\n";
const RULES_BUT_I2: &str = "# names each side keeps to itself\n/i*\n!/i2\n";

/// Reproducible choices from a seed (xoshiro256++, a fixed algorithm).
struct Rng(Xoshiro256PlusPlus);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0.random_range(0..n)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

type Tree = Vec<(PathBuf, Vec<u8>)>;

fn is_temp(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".usac-tmp-"))
}

/// A side as the model sees it: without the sync's own temporary files,
/// which come and go while it copies (the end of the run checks that
/// none stays behind).
fn tree(root: &Path) -> Tree {
    guest_tests::tree(root).into_iter().filter(|(p, _)| !is_temp(p)).collect()
}

/// The first three words of a file entry (mode and mtime) and its
/// content; `None` for the entry of a directory, symlink or special file.
fn split_file_entry(value: &[u8]) -> Option<(&[u8], &[u8])> {
    if value.starts_with(b"-> ") {
        return None;
    }
    let third_space = value.iter().enumerate().filter(|&(_, &c)| c == b' ').nth(2)?.0;
    Some(value.split_at(third_space + 1))
}

/// `tree` without the mtimes, which the shadow cannot share with the
/// sides: its writes happen at other instants.
fn without_mtimes(tree: Tree) -> Tree {
    tree.into_iter()
        .map(|(path, value)| match split_file_entry(&value) {
            Some((mode_mtime, content)) => {
                let mode_end = mode_mtime.iter().position(|&c| c == b' ').map_or(0, |i| i + 1);
                let stripped = [&mode_mtime[..mode_end], content].concat();
                (path, stripped)
            }
            None => (path, value),
        })
        .collect()
}

/// What a file held under a lease shows from outside: its mode, mtime and
/// size. Reading it would break the lease.
fn leased_entry(meta: &fs::Metadata) -> Vec<u8> {
    format!("<leased, {} bytes>", meta.len()).into_bytes()
}

/// True when `have` (which may show leased files from outside) agrees
/// with `want`: the same names, each entry equal or a leased file with
/// `want`'s mode, mtime and size.
fn agrees(have: &Tree, want: &Tree) -> bool {
    have.len() == want.len()
        && have.iter().zip(want).all(|((p, h), (q, w))| {
            p == q
                && (h == w
                    || matches!((split_file_entry(h), split_file_entry(w)),
                        (Some((h_mode_mtime, h_content)), Some((w_mode_mtime, w_content)))
                            if h_mode_mtime == w_mode_mtime
                                && h_content == format!("<leased, {} bytes>", w_content.len()).as_bytes()))
        })
}

/// Where a phase's operations may touch: the whole tree, or one subtree.
#[derive(Clone, Copy)]
enum Area {
    Whole,
    Sub(&'static str),
}

impl Area {
    fn dirs(self) -> &'static [&'static str] {
        match self {
            Area::Whole => &["", "d1", "d2", "d1/e"],
            Area::Sub("d1") => &["d1", "d1/e", "d1/f"],
            Area::Sub(_) => &["d2", "d2/e"],
        }
    }

    fn top(self) -> &'static str {
        match self {
            Area::Whole => "",
            Area::Sub(top) => top,
        }
    }
}

/// What an operation keeps open after it returns.
enum Held {
    /// Open for appending, on the side under change and on the shadow;
    /// written again later.
    Writer { side: File, shadow: File },
    /// Open for writing, never written: closing it is no change.
    Idle(#[expect(dead_code, reason = "kept to be closed, by drop, without a write")] File),
    /// A write lease on the side not under change.
    Lease(File),
}

/// Opens `path` for appending, without blocking on a lease (the test's own,
/// held on the other side's file of the same name, must not stall it).
fn open_for_append(path: &Path) -> std::io::Result<File> {
    fs::OpenOptions::new().append(true).custom_flags(libc::O_NONBLOCK).open(path)
}

/// Truncates `path` to `len` bytes by path, as truncate(1) does.
fn truncate_by_path(path: &Path, len: u64) -> std::io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    let len = libc::off_t::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call.
    if unsafe { libc::truncate(c_path.as_ptr(), len) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Takes a write lease on the regular file `path`: it fails while anyone
/// else (the sync among them) has the file open.
fn take_write_lease(path: &Path) -> std::io::Result<File> {
    let file = fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW).open(path)?;
    // SAFETY: F_SETLEASE on a descriptor this function owns.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) } == 0 {
        Ok(file)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A name in `dir`; the top also has the names the rules may ignore.
fn draw_name(rng: &mut Rng, dir: &str) -> String {
    match rng.below(if dir.is_empty() { 11 } else { 8 }) {
        n @ 0..8 => format!("n{n}"),
        n => format!("i{}", n - 8),
    }
}

/// Removes whatever `path` is; true when there was something.
fn remove_any(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).is_ok(),
        Ok(_) => fs::remove_file(path).is_ok(),
        Err(_) => false,
    }
}

/// One random operation, drawn once and made on a side and on the shadow.
struct Operation {
    op: u64,
    dir: &'static str,
    name: String,
    to_dir: &'static str,
    to_name: String,
    value: u64,
    mode: u32,
    len: u64,
    bytes: Vec<u8>,
}

impl Operation {
    fn draw(rng: &mut Rng, area: Area) -> Operation {
        let op = rng.below(match area {
            Area::Whole => 17,
            Area::Sub(_) => 12,
        });
        let dir = rng.pick(area.dirs());
        let name = draw_name(rng, dir);
        let to_dir = rng.pick(area.dirs());
        let to_name = draw_name(rng, to_dir);
        let value = rng.below(1000);
        let mode = [0o600, 0o644, 0o700, 0o755][rng.below(4) as usize];
        let len = rng.below(3);
        // Enough that the sync's copy may still run when the next
        // operation comes (16 KiB to 256 KiB: with up to 1 MiB, twice per
        // writer, a run of 5000 operations took 189 s and more than the
        // runner's 300 s on TCG).
        let bytes = vec![b'0' + rng.below(10) as u8; (16 << 10) * (1 + rng.below(16) as usize)];
        Operation { op, dir, name, to_dir, to_name, value, mode, len, bytes }
    }

    /// Makes the operation below `root`, one of the trees that must stay
    /// alike (a side under change, the shadow), a rename's target below
    /// `to_root`. Failures are part of the game (a name may be missing, or
    /// a directory); they are alike too.
    fn make(&self, root: &Path, to_root: &Path, area: Area) -> std::io::Result<Option<File>> {
        let dir = root.join(self.dir);
        let name = dir.join(&self.name);
        match self.op {
            0..=3 => fs::create_dir_all(&dir).and_then(|()| fs::write(&name, format!("{}", self.value))),
            4 => fs::remove_file(&name),
            5 => fs::create_dir_all(&name),
            // rm -rf of a directory inside the area, never of its top.
            6 if self.dir != area.top() => fs::remove_dir_all(&dir),
            6 => fs::remove_dir_all(&name),
            7 => fs::rename(&name, to_root.join(self.to_dir).join(&self.to_name)),
            8 => fs::set_permissions(&name, fs::Permissions::from_mode(self.mode)),
            9 => fs::OpenOptions::new().write(true).open(&name).and_then(|f| f.set_len(self.len)),
            10 => truncate_by_path(&name, self.len),
            11 => symlink(format!("t{}", self.value % 5), &name),
            // A writer that goes on: it appends now and again later.
            12 => return open_for_append(&name).and_then(|mut f| f.write_all(&self.bytes).map(|()| Some(f))),
            _ => Ok(()),
        }
        .map(|()| None)
    }

    fn describe(&self) -> String {
        format!("{} {}/{} (to {}/{})", self.op, self.dir, self.name, self.to_dir, self.to_name)
    }
}

/// One line per entry that `have` holds differently from `model`.
fn differences(model: &Tree, have: &Tree) -> String {
    let show = |c: &Vec<u8>| String::from_utf8_lossy(c).into_owned();
    let mut out = String::new();
    for (path, want) in model {
        match have.iter().find(|(p, _)| p == path) {
            None => out += &format!("  missing {} {:?}\n", path.display(), show(want)),
            Some((_, got)) if got != want => {
                out += &format!("  differs {} want {:?} got {:?}\n", path.display(), show(want), show(got))
            }
            _ => {}
        }
    }
    for (path, got) in have {
        if !model.iter().any(|(p, _)| p == path) {
            out += &format!("  extra   {} {:?}\n", path.display(), show(got));
        }
    }
    out
}

struct Run {
    a: PathBuf,
    b: PathBuf,
    shadow: PathBuf,
    /// What the rules keep to A, and to B.
    private_a: PathBuf,
    private_b: PathBuf,
    /// Whether the rules in force ignore `i2`.
    i2_ignored: bool,
    seed: u64,
    log: Vec<String>,
    held: Vec<Held>,
}

impl Run {
    fn sides(&self, on_a: bool) -> (&Path, &Path) {
        if on_a {
            (&self.a, &self.b)
        } else {
            (&self.b, &self.a)
        }
    }

    fn private(&self, on_a: bool) -> &Path {
        if on_a {
            &self.private_a
        } else {
            &self.private_b
        }
    }

    /// True when the rules in force keep `dir/name` to its side.
    fn is_private(&self, dir: &str, name: &str) -> bool {
        dir.is_empty() && name.starts_with('i') && (self.i2_ignored || name != "i2")
    }

    /// What a side must hold: the shadow and the names private to it.
    fn model(&self, on_a: bool) -> Tree {
        let mut model = without_mtimes(tree(&self.shadow));
        model.extend(without_mtimes(tree(self.private(on_a))));
        model.sort();
        model
    }

    /// `side_tree` of one side split into what is mirrored and what is
    /// private to it (below a top-level name of its private shadow).
    fn split_private(&self, side_tree: Tree, on_a: bool) -> (Tree, Tree) {
        let private: Vec<_> = tree(self.private(on_a)).into_iter().map(|(p, _)| p).collect();
        side_tree.into_iter().partition(|(p, _)| {
            !p.components().next().is_some_and(|top| private.contains(&PathBuf::from(top.as_os_str())))
        })
    }

    /// `count` operations on one side within `area`, without waiting.
    fn burst(&mut self, rng: &mut Rng, on_a: bool, area: Area, count: u64) {
        for _ in 0..count {
            let operation = Operation::draw(rng, area);
            let (side, other) = self.sides(on_a);
            let (side, other) = (side.to_path_buf(), other.to_path_buf());
            let at = |root: &Path| root.join(operation.dir).join(&operation.name);
            let from_private = self.is_private(operation.dir, &operation.name);
            let to_private = self.is_private(operation.to_dir, &operation.to_name);
            match operation.op {
                13 => {
                    let count = self.held.iter().filter(|h| matches!(h, Held::Writer { .. })).count() as u64;
                    let pick = rng.below(count.max(1)) as usize;
                    if let Some(Held::Writer { side, shadow }) =
                        self.held.iter_mut().filter(|h| matches!(h, Held::Writer { .. })).nth(pick)
                    {
                        let on_side = side.write_all(&operation.bytes).is_ok();
                        let on_shadow = shadow.write_all(&operation.bytes).is_ok();
                        assert_eq!(on_side, on_shadow, "a writer's append succeeded on one tree only");
                    }
                }
                // Open for writing and never written, on either side.
                14 => self.held.extend(open_for_append(&at(&side)).ok().map(Held::Idle)),
                15 => self.held.extend(open_for_append(&at(&other)).ok().map(Held::Idle)),
                // The sync never opens an ignored name: no lease there.
                16 if !from_private => self.held.extend(take_write_lease(&at(&other)).ok().map(Held::Lease)),
                16 => {}
                // Through a private symlink an operation reaches a mirrored
                // name, where the private shadow cannot follow: such a link
                // is only removed or renamed.
                _ if from_private
                    && !matches!(operation.op, 4 | 6 | 7)
                    && fs::symlink_metadata(at(&side)).is_ok_and(|m| m.file_type().is_symlink()) => {}
                _ => {
                    let private = self.private(on_a).to_path_buf();
                    let shadow_of = |is_private: bool| if is_private { &private } else { &self.shadow };
                    let on_side = operation.make(&side, &side, area);
                    let on_shadow = operation.make(shadow_of(from_private), shadow_of(to_private), area);
                    if let (Ok(Some(side)), Ok(Some(shadow))) = (on_side, on_shadow) {
                        self.held.push(Held::Writer { side, shadow });
                    }
                }
            }
            self.log.push(format!("{} {}", if on_a { "A" } else { "B" }, operation.describe()));
        }
    }

    /// Re-includes `i2` when the rules ignore it, ignores it again when
    /// not; the edit is made on one side as an editor saves.
    fn edit_rules(&mut self, on_a: bool) {
        let (side, other) = self.sides(on_a);
        let (side, other) = (side.to_path_buf(), other.to_path_buf());
        let (private_side, private_other) = (self.private(on_a).to_path_buf(), self.private(!on_a).to_path_buf());
        let rules = if self.i2_ignored {
            // A re-included name has no base: a union, never a delete. Held
            // on both sides it would be a conflict (the three-way tests have
            // those); the run keeps one of them.
            if fs::symlink_metadata(private_side.join("i2")).is_ok() && remove_any(&other.join("i2")) {
                assert!(remove_any(&private_other.join("i2")), "the model's private i2 of the other side");
                self.log
                    .push(format!("{} i2 removed, to be re-included without a conflict", if on_a { "B" } else { "A" }));
            }
            for private in [&private_side, &private_other] {
                if fs::symlink_metadata(private.join("i2")).is_ok() {
                    fs::rename(private.join("i2"), self.shadow.join("i2")).unwrap();
                }
            }
            RULES_BUT_I2
        } else {
            // Ignored again, it stays on both sides as it is.
            if fs::symlink_metadata(self.shadow.join("i2")).is_ok() {
                let copied =
                    Command::new("cp").arg("-a").arg(self.shadow.join("i2")).arg(&private_side).status().unwrap();
                assert!(copied.success(), "cp -a of the shadow's i2");
                fs::rename(self.shadow.join("i2"), private_other.join("i2")).unwrap();
            }
            RULES_ALL
        };
        let draft = side.join("i.rules");
        fs::write(&draft, rules).unwrap();
        fs::rename(&draft, side.join(RULES_FILE)).unwrap();
        fs::write(self.shadow.join(RULES_FILE), rules).unwrap();
        self.i2_ignored = !self.i2_ignored;
        let what = if self.i2_ignored { "ignores i2" } else { "mirrors i2" };
        self.log.push(format!("{} rules edited: {what}", if on_a { "A" } else { "B" }));
    }

    /// Closes the writers (a last append first) and the idle descriptors;
    /// the leases stay.
    fn close_descriptors(&mut self) {
        for held in &mut self.held {
            if let Held::Writer { side, shadow } = held {
                let _ = side.write_all(b"end");
                let _ = shadow.write_all(b"end");
            }
        }
        self.held.retain(|h| matches!(h, Held::Lease(_)));
    }

    /// Both sides must come to hold what the model says (the shadow and
    /// their private names), and the same mirrored names as each other:
    /// first while the leases are held (everything else must arrive
    /// meanwhile; a leased file is looked at from outside), then with the
    /// leases released.
    fn converge(&mut self, phase: &str, leases_on_a: bool) {
        self.close_descriptors();
        let leased: Vec<(u64, u64)> = self
            .held
            .iter()
            .filter_map(|h| if let Held::Lease(f) = h { f.metadata().ok() } else { None })
            .map(|m| (m.dev(), m.ino()))
            .collect();
        if !leased.is_empty() {
            let (leased_side, side) = self.sides(leases_on_a);
            let read = |path: &Path, meta: &fs::Metadata| {
                if leased.contains(&(meta.dev(), meta.ino())) {
                    return Ok(leased_entry(meta));
                }
                // Not blocking on a lease that a rename brought here since the stat.
                let mut content = Vec::new();
                fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path)
                    .and_then(|mut f| f.read_to_end(&mut content))
                    .map_err(|e| {
                        if e.kind() == std::io::ErrorKind::WouldBlock {
                            std::io::ErrorKind::NotFound.into()
                        } else {
                            e
                        }
                    })
                    .map(|_| content)
            };
            let view = || -> Tree {
                guest_tests::tree_reading(leased_side, &read).into_iter().filter(|(p, _)| !is_temp(p)).collect()
            };
            let (side_model, leased_private) =
                (self.model(!leases_on_a), without_mtimes(tree(self.private(leases_on_a))));
            let ok = eventually(ARRIVAL, || {
                let side_tree = tree(side);
                let (view_mirrored, view_private) = self.split_private(view(), leases_on_a);
                without_mtimes(side_tree.clone()) == side_model
                    && agrees(&view_mirrored, &self.split_private(side_tree, !leases_on_a).0)
                    && without_mtimes(view_private) == leased_private
            });
            if !ok {
                let (a, b) = if leases_on_a { (view(), tree(side)) } else { (tree(side), view()) };
                self.fail(&format!("{phase}, leases held"), &a, &b);
            }
            self.held.clear();
            self.log.push("leases released".into());
        }
        let (model_a, model_b) = (self.model(true), self.model(false));
        let ok = eventually(ARRIVAL, || {
            let (a, b) = (tree(&self.a), tree(&self.b));
            without_mtimes(a.clone()) == model_a
                && without_mtimes(b.clone()) == model_b
                && self.split_private(a, true).0 == self.split_private(b, false).0
        });
        if !ok {
            self.fail(phase, &tree(&self.a), &tree(&self.b));
        }
    }

    fn fail(&self, phase: &str, a: &Tree, b: &Tree) -> ! {
        let last: Vec<_> = self.log.iter().rev().take(25).rev().collect();
        // The differences first: a log viewer that cuts long output keeps them.
        panic!(
            "seed {:#x}, after {phase} (operation {}): the sides differ from the model or from each other\nA against the model:\n{}B against the model:\n{}B against A, mirrored names:\n{}last operations {last:#?}",
            self.seed,
            self.log.len(),
            differences(&self.model(true), &without_mtimes(a.clone())),
            differences(&self.model(false), &without_mtimes(b.clone())),
            differences(&self.split_private(a.clone(), true).0, &self.split_private(b.clone(), false).0),
        );
    }
}

fn model_run(seed: u64) {
    let ops: u64 = std::env::var("RTS_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
    println!("METRIC model run: {ops} operations, seed {seed:#x}");
    let (scratch, a, b) = pair("model");
    let shadow = scratch.dir("shadow");
    for root in [&a, &shadow] {
        fs::write(root.join(RULES_FILE), RULES_ALL).unwrap();
    }
    let mut sync = Syncer::start(&a, &b);
    let (private_a, private_b) = (scratch.dir("private-a"), scratch.dir("private-b"));
    let mut run = Run { a, b, shadow, private_a, private_b, i2_ignored: true, seed, log: Vec::new(), held: Vec::new() };
    // SAFETY: ignoring SIGIO, the signal a lease holder gets when its lease
    // is broken, in this test process: the leases are the test's.
    unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
    let mut rng = Rng(Xoshiro256PlusPlus::seed_from_u64(seed));
    let mut done = 0;
    while done < ops {
        let on_a = rng.below(2) == 0;
        // Leases are taken on the side not under change.
        let leases_on_a = !on_a;
        match rng.below(20) {
            // Stopped by a job-control signal: changes on one side meanwhile.
            0 => {
                sync.signal(libc::SIGSTOP);
                assert!(eventually(ARRIVAL, || sync.state() == 'T'), "not stopped");
                let count = 1 + rng.below(20);
                run.burst(&mut rng, on_a, Area::Whole, count);
                run.log.push("SIGCONT".into());
                sync.signal(libc::SIGCONT);
                done += count;
                run.converge("a SIGSTOP/SIGCONT", leases_on_a);
            }
            // No call at all: changes on one side, then a new call.
            1 => {
                sync.stop();
                let count = 1 + rng.below(20);
                run.burst(&mut rng, on_a, Area::Whole, count);
                run.log.push("restart".into());
                // A start reads what the base does not vouch for.
                run.held.retain(|h| !matches!(h, Held::Lease(_)));
                sync = Syncer::start(&run.a, &run.b);
                done += count;
                run.converge("a restart", leases_on_a);
            }
            // Both sides at once, each in a subtree of its own.
            2 => {
                for (top, side) in [("d1", &run.a), ("d2", &run.b)] {
                    fs::create_dir_all(side.join(top)).unwrap();
                    fs::create_dir_all(run.shadow.join(top)).unwrap();
                }
                run.converge("making d1 and d2", leases_on_a);
                for _ in 0..1 + rng.below(10) {
                    run.burst(&mut rng, true, Area::Sub("d1"), 1);
                    run.burst(&mut rng, false, Area::Sub("d2"), 1);
                    done += 2;
                }
                run.converge("two-sided work", leases_on_a);
            }
            // The rules edited.
            3 => {
                run.edit_rules(on_a);
                done += 1;
                run.converge("a rules edit", leases_on_a);
            }
            // A quick burst on one side.
            4 => {
                let count = 2 + rng.below(5);
                run.burst(&mut rng, on_a, Area::Whole, count);
                done += count;
                run.converge("a burst", leases_on_a);
            }
            _ => {
                run.burst(&mut rng, on_a, Area::Whole, 1);
                done += 1;
                run.converge("one operation", leases_on_a);
            }
        }
    }
    // A settled pair stays settled.
    std::thread::sleep(Duration::from_millis(300));
    run.converge("the end", true);
    assert_temp_names_go(&run.a);
    assert_temp_names_go(&run.b);
    sync.stop();
}

#[test]
fn model_run_seed_1() {
    model_run(0x0001_5eed_0001);
}

#[test]
fn model_run_seed_2() {
    model_run(0x0002_5eed_0002);
}

#[test]
fn model_run_seed_3() {
    model_run(0x0003_5eed_0003);
}
