// SPDX-License-Identifier: GPL-2.0

//! The sync engine: the fsnotify handler records which names changed, and
//! one kernel thread per call drains them, compares both sides and acts.

use crate::base::{Base, Ids};
use crate::creds::Cred;
use crate::events::{Dirty, Events, Move, MAX_LOST_DIRS};
use crate::failures::Failures;
use crate::memcg::{self, CallerMemcg, GFP};
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
            told: KBox::pin_init(kernel::new_mutex!(KVVec::new(), "usac_told"), GFP)?,
            saving: KBox::pin_init(kernel::new_mutex!((), "usac_saving"), GFP)?,
            registration: Arc::new(registration, GFP)?,
        };
        Ok(Arc::new(engine, GFP)?)
    }

    /// The base the last call left in `a` for this pair, or an empty one
    /// (then nothing is deleted at start: a name on one side is copied).
    /// Names the base has but one side lacks are deletions to mirror; when
    /// that is most of them, the side is more likely an empty or wrong disk
    /// than emptied by its user, and they are not mirrored.
    ///
    /// Only a base file that the caller (or root) owns and nobody else may
    /// write is trusted: anyone who can write `dir_a`'s top could otherwise
    /// forge one that makes a privileged call delete what that user cannot.
    /// A name that cannot be looked up (a directory another user closed
    /// meanwhile) stays as remembered. Loading ends with `EINTR` on a signal.
    fn load_base(a: &DirPath, b: &DirPath, roots: &Roots, caller: u32) -> Result<Base> {
        let Some(held) = vfs::lookup(a, record::FILE_NAME)? else {
            return Ok(Base::new());
        };
        let file = held.stat()?;
        let trusted = (file.uid == caller || file.uid == 0) && file.mode & 0o022 == 0;
        // A name that still matters is an inode on one side at least (a
        // hard link is one on its side, but files of their own on the
        // other): a larger base is not read, nor decoded beyond that many
        // names, so that its memory stays bounded by the trees'.
        let max_names = match (a.inodes_in_use(), b.inodes_in_use()) {
            (Some(on_a), Some(on_b)) => on_a.saturating_add(on_b),
            _ => u64::MAX,
        };
        let max_bytes = max_names
            .saturating_mul(BASE_BYTES_PER_NAME)
            .min(MAX_BASE_BYTES);
        let unusable = if !trusted {
            Err(Unusable::Untrusted)
        } else if file.size > max_bytes {
            Err(Unusable::LargerThanTheTrees)
        } else {
            match vfs::read_file(&held, max_bytes) {
                Ok(bytes) => match Base::decode(&bytes, roots, max_names, wait::signal_pending)? {
                    Ok(base) => Ok(base),
                    Err(why) => Err(why),
                },
                Err(e) if e == ENOMEM || e == EINTR => return Err(e),
                Err(_) => Err(Unusable::Unreadable),
            }
        };
        let mut base = match unusable {
            Ok(base) => base,
            Err(why) => {
                pr_info!(
                    "the remembered base {} in dir_a is not usable ({:?}): nothing is deleted at start\n",
                    kernel::str::BStr::from_bytes(record::FILE_NAME),
                    why
                );
                return Ok(Base::new());
            }
        };
        for (side, root) in [(Side::A, a), (Side::B, b)] {
            let mut missing = KVVec::new();
            let mut unlooked = 0usize;
            let mut stopped = false;
            for (path, _) in base.names() {
                thread::yield_now();
                if wait::signal_pending() {
                    stopped = true;
                    break;
                }
                match vfs::lookup(root, path) {
                    Ok(Some(_)) => {}
                    Ok(None) => missing.push(clone_bytes(path)?, GFP)?,
                    Err(e) if e == ENOMEM => return Err(e),
                    Err(e) => {
                        if unlooked == 0 {
                            pr_info!(
                                "cannot look up \"{}\" in dir_{:?} at start (error {}): kept as remembered\n",
                                kernel::str::BStr::from_bytes(path),
                                side,
                                e.to_errno()
                            );
                        }
                        unlooked = unlooked.saturating_add(1);
                    }
                }
            }
            if stopped {
                thread::drop_later((base, missing));
                return Err(EINTR);
            }
            if unlooked > 1 {
                pr_info!(
                    "{} remembered names in all could not be looked up in dir_{:?} at start\n",
                    unlooked,
                    side
                );
            }
            let len = base.len();
            if missing.len() > INTERLOCK_MIN && missing.len() > len / 2 {
                pr_warn!(
                    "{} of {} remembered names are missing from dir_{:?}: not deleting them from the other side\n",
                    missing.len(),
                    len,
                    side
                );
                for path in missing.iter() {
                    base.forget(path)?;
                }
            }
        }
        Ok(base)
    }

    /// Writes the base into `dir_a` for the next call, if it changed since
    /// the last save: complete under a temporary name first, then renamed
    /// over the last one. Runs as the caller, on any thread.
    fn save_base(&self) -> Result {
        let _as_caller = self.creds.assume();
        let _charged = self.memcg.charge();
        let _one_at_a_time = self.saving.lock();
        // Taken before the flushes: what changes later is not on the
        // devices yet, and waits for the next save.
        let (bytes, version) = {
            let base = self.base.lock();
            if !base.unsaved() {
                return Ok(());
            }
            (base.encode(&self.roots)?, base.version())
        };
        // What the base records as agreed must be on both devices first: a
        // side that a crash rolled back must not look changed by its user
        // (its older version would then be copied over the newer one).
        self.b.sync_file_system()?;
        if !self.a.same_file_system(&self.b) {
            self.a.sync_file_system()?;
        }
        let temp = plan::temp_name(self.call_id, self.temp_seq.fetch_add(1, Ordering::Relaxed));
        let written = vfs::write_new_file(&self.a, &temp, &bytes)
            .and_then(|()| vfs::rename_in(&self.a, b"", &temp, record::FILE_NAME, Target::Replace));
        match written {
            Ok(()) => self.base.lock().saved(version),
            Err(_) => {
                let _ = vfs::unlink(&self.a, &temp);
            }
        }
        written
    }

    /// Both sides agree on `entry` under `rel` now, held by the inodes
    /// `ids` (the roots themselves need no record: they are the pair).
    fn agreed(&self, rel: &[u8], entry: &Entry, ids: Ids) -> Result {
        if rel.is_empty() {
            return Ok(());
        }
        // A symlink is agreed on with its exact target (A's, as both hold it).
        let target = match entry.kind {
            Kind::Symlink => match vfs::lookup(&self.a, rel)? {
                Some(held) => vfs::read_link(&held)?,
                None => return Ok(()),
            },
            _ => KVec::new(),
        };
        self.base.lock().set(rel, *entry, ids, &target)
    }

    /// Both sides hold the copy just `placed` under `rel`.
    fn agreed_on(&self, rel: &[u8], placed: &Placed) -> Result {
        self.base
            .lock()
            .set(rel, placed.entry, placed.ids, &placed.target)
    }

    /// The base's entry and both sides' as the planner should see them:
    /// size and time cannot tell two symlinks apart, so each distinct
    /// target among the three gets a number, which stands for its size.
    fn with_link_classes(
        &self,
        rel: &[u8],
        agreed: Option<Entry>,
        a: &Option<(Held, Entry)>,
        b: &Option<(Held, Entry)>,
    ) -> Result<[Option<Entry>; 3]> {
        let link = |e: &Option<Entry>| matches!(e, Some(e) if e.kind == Kind::Symlink);
        let mut seen = [agreed, a.as_ref().map(|s| s.1), b.as_ref().map(|s| s.1)];
        if !seen.iter().any(link) {
            return Ok(seen);
        }
        let target = |side: &Option<(Held, Entry)>| match side {
            Some((held, e)) if e.kind == Kind::Symlink => vfs::read_link(held).map(Some),
            _ => Ok(None),
        };
        let (ta, tb) = (target(a)?, target(b)?);
        let base_link = link(&agreed);
        let as_agreed = |t: &KVec<u8>| -> Result<bool> {
            Ok(base_link && self.base.lock().same_target(rel, t)?)
        };
        let class_a = match &ta {
            Some(t) if as_agreed(t)? => 0,
            _ => 1,
        };
        let class_b = match &tb {
            Some(t) if as_agreed(t)? => 0,
            Some(t) if ta.as_ref() == Some(t) => class_a,
            _ => 2,
        };
        for (entry, class) in seen.iter_mut().zip([0, class_a, class_b]) {
            if let Some(e) = entry.as_mut().filter(|e| e.kind == Kind::Symlink) {
                e.size = class;
            }
        }
        Ok(seen)
    }

    /// Neither side holds `rel` any more.
    fn forgotten(&self, rel: &[u8]) -> Result {
        self.base.lock().forget(rel)
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

    /// The body of the sync thread.
    /// The thread's loop; `this` is `self`, shared with the saves it hands
    /// to a kworker.
    fn sync(&self, this: &Arc<Self>) {
        let _as_caller = self.creds.assume();
        let _charged = self.memcg.charge();
        let mut limiter = RateLimit::new(5, 10);
        // Directories to reconcile once the queue is empty, because work in
        // them raced with the user's own changes; and how many such rounds
        // ran since the last event, to give up on a race that never ends.
        let mut later: KVVec<KVec<u8>> = KVVec::new();
        // Names left until a writer on the other side closes the file.
        let mut parked: KVVec<Dirty> = KVVec::new();
        let mut rounds = 0;
        // Jiffies left of the grace for created files, once it started.
        let mut grace_left = None;
        let mut saver = Saver::new();
        // Room for the handler to record directories that lost events,
        // allocated ahead, since the handler cannot wait for it.
        let mut room = None;
        let mut started = false;
        let mut failures = Failures::new();
        loop {
            if room.is_none() {
                room = KVec::with_capacity(MAX_LOST_DIRS, GFP).ok();
            }
            // Only this thread changes the base: read before the sleep is
            // prepared, since its mutex may block.
            let unsaved = self.base.lock().unsaved();
            // Marked as sleeping before checking for work, so that a wake-up
            // in between is not lost.
            let asleep = Sleeper::prepare();
            if thread::should_stop() {
                break;
            }
            let grace_over = grace_left == Some(0);
            let (mut batch, mut moves, mut rescan_all) = self.take_pending(grace_over);
            if grace_over || !batch.is_empty() {
                grace_left = None;
            }
            let lost = self.events.take_lost(&mut room);
            let idle = batch.is_empty() && moves.is_empty() && !rescan_all && lost.is_empty();
            let retry = failures.wait_ms();
            let retry_due = idle && retry == Some(0);
            if idle && !retry_due && (later.is_empty() || rounds >= MAX_RETRY_ROUNDS) {
                // Directories that kept racing for all their rounds are not
                // given up: they join the names retried after a back-off,
                // each said once.
                for dir in core::mem::replace(&mut later, KVVec::new()).into_iter() {
                    if failures.failed(&dir) && limiter.allows() {
                        pr_info!(
                            "\"{}\" kept changing while it was mirrored: tried again after a back-off\n",
                            kernel::str::BStr::from_bytes(if dir.is_empty() { b"." } else { &dir })
                        );
                    }
                }
                // The next retry of failed names bounds every sleep.
                let retry = failures.wait_ms().map(kernel::time::msecs_to_jiffies);
                if self.events.pending.lock().dirty.is_empty() {
                    if !unsaved {
                        match retry {
                            Some(wait) => drop(asleep.sleep_for(wait)),
                            None => asleep.sleep(),
                        }
                        continue;
                    }
                    match u32::try_from(saver.due_in_ms()) {
                        Ok(wait) if wait > 0 => {
                            let wait = kernel::time::msecs_to_jiffies(wait);
                            asleep.sleep_for(retry.map_or(wait, |r| r.min(wait)));
                        }
                        _ => {
                            drop(asleep);
                            saver.save(this, &mut limiter);
                        }
                    }
                } else {
                    // Only created files wait: give their writers the grace
                    // to close them, unless something else comes.
                    let grace = grace_left
                        .unwrap_or_else(|| kernel::time::msecs_to_jiffies(CREATE_GRACE_MS));
                    let slept = retry.map_or(grace, |r| r.min(grace));
                    let left = asleep.sleep_for(slept);
                    grace_left = Some(grace.saturating_sub(slept.saturating_sub(left)));
                }
                continue;
            }
            // Running from here: what follows may sleep.
            drop(asleep);
            if retry_due {
                match failures.retry() {
                    Ok((names, whole_tree)) => {
                        rescan_all |= whole_tree;
                        for path in names.into_iter() {
                            let why = deep_scan();
                            if batch.push(Dirty { path, why }, GFP).is_err() {
                                rescan_all = true;
                            }
                        }
                    }
                    Err(_) => rescan_all = true,
                }
            }
            if idle {
                rounds += 1;
                for path in core::mem::replace(&mut later, KVVec::new()).into_iter() {
                    if batch
                        .push(
                            Dirty {
                                path,
                                why: deep_scan(),
                            },
                            GFP,
                        )
                        .is_err()
                    {
                        self.events.pending.lock().rescan_all = true;
                    }
                }
            } else {
                rounds = 0;
            }
            self.complete_renames(&mut batch, &mut moves, &mut rescan_all);
            // The first batch reconciles the whole tree by design.
            if rescan_all && started && limiter.allows() {
                pr_info!("events lost beyond what is tracked: reconciling the whole tree\n");
            }
            started = true;
            let names = Names {
                later: &mut later,
                parked: &mut parked,
                failures: &mut failures,
            };
            self.process(batch, moves, rescan_all, lost, &mut limiter, names);
            if saver.due_in_ms() <= 0 && self.base.lock().unsaved() {
                saver.save(this, &mut limiter);
            }
        }
    }

    /// Says a failure that is retried: a read-only side once for all its
    /// names, any other per name.
    fn report_failure(
        &self,
        path: &[u8],
        err: Error,
        failures: &mut Failures,
        limiter: &mut Option<RateLimit>,
    ) {
        if err != EROFS {
            return limiter.report(path, err);
        }
        for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
            if self.root(side).is_read_only() && failures.first_read_only(i) {
                pr_warn!(
                    "dir_{:?} is read-only: changes wait until it is writable again\n",
                    side
                );
            }
        }
    }

    /// Saves the base if it changed, after a save still running, and frees
    /// it.
    fn finish(&self) {
        if let Err(err) = self.save_base() {
            pr_warn!(
                "cannot save {} in dir_a (error {}): the next call starts from an older base\n",
                kernel::str::BStr::from_bytes(record::FILE_NAME),
                err.to_errno()
            );
        }
        drop(core::mem::replace(&mut *self.base.lock(), Base::new()));
    }

    /// Takes what the handler left, unless it is only created files still
    /// within their grace (`grace_over` false).
    fn take_pending(&self, grace_over: bool) -> (KVVec<Dirty>, KVVec<Move>, bool) {
        let mut pending = self.events.pending.lock();
        let ready = core::mem::take(&mut pending.urgent)
            || grace_over
            || pending.rescan_all
            || !pending.moves.is_empty();
        if !ready {
            return (KVVec::new(), KVVec::new(), false);
        }
        let batch = pending.take_dirty();
        let moves = core::mem::replace(&mut pending.moves, KVVec::new());
        let rescan_all = core::mem::replace(&mut pending.rescan_all, false);
        (batch, moves, rescan_all)
    }

    /// The thread may run between the two events of one rename; a half
    /// alone would turn a renamed tree into a delete plus a copy. So wait
    /// for every rename whose first half was taken to finish, and pair the
    /// second halves that came meanwhile.
    fn complete_renames(
        &self,
        batch: &mut KVVec<Dirty>,
        moves: &mut KVVec<Move>,
        rescan_all: &mut bool,
    ) {
        // Each round needs a new rename to start during the last wait.
        for _ in 0..MAX_RENAME_WAITS {
            let mut waited = false;
            for mv in moves.iter() {
                if let Some(from) = mv.waiting_for_to() {
                    // A directory gone meanwhile has no rename to wait for.
                    let _ = vfs::wait_for_renames_in(self.root(mv.side), vfs::split(from).0);
                    waited = true;
                }
            }
            if !waited {
                return;
            }
            let (more, halves, rescan) = self.take_pending(true);
            *rescan_all |= rescan;
            for dirty in more.into_iter() {
                if batch.push(dirty, GFP).is_err() {
                    *rescan_all = true;
                }
            }
            for half in halves.into_iter() {
                if half.from.is_none() {
                    let first = moves.iter_mut().find(|m| {
                        m.side == half.side
                            && m.cookie == half.cookie
                            && m.waiting_for_to().is_some()
                    });
                    if let Some(first) = first {
                        first.to = half.to;
                    }
                } else {
                    // Without room it is reconciled as a delete plus a create.
                    let _ = moves.push(half, GFP);
                }
            }
        }
    }

    fn process(
        &self,
        mut batch: KVVec<Dirty>,
        moves: KVVec<Move>,
        rescan_all: bool,
        lost: KVec<DirRef>,
        limiter: &mut Option<RateLimit>,
        names: Names<'_>,
    ) {
        let Names {
            later,
            parked,
            failures,
        } = names;
        if unpark(&mut batch, parked).is_err() {
            self.events.pending.lock().rescan_all = true;
        }
        let mut work: KVVec<Dirty> = KVVec::new();
        if rescan_all && push_scan(&mut work, b"").is_err() {
            self.events.pending.lock().rescan_all = true;
        }
        // Where events were lost, the directory is listed again and each
        // name decided three-way, so a delete among the lost events holds.
        let listed = Reason {
            rescan: true,
            shallow: true,
            ..Reason::default()
        };
        for dir in lost.iter() {
            if limiter.allows() {
                pr_info!(
                    "events lost in \"{}\" on dir_{:?}: listing it again\n",
                    kernel::str::BStr::from_bytes(dir.path()),
                    dir.side()
                );
            }
            match self.scan_dir(dir.path(), &mut work, listed) {
                // Gone or replaced: its parent's events tell.
                Err(err) if !vfs::raced(err) && !thread::should_stop() => {
                    self.events.pending.lock().rescan_all = true;
                }
                _ => {}
            }
        }
        drop(lost);
        // Renames first, so the names they touch then look in sync and a
        // moved tree is not copied again.
        let mut renamed: KVVec<&[u8]> = KVVec::new();
        for mv in moves.iter() {
            if let (Some(from), Some(to)) = (&mv.from, &mv.to) {
                match self.mirror_move(mv.side, from, to) {
                    Ok(Some(kind)) => {
                        // Marks below a moved directory carry the old path.
                        if (kind == Kind::Dir && push_scan(&mut work, to).is_err())
                            || renamed.push(to, GFP).is_err()
                        {
                            self.events.pending.lock().rescan_all = true;
                        }
                    }
                    // Raced with the user: the names are reconciled one by one.
                    Ok(None) => {}
                    Err(err) if vfs::raced(err) => {}
                    Err(err) => limiter.report(to, err),
                }
            }
        }
        // A heap sort: core's sort needs more stack than a kthread has to spare.
        let order = |x: &Dirty, y: &Dirty| x.path.as_slice().cmp(y.path.as_slice());
        if !plan::heap_sort_by(batch.as_mut_slice(), order, thread::should_stop) {
            return;
        }
        let recent = batch.as_slice();
        let mut handle = |path: &[u8], why: Reason, work: &mut KVVec<Dirty>| {
            match self.sync_name(path, why, work, parked, recent) {
                Ok(()) => failures.succeeded(path),
                // Raced with the user (a parent vanished or appeared, a
                // directory filled up): reconcile the parent directory, which
                // never deletes, instead of leaving the two sides apart.
                Err(err) if vfs::raced(err) => {
                    let parent = vfs::split(path).0;
                    let again = clone_bytes(parent).and_then(|p| Ok(later.push(p, GFP)?));
                    if (!why.rescan && push_scan(work, parent).is_err()) || again.is_err() {
                        self.events.pending.lock().rescan_all = true;
                    }
                }
                // Interrupted by the teardown: nothing to report.
                Err(_) if thread::should_stop() => {}
                Err(err) if Failures::passes(err) => {
                    if failures.failed(path) {
                        self.report_failure(path, err, failures, limiter);
                    }
                }
                Err(err) => limiter.report(path, err),
            }
        };
        self.drain(&mut work, &mut handle);
        plan::for_each_coalesced(
            recent,
            |x, y| x.path.as_slice().cmp(y.path.as_slice()),
            |d| d.why,
            |d, mut why| {
                // Renamed on the other side too: nothing new arrived there.
                if renamed.iter().any(|to| *to == d.path.as_slice()) {
                    why.moved_in = false;
                }
                thread::yield_now();
                if !thread::should_stop() {
                    handle(&d.path, why, &mut work);
                    self.drain(&mut work, &mut handle);
                }
            },
        );
    }

    /// Works through names found by scans, depth first.
    fn drain(
        &self,
        work: &mut KVVec<Dirty>,
        handle: &mut impl FnMut(&[u8], Reason, &mut KVVec<Dirty>),
    ) {
        while let Some(item) = vec::pop(work) {
            thread::yield_now();
            if thread::should_stop() {
                return;
            }
            handle(&item.path, item.why, work);
        }
    }

    fn stat(&self, side: Side, rel: &[u8]) -> Result<Option<(Held, Entry)>> {
        let Some(held) = vfs::lookup(self.root(side), rel)? else {
            return Ok(None);
        };
        let mut entry = held.stat()?;
        if entry.kind == Kind::Symlink {
            // Symlinks are equal when their targets are, whatever the times
            // (the sync cannot set them): see `settle_links`.
            entry.mtime = Time::default();
        } else {
            let (granularity, range) = self.times;
            entry.mtime = entry.mtime.clamped(range).coarsened(granularity);
            if !self.modes_compared() {
                // Not kept on one side: not compared, and what a copy from
                // that side gets where modes are kept.
                entry.mode = Holds::default_mode(entry.kind);
            }
            if !self.root(side.other()).inode().keeps_acls() && held.has_acl()? {
                // What a side without ACLs can hold of an entry with one:
                // its owner's bits alone (`vfs::mkdir`, `vfs::copy_file`).
                entry.mode &= !0o077;
            }
        }
        Ok(Some((held, entry)))
    }

    /// `y` as the planner should see it beside `x`: two symlinks whose
    /// targets have one length look alike by size and time, so their
    /// targets are compared byte for byte, and `y` made to differ if they do.
    fn as_compared_with(x: &(Held, Entry), y: &(Held, Entry)) -> Result<Entry> {
        let mut seen = y.1;
        if x.1.kind == Kind::Symlink
            && y.1.kind == Kind::Symlink
            && x.1.size == y.1.size
            && vfs::read_link(&x.0)? != vfs::read_link(&y.0)?
        {
            seen.size ^= 1;
        }
        Ok(seen)
    }

    /// Brings one name to the same state on both sides.
    ///
    /// `recent` are the changes of the batch at work, sorted by path.
    fn sync_name(
        &self,
        rel: &[u8],
        why: Reason,
        work: &mut KVVec<Dirty>,
        parked: &mut KVVec<Dirty>,
        recent: &[Dirty],
    ) -> Result {
        let name = vfs::split(rel).1;
        if let Some(call) = plan::temp_call(name) {
            return self.temp_of_another_call(call, rel);
        }
        for side in [Side::A, Side::B] {
            if !self.holds(side).takes_name(name) {
                return self.tell_once(rel, "refuses the name", side);
            }
        }
        if let Some(side) = why.created_on() {
            if self.copy_new(side, rel)? {
                return Ok(());
            }
        }
        let (a, b) = match (self.stat(Side::A, rel), self.stat(Side::B, rel)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) if e == vfs::case_collision() => {
                return self.step_aside(Side::B, rel, work)
            }
            (_, Err(e)) if e == vfs::case_collision() => {
                return self.step_aside(Side::A, rel, work)
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        // A file still open for writing is reported again on its close:
        // copying it now would copy a half-written file, and copying over it
        // would leave what its writer writes next in an unlinked file. So
        // the name waits, with its reasons, for that close. A close is
        // reported before its writer's count drops: the side that closed
        // may still look busy.
        let busy =
            |side: Side, now: &Option<(Held, Entry)>| written_to(now) && !why.closed_on(side);
        let (busy_a, busy_b) = (busy(Side::A, &a), busy(Side::B, &b));
        if busy_a || busy_b {
            // A writer that keeps the other side open (a log, a database)
            // may do so for days: said once, then mirrored on its close.
            for (side, busy) in [(Side::A, busy_a), (Side::B, busy_b)] {
                if busy && !why.changed_on(side) {
                    self.tell_once(
                        rel,
                        "has it open for writing: mirrored once it is closed",
                        side,
                    )?;
                }
            }
            return park(parked, rel, why);
        }
        let (ea, eb) = (a.as_ref().map(|s| s.1), b.as_ref().map(|s| s.1));
        let entry = |side| if side == Side::A { ea } else { eb };
        // What was looked up is opened as is: no second lookup to copy it.
        let held = |side| if side == Side::A { &a } else { &b }.as_ref().map(|s| &s.0);
        let (agreed, ids) = match self.base.lock().get(rel)? {
            Some((entry, ids)) => (Some(entry), ids),
            None => (None, Ids::default()),
        };
        // The inodes and change cookies of the versions looked at: what the
        // base records once both sides agree, not what the names hold by
        // then (a rewrite during a copy stays a change).
        let mut seen = Ids::default();
        for (i, (side, now)) in [(Side::A, &a), (Side::B, &b)].into_iter().enumerate() {
            if let Some((held, entry)) = now {
                seen.inos[i] = held.ino();
                if entry.kind == Kind::File && self.holds(side).content_cookie {
                    seen.cookies[i] = held.change_cookie()?;
                }
            }
        }
        // Another inode under the name than the one agreed on (renamed over,
        // maybe while no call ran), or the same one rewritten in place with
        // the same size within one timestamp tick (its change cookie moved,
        // nothing else did): a change however alike it looks. The same
        // inode with the cookie agreed on: its events (a close without a
        // write, a reader that opened it read-write) brought nothing new.
        let events = why;
        let mut why = why;
        for (i, (side, now)) in [(Side::A, &a), (Side::B, &b)].into_iter().enumerate() {
            let Some((held, entry)) = now else {
                continue;
            };
            let holds = self.holds(side);
            let other_inode = holds.stable_inodes && ids.inos[i] != 0 && held.ino() != ids.inos[i];
            let cookie_known = !other_inode
                && entry.kind == Kind::File
                && ids.cookies[i] != 0
                && seen.cookies[i] != 0
                && agreed.is_some_and(|agreed| entry.unchanged_since(&agreed));
            if other_inode || (cookie_known && seen.cookies[i] != ids.cookies[i]) {
                why = why.merge(Reason::moved_in_on(side));
            } else if cookie_known
                && holds.stable_inodes
                && ids.inos[i] != 0
                && events.changed_on(side)
            {
                why = why.without_news_on(side);
            }
        }
        let [base_now, a_now, b_now] = self.with_link_classes(rel, agreed, &a, &b)?;
        let cookie = |side| seen.cookies[index(side)];
        let source = |side| held(side).map(|held| (held, cookie(side)));
        // What a copy onto `side` may replace: the entry looked at, still
        // as it was then.
        let replacing = |side: Side| match (held(side), entry(side)) {
            (Some(held), Some(entry)) => Some(Replacing {
                held,
                entry,
                cookie: cookie(side),
                closed: events.closed_on(side),
            }),
            _ => None,
        };
        let done = match plan::decide(base_now, a_now, b_now, why) {
            Action::Nothing => match (&a, &b) {
                (Some((ha, x)), Some((hb, y))) if x.kind == y.kind => {
                    // Alike by what the planner sees; an ACL or extended
                    // attribute may have changed alone.
                    if let Some(from) = why.only_changed().filter(|_| x.kind != Kind::Symlink) {
                        let (src, dst) = if from == Side::A { (ha, hb) } else { (hb, ha) };
                        vfs::mirror_acls_and_xattrs(src, dst, x.kind == Kind::Dir)?;
                    }
                    // Recorded again if anything of the record is stale (an
                    // inode renamed in that looks the same).
                    if agreed != Some(*x) || ids != seen {
                        self.agreed(rel, x, seen)
                    } else {
                        Ok(())
                    }
                }
                (None, None) if agreed.is_some() => self.forgotten(rel),
                _ => Ok(()),
            },
            Action::Skip => {
                let side = if matches!(ea, Some(e) if e.kind == Kind::Special) {
                    Side::A
                } else {
                    Side::B
                };
                self.tell_once(rel, "holds a FIFO, socket or device node there", side)
            }
            Action::Copy { from } => {
                let src = entry(from).ok_or(ENOENT)?;
                if src.kind == Kind::Symlink && !self.holds(from.other()).symlinks {
                    return self.tell_once(rel, "holds no symlinks", from.other());
                }
                self.copy(from, rel, &src, source(from), replacing(from.other()))
                    .and_then(|copied| self.agreed_on(rel, &copied))
            }
            Action::MakeDir { on } => {
                let src = entry(on.other()).ok_or(ENOENT)?;
                if entry(on).is_some() {
                    self.remove_tree(on, rel, recent, source(on))?;
                }
                vfs::mkdir(
                    self.root(on),
                    rel,
                    self.holds(on).modes.then_some(src.mode),
                    held(on.other()).ok_or(ENOENT)?,
                )?;
                let mut made = seen;
                made.inos[index(on)] = vfs::lookup(self.root(on), rel)?.map_or(0, |h| h.ino());
                self.agreed(rel, &src, made)?;
                push_scan(work, rel)
            }
            Action::ScanDir { mode_from } => {
                if let Some(from) = mode_from {
                    self.copy_mode(from, &a, &b)?;
                }
                let kept = entry(mode_from.unwrap_or(Side::A)).ok_or(ENOENT)?;
                self.agreed(rel, &kept, seen)?;
                self.scan_dir(rel, work, deep_scan())
            }
            Action::Remove { on } => self
                .remove_tree(on, rel, recent, source(on))
                .and_then(|()| self.forgotten(rel)),
            Action::CopyMode { from } => {
                let src = entry(from).ok_or(ENOENT)?;
                self.copy_mode(from, &a, &b).and_then(|()| {
                    self.agreed(rel, &src, self.after_chmod(seen, from.other(), held)?)
                })
            }
            Action::Conflict { winner } => {
                let (won, lost) = (
                    entry(winner).ok_or(ENOENT)?,
                    entry(winner.other()).ok_or(ENOENT)?,
                );
                // Two files with the same bytes are one version.
                if won.kind == Kind::File
                    && lost.kind == Kind::File
                    && won.size == lost.size
                    && self.same_bytes(&a, &b)?
                {
                    self.copy(winner, rel, &won, source(winner), replacing(winner.other()))
                        .and_then(|copied| self.agreed_on(rel, &copied))
                } else {
                    let seen = held(winner.other()).ok_or(ENOENT)?;
                    self.keep_both(winner, rel, &won, (&lost, seen), work)
                }
            }
            Action::CopyUnlessSame { from } => {
                let src = entry(from).ok_or(ENOENT)?;
                if !self.same_bytes(&a, &b)? {
                    self.copy(from, rel, &src, source(from), replacing(from.other()))
                        .and_then(|copied| self.agreed_on(rel, &copied))
                } else {
                    self.copy_mode(from, &a, &b).and_then(|()| {
                        self.agreed(rel, &src, self.after_chmod(seen, from.other(), held)?)
                    })
                }
            }
            Action::ConflictUnlessSame => {
                let (x, y) = (ea.ok_or(ENOENT)?, eb.ok_or(ENOENT)?);
                if !self.same_bytes(&a, &b)? {
                    self.keep_both(Side::A, rel, &x, (&y, held(Side::B).ok_or(ENOENT)?), work)
                } else {
                    self.copy_mode(Side::A, &a, &b)
                        .and_then(|()| self.agreed(rel, &x, self.after_chmod(seen, Side::B, held)?))
                }
            }
        };
        match done {
            // A destination changed under us: look again with both changes
            // known, which makes it a conflict, not a loss.
            Err(e) if e == EAGAIN => self.requeue(rel, why),
            other => other,
        }
    }

    /// `seen`, with the change cookie of `side`'s entry read again after a
    /// chmod of it moved it.
    fn after_chmod<'h>(
        &self,
        mut seen: Ids,
        side: Side,
        held: impl Fn(Side) -> Option<&'h Held>,
    ) -> Result<Ids> {
        let i = index(side);
        if seen.cookies[i] != 0 {
            if let Some(held) = held(side) {
                seen.cookies[i] = held.change_cookie()?;
            }
        }
        Ok(seen)
    }

    /// Gives the entry on the other side of `from` the permission bits and
    /// ACLs of `from`'s, as far as its owner may carry them; the very inode
    /// that was looked at, not whatever the name holds by now.
    fn copy_mode(
        &self,
        from: Side,
        a: &Option<(Held, Entry)>,
        b: &Option<(Held, Entry)>,
    ) -> Result {
        let (src, dst) = match from {
            Side::A => (a, b),
            Side::B => (b, a),
        };
        let ((like, src), (held, dst)) = (src.as_ref().ok_or(ENOENT)?, dst.as_ref().ok_or(ENOENT)?);
        vfs::chmod(held, src.mode_for_copy_owned_by(dst.uid, dst.gid), like)
    }

    /// True when both sides' regular files hold the same bytes.
    fn same_bytes(&self, a: &Option<(Held, Entry)>, b: &Option<(Held, Entry)>) -> Result<bool> {
        let (a, b) = (a.as_ref().ok_or(ENOENT)?, b.as_ref().ok_or(ENOENT)?);
        vfs::same_content(&a.0, &b.0, thread::should_stop)
    }

    /// Copies a file just created and written on `from` to the other side
    /// without looking there first. `Ok(false)` when the other side has the
    /// name after all, or `from` no regular file: then the name takes the
    /// full look.
    fn copy_new(&self, from: Side, rel: &[u8]) -> Result<bool> {
        let Some((held, src)) = self.stat(from, rel)? else {
            return Ok(false);
        };
        if src.kind != Kind::File {
            return Ok(false);
        }
        let cookie = if self.holds(from).content_cookie {
            held.change_cookie()?
        } else {
            0
        };
        match self.copy(from, rel, &src, Some((&held, cookie)), None) {
            Ok(copied) => self.agreed_on(rel, &copied).map(|()| true),
            Err(e) if e == EAGAIN => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Mirrors the rename `from` -> `to` seen on `side` as a rename on the
    /// other side, when that side still holds what was renamed and nothing
    /// under the new name. Returns the kind of what it renamed; if it did
    /// not, the two names are reconciled one by one as a delete and a create.
    fn mirror_move(&self, side: Side, from: &[u8], to: &[u8]) -> Result<Option<Kind>> {
        let other = side.other();
        let Some(moved) = self.stat(side, to)? else {
            return Ok(None);
        };
        let Some(there) = self.stat(other, from)? else {
            return Ok(None);
        };
        let there = Self::as_compared_with(&moved, &there)?;
        if self.stat(other, to)?.is_some() || !moved.1.in_sync_with(&there) {
            return Ok(None);
        }
        match vfs::rename(self.root(other), from, to) {
            // Refused for this entry (overlayfs moves no directory of its
            // lower layer): a delete plus a create, name by name.
            Err(e) if e == EXDEV => return Ok(None),
            other => other?,
        }
        self.base.lock().rename(from, to)?;
        Ok(Some(moved.1.kind))
    }

    /// Copies the file or symlink `rel` from `from` to the other side under a
    /// temporary name, then renames it over the target, which must still be
    /// `dst` as it was looked at (or nothing, without one). `source` is
    /// `rel` on `from` with its change cookie, when the caller looked it up
    /// already. Returns what the copy holds: what both sides now agree on.
    fn copy(
        &self,
        from: Side,
        rel: &[u8],
        src: &Entry,
        source: Option<(&Held, u32)>,
        dst: Option<Replacing<'_>>,
    ) -> Result<Placed> {
        let to = from.other();
        let (dir, name) = vfs::split(rel);
        let seq = self.temp_seq.fetch_add(1, Ordering::Relaxed);
        let temp = plan::temp_name(self.call_id, seq);
        let temp_rel = vfs::join(dir, &temp)?;
        let looked_up;
        let (source, cookie) = match source {
            Some(seen) => seen,
            None => {
                // Opened only as the kind it was decided on: a FIFO renamed
                // over the name meanwhile is no file to read.
                let (held, now) = self.stat(from, rel)?.ok_or(ENOENT)?;
                if now.kind != src.kind {
                    return Err(EAGAIN);
                }
                let cookie = if src.kind == Kind::File && self.holds(from).content_cookie {
                    held.change_cookie()?
                } else {
                    0
                };
                looked_up = held;
                (&looked_up, cookie)
            }
        };
        let mut target = KVec::new();
        let written = match src.kind {
            Kind::File => {
                let (like, carry) = self.as_copied(from, rel, src)?;
                vfs::copy_file(
                    source,
                    self.root(to),
                    &temp_rel,
                    &like,
                    carry,
                    &self.copy_ways[index(to)],
                    self,
                )
                .map(Some)
            }
            Kind::Symlink => {
                target = vfs::read_link(source)?;
                vfs::symlink(self.root(to), &temp_rel, &target).map(|()| None)
            }
            Kind::Dir | Kind::Special => Err(EISDIR),
        };
        // The copy is closed once in place (when `copied` goes).
        let placed = written.and_then(|copied| {
            self.place(to, dir, &temp, name, rel, dst)?;
            let mut ids = Ids::default();
            ids.inos[index(from)] = source.ino();
            ids.cookies[index(from)] = cookie;
            let (ino, cookie) = match &copied {
                Some(copied) => copied.ids()?,
                None => (vfs::lookup(self.root(to), rel)?.map_or(0, |h| h.ino()), 0),
            };
            ids.inos[index(to)] = ino;
            if self.holds(to).content_cookie {
                ids.cookies[index(to)] = cookie;
            }
            // What the other side holds now: a source that shrank while it
            // was read is copied shorter, and is not what was agreed on.
            let entry = Entry {
                size: copied.as_ref().map_or(src.size, |c| c.len),
                ..*src
            };
            Ok(Placed { entry, target, ids })
        });
        if placed.is_err() {
            // Never leave a temporary name behind.
            let _ = vfs::unlink(self.root(to), &temp_rel);
        }
        placed
    }

    /// What a copy of `src` (`rel` on `from`) gets on the other side besides
    /// content and mtime. From a side without modes and owners, a file the
    /// copy replaces keeps its own (a private file stays private); a new
    /// one gets [`Holds::default_mode`] and the caller's owner.
    fn as_copied(&self, from: Side, rel: &[u8], src: &Entry) -> Result<(Entry, vfs::Carry)> {
        let to = from.other();
        let carry = vfs::Carry {
            modes: self.holds(to).modes,
            owner: self.holds(from).modes && self.holds(to).modes,
        };
        if self.holds(from).modes || !self.holds(to).modes {
            return Ok((*src, carry));
        }
        let Some(there) = vfs::lookup(self.root(to), rel)? else {
            return Ok((*src, carry));
        };
        let there = there.stat()?;
        // The content comes from a side anyone may have written (a FAT
        // stick): the file it replaces keeps its bits, never set-id ones.
        let like = Entry {
            mode: there.mode & !plan::SET_ID_BITS,
            uid: there.uid,
            gid: there.gid,
            ..*src
        };
        Ok((
            like,
            vfs::Carry {
                modes: true,
                owner: true,
            },
        ))
    }

    /// `rel` is a temporary name of the call `call`: one that runs (on a
    /// tree that overlaps this one) owns it; one that ended left it behind
    /// in a crash, half written maybe, and it goes (its source is mirrored
    /// anew).
    fn temp_of_another_call(&self, call: u64, rel: &[u8]) -> Result {
        if call == self.call_id || registry::call_is_live(call) {
            return Ok(());
        }
        for side in [Side::A, Side::B] {
            if matches!(self.stat(side, rel)?, Some((_, e)) if e.kind == Kind::File) {
                vfs::unlink(self.root(side), rel)?;
                pr_info!(
                    "removed \"{}\" from dir_{:?}: a temporary copy left by a call that did not end\n",
                    kernel::str::BStr::from_bytes(rel),
                    side
                );
            }
        }
        Ok(())
    }

    /// `rel` on `side` takes the place of another name on the other side,
    /// which folds case (`foo` beside `Foo` on FAT): it moves aside under a
    /// conflict name, which both sides can hold, and is mirrored as that.
    fn step_aside(&self, side: Side, rel: &[u8], work: &mut KVVec<Dirty>) -> Result {
        let Some((held, entry)) = self.stat(side, rel)? else {
            return Ok(());
        };
        let (dir, name) = vfs::split(rel);
        let aside = self.free_conflict_name(dir, name, &entry)?;
        vfs::rename_entry(self.root(side), dir, name, &aside, &held)?;
        pr_info!(
            "\"{}\" differs only in case from a name on dir_{:?}, which cannot hold both: moved aside as \"{}\"\n",
            kernel::str::BStr::from_bytes(rel),
            side.other(),
            kernel::str::BStr::from_bytes(&aside)
        );
        push_scan(work, &vfs::join(dir, &aside)?)
    }

    /// Renames the copy `temp` over `name` on side `to`, unless the user
    /// changed what is there since it was looked at (`dst`): another
    /// inode, the same one rewritten (its change cookie moved), or one
    /// somebody opened for writing meanwhile. Then `EAGAIN`, and the user's
    /// version stays; its own event brings the name back.
    fn place(
        &self,
        to: Side,
        dir: &[u8],
        temp: &[u8],
        name: &[u8],
        rel: &[u8],
        dst: Option<Replacing<'_>>,
    ) -> Result {
        let Some(dst) = dst else {
            // Nothing was there: the rename itself checks it stays so.
            return match vfs::rename_in(self.root(to), dir, temp, name, Target::MustNotExist) {
                Err(e) if e == EEXIST => Err(EAGAIN),
                other => other,
            };
        };
        match self.stat(to, rel)? {
            Some((held, now)) if now == dst.entry && held.ino() == dst.held.ino() => {
                if dst.cookie != 0 && held.change_cookie()? != dst.cookie {
                    return Err(EAGAIN);
                }
            }
            _ => return Err(EAGAIN),
        }
        if dst.entry.kind == Kind::Dir {
            self.remove_tree(to, rel, &[], None)?;
            return match vfs::rename_in(self.root(to), dir, temp, name, Target::MustNotExist) {
                Err(e) if e == EEXIST => Err(EAGAIN),
                other => other,
            };
        }
        let target = Target::ReplaceOnly {
            seen: dst.held,
            closed: dst.closed,
        };
        vfs::rename_in(self.root(to), dir, temp, name, target)
    }

    /// Both sides changed `rel`: the loser's version moves aside under a
    /// conflict name, the winner's takes the name, and both sides end up
    /// with both versions. A directory is moved aside whole, and mirrored
    /// by the scan of its new name: nothing of either version is removed.
    /// Only the loser's entry as it was looked at (`lost`) moves aside: if
    /// the user put another under the name since, `EAGAIN` (decided again).
    fn keep_both(
        &self,
        winner: Side,
        rel: &[u8],
        won: &Entry,
        (lost, seen): (&Entry, &Held),
        work: &mut KVVec<Dirty>,
    ) -> Result {
        let loser = winner.other();
        let (dir, name) = vfs::split(rel);
        let aside = self.free_conflict_name(dir, name, lost)?;
        vfs::rename_entry(self.root(loser), dir, name, &aside, seen)?;
        // The loser's version first: once moved aside it has no event left
        // that would bring it over.
        let aside_rel = vfs::join(dir, &aside)?;
        // What was agreed on under the name now lives under the new one.
        self.base.lock().rename(rel, &aside_rel)?;
        if lost.kind == Kind::Dir {
            push_scan(work, &aside_rel)?;
        } else {
            let copied = self.copy(loser, &aside_rel, lost, None, None)?;
            self.agreed_on(&aside_rel, &copied)?;
        }
        if won.kind == Kind::Dir {
            push_scan(work, rel)
        } else {
            let copied = self.copy(winner, rel, won, None, None)?;
            self.agreed_on(rel, &copied)
        }
    }

    /// `NAME.sync-conflict-YYYYMMDD-HHMMSS`, with `-N` added when an
    /// earlier conflict in the same second took that name on either side,
    /// and the stem shortened where the name would be too long.
    fn free_conflict_name(&self, dir: &[u8], name: &[u8], lost: &Entry) -> Result<KVec<u8>> {
        let suffix = plan::conflict_suffix(lost.mtime.secs);
        let mut buf = [0u8; plan::NAME_MAX];
        for n in 0..100u8 {
            let len = plan::conflict_name(name, &suffix, n, &mut buf);
            let aside = clone_bytes(&buf[..len])?;
            let rel = vfs::join(dir, &aside)?;
            if self.stat(Side::A, &rel)?.is_none() && self.stat(Side::B, &rel)?.is_none() {
                return Ok(aside);
            }
        }
        Err(kernel::error::code::EEXIST)
    }

    /// Puts `rel` back in the queue with the reasons it had.
    fn requeue(&self, rel: &[u8], why: Reason) -> Result {
        let path = clone_bytes(rel)?;
        let mut pending = self.events.pending.lock();
        // No sleeping allocation under the spinlock: if this one fails, a
        // full rescan finds the name instead.
        if pending
            .dirty
            .push(Dirty { path, why }, memcg::nowait())
            .is_err()
        {
            pending.rescan_all = true;
        }
        pending.urgent = true;
        Ok(())
    }

    /// Watches the directory `rel` on both sides, then queues every name in
    /// it: marks first, so nothing that changes during the scan is lost.
    fn scan_dir(&self, rel: &[u8], work: &mut KVVec<Dirty>, why: Reason) -> Result {
        let mut present = [false; 2];
        for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
            let Some(held) = vfs::lookup(self.root(side), rel)? else {
                continue;
            };
            // A directory the caller cannot list (a drop box) is not ours to
            // read: neither watched nor listed.
            if held.stat()?.kind != Kind::Dir || !held.may_list() {
                continue;
            }
            self.group
                .watch(self.events.clone(), held.as_inode(), side, rel)?;
            present[i] = true;
        }
        let list = |i: usize, side| -> Result<Option<vfs::Listing>> {
            if !present[i] {
                return Ok(None);
            }
            vfs::list_dir(self.root(side), rel, &thread::should_stop).map(Some)
        };
        let (on_a, on_b) = (list(0, Side::A)?, list(1, Side::B)?);
        // A name on both sides is queued once: sorted A's names are looked
        // up for each of B's.
        let mut names_on_a: KVVec<&[u8]> = KVVec::new();
        for listed in on_a.iter().flat_map(|listing| listing.iter()) {
            names_on_a.push(listed.name, GFP)?;
        }
        if !plan::heap_sort_by(
            names_on_a.as_mut_slice(),
            |x, y| x.cmp(y),
            thread::should_stop,
        ) {
            return Err(EINTR);
        }
        for (side, listing) in [(Side::A, &on_a), (Side::B, &on_b)] {
            for listed in listing.iter().flat_map(|listing| listing.iter()) {
                thread::yield_now();
                if thread::should_stop() {
                    return Err(EINTR);
                }
                if rel.is_empty() && listed.name == record::FILE_NAME {
                    continue;
                }
                let path = vfs::join(rel, listed.name)?;
                if plan::is_temp_name_of(self.call_id, listed.name) {
                    // Ours, left by a copy whose directory moved under it.
                    let _ = vfs::unlink(self.root(side), &path);
                    continue;
                }
                if side == Side::B && names_on_a.binary_search(&listed.name).is_ok() {
                    continue;
                }
                work.push(Dirty { path, why }, GFP)?;
            }
        }
        Ok(())
    }

    /// True when an event on `side` named `path` that the thread has not
    /// acted on yet: in the batch at work (`recent`, sorted), or still
    /// pending. Such an entry is newer than the decision to remove.
    fn changed_meanwhile(&self, side: Side, path: &[u8], recent: &[Dirty]) -> bool {
        let first = recent.partition_point(|d| d.path.as_slice() < path);
        let in_batch = recent[first..]
            .iter()
            .take_while(|d| d.path.as_slice() == path)
            .any(|d| d.why.changed_on(side));
        in_batch || self.events.named_on(side, path)
    }

    /// Removes `rel` from `side`: a file, or a whole directory tree. What
    /// was changed on `side` since (a file created while the user's `rm -rf`
    /// ran on the other side) stays, with the directories that hold it: it
    /// is newer than the delete, and mirrored back.
    ///
    /// A file or symlink goes only if it is still `seen` (the entry looked
    /// at, with its change cookie), when given.
    fn remove_tree(
        &self,
        side: Side,
        rel: &[u8],
        recent: &[Dirty],
        seen: Option<(&Held, u32)>,
    ) -> Result {
        let root = self.root(side);
        let Some(held) = vfs::lookup(root, rel)? else {
            return Ok(());
        };
        if held.stat()?.kind != Kind::Dir {
            return match seen {
                Some((seen, cookie)) => {
                    if held.ino() != seen.ino() || (cookie != 0 && held.change_cookie()? != cookie)
                    {
                        return Err(EAGAIN);
                    }
                    vfs::unlink_entry(root, rel, seen)
                }
                None => vfs::unlink(root, rel),
            };
        }
        drop(held);
        // Post-order without recursion: the kernel stack is small.
        let mut stack: KVVec<(KVec<u8>, bool)> = KVVec::new();
        stack.push((clone_bytes(rel)?, false), GFP)?;
        let mut kept = false;
        while let Some((dir, emptied)) = vec::pop(&mut stack) {
            thread::yield_now();
            if thread::should_stop() {
                return Err(EINTR);
            }
            if emptied {
                match vfs::rmdir(root, &dir) {
                    Err(e) if e == vfs::not_empty() => kept = true,
                    Err(e) if e != ENOENT => return Err(e),
                    _ => {}
                }
                continue;
            }
            let entries = vfs::list_dir(root, &dir, &thread::should_stop)?;
            stack.push((clone_bytes(&dir)?, true), GFP)?;
            for listed in entries.iter() {
                let path = vfs::join(&dir, listed.name)?;
                let is_dir = listed.is_dir()
                    || (listed.type_unknown()
                        && vfs::lookup(root, &path)?
                            .map(|h| h.stat())
                            .transpose()?
                            .map(|e| e.kind)
                            == Some(Kind::Dir));
                thread::yield_now();
                if thread::should_stop() {
                    return Err(EINTR);
                }
                // Only what both sides agreed on goes: anything newer (never
                // synced, or changed since) stays, and is mirrored back.
                let agreed = self.base.lock().get(&path)?;
                let mut looked_at = None;
                let as_agreed = match agreed {
                    Some((agreed, _)) if is_dir => agreed.kind == Kind::Dir,
                    Some((agreed, ids)) => {
                        let i = index(side);
                        let (ino, cookie) = (ids.inos[i], ids.cookies[i]);
                        match self.stat(side, &path)? {
                            Some((held, now)) => {
                                let same = now.unchanged_since(&agreed)
                                    && (ino == 0 || held.ino() == ino)
                                    && (cookie == 0 || held.change_cookie()? == cookie);
                                looked_at = Some(held);
                                same
                            }
                            None => true,
                        }
                    }
                    None => false,
                };
                if !as_agreed || self.changed_meanwhile(side, &path, recent) {
                    kept = true;
                    continue;
                }
                if is_dir {
                    stack.push((path, false), GFP)?;
                } else if let Some(held) = looked_at {
                    // Only the inode that was checked: one the user put
                    // there since stays.
                    match vfs::unlink_entry(root, &path, &held) {
                        Err(e) if e == EAGAIN => kept = true,
                        Err(e) if e != ENOENT => return Err(e),
                        _ => {}
                    }
                }
            }
        }
        // What stayed is newer than what was agreed on: the directory is
        // no longer as agreed, and its parent's reconciliation (which then
        // has no base for it) mirrors what stayed back to the other side.
        if kept {
            self.forgotten(rel)?;
            return Err(vfs::not_empty());
        }
        Ok(())
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

impl vfs::CopyWaits for Engine {
    fn stop(&self) -> bool {
        thread::should_stop()
    }

    /// Waits until a copy's bytes are on its device, unless asked to stop.
    /// The flush runs on a kworker (seconds on a slow disk, which a signal
    /// must not wait for), holding the pair: an unmount waits for it.
    fn flush(&self, flush: vfs::Flush) -> Result {
        if flush.is_noop() {
            return Ok(());
        }
        let pair = self.registration.clone();
        let flushing = move || {
            let flushed = flush.run();
            drop(pair);
            flushed
        };
        thread::off_thread(flushing, thread::should_stop)?
    }
}

impl thread::Runs for Engine {
    fn run(this: Arc<Self>) {
        this.sync(&this);
        Finishing::start(this);
    }
}

/// When the thread writes the base: after work, at most once a second (an
/// idle thread with unsaved changes wakes once for it, then sleeps until
/// the next event), less and less often while saves fail (a side whose
/// device fails), said once; and a last time when the call ends.
struct Saver {
    at: Ktime,
    every_ms: i64,
}

impl Saver {
    fn new() -> Self {
        Self {
            at: Ktime::ktime_get(),
            every_ms: SAVE_EVERY_MS,
        }
    }

    /// Milliseconds until the next save is due: none left when 0 or less.
    fn due_in_ms(&self) -> i64 {
        let since = ktime_ms_delta(Ktime::ktime_get(), self.at);
        self.every_ms.saturating_sub(since)
    }

    /// Saves the base on a kworker: its flushes of both file systems may
    /// take seconds on a slow disk, which a signal must not wait for. When
    /// the thread is asked to stop, the save goes on alone.
    fn save(&mut self, engine: &Arc<Engine>, limiter: &mut Option<RateLimit>) {
        self.at = Ktime::ktime_get();
        let shared = engine.clone();
        match thread::off_thread(move || shared.save_base(), thread::should_stop) {
            Ok(Ok(())) => self.every_ms = SAVE_EVERY_MS,
            Ok(Err(err)) => {
                if self.every_ms == SAVE_EVERY_MS {
                    limiter.report(record::FILE_NAME, err);
                }
                self.every_ms = self.every_ms.saturating_mul(2).min(SAVE_RETRY_MAX_MS);
            }
            Err(_) => {}
        }
    }
}

/// The end of a call after its thread stopped: the last save of the base,
/// on a worker, so that the caller returns at once however large the base
/// is. The pair stays registered until then: a new call for it waits, an
/// unmount too.
#[pin_data]
struct Finishing {
    engine: Arc<Engine>,
    #[pin]
    work: Work<Finishing>,
}

impl_has_work! {
    impl HasWork<Self> for Finishing { self.work }
}

impl Finishing {
    fn start(engine: Arc<Engine>) {
        let own = engine.clone();
        let finishing = Arc::pin_init(
            pin_init!(Finishing {
                engine: own,
                work <- new_work!("usac_finish"),
            }),
            GFP,
        );
        match finishing {
            Ok(finishing) => {
                let _ = workqueue::system_unbound().enqueue(finishing);
            }
            // Without the memory to defer it, the caller waits for it.
            Err(_) => engine.finish(),
        }
    }
}

impl WorkItem for Finishing {
    type Pointer = Arc<Finishing>;

    fn run(this: Arc<Finishing>) {
        this.engine.finish();
    }
}

/// True for a regular file some task has open for writing.
fn written_to(side: &Option<(Held, Entry)>) -> bool {
    matches!(side, Some((held, e)) if e.kind == Kind::File && held.open_for_write())
}

/// What a copy put in place: the entry, a symlink's exact target, and the
/// inodes of the source and of the copy.
struct Placed {
    entry: Entry,
    target: KVec<u8>,
    ids: Ids,
}

/// The entry a copy is to replace, as it was looked at.
#[derive(Clone, Copy)]
struct Replacing<'a> {
    held: &'a Held,
    entry: Entry,
    /// Its change cookie then (0: not kept).
    cookie: u32,
    /// Its writer's close was just reported.
    closed: bool,
}

/// Where a side's inode and cookie sit in [`Ids`].
fn index(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

/// What the sync thread keeps between batches.
struct Names<'a> {
    /// Directories to reconcile once the queue is empty.
    later: &'a mut KVVec<KVec<u8>>,
    /// Names waiting for a writer's close, with their reasons.
    parked: &'a mut KVVec<Dirty>,
    /// Names to try again after a back-off.
    failures: &'a mut Failures,
}

/// Leaves `rel` until an event names it again (the close it waits for),
/// keeping `why`: merged then, both sides' changes are known, and a change
/// on each side is a conflict that keeps both versions.
fn park(parked: &mut KVVec<Dirty>, rel: &[u8], why: Reason) -> Result {
    if let Some(known) = parked.iter_mut().find(|d| d.path.as_slice() == rel) {
        known.why = known.why.merge(why);
        return Ok(());
    }
    push_dirty(parked, rel, why)
}

/// Moves the parked names that `batch` names again into it, where they
/// coalesce with their new events.
fn unpark(batch: &mut KVVec<Dirty>, parked: &mut KVVec<Dirty>) -> Result {
    if parked.is_empty() {
        return Ok(());
    }
    for item in core::mem::replace(parked, KVVec::new()).into_iter() {
        let named = batch.iter().any(|d| d.path == item.path);
        if named { &mut *batch } else { &mut *parked }.push(item, GFP)?;
    }
    Ok(())
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
                "cannot sync \"{}\" (error {}): retried on its next change\n",
                kernel::str::BStr::from_bytes(path),
                err.to_errno()
            );
        }
    }
}
