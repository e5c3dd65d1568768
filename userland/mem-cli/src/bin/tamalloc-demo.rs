//! `tamalloc-demo SIZE`: allocates SIZE bytes with tamalloc(2), shows the
//! process's reserved and committed memory before and after touching half
//! of it, and checks that every byte read zero.

use clap::Parser;
use realtimesync::mem::{explain, get_mem_stats, Allocation, MemStats};
use std::process::ExitCode;
use usac_mem::parse_size;

/// Lazy allocation with tamalloc(2): reserved grows at once, committed only
/// as pages are touched, and every byte reads zero.
#[derive(Parser)]
#[command(name = "tamalloc-demo", version)]
struct Args {
    /// Bytes to allocate; K, M and G suffixes are powers of 1024 (e.g. 256M).
    #[arg(value_parser = parse_size)]
    size: usize,
}

fn show(when: &str, s: &MemStats) {
    println!("{when:<28} reserved {:>10} kB  committed {:>10} kB", s.reserved_kb, s.committed_kb);
}

fn stats() -> Result<MemStats, String> {
    get_mem_stats(0).map_err(|err| format!("get_mem_stats: {}: {err}", explain(&err)))
}

fn run(size: usize) -> Result<(), String> {
    let before = stats()?;
    show("before tamalloc", &before);
    let mut mem = Allocation::new(size).map_err(|err| format!("tamalloc({size}): {}: {err}", explain(&err)))?;
    let allocated = stats()?;
    show("after tamalloc", &allocated);
    let bytes = mem.as_mut_slice();
    let half = bytes.len() / 2;
    let (first, second) = bytes.split_at_mut(half);
    // Read every byte of the first half, then write it: committed grows.
    let mut nonzero = first.iter().filter(|&&b| b != 0).count();
    first.fill(0xa5);
    let touched = stats()?;
    show(&format!("after touching {half} bytes"), &touched);
    // The other half was never written: it must read zero too.
    nonzero += second.iter().filter(|&&b| b != 0).count();
    println!(
        "reserved +{} kB, committed +{} kB after tamalloc, +{} kB after touching half",
        allocated.reserved_kb.saturating_sub(before.reserved_kb),
        allocated.committed_kb.saturating_sub(before.committed_kb),
        touched.committed_kb.saturating_sub(allocated.committed_kb),
    );
    if nonzero != 0 {
        return Err(format!("{nonzero} of {size} bytes did not read zero"));
    }
    println!("all {size} bytes read zero");
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args.size) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("tamalloc-demo: {msg}");
            ExitCode::FAILURE
        }
    }
}
