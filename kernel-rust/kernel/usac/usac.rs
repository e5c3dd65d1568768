// SPDX-License-Identifier: GPL-2.0

//! real_time_sync(2): keep two directory trees mirrored both ways, live, until
//! the calling process gets a signal.
//!
//! `entry.c` copies the two paths from user space and calls
//! [`usac_real_time_sync`]; everything else lives here. A change flows:
//!
//! ```text
//! event    fsnotify calls the group's handler      notify.rs
//! pending  it records the dirty name, wakes up     events.rs
//! loop     the thread takes a batch of names       engine/run.rs
//! scan     a directory's names join the batch      engine/scan.rs
//! decide   both sides and the base -> an action    engine/decide.rs, plan.rs
//! apply    copy, remove, keep both versions        engine/{apply,remove,conflict}.rs, naming.rs
//! base     what both agree on, saved in dir_a      engine/remember.rs, base.rs, record.rs
//! ```
//!
//! Every file system call goes through the small types of `vfs/` and
//! `path.rs`; the engine holds no `unsafe`.

use kernel::error::code::{EINTR, EINVAL, ENOENT, ERESTARTSYS};
use kernel::ffi::{c_char, c_long};
use kernel::prelude::*;
use kernel::str::CStr;

mod base;
mod creds;
mod engine;
mod events;
mod failures;
pub mod ignore;
mod inode;
mod memcg;
pub mod naming;
mod notify;
mod path;
pub mod plan;
mod ratelimit;
pub mod record;
mod registry;
mod thread;
mod vec;
mod vfs;
mod wait;

use creds::Cred;
use engine::Engine;
use path::{Access, DirPath};
use registry::Registration;
use thread::Thread;

const __LOG_PREFIX: &[u8] = b"usac\0";

/// Entry point from the C system call.
///
/// # Safety
///
/// `dir_a` and `dir_b` must be valid NUL-terminated strings that stay alive
/// for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn usac_real_time_sync(dir_a: *const c_char, dir_b: *const c_char) -> c_long {
    // SAFETY: the caller guarantees both are NUL-terminated strings that live
    // until we return.
    let (dir_a, dir_b) = unsafe { (CStr::from_char_ptr(dir_a), CStr::from_char_ptr(dir_b)) };
    match real_time_sync(dir_a, dir_b) {
        Ok(()) => 0,
        Err(e) => e.to_errno() as c_long,
    }
}

/// Called by umount(2) for the mount `mnt` it unmounted: asks the calls
/// with a root on it to end; true while there is such a call.
#[no_mangle]
pub extern "C" fn usac_end_calls_on(mnt: *const kernel::bindings::vfsmount) -> bool {
    registry::end_calls_on(mnt)
}

fn real_time_sync(dir_a: &CStr, dir_b: &CStr) -> Result {
    let (a, b) = resolve_pair(dir_a, dir_b)?;
    let creds = Cred::of_caller();
    // Kept by the engine until its last save: an unmount and a new call
    // for the pair wait for it.
    let call_id = thread::random_u64();
    let registration = match Registration::new(&a, &b, creds.uid(), call_id) {
        // A signal came while waiting for the pair's last call to finish:
        // it ends this call as it would a running one (a restart would
        // lose it).
        Err(e) if e == ERESTARTSYS => return ended_by(wait::woken_by_pending_signal()),
        registration => registration?,
    };
    let engine = match Engine::new(a, b, creds, call_id, registration) {
        // A signal while the base loaded: the call ends as it would later.
        Err(e) if e == EINTR && wait::signal_pending() => {
            return ended_by(wait::woken_by_pending_signal())
        }
        engine => engine?,
    };
    engine.watch_roots()?;
    let thread = Thread::spawn(kernel::c_str!("usac-sync"), engine.clone())?;
    // Known before it runs, so the handler can tell its echo from the start.
    engine.set_thread(thread.task());
    thread.start();
    let woken = wait::until_signal_or(|| engine.root_gone() || engine.unmounting());
    // Teardown order: the thread first (it uses the marks), then the marks,
    // then the rest with the engine. Nothing waits for fsnotify's grace
    // period: what a late handler touches lives on in the marks.
    engine.stop_watching_after(thread);
    ended_by(woken)
}

fn ended_by(woken: wait::Woken) -> Result {
    match woken {
        // Restarted once the stop is over, unless a handled signal comes
        // first (a Ctrl-C sent while stopped): then the call ends with
        // EINTR, not restarted to wait for a second one.
        wait::Woken::ByJobControl => Err(ERESTARTSYS),
        wait::Woken::BySignal => Ok(()),
        wait::Woken::Done => Err(ENOENT),
    }
}

/// Resolves both paths as `open(2)` would and checks that they form a valid
/// pair; every error of the contract is answered here, before any change.
fn resolve_pair(dir_a: &CStr, dir_b: &CStr) -> Result<(DirPath, DirPath)> {
    let a = DirPath::lookup(dir_a)?;
    a.check_access(Access::ReadWriteSearch)?;
    let b = DirPath::lookup(dir_b)?;
    b.check_access(Access::ReadWriteSearch)?;
    if a.overlaps(&b) {
        return Err(EINVAL);
    }
    Ok((a.on_private_mount()?, b.on_private_mount()?))
}
