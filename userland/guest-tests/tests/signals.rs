//! How the call ends: signals that end it, the job-control stop that must
//! not, and SIGKILL.

use guest_tests::{arrives, base_records, eventually, mount_tmpfs, pair, umount, Scratch, Syncer, ARRIVAL, BASE_FILE};
use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

fn ends_cleanly_on(sig: i32) {
    let (_s, a, b) = pair("signal-end");
    let mut syncer = Syncer::start(&a, &b);
    let sent = Instant::now();
    syncer.signal(sig);
    let status = syncer.wait_exit(Duration::from_secs(5)).unwrap().expect("still running");
    let took = sent.elapsed();
    let stderr = syncer.stderr();
    assert!(status.success(), "status {status:?}: {stderr}");
    assert!(stderr.contains("stopped"), "the call did not return 0: {stderr}");
    assert!(took < Duration::from_millis(100), "took {took:?}");
}

#[test]
fn sigint_ends_the_call_with_0_within_100ms() {
    ends_cleanly_on(libc::SIGINT);
}

#[test]
fn sigterm_ends_the_call_with_0_within_100ms() {
    ends_cleanly_on(libc::SIGTERM);
}

#[test]
fn sighup_ends_the_call_with_0_within_100ms() {
    ends_cleanly_on(libc::SIGHUP);
}

/// The base is saved when `sig` ends the call: a name mirrored after the
/// last periodic save (at most one a second) is in it once the call ended.
fn saves_the_base_when_ended_by(sig: i32) {
    let (s, a, b) = pair("save-at-end");
    s.file("a/first", b"1");
    let mut syncer = Syncer::start(&a, &b);
    assert!(arrives(&b.join("first"), b"1"));
    assert!(eventually(ARRIVAL, || base_records(&a, "first")), "the base was never saved");
    let last = "mirrored-after-the-last-periodic-save";
    fs::write(a.join(last), b"2").unwrap();
    assert!(arrives(&b.join(last), b"2"));
    assert!(!base_records(&a, last), "a periodic save came before the signal: the test proves nothing");
    syncer.signal(sig);
    syncer.wait_exit(Duration::from_secs(5)).unwrap().expect("still running after the signal");
    // The last save goes on after the call returned.
    assert!(eventually(ARRIVAL, || base_records(&a, last)), "the base was not saved when the call ended");
}

#[test]
fn the_base_is_saved_when_sigint_ends_the_call() {
    saves_the_base_when_ended_by(libc::SIGINT);
}

#[test]
fn the_base_is_saved_when_sigkill_ends_the_call() {
    saves_the_base_when_ended_by(libc::SIGKILL);
}

/// Context switches of task `pid` so far, voluntary or not.
fn switches(pid: i32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|line| line.contains("ctxt_switches"))
        .map(|line| line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum()
}

/// An idle call costs nothing: once its base is saved, neither its thread
/// nor the caller wakes up in 5 s (no timer, no polling); a change does
/// wake the thread, so the count counts.
#[test]
fn an_idle_call_never_wakes_up() {
    let (s, a, b) = pair("idle");
    s.file("a/f", b"f");
    let earlier = guest_tests::sync_threads();
    let syncer = Syncer::start(&a, &b);
    assert!(arrives(&b.join("f"), b"f"));
    assert!(eventually(ARRIVAL, || a.join(BASE_FILE).exists()), "the base was never saved");
    let thread = guest_tests::sync_threads().into_iter().find(|t| !earlier.contains(t)).expect("no sync thread");
    // Past the saver's last wake-up.
    sleep(Duration::from_secs(2));
    let before = (switches(thread), switches(syncer.pid()));
    sleep(Duration::from_secs(5));
    let after = (switches(thread), switches(syncer.pid()));
    assert_eq!(after, before, "an idle call woke up (thread, caller)");
    fs::write(a.join("g"), b"g").unwrap();
    assert!(arrives(&b.join("g"), b"g"));
    // Counted when the thread sleeps again, after its work.
    let counted = eventually(ARRIVAL, || switches(thread) > after.0);
    assert!(counted, "a change did not count as a wake-up: the test proves nothing");
    syncer.stop();
}

