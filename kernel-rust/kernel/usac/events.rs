// SPDX-License-Identifier: GPL-2.0

//! What the fsnotify handler records for the sync thread.
//!
//! Every mark owns a reference to the [`Events`] of its call, so a handler
//! still running after the call gave up its group finds them alive: the
//! call returns without waiting for fsnotify's grace period, and the last
//! mark fsnotify frees takes the events with it.

use crate::memcg::{self, GFP};
use crate::naming;
use crate::notify::{Change, DirRef, EventSink, InodeId, Moved, WatchedDir};
use crate::plan::{Reason, Side};
use crate::record;
use crate::thread::TaskOnce;
use core::ptr;
use kernel::alloc::{KVVec, KVec};
use kernel::prelude::*;
use kernel::sync::{Arc, SpinLock};
use kernel::task::Task;
use kernel::types::ARef;

/// Pending names kept before the engine falls back to a full rescan: bounds
/// the memory a flood of events can take.
const MAX_PENDING: usize = 1 << 16;

/// Bytes of pending names kept before the same fallback: long paths make
/// each name cost up to `PATH_MAX`, and the entry limit alone would let a
/// flood of them take hundreds of megabytes.
const MAX_PENDING_BYTES: usize = 8 << 20;

/// Directories whose lost events are remembered one by one (each is then
/// listed again); beyond them, the whole tree is.
pub(crate) const MAX_LOST_DIRS: usize = 64;

/// Renames kept for pairing before the engine lets them fall back to a
/// delete plus a copy.
const MAX_MOVES: usize = 1024;

/// A name to look at, and why.
pub(crate) struct Dirty {
    pub(crate) path: KVec<u8>,
    pub(crate) why: Reason,
}

/// A rename seen on one side: mirrored as a rename when both halves came.
/// A `To` whose `From` the thread took already is kept alone, to be paired
/// by the thread.
pub(crate) struct Move {
    pub(crate) side: Side,
    pub(crate) cookie: u32,
    pub(crate) from: Option<KVec<u8>>,
    pub(crate) to: Option<KVec<u8>>,
}

impl Move {
    /// The first half of a rename whose second half was not seen yet.
    pub(crate) fn waiting_for_to(&self) -> Option<&[u8]> {
        match (&self.from, &self.to) {
            (Some(from), None) => Some(from),
            _ => None,
        }
    }
}

/// What the handler leaves for the thread.
pub(crate) struct Pending {
    pub(crate) dirty: KVVec<Dirty>,
    /// Bytes of the names in `dirty` recorded by the handler.
    dirty_bytes: usize,
    /// Something in `dirty` wants the thread now, not just after the grace
    /// for created files.
    pub(crate) urgent: bool,
    pub(crate) moves: KVVec<Move>,
    /// Directories in which events were lost: list them again. Its
    /// capacity is allocated beforehand, so that recording one never does.
    pub(crate) lost: KVec<DirRef>,
    /// Events were lost, and where is not known: reconcile the whole tree.
    pub(crate) rescan_all: bool,
    /// The call ends: nothing may be held any more (a held mark would keep
    /// these events alive, and they it).
    closed: bool,
    /// A root went away: the call ends with `ENOENT`.
    pub(crate) root_gone: bool,
}

/// The handler's side of one call: what changed, and whom to wake.
#[pin_data]
pub(crate) struct Events {
    #[pin]
    pub(crate) pending: SpinLock<Pending>,
    /// The task in the call, woken when a root goes away.
    caller: ARef<Task>,
    /// The sync thread, woken by changes; its own changes are not news.
    thread: TaskOnce,
    /// The inodes of both roots.
    roots: [InodeId; 2],
    /// The call's random part of its temporary names.
    call_id: u64,
}

