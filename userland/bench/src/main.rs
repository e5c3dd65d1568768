//! `rts-bench`: runs the same workloads against real_time_sync(2) and the
//! user-space syncers people use, in one guest session, and writes raw
//! results for `scripts/bench-report` (tab-separated, one file per kind).
//!
//! Usage: rts-bench --out DIR --cli PATH --lean PATH [--quick] [--tools ours,lean,...]
//!        [--workloads latency,burst,large,scale]

use hdrhistogram::Histogram;
use inotify::{Inotify, WatchMask};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};
use wait_timeout::ChildExt;

#[derive(Clone, Copy, PartialEq)]
enum Tool {
    Ours,
    Lean,
    InotifyCp,
    Lsyncd,
    Unison,
}

const TOOLS: [Tool; 5] = [Tool::Ours, Tool::Lean, Tool::InotifyCp, Tool::Lsyncd, Tool::Unison];

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Ours => "ours",
            Tool::Lean => "lean",
            Tool::InotifyCp => "inotify+cp",
            Tool::Lsyncd => "lsyncd",
            Tool::Unison => "unison",
        }
    }
}

struct Sizes {
    latency_files: usize,
    burst_files: usize,
    large_bytes: usize,
    scale_files: usize,
    idle: Duration,
    /// Longest wait for a tool to start mirroring.
    ready: Duration,
    /// Longest wait for one workload to arrive: a slow peer gets "n/a"
    /// with what it managed, which keeps a full run within its budget.
    workload: Duration,
}

struct Config {
    out: PathBuf,
    cli: PathBuf,
    lean: PathBuf,
    work: PathBuf,
    sizes: Sizes,
}

/// A running syncer: its processes are killed (as a group) on drop.
struct Running {
    child: Child,
    _home: Option<PathBuf>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signals our own child's process group, then our child.
        unsafe {
            libc::kill(-pid, libc::SIGINT);
        }
        let _ = self.child.wait_timeout(Duration::from_secs(3));
        // SAFETY: as above.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn spawn(cmd: &mut Command) -> Child {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
    cmd.spawn().expect("spawn syncer")
}

fn start(cfg: &Config, tool: Tool, a: &Path, b: &Path) -> Running {
    let (child, home) = match tool {
        Tool::Ours => (spawn(Command::new(&cfg.cli).arg(a).arg(b)), None),
        Tool::Lean => (spawn(Command::new(&cfg.lean).arg(a).arg(b)), None),
        Tool::InotifyCp => {
            let script = r#"inotifywait -m -q -e close_write,moved_to --format '%f' "$1" |
                while IFS= read -r f; do cp "$1/$f" "$2/.cp-tmp" && mv "$2/.cp-tmp" "$2/$f"; done"#;
            (spawn(Command::new("bash").args(["-c", script, "mirror"]).arg(a).arg(b)), None)
        }
        Tool::Lsyncd => {
            let conf = a.with_extension("lsyncd.lua");
            fs::write(
                &conf,
                format!(
                    "settings {{ nodaemon = true }}\nsync {{ default.rsync, source = \"{}\", target = \"{}\", delay = 0 }}\n",
                    a.display(),
                    b.display()
                ),
            )
            .unwrap();
            (spawn(Command::new("lsyncd").arg(&conf)), None)
        }
        Tool::Unison => {
            let home = a.with_extension("unison-home");
            fs::create_dir_all(&home).unwrap();
            let child = spawn(
                Command::new("unison")
                    .arg(a)
                    .arg(b)
                    .args(["-batch", "-auto", "-repeat", "1", "-silent", "-confirmbigdel=false"])
                    .env("HOME", &home),
            );
            (child, Some(home))
        }
    };
    Running { child, _home: home }
}

/// Waits until a probe file written in A shows up in B: the tool is ready.
/// The probe is rewritten now and then, for tools that start watching late.
fn ready(a: &Path, b: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut round = 0;
    while Instant::now() < deadline {
        let name = format!("probe-{round}");
        fs::write(a.join(&name), b"probe").unwrap();
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            if fs::read(b.join(&name)).map(|c| c == b"probe").unwrap_or(false) {
                return true;
            }
            sleep(Duration::from_millis(2));
        }
        round += 1;
    }
    false
}

fn fresh_pair(cfg: &Config, label: &str, tool: Tool) -> (PathBuf, PathBuf) {
    let base = cfg.work.join(format!("{label}-{}", tool.name().replace('+', "-")));
    let _ = fs::remove_dir_all(&base);
    let (a, b) = (base.join("a"), base.join("b"));
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    (a, b)
}

