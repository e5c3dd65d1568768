// SPDX-License-Identifier: GPL-2.0

//! The sync engine: the fsnotify handler records which names changed, and
//! one kernel thread per call drains them, compares both sides and acts.
//! This file holds the state of a call; its steps are modules of their own
//! (the flow is drawn in `usac.rs`).

use crate::base::{Base, Ids};
use crate::creds::Cred;
use crate::events::{Dirty, Events, Move, MAX_LOST_DIRS};
use crate::failures::Failures;
use crate::ignore;
use crate::memcg::{self, CallerMemcg, GFP};
use crate::naming;
use crate::notify::{DirRef, Group, InodeId};
use crate::path::DirPath;
use crate::plan::{self, Action, Entry, Holds, Kind, Reason, Side, Time};
use crate::ratelimit::RateLimit;
use crate::record::{self, Roots, Unusable};
use crate::registry::{self, Registration};
use crate::thread::{self, Thread};
use crate::vec;
use crate::vfs::{self, Held, Target};
use crate::wait::{self, Sleeper};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::alloc::{KBox, KVVec, KVec};
use kernel::error::code::{EAGAIN, EEXIST, EINTR, EISDIR, ENOENT, EROFS, EXDEV};
use kernel::prelude::*;
use kernel::sync::Arc;
use kernel::sync::Mutex;
use kernel::task::Task;
use kernel::time::{ktime_ms_delta, Ktime};
use kernel::types::ARef;
use kernel::workqueue::{self, impl_has_work, new_work, Work, WorkItem};

mod apply;
mod conflict;
mod decide;
mod remember;
mod remove;
mod rules;
mod run;
mod scan;

use remember::Finishing;
use rules::Rules;

/// Least time between two writes of a changed base while the call runs.
const SAVE_EVERY_MS: i64 = 1000;

/// Longest wait before a save that keeps failing is tried again: the wait
/// doubles from [`SAVE_EVERY_MS`] after each failure, since each try
/// flushes both file systems.
const SAVE_RETRY_MAX_MS: i64 = 64_000;

/// Largest base file read: beyond it the base is not used (a union start).
const MAX_BASE_BYTES: u64 = 1 << 30;

/// Bytes a remembered name may take in the base file: two whole paths (a
/// symlink's and its target's) and the fields.
const BASE_BYTES_PER_NAME: u64 = 2 * 4096 + 64;

/// Names missing from one side that a start mirrors as deletions without
/// asking whether the side is the right disk.
const INTERLOCK_MIN: usize = 100;

/// Rounds of retries after races, without new events, before the names
/// wait for a back-off (or the next change).
const MAX_RETRY_ROUNDS: u32 = 3;

/// Rounds of waiting for the second halves of renames, each needing a new
/// rename that started during the previous wait.
const MAX_RENAME_WAITS: u32 = 4;

/// How long a created file may wait for its writer's close before the
/// thread looks at it anyway (a hard link or `mknod` has no close).
const CREATE_GRACE_MS: u32 = 20;

/// How many names [`Engine::tell_once`] remembers; beyond, they are said
/// again on their next change.
const MAX_TOLD: usize = 1024;

/// The state of one call, shared by the caller and the thread.
pub(crate) struct Engine {
    a: DirPath,
    b: DirPath,
    creds: ARef<Cred>,
    group: Group,
    events: Arc<Events>,
    /// Drawn per call: only this call's temporary names are its own.
    call_id: u64,
    temp_seq: AtomicU64,
    /// What both sides last agreed on; used by the thread only, locked
    /// because the engine is shared with the caller.
    base: Pin<KBox<Mutex<Base>>>,
    /// Which pair the base belongs to.
    roots: Roots,
    /// Whose memory the thread's allocations are.
    memcg: CallerMemcg,
    /// What each side's file system can hold (A's first).
    holds: [Holds; 2],
    /// The coarser of the two sides' time granularities, and the range of
    /// seconds both keep: mtimes are compared as both sides can keep them
    /// (9p keeps whole seconds of a time set through it, FAT 2-second
    /// steps from 1980), so a copy never looks changed.
    times: (u32, (i64, i64)),
    /// How copies into each side move their bytes (A's first).
    copy_ways: [vfs::CopyWays; 2],
    /// The ignore rules of both sides; used by the thread only.
    rules: Pin<KBox<Mutex<Rules>>>,
    /// Names said once not to be mirrored, not said again.
    told: Pin<KBox<Mutex<KVVec<KVec<u8>>>>>,
    /// One save of the base at a time: the periodic ones run off the thread
    /// and may still run when the last one starts.
    saving: Pin<KBox<Mutex<()>>>,
    /// The pair in the table of live calls, until the last save and the
    /// last flush off the thread ended.
    registration: Arc<Registration>,
}

