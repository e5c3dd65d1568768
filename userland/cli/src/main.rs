//! `real-time-sync A B`: mirror two directories both ways until Ctrl-C.

use clap::Parser;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

/// Exit status: a signal ended the call (it returned 0).
const EXIT_SIGNAL: u8 = 0;
/// Exit status: a directory was deleted, moved away, replaced or unmounted
/// while the call ran (ENOENT after a start on two existing directories).
const EXIT_ROOT_VANISHED: u8 = 1;
/// Exit status: the call refused to start (its errno's meaning is printed).
const EXIT_REFUSED: u8 = 3;

/// Mirror DIR_A and DIR_B both ways, live, with the real_time_sync(2) system
/// call, until a signal (Ctrl-C) ends it.
#[derive(Parser)]
#[command(
    name = "real-time-sync",
    version,
    after_help = "Exit status: 0 a signal ended mirroring; 1 a directory vanished while mirroring; \
                  2 usage error; 3 the call refused to start. See real-time-sync(1) and real_time_sync(2)."
)]
struct Args {
    /// Say what the call is doing when it starts and when it ends.
    #[arg(short, long)]
    verbose: bool,
    /// The first directory (the one that keeps the base file .real-time-sync-base).
    dir_a: PathBuf,
    /// The second directory.
    dir_b: PathBuf,
}

/// The signal that ended the call, for --verbose (0: none caught).
static CAUGHT: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_stop_signal(sig: libc::c_int) {
    CAUGHT.store(sig, Ordering::Relaxed);
}

/// Lets SIGINT, SIGTERM and SIGHUP end the system call (it returns 0)
/// instead of killing us, so that we can say that mirroring stopped cleanly.
fn catch_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler is async-signal
        // safe (one atomic store) and SA_RESTART is off so the call ends.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// Device and inode of a directory, if `path` is one.
fn dir_id(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().filter(|m| m.is_dir()).map(|m| (m.dev(), m.ino()))
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

fn errno_name(err: &io::Error) -> String {
    let name = match err.raw_os_error() {
        Some(libc::ENOENT) => "ENOENT",
        Some(libc::ENOTDIR) => "ENOTDIR",
        Some(libc::EACCES) => "EACCES",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EBUSY) => "EBUSY",
        Some(libc::EMFILE) => "EMFILE",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::EFAULT) => "EFAULT",
        Some(libc::ENAMETOOLONG) => "ENAMETOOLONG",
        Some(libc::ENOSYS) => "ENOSYS",
        _ => return err.to_string(),
    };
    name.to_owned()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (a, b) = (&args.dir_a, &args.dir_b);
    // Which ENOENT is which: the call checks its arguments before it blocks,
    // so an ENOENT for two directories that existed when it began means one
    // went away while it ran.
    let both_existed = dir_id(a).is_some() && dir_id(b).is_some();
    catch_stop_signals();
    eprintln!("real-time-sync: mirroring {} <-> {} (Ctrl-C stops)", a.display(), b.display());
    if args.verbose {
        eprintln!(
            "real-time-sync: calling real_time_sync({:?}, {:?}), system call {}: it checks both \
             directories, reconciles them with the base in {:?}, then mirrors every change until a signal",
            a,
            b,
            realtimesync::SYS_REAL_TIME_SYNC,
            a.join(".real-time-sync-base"),
        );
    }
    let started = Instant::now();
    let result = realtimesync::real_time_sync(a, b);
    let secs = started.elapsed().as_secs_f64();
    // EINTR: the signal came as the call resumed after a job-control stop;
    // it ended the call all the same.
    let result = match result {
        Err(err) if err.raw_os_error() == Some(libc::EINTR) => Ok(()),
        other => other,
    };
    match result {
        Ok(()) => {
            if args.verbose {
                let sig = signal_name(CAUGHT.load(Ordering::Relaxed));
                eprintln!(
                    "real-time-sync: the call returned 0 after {secs:.3} s: {sig} ended it, pending work \
                     finished and the base saved"
                );
            }
            eprintln!("real-time-sync: stopped");
            ExitCode::from(EXIT_SIGNAL)
        }
        Err(err) if err.raw_os_error() == Some(libc::ENOENT) && both_existed => {
            eprintln!(
                "real-time-sync: a directory does not exist any more (deleted, moved away, replaced or \
                 unmounted) after {secs:.3} s of mirroring: ENOENT"
            );
            ExitCode::from(EXIT_ROOT_VANISHED)
        }
        Err(err) => {
            eprintln!("real-time-sync: refused at start: {} ({})", realtimesync::explain(&err), errno_name(&err));
            ExitCode::from(EXIT_REFUSED)
        }
    }
}