/// The 10-50 ms gaps of the latency workload and the floor: the same
/// sequence for every tool.
fn gaps() -> impl FnMut() -> Duration {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x1234_5678);
    move || Duration::from_millis(rng.random_range(10..=50))
}

/// Writes `count` 4 KiB files in A with 10-50 ms gaps and returns, per
/// file, the time from its `close()` to its complete arrival in B.
fn latency_run(a: &Path, b: &Path, count: usize, limit: Duration) -> Vec<Option<Duration>> {
    let content: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    // A file is complete in B when it is renamed there or closed after
    // writing: the events that end every tool's copy. Creates and single
    // writes would only wake this thread while the syncer still copies.
    let mut inotify = Inotify::init().unwrap();
    inotify.watches().add(b, WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO).unwrap();
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    let writer = {
        let (a, content) = (a.to_path_buf(), content.clone());
        thread::spawn(move || {
            let mut gap = gaps();
            for i in 0..count {
                let name = format!("lat{i:04}");
                let mut f = fs::File::create(a.join(&name)).unwrap();
                f.write_all(&content).unwrap();
                // Timed before the close: after it, this thread may only run
                // again once the syncer (woken by the close) has finished.
                let closing = Instant::now();
                drop(f);
                tx.send((name, closing)).unwrap();
                sleep(gap());
            }
        })
    };
    let mut closed: HashMap<String, Instant> = HashMap::new();
    let mut arrived: HashMap<String, Instant> = HashMap::new();
    let deadline = Instant::now() + limit;
    let mut buffer = vec![0u8; 64 * 1024];
    let fd = {
        use std::os::fd::AsRawFd;
        inotify.as_raw_fd()
    };
    while arrived.len() < count && Instant::now() < deadline {
        while let Ok((name, at)) = rx.try_recv() {
            closed.insert(name, at);
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 5) };
        let names: Vec<String> = match inotify.read_events(&mut buffer) {
            Ok(events) => events.filter_map(|e| e.name.map(|n| n.to_string_lossy().into_owned())).collect(),
            Err(_) => Vec::new(),
        };
        let now = Instant::now();
        for name in names {
            if name.starts_with("lat")
                && !arrived.contains_key(&name)
                && fs::read(b.join(&name)).map(|c| c == content).unwrap_or(false)
            {
                arrived.insert(name, now);
            }
        }
    }
    writer.join().unwrap();
    while let Ok((name, at)) = rx.try_recv() {
        closed.insert(name, at);
    }
    (0..count)
        .map(|i| {
            let name = format!("lat{i:04}");
            match (closed.get(&name), arrived.get(&name)) {
                (Some(c), Some(a)) => Some(a.saturating_duration_since(*c)),
                _ => None,
            }
        })
        .collect()
}

/// One plain copy of a 4 KiB file through a temporary name: the floor.
/// `paced` like the latency workload (10-50 ms apart), a copy starts from
/// the same idle CPU and cold caches as every syncer's copy does; back to
/// back, from the previous copy's warm ones.
fn floor_samples(dir: &Path, count: usize, paced: bool) -> Vec<Duration> {
    fs::create_dir_all(dir).unwrap();
    let content = vec![7u8; 4096];
    fs::write(dir.join("src"), &content).unwrap();
    let mut gap = gaps();
    (0..count)
        .map(|i| {
            if paced {
                sleep(gap());
            }
            let start = Instant::now();
            fs::copy(dir.join("src"), dir.join(".tmp")).unwrap();
            fs::rename(dir.join(".tmp"), dir.join(format!("dst{i:04}"))).unwrap();
            start.elapsed()
        })
        .collect()
}

fn count_complete(b: &Path, expect: usize) -> usize {
    fs::read_dir(b)
        .map(|d| d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().starts_with("burst")).count())
        .unwrap_or(0)
        .min(expect)
}

/// Checks `cond` every `every` until it holds or `limit` passed.
fn wait_until(limit: Duration, every: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        sleep(every);
    }
    None
}

/// How often a cheap arrival check (one stat or read) runs.
const QUICK_CHECK: Duration = Duration::from_millis(2);

/// How often the burst's arrival check runs: it lists B, which holds B's
/// directory lock and would slow down every syncer's renames into B.
const LISTING_CHECK: Duration = Duration::from_millis(50);