impl Engine {
    /// Engine for the pair `a`, `b`, acting as `creds`, for the calling task.
    pub(crate) fn new(
        a: DirPath,
        b: DirPath,
        creds: ARef<Cred>,
        call_id: u64,
        registration: Registration,
    ) -> Result<Arc<Self>> {
        let group = Group::new()?;
        let events = Events::new([InodeId::of(a.inode()), InodeId::of(b.inode())], call_id)?;
        let [dev_a, ino_a] = a.identity();
        let [dev_b, ino_b] = b.identity();
        let roots = [dev_a, ino_a, dev_b, ino_b];
        let base = Self::load_base(&a, &b, &roots, creds.fsuid())?;
        let holds = [a.inode().holds(), b.inode().holds()];
        let engine = Self {
            a,
            b,
            creds,
            group,
            events,
            call_id,
            temp_seq: AtomicU64::new(0),
            base: KBox::pin_init(kernel::new_mutex!(base, "usac_base"), GFP)?,
            roots,
            memcg: CallerMemcg::of_current(),
            holds,
            times: holds[0].common_times(&holds[1]),
            copy_ways: [vfs::CopyWays::new(), vfs::CopyWays::new()],
            rules: KBox::pin_init(kernel::new_mutex!(Rules::new(), "usac_rules"), GFP)?,
            told: KBox::pin_init(kernel::new_mutex!(KVVec::new(), "usac_told"), GFP)?,
            saving: KBox::pin_init(kernel::new_mutex!((), "usac_saving"), GFP)?,
            registration: Arc::new(registration, GFP)?,
        };
        Ok(Arc::new(engine, GFP)?)
    }

    /// Tells the handler which task is the sync thread.
    pub(crate) fn set_thread(&self, task: &Task) {
        self.events.set_thread(task);
    }

    /// True once a root was deleted, moved or unmounted.
    pub(crate) fn root_gone(&self) -> bool {
        self.events.root_gone()
    }

    /// True once an unmount of one of the mounts asked the call to end.
    pub(crate) fn unmounting(&self) -> bool {
        self.registration.unmounting()
    }

    /// Stops the thread, then gives up the marks without waiting for
    /// handlers still running (the marks keep the events alive for them).
    /// The last save of the base goes on without the caller.
    pub(crate) fn stop_watching_after(&self, thread: Thread<Self>) {
        drop(thread);
        self.events.close();
        self.group.release();
        self.registration.caller_left();
    }

    fn holds(&self, side: Side) -> &Holds {
        match side {
            Side::A => &self.holds[0],
            Side::B => &self.holds[1],
        }
    }

    /// False when one side keeps no permission bits and owners.
    fn modes_compared(&self) -> bool {
        self.holds[0].modes && self.holds[1].modes
    }

    /// Says `what` of `rel` once per call.
    fn tell_once(&self, rel: &[u8], what: &str, side: Side) -> Result {
        let mut told = self.told.lock();
        if told.iter().any(|t| t.as_slice() == rel) {
            return Ok(());
        }
        pr_info!(
            "\"{}\" not mirrored: {:?} {}\n",
            kernel::str::BStr::from_bytes(rel),
            side,
            what
        );
        if told.len() < MAX_TOLD {
            told.push(clone_bytes(rel)?, GFP)?;
        }
        Ok(())
    }

    fn root(&self, side: Side) -> &DirPath {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }
}

impl Engine {
    /// Watches both roots, so that a root moved away is noticed from the
    /// start, and their parents, since no mark on a root reports its removal
    /// while we hold it; fails with `ENOENT` if one is gone already.
    pub(crate) fn watch_roots(&self) -> Result {
        for (side, root) in [(Side::A, &self.a), (Side::B, &self.b)] {
            self.group
                .watch(self.events.clone(), root.inode(), side, &[])?;
            let events = self.events.clone();
            let watched = root.with_parent(|inode| self.group.watch_parent_of_root(events, inode));
            watched.transpose()?;
        }
        if self.a.is_deleted() || self.b.is_deleted() {
            return Err(ENOENT);
        }
        Ok(())
    }
}

impl thread::Runs for Engine {
    fn run(this: Arc<Self>) {
        this.sync(&this);
        Finishing::start(this);
    }
}

/// Where a side's inode and cookie sit in [`Ids`].
fn index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// Why a scan that descends into every directory names an entry.
fn deep_scan() -> Reason {
    Reason {
        rescan: true,
        ..Reason::default()
    }
}

fn push_scan(work: &mut KVVec<Dirty>, rel: &[u8]) -> Result {
    push_dirty(work, rel, deep_scan())
}

fn push_dirty(list: &mut KVVec<Dirty>, rel: &[u8], why: Reason) -> Result {
    let path = clone_bytes(rel)?;
    list.push(Dirty { path, why }, GFP)?;
    Ok(())
}

fn clone_bytes(bytes: &[u8]) -> Result<KVec<u8>> {
    let mut out = KVec::with_capacity(bytes.len(), GFP)?;
    out.extend_from_slice(bytes, GFP)?;
    Ok(out)
}

trait Report {
    /// True when one more message may be printed now.
    fn allows(&mut self) -> bool;
    fn report(&mut self, path: &[u8], err: Error);
}

impl Report for Option<RateLimit> {
    fn allows(&mut self) -> bool {
        self.as_mut().map_or(true, RateLimit::allows)
    }

    fn report(&mut self, path: &[u8], err: Error) {
        if self.allows() {
            pr_warn!(
                "cannot sync \"{}\" (error {}): retried after a back-off and on change\n",
                kernel::str::BStr::from_bytes(path),
                err.to_errno()
            );
        }
    }
}
