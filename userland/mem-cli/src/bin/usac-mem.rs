//! `usac-mem PID | --all | --total`: memory statistics from the
//! get_mem_stats(2) and get_total_mem_stats(2) system calls.

use clap::Parser;
use realtimesync::mem::{explain, get_mem_stats, get_total_mem_stats};
use std::process::ExitCode;
use usac_mem::{row, HEADER};

/// Memory statistics of processes: reserved (virtual size), committed
/// (resident set), both in KiB, the OOM score and committed as % of reserved.
#[derive(Parser)]
#[command(name = "usac-mem", version)]
struct Args {
    /// The process to show (0: usac-mem itself).
    #[arg(required_unless_present_any = ["all", "total"], conflicts_with_all = ["all", "total"])]
    pid: Option<libc::pid_t>,
    /// One row for every process.
    #[arg(long, conflicts_with = "total")]
    all: bool,
    /// The sums over every process (each address space once).
    #[arg(long)]
    total: bool,
}

fn pids() -> Vec<libc::pid_t> {
    let mut pids: Vec<libc::pid_t> =
        procfs::process::all_processes().map(|all| all.flatten().map(|p| p.pid()).collect()).unwrap_or_default();
    pids.sort_unstable();
    pids
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.total {
        return match get_total_mem_stats() {
            Ok(t) => {
                println!("total reserved: {} kB", t.total_reserved_kb);
                println!("total committed: {} kB", t.total_committed_kb);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("usac-mem: get_total_mem_stats: {}: {err}", explain(&err));
                ExitCode::FAILURE
            }
        };
    }
    println!("{HEADER}");
    if args.all {
        for pid in pids() {
            match get_mem_stats(pid) {
                Ok(s) => println!("{}", row(pid, &s)),
                // Gone since the listing, or not ours to see: skipped.
                Err(err) if matches!(err.raw_os_error(), Some(libc::ESRCH) | Some(libc::EACCES)) => {}
                Err(err) => {
                    eprintln!("usac-mem: get_mem_stats({pid}): {}: {err}", explain(&err));
                    return ExitCode::FAILURE;
                }
            }
        }
        return ExitCode::SUCCESS;
    }
    let pid = args.pid.unwrap_or(0);
    match get_mem_stats(pid) {
        Ok(s) => {
            // SAFETY: getpid() cannot fail.
            let shown = if pid == 0 { unsafe { libc::getpid() } } else { pid };
            println!("{}", row(shown, &s));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("usac-mem: get_mem_stats({pid}): {}: {err}", explain(&err));
            ExitCode::FAILURE
        }
    }
}