/// CPU time (ticks) and context switches of the tool's processes; for ours,
/// of the sync kernel thread. `None` when no such process was found: an
/// idle cost of 0 must mean a thread that slept, not one that was missed.
fn cost(tool: Tool, root_pid: u32) -> Option<(u64, u64)> {
    let root = root_pid as i32;
    let mut found = false;
    let (mut ticks, mut switches) = (0, 0);
    for process in procfs::process::all_processes().ok()?.flatten() {
        let Ok(stat) = process.stat() else { continue };
        let mine = match tool {
            Tool::Ours => stat.comm == "usac-sync",
            _ => stat.pgrp == root || stat.ppid == root || stat.pid == root,
        };
        if !mine {
            continue;
        }
        found = true;
        ticks += stat.utime + stat.stime;
        if let Ok(status) = process.status() {
            switches += status.voluntary_ctxt_switches.unwrap_or(0) + status.nonvoluntary_ctxt_switches.unwrap_or(0);
        }
    }
    found.then_some((ticks, switches))
}

/// Latencies in nanoseconds, to 3 significant digits (0.1%).
struct Latencies(Histogram<u64>);

impl Latencies {
    fn quantile(&self, q: f64) -> Duration {
        Duration::from_nanos(self.0.value_at_quantile(q))
    }

    fn max(&self) -> Duration {
        Duration::from_nanos(self.0.max())
    }
}

fn histogram(samples: &[Duration]) -> Latencies {
    let mut h = Histogram::new(3).expect("3 significant digits");
    for d in samples {
        h.record(d.as_nanos().try_into().unwrap_or(u64::MAX)).expect("an auto-resizing histogram takes any value");
    }
    Latencies(h)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(PathBuf::from);
    let quick = args.iter().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            latency_files: 10,
            burst_files: 100,
            large_bytes: 4 << 20,
            scale_files: 500,
            idle: Duration::from_secs(1),
            ready: Duration::from_secs(60),
            workload: Duration::from_secs(60),
        }
    } else {
        Sizes {
            latency_files: 200,
            burst_files: 10_000,
            large_bytes: 256 << 20,
            scale_files: 100_000,
            idle: Duration::from_secs(10),
            ready: Duration::from_secs(60),
            workload: Duration::from_secs(60),
        }
    };
    // Removed when the run ends: the work pairs, and the scale workload's tree.
    let work = tempfile::Builder::new().prefix("rts-bench-").tempdir().expect("create the work directory");
    let scale = tempfile::Builder::new().prefix("rts-scale-").tempdir().expect("create the scale directory");
    let cfg = Config {
        out: arg("--out").expect("--out DIR"),
        cli: arg("--cli").expect("--cli PATH"),
        lean: arg("--lean").expect("--lean PATH"),
        work: work.path().to_path_buf(),
        sizes,
    };
    fs::create_dir_all(&cfg.out).unwrap();
    let mut results = fs::File::create(cfg.out.join("results.tsv")).unwrap();
    let mut record = |tool: &str, metric: &str, value: String| {
        writeln!(results, "{tool}\t{metric}\t{value}").unwrap();
        println!("{tool:<11} {metric:<22} {value}");
    };

    let warm = floor_samples(&cfg.work.join("floor-warm"), 200, false);
    record("floor", "warm_p50_ms", ms(histogram(&warm).quantile(0.5)));
    let floor = floor_samples(&cfg.work.join("floor"), 200, true);
    record("floor", "latency_p50_ms", ms(histogram(&floor).quantile(0.5)));
    fs::write(cfg.out.join("latency-floor.tsv"), floor.iter().map(|d| ms(*d) + "\n").collect::<String>()).unwrap();

    // A subset of the tools, to look at one closely: --tools ours,lean
    let tools: Vec<Tool> = match args.iter().position(|a| a == "--tools").and_then(|i| args.get(i + 1)) {
        Some(list) => TOOLS.into_iter().filter(|t| list.split(',').any(|n| n == t.name())).collect(),
        None => TOOLS.to_vec(),
    };
    // And a subset of the workloads: --workloads latency,burst,large,scale
    let workloads = args.iter().position(|a| a == "--workloads").and_then(|i| args.get(i + 1));
    let run = |workload: &str| workloads.is_none_or(|list| list.split(',').any(|w| w == workload));
    let started = Instant::now();
    let big = run("scale").then(|| {
        let big = scale_tree(scale.path(), cfg.sizes.scale_files);
        println!(
            "bench: {} files for the scale workload in {:.0} s",
            cfg.sizes.scale_files,
            started.elapsed().as_secs_f64()
        );
        big
    });
    if run("large") {
        touch_guest_memory(&cfg.work, 3 * cfg.sizes.large_bytes);
    }
    for tool in tools {
        let name = tool.name();
        println!("bench: {name} from {:.0} s", started.elapsed().as_secs_f64());
        if run("latency") {
            latency_and_idle(&cfg, tool, &mut record);
        }
        if run("burst") {
            burst(&cfg, tool, &mut record);
        }
        if run("large") {
            large_file(&cfg, tool, &mut record);
        }
        if let Some(big) = &big {
            let empty = fresh_pair(&cfg, "scale-empty", tool);
            match [one_change(&cfg, tool, &empty), one_change(&cfg, tool, big)] {
                [Some(e), Some(g)] => {
                    record(name, "scale_empty_ms", ms(e));
                    record(name, "scale_big_ms", ms(g));
                    record(name, "scale_ratio", format!("{:.2}", g.as_secs_f64() / e.as_secs_f64()));
                }
                _ => record(name, "scale_ratio", format!("n/a (not within {} s)", cfg.sizes.workload.as_secs())),
            }
        }
        let _ = fs::remove_dir_all(&cfg.work);
        fs::create_dir_all(&cfg.work).unwrap();
    }
    println!("bench: done in {:.0} s", started.elapsed().as_secs_f64());
}