#[test]
fn sigkill_leaves_no_stuck_task() {
    let (_s, a, b) = pair("sigkill");
    // This call's thread: the one that was not there before it.
    let earlier = guest_tests::sync_threads();
    let mut syncer = Syncer::start(&a, &b);
    let ours = || guest_tests::sync_threads().into_iter().find(|t| !earlier.contains(t));
    assert!(guest_tests::eventually(Duration::from_secs(10), || ours().is_some()), "no sync thread");
    let thread = ours().expect("seen just above");
    syncer.signal(libc::SIGKILL);
    let status = syncer.wait_exit(Duration::from_secs(5)).unwrap().expect("task stuck after SIGKILL");
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    // The thread went with the call (it is stopped before the call returns).
    assert!(!std::path::Path::new(&format!("/proc/{thread}")).exists(), "the sync thread outlived the call");
    let stuck = guest_tests::tasks_in_d_state();
    assert!(stuck.is_empty(), "tasks in uninterruptible sleep: {stuck:?}");
    // The pair is free at once: a new call for it mirrors what changed. The
    // bound is a start and one copy on a slow guest, not a wait for the
    // last call to let go.
    fs::write(a.join("after"), b"after the kill").unwrap();
    let next = Syncer::start(&a, &b);
    let arrived = guest_tests::eventually(Duration::from_secs(3), || {
        fs::read(b.join("after")).is_ok_and(|c| c == b"after the kill")
    });
    assert!(arrived, "a new call for the pair did not mirror within 3 s of a SIGKILL");
    next.stop();
}

#[test]
fn job_control_stop_and_continue_keeps_the_call_going() {
    let (_s, a, b) = pair("sigstop");
    let mut syncer = Syncer::start(&a, &b);
    for stop in [libc::SIGSTOP, libc::SIGTSTP] {
        syncer.signal(stop);
        assert!(guest_tests::eventually(Duration::from_secs(10), || syncer.state() == 'T'), "not stopped");
        syncer.signal(libc::SIGCONT);
        syncer.wait_in_call(Duration::from_secs(10));
        assert!(syncer.wait_exit(Duration::from_millis(200)).unwrap().is_none(), "the call ended on a stop");
    }
    syncer.signal(libc::SIGINT);
    let status = syncer.wait_exit(Duration::from_secs(5)).unwrap().expect("still running");
    assert!(status.success(), "{}", syncer.stderr());
}

/// Ctrl-Z, then Ctrl-C before `fg`: the SIGINT waits while the process is
/// stopped and is taken as soon as it continues, before the call is back
/// in the kernel. The call must end then, not restart and wait for a second
/// signal.
#[test]
fn a_sigint_sent_while_stopped_ends_the_call_once_continued() {
    let (_s, a, b) = pair("stop-then-int");
    let mut syncer = Syncer::start(&a, &b);
    syncer.signal(libc::SIGSTOP);
    assert!(guest_tests::eventually(Duration::from_secs(10), || syncer.state() == 'T'), "not stopped");
    syncer.signal(libc::SIGINT);
    syncer.signal(libc::SIGCONT);
    let status = syncer.wait_exit(Duration::from_secs(5)).unwrap();
    let status = status.unwrap_or_else(|| {
        syncer.signal(libc::SIGKILL);
        panic!("still in the call 5 s after SIGCONT: the SIGINT taken during the stop was lost")
    });
    let stderr = syncer.stderr();
    assert!(status.success() && stderr.contains("stopped"), "{status:?}: {stderr}");
}

/// The call gives back every reference before it returns: both filesystems
/// unmount right away, as after any program that used them.
#[test]
fn both_filesystems_unmount_as_soon_as_the_call_returned() {
    let s = Scratch::new("umount-after");
    for round in 0..5 {
        let mounts = [s.dir(&format!("fs-a{round}")), s.dir(&format!("fs-b{round}"))];
        for m in &mounts {
            mount_tmpfs(m);
        }
        // Below the mount roots, so the roots' parents are watched too.
        let (a, b) = (mounts[0].join("a"), mounts[1].join("b"));
        fs::create_dir_all(a.join("d")).unwrap();
        fs::create_dir(&b).unwrap();
        fs::write(a.join("d/f"), b"x").unwrap();
        let syncer = Syncer::start(&a, &b);
        assert!(arrives(&b.join("d/f"), b"x"), "round {round}: not mirrored");
        syncer.stop();
        for m in &mounts {
            let unmounted = umount(m, false);
            assert!(unmounted.is_ok(), "round {round}: umount {m:?}: {unmounted:?}");
        }
    }
}
