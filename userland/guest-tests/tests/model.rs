//! A model-based random run (issue "three-way sync"): thousands of random
//! operations on both sides, live, while the call is stopped with SIGSTOP,
//! and while no call runs at all. The test keeps its own model of what both
//! sides must hold (what the user's own side holds after the user's
//! operations), and every phase ends with both trees equal to the model:
//! not merely to each other. Nothing lost, nothing brought back, no
//! conflict copy (the run makes no real conflict). `RTS_OPS` sets the
//! number of operations; the seed is printed, and a failing seed becomes a
//! fixed test below.

use guest_tests::{assert_no_temp_names, eventually, pair, Syncer, ARRIVAL};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// A side as the model sees it: without the sync's own temporary files,
/// which come and go while it copies (the end of the run checks that
/// none stays behind).
fn tree(root: &Path) -> Tree {
    guest_tests::tree(root)
        .into_iter()
        .filter(|(p, _)| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".usac-tmp-")))
        .collect()
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

/// One random operation on `side` within `area`; what it did, for the log.
fn random_operation(rng: &mut Rng, side: &Path, area: Area) -> String {
    let dir_rel = rng.pick(area.dirs());
    let dir = side.join(dir_rel);
    let name = dir.join(format!("n{}", rng.below(8)));
    let op = rng.below(11);
    // Failures are part of the game (a name may be missing or a directory).
    let _ = match op {
        0..=3 => fs::create_dir_all(&dir).and_then(|()| fs::write(&name, format!("{}", rng.below(1000)))),
        4 => fs::remove_file(&name),
        5 => fs::create_dir_all(&name),
        // rm -rf of a directory inside the area, never of its top.
        6 if dir_rel != area.top() => fs::remove_dir_all(&dir),
        6 => fs::remove_dir_all(&name),
        7 => fs::rename(&name, side.join(rng.pick(area.dirs())).join(format!("n{}", rng.below(8)))),
        8 => {
            fs::set_permissions(&name, fs::Permissions::from_mode([0o600, 0o644, 0o700, 0o755][rng.below(4) as usize]))
        }
        9 => fs::OpenOptions::new().write(true).open(&name).and_then(|f| f.set_len(rng.below(3))),
        _ => symlink(format!("t{}", rng.below(5)), &name),
    };
    format!("{op} {}", name.display())
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

/// `model` with the entries below `top` (and `top` itself) replaced by
/// those `side` holds there.
fn with_subtree_of(model: &Tree, side: &Path, top: &str) -> Tree {
    let inside = |p: &PathBuf| p == Path::new(top) || p.starts_with(top);
    let mut out: Tree = model.iter().filter(|(p, _)| !inside(p)).cloned().collect();
    out.extend(tree(side).into_iter().filter(|(p, _)| inside(p)));
    out.sort();
    out
}

struct Run {
    a: PathBuf,
    b: PathBuf,
    seed: u64,
    log: Vec<String>,
    model: Tree,
}

impl Run {
    fn side(&self, first: bool) -> &Path {
        if first {
            &self.a
        } else {
            &self.b
        }
    }

    /// Both sides must come to hold exactly the model.
    fn converge(&self, phase: &str) {
        let ok = eventually(ARRIVAL, || tree(&self.a) == self.model && tree(&self.b) == self.model);
        if !ok {
            let last: Vec<_> = self.log.iter().rev().take(25).rev().collect();
            panic!(
                "last operations {last:#?}\nA against the model:\n{}B against the model:\n{}seed {:#x}, after {phase} (operation {}): the sides differ from the model",
                differences(&self.model, &tree(&self.a)),
                differences(&self.model, &tree(&self.b)),
                self.seed,
                self.log.len()
            );
        }
    }

    /// `count` operations on one side within `area`, without waiting.
    fn burst(&mut self, rng: &mut Rng, on_a: bool, area: Area, count: u64) {
        for _ in 0..count {
            let op = random_operation(rng, self.side(on_a), area);
            self.log.push(format!("{} {op}", if on_a { "A" } else { "B" }));
        }
    }
}

fn model_run(seed: u64) {
    let ops: u64 = std::env::var("RTS_OPS").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
    println!("METRIC model run: {ops} operations, seed {seed:#x}");
    let (_s, a, b) = pair("model");
    let mut sync = Syncer::start(&a, &b);
    let mut run = Run { a, b, seed, log: Vec::new(), model: Vec::new() };
    let mut rng = Rng(Xoshiro256PlusPlus::seed_from_u64(seed));
    let mut done = 0;
    while done < ops {
        let on_a = rng.below(2) == 0;
        match rng.below(20) {
            // Stopped by a job-control signal: changes on one side meanwhile.
            0 => {
                sync.signal(libc::SIGSTOP);
                assert!(eventually(ARRIVAL, || sync.state() == 'T'), "not stopped");
                let count = 1 + rng.below(20);
                run.burst(&mut rng, on_a, Area::Whole, count);
                run.log.push("SIGCONT".into());
                run.model = tree(run.side(on_a));
                sync.signal(libc::SIGCONT);
                done += count;
                run.converge("a SIGSTOP/SIGCONT");
            }
            // No call at all: changes on one side, then a new call.
            1 => {
                sync.stop();
                let count = 1 + rng.below(20);
                run.burst(&mut rng, on_a, Area::Whole, count);
                run.log.push("restart".into());
                run.model = tree(run.side(on_a));
                sync = Syncer::start(&run.a, &run.b);
                done += count;
                run.converge("a restart");
            }
            // Both sides at once, each in a subtree of its own.
            2 => {
                for (top, side) in [("d1", &run.a), ("d2", &run.b)] {
                    fs::create_dir_all(side.join(top)).unwrap();
                }
                run.model = with_subtree_of(&with_subtree_of(&run.model, &run.a, "d1"), &run.b, "d2");
                run.converge("making d1 and d2");
                for _ in 0..1 + rng.below(10) {
                    run.burst(&mut rng, true, Area::Sub("d1"), 1);
                    run.burst(&mut rng, false, Area::Sub("d2"), 1);
                    done += 2;
                }
                run.model = with_subtree_of(&with_subtree_of(&run.model, &run.a, "d1"), &run.b, "d2");
                run.converge("two-sided work");
            }
            // A quick burst on one side.
            3 => {
                let count = 2 + rng.below(5);
                run.burst(&mut rng, on_a, Area::Whole, count);
                run.model = tree(run.side(on_a));
                done += count;
                run.converge("a burst");
            }
            _ => {
                run.burst(&mut rng, on_a, Area::Whole, 1);
                run.model = tree(run.side(on_a));
                done += 1;
                run.converge("one operation");
            }
        }
    }
    // A settled pair stays settled.
    std::thread::sleep(Duration::from_millis(300));
    run.converge("the end");
    assert_no_temp_names(&run.a);
    assert_no_temp_names(&run.b);
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