type Record<'a> = dyn FnMut(&str, &str, String) + 'a;

/// Starts `tool` on a pair; `None` if it never starts mirroring.
fn start_ready(cfg: &Config, tool: Tool, (a, b): &(PathBuf, PathBuf)) -> Option<Running> {
    let running = start(cfg, tool, a, b);
    ready(a, b, cfg.sizes.ready).then_some(running)
}

fn never_ready(cfg: &Config) -> String {
    format!("n/a (not mirroring within {} s)", cfg.sizes.ready.as_secs())
}

fn latency_and_idle(cfg: &Config, tool: Tool, record: &mut Record) {
    let name = tool.name();
    let pair = fresh_pair(cfg, "latency", tool);
    let Some(running) = start_ready(cfg, tool, &pair) else {
        record(name, "latency", never_ready(cfg));
        return;
    };
    let samples = latency_run(&pair.0, &pair.1, cfg.sizes.latency_files, cfg.sizes.workload);
    let lost = samples.iter().filter(|s| s.is_none()).count();
    let arrived: Vec<Duration> = samples.iter().flatten().copied().collect();
    fs::write(cfg.out.join(format!("latency-{name}.tsv")), arrived.iter().map(|d| ms(*d) + "\n").collect::<String>())
        .unwrap();
    if !arrived.is_empty() {
        let h = histogram(&arrived);
        for (label, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            record(name, &format!("latency_{label}_ms"), ms(h.quantile(q)));
        }
        record(name, "latency_max_ms", ms(h.max()));
    }
    record(name, "latency_lost", lost.to_string());

    // Idle cost, right after the latency run, with nothing changing.
    sleep(Duration::from_millis(500));
    let pid = running.child.id();
    let before = cost(tool, pid);
    sleep(cfg.sizes.idle);
    match (before, cost(tool, pid)) {
        (Some(before), Some(after)) => {
            record(name, "idle_cpu_ticks", (after.0 - before.0.min(after.0)).to_string());
            record(name, "idle_ctx_switches", (after.1 - before.1.min(after.1)).to_string());
        }
        _ => record(name, "idle_cpu_ticks", "n/a (no process of the tool found)".into()),
    }
}

fn burst(cfg: &Config, tool: Tool, record: &mut Record) {
    let name = tool.name();
    let pair = fresh_pair(cfg, "burst", tool);
    let Some(_running) = start_ready(cfg, tool, &pair) else {
        record(name, "burst_s", never_ready(cfg));
        return;
    };
    let (a, b) = &pair;
    let n = cfg.sizes.burst_files;
    let start_at = Instant::now();
    for i in 0..n {
        fs::write(a.join(format!("burst{i:05}")), format!("burst file {i}")).unwrap();
    }
    let done = wait_until(cfg.sizes.workload, LISTING_CHECK, || count_complete(b, n) == n).map(|_| start_at.elapsed());
    let intact = (0..n).all(|i| {
        fs::read(b.join(format!("burst{i:05}"))).map(|c| c == format!("burst file {i}").as_bytes()).unwrap_or(false)
    });
    record(
        name,
        "burst_s",
        match done {
            Some(d) if intact => format!("{:.3}", d.as_secs_f64()),
            Some(_) => "n/a (content differs)".into(),
            None => format!("n/a ({} of {n} in {} s)", count_complete(b, n), cfg.sizes.workload.as_secs()),
        },
    );
}

