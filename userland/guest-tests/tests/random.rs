//! A seeded random mix of operations on both sides ends with equal trees
//! (issue "Whole trees"). `RTS_SEED` and `RTS_OPS` reproduce a run.

use guest_tests::{assert_mirrored, eventually, pair, tree, tree_diff, Syncer};
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::Duration;

/// xorshift64: reproducible choices from a seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Directories the operations touch, relative to a root.
const DIRS: [&str; 4] = ["", "d1", "d2", "d1/e"];

/// One random operation on `side`; returns what it did, for the log.
fn random_operation(rng: &mut Rng, side: &Path) -> String {
    let dir = side.join(DIRS[rng.below(DIRS.len() as u64) as usize]);
    let name = dir.join(format!("n{}", rng.below(12)));
    let op = rng.below(10);
    // Failures are part of the game: the name may not exist or be a
    // directory; what matters is that both sides end up equal.
    let _ = match op {
        0..=3 => fs::create_dir_all(&dir).and_then(|()| fs::write(&name, format!("{}", rng.below(1000)))),
        4 => fs::remove_file(&name),
        5 => fs::create_dir_all(&name),
        // rm -rf of a subdirectory (never of a root: that ends the call).
        6 if dir != side => fs::remove_dir_all(&dir),
        6 => fs::remove_dir_all(&name),
        7 => {
            let to = side.join(DIRS[rng.below(DIRS.len() as u64) as usize]).join(format!("n{}", rng.below(12)));
            fs::rename(&name, to)
        }
        8 => {
            fs::set_permissions(&name, fs::Permissions::from_mode([0o600, 0o644, 0o700, 0o755][rng.below(4) as usize]))
        }
        _ => symlink(format!("t{}", rng.below(5)), &name),
    };
    format!("{op} {}", name.display())
}

#[test]
fn two_thousand_random_operations_on_both_sides_end_equal() {
    let seed = env_or("RTS_SEED", 0x5eed_1234_u64);
    let ops = env_or("RTS_OPS", 2000);
    println!("METRIC random operations: {ops}, seed {seed:#x}");
    let (_s, a, b) = pair("random");
    let mut sync = Syncer::start(&a, &b);
    let mut rng = Rng(seed);
    let mut log = Vec::new();
    for _ in 0..ops {
        let side = if rng.below(2) == 0 { &a } else { &b };
        log.push(random_operation(&mut rng, side));
        if rng.below(50) == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(20)));
        }
    }
    if !eventually(Duration::from_secs(60), || tree(&a) == tree(&b)) {
        let exited = sync.wait_exit(Duration::ZERO).unwrap();
        let said = if exited.is_some() { sync.stderr() } else { String::new() };
        let last: Vec<_> = log.iter().rev().take(40).rev().collect();
        panic!(
            "trees differ after seed {seed:#x} (syncer exit: {exited:?} {said}):\n{}\nlast operations:\n{last:#?}",
            tree_diff(&a, &b)
        );
    }
    assert_mirrored(&a, &b);
    sync.stop();
}