impl Events {
    /// Events of a call by the current task on the roots `roots`; the
    /// first batch is a full reconciliation.
    pub(crate) fn new(roots: [InodeId; 2], call_id: u64) -> Result<Arc<Self>> {
        let lost = KVec::with_capacity(MAX_LOST_DIRS, GFP)?;
        Arc::pin_init(
            pin_init!(Self {
                pending <- kernel::new_spinlock!(
                    Pending {
                        dirty: KVVec::new(),
                        dirty_bytes: 0,
                        urgent: false,
                        moves: KVVec::new(),
                        lost,
                        rescan_all: true,
                        closed: false,
                        root_gone: false,
                    },
                    "usac_pending"
                ),
                caller: kernel::current!().into(),
                thread: TaskOnce::new(),
                roots,
                call_id,
            }),
            GFP,
        )
    }

    /// Tells the handler which task to wake; set once, before it runs.
    pub(crate) fn set_thread(&self, task: &Task) {
        self.thread.set(task);
    }

    /// True once a root was deleted, moved or unmounted.
    pub(crate) fn root_gone(&self) -> bool {
        self.pending.lock().root_gone
    }

    /// Drops the held directories and holds no more: the call ends.
    pub(crate) fn close(&self) {
        let lost = {
            let mut pending = self.pending.lock();
            pending.closed = true;
            core::mem::take(&mut pending.lost)
        };
        // Outside the lock: letting a mark go may sleep.
        drop(lost);
    }

    /// Takes the directories that lost events, putting `room` (empty,
    /// with capacity) in their place. Without room, the next lost events
    /// rescan the whole tree, until there is room again.
    pub(crate) fn take_lost(&self, room: &mut Option<KVec<DirRef>>) -> KVec<DirRef> {
        let mut pending = self.pending.lock();
        if pending.lost.is_empty() && pending.lost.capacity() > 0 {
            return KVec::new();
        }
        match room.take() {
            Some(room) => core::mem::replace(&mut pending.lost, room),
            None => core::mem::take(&mut pending.lost),
        }
    }

    /// True when an event on `side` named `path` and waits for the thread.
    pub(crate) fn named_on(&self, side: Side, path: &[u8]) -> bool {
        let pending = self.pending.lock();
        pending
            .dirty
            .iter()
            .any(|d| d.why.changed_on(side) && d.path.as_slice() == path)
    }

    fn end_with_root_gone(&self) {
        self.pending.lock().root_gone = true;
        self.caller.wake_up();
    }

    /// True when the running task is our sync thread: the handler runs in
    /// the task that made the change, so this is exactly our own echo. A
    /// user's write racing ours runs in the user's task and is still seen.
    fn caused_by_sync_thread(&self) -> bool {
        self.thread
            .get()
            .is_some_and(|thread| ptr::eq(thread, kernel::current!()))
    }
}

impl EventSink for Events {
    fn changed(&self, dir: &WatchedDir<'_>, name: &[u8], moved: Option<Moved>, how: Change) {
        if naming::is_temp_name_of(self.call_id, name)
            || (dir.path().is_empty() && name == record::FILE_NAME)
            || self.caused_by_sync_thread()
        {
            return;
        }
        let side = dir.side();
        let moved_in = matches!(moved, Some(Moved::To(_)));
        let why = Reason {
            changed_a: side == Side::A,
            changed_b: side == Side::B,
            rescan: how.dir_appeared,
            closed_a: how.closed && side == Side::A,
            closed_b: how.closed && side == Side::B,
            moved_in,
            created: how.file_created,
            ..Reason::default()
        };
        // The changing task may sleep here, as for inotify's events, but
        // not under the spinlock below.
        let path = join_path(dir.path(), name);
        let half = moved.and_then(|m| Some((m, join_path(dir.path(), name)?)));
        {
            // The half of a rename and its name go in together: the thread
            // mirrors a rename and then takes the name as done, in one batch.
            let mut pending = self.pending.lock();
            if let Some((moved, path)) = half {
                pending.record_move(side, path, moved);
            }
            let was_idle = pending.dirty.is_empty();
            let recorded = match path {
                Some(path)
                    if pending.dirty.len() < MAX_PENDING
                        && pending.dirty_bytes + path.len() <= MAX_PENDING_BYTES =>
                {
                    pending.dirty_bytes += path.len();
                    let last = pending.dirty.as_mut_slice().last_mut();
                    match last {
                        Some(last) if last.path.as_slice() == path.as_slice() => {
                            last.why = last.why.merge(why);
                            true
                        }
                        _ => pending
                            .dirty
                            .push(Dirty { path, why }, memcg::nowait())
                            .is_ok(),
                    }
                }
                _ => false,
            };
            // Lost an event: list its directory again, or, without room to
            // say which, everything.
            if !recorded {
                pending.lose_event_in(dir);
            }
            // A created file waits for the close that follows, or for the
            // grace to end: one copy of the finished file, not two. The
            // thread only needs a wake-up to start the grace.
            if (how.file_created || how.settling) && recorded {
                if !was_idle {
                    return;
                }
            } else {
                pending.urgent = true;
            }
        }
        if let Some(thread) = self.thread.get() {
            thread.wake_up();
        }
    }