/// Guest memory used for the first time costs the emulator a host page
/// fault per page. The large workload needs three files' worth (source,
/// `cp` reference, copy in B): touched once here, the first tool measured
/// does not pay for the others.
fn touch_guest_memory(dir: &Path, bytes: usize) {
    fs::create_dir_all(dir).unwrap();
    let chunk = vec![1u8; 1 << 20];
    let path = dir.join("touch");
    let mut file = fs::File::create(&path).unwrap();
    for _ in 0..bytes.div_ceil(chunk.len()) {
        file.write_all(&chunk).unwrap();
    }
    drop(file);
    fs::remove_file(path).unwrap();
}

fn large_file(cfg: &Config, tool: Tool, record: &mut Record) {
    let name = tool.name();
    let pair = fresh_pair(cfg, "large", tool);
    let Some(_running) = start_ready(cfg, tool, &pair) else {
        record(name, "large_mib_s", never_ready(cfg));
        return;
    };
    let (a, b) = &pair;
    let content: Vec<u8> = (0..cfg.sizes.large_bytes).map(|i| (i % 253) as u8).collect();
    let staged = cfg.work.join(format!("large-src-{}", name.replace('+', "-")));
    fs::write(&staged, &content).unwrap();
    let cp_start = Instant::now();
    let status = Command::new("cp").arg(&staged).arg(cfg.work.join("large-cp")).status().unwrap();
    let cp_time = cp_start.elapsed();
    assert!(status.success());
    fs::remove_file(cfg.work.join("large-cp")).unwrap();
    // The file appears in A by a rename, closed and complete.
    let start_at = Instant::now();
    fs::rename(&staged, a.join("large")).unwrap();
    let len = content.len() as u64;
    let done = wait_until(cfg.sizes.workload, QUICK_CHECK, || {
        fs::metadata(b.join("large")).map(|m| m.len() == len).unwrap_or(false)
    });
    let secs = done.map(|_| start_at.elapsed().as_secs_f64());
    let intact = done.is_some() && fs::read(b.join("large")).map(|c| c == content).unwrap_or(false);
    let mib = len as f64 / (1 << 20) as f64;
    record(name, "large_cp_mib_s", format!("{:.1}", mib / cp_time.as_secs_f64()));
    record(
        name,
        "large_mib_s",
        match secs {
            Some(s) if intact => format!("{:.1}", mib / s),
            Some(_) => "n/a (content differs)".into(),
            None => format!("n/a (not within {} s)", cfg.sizes.workload.as_secs()),
        },
    );
}

/// A pair whose sides both hold `files` empty files, built once for all
/// tools: building it takes longer than most workloads under emulation.
fn scale_tree(base: &Path, files: usize) -> (PathBuf, PathBuf) {
    let (a, b) = (base.join("a"), base.join("b"));
    fs::create_dir_all(&a).unwrap();
    for i in 0..files {
        fs::write(a.join(format!("e{i:06}")), b"").unwrap();
    }
    let status = Command::new("cp").arg("-a").arg(&a).arg(&b).status().unwrap();
    assert!(status.success());
    (a, b)
}

/// The median time for one new file in A to arrive in B, over five, with
/// `tool` started on the pair; the pair is left as it was found.
fn one_change(cfg: &Config, tool: Tool, pair: &(PathBuf, PathBuf)) -> Option<Duration> {
    let running = start_ready(cfg, tool, pair);
    let (a, b) = pair;
    let mut times = Vec::new();
    if running.is_some() {
        let deadline = Instant::now() + cfg.sizes.workload;
        for i in 0..5 {
            let target = b.join(format!("change{i}"));
            let start_at = Instant::now();
            fs::write(a.join(format!("change{i}")), b"changed").unwrap();
            let left = deadline.saturating_duration_since(Instant::now());
            match wait_until(left, QUICK_CHECK, || fs::read(&target).map(|c| c == b"changed").unwrap_or(false)) {
                Some(_) => times.push(start_at.elapsed()),
                None => break,
            }
        }
    }
    drop(running);
    for side in [a, b] {
        for entry in fs::read_dir(side).unwrap().filter_map(Result::ok) {
            let file = entry.file_name().to_string_lossy().into_owned();
            if !file.starts_with('e') {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    times.sort();
    (times.len() == 5).then(|| times[2])
}
