//! `real-time-sync A B`: mirror two directories both ways until Ctrl-C.

use std::env;
use std::process::ExitCode;

extern "C" fn on_stop_signal(_: libc::c_int) {}

/// Lets SIGINT and SIGTERM end the system call (it returns 0) instead of
/// killing us, so that we can say that mirroring stopped cleanly.
fn catch_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler is async-signal
        // safe (it does nothing) and SA_RESTART is off so the call ends.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_stop_signal as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<_> = env::args_os().skip(1).collect();
    let [dir_a, dir_b] = args.as_slice() else {
        eprintln!("usage: real-time-sync DIR_A DIR_B\n\nMirrors DIR_A and DIR_B both ways, live, until Ctrl-C.");
        return ExitCode::from(2);
    };
    catch_stop_signals();
    eprintln!("real-time-sync: mirroring {} <-> {} (Ctrl-C stops)", dir_a.to_string_lossy(), dir_b.to_string_lossy());
    match realtimesync::real_time_sync(dir_a, dir_b) {
        Ok(()) => {
            eprintln!("real-time-sync: stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("real-time-sync: {}: {err}", realtimesync::explain(&err));
            ExitCode::FAILURE
        }
    }
}