    fn dir_gone(&self, _side: Side, dir: &[u8]) {
        // A subdirectory's removal or move is reported by its parent.
        if dir.is_empty() {
            self.end_with_root_gone();
        }
    }

    fn parent_entry_removed(&self, entry: InodeId) {
        if self.roots.contains(&entry) {
            self.end_with_root_gone();
        }
    }
}

impl Pending {
    /// Records that an event in `dir` was lost.
    fn lose_event_in(&mut self, dir: &WatchedDir<'_>) {
        if self.rescan_all || self.lost.iter().any(|known| known.same_as(dir)) {
            return;
        }
        if self.closed || self.lost.len() >= self.lost.capacity() {
            self.rescan_all = true;
            return;
        }
        // Within capacity `push` neither allocates nor fails (so the held
        // mark is never let go here, under the spinlock).
        let _ = self.lost.push(dir.hold(), memcg::nowait());
    }

    /// Takes the pending names, for the thread to work on.
    pub(crate) fn take_dirty(&mut self) -> KVVec<Dirty> {
        self.dirty_bytes = 0;
        core::mem::replace(&mut self.dirty, KVVec::new())
    }

    /// Pairs the two halves of a rename by their cookie. Runs in the
    /// handler: no sleeping; a half that cannot be kept is simply reconciled
    /// as a delete or a create.
    fn record_move(&mut self, side: Side, path: KVec<u8>, moved: Moved) {
        match moved {
            Moved::From(cookie) => {
                if self.moves.len() < MAX_MOVES {
                    let mv = Move {
                        side,
                        cookie,
                        from: Some(path),
                        to: None,
                    };
                    let _ = self.moves.push(mv, memcg::nowait());
                }
            }
            Moved::To(cookie) => {
                let room = self.moves.len() < MAX_MOVES;
                let first =
                    self.moves.as_mut_slice().iter_mut().rev().find(|m| {
                        m.side == side && m.cookie == cookie && m.waiting_for_to().is_some()
                    });
                match first {
                    Some(mv) => mv.to = Some(path),
                    // The thread took the first half: it pairs this one.
                    None if room => {
                        let mv = Move {
                            side,
                            cookie,
                            from: None,
                            to: Some(path),
                        };
                        let _ = self.moves.push(mv, memcg::nowait());
                    }
                    None => {}
                }
            }
        }
    }
}

/// `dir/name`, or `None` without memory.
fn join_path(dir: &[u8], name: &[u8]) -> Option<KVec<u8>> {
    let mut out =
        KVec::with_capacity(dir.len().checked_add(name.len())?.checked_add(1)?, GFP).ok()?;
    if !dir.is_empty() {
        out.extend_from_slice(dir, GFP).ok()?;
        out.push(b'/', GFP).ok()?;
    }
    out.extend_from_slice(name, GFP).ok()?;
    Some(out)
}
