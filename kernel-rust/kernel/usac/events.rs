// SPDX-License-Identifier: GPL-2.0

//! What the fsnotify handler records for the sync thread.
//!
//! Every mark owns a reference to the [`Events`] of its call, so a handler
//! still running after the call gave up its group finds them alive: the
//! call returns without waiting for fsnotify's grace period, and the last
//! mark fsnotify frees takes the events with it.

use crate::notify::{Change, EventSink, InodeId, Moved};
use crate::plan::{self, Reason, Side};
use crate::record;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::alloc::{flags::GFP_NOWAIT, KVec};
use kernel::bindings;
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
    pub(crate) dirty: KVec<Dirty>,
    /// Bytes of the names in `dirty` recorded by the handler.
    dirty_bytes: usize,
    /// Something in `dirty` wants the thread now, not just after the grace
    /// for created files.
    pub(crate) urgent: bool,
    pub(crate) moves: KVec<Move>,
    /// Events were lost: reconcile the whole tree.
    pub(crate) rescan_all: bool,
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
        Arc::pin_init(
            pin_init!(Self {
                pending <- kernel::new_spinlock!(
                    Pending {
                        dirty: KVec::new(),
                        dirty_bytes: 0,
                        urgent: false,
                        moves: KVec::new(),
                        rescan_all: true,
                        root_gone: false,
                    },
                    "usac_pending"
                ),
                caller: kernel::current!().into(),
                thread: TaskOnce::new(),
                roots,
                call_id,
            }),
            GFP_KERNEL,
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
    fn changed(&self, side: Side, dir: &[u8], name: &[u8], moved: Option<Moved>, how: Change) {
        if plan::is_temp_name_of(self.call_id, name)
            || (dir.is_empty() && name == record::FILE_NAME)
            || self.caused_by_sync_thread()
        {
            return;
        }
        let moved_in = matches!(moved, Some(Moved::To(_)));
        let why = Reason {
            changed_a: side == Side::A,
            changed_b: side == Side::B,
            rescan: how.dir_appeared,
            closed: how.closed,
            moved_in,
            created: how.file_created,
        };
        // Never sleep here: the changing task may hold the directory lock.
        let path = join_nowait(dir, name);
        let half = moved.and_then(|m| Some((m, join_nowait(dir, name)?)));
        {
            // The half of a rename and its name go in together: the thread
            // mirrors a rename and then takes the name as done, in one batch.
            let mut pending = self.pending.lock();
            if let Some((moved, path)) = half {
                pending.record_move(side, path, moved);
            }
            let was_idle = pending.dirty.is_empty();
            match path {
                Some(path)
                    if pending.dirty.len() < MAX_PENDING
                        && pending.dirty_bytes + path.len() <= MAX_PENDING_BYTES =>
                {
                    pending.dirty_bytes += path.len();
                    let last = pending.dirty.as_mut_slice().last_mut();
                    match last {
                        Some(last) if last.path.as_slice() == path.as_slice() => {
                            last.why = last.why.merge(why);
                        }
                        _ => {
                            if pending.dirty.push(Dirty { path, why }, GFP_NOWAIT).is_err() {
                                pending.rescan_all = true;
                            }
                        }
                    }
                }
                // Lost an event: reconcile everything rather than miss one.
                _ => pending.rescan_all = true,
            }
            // A created file waits for the close that follows, or for the
            // grace to end: one copy of the finished file, not two. The
            // thread only needs a wake-up to start the grace.
            if how.file_created && !pending.rescan_all {
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
    /// Takes the pending names, for the thread to work on.
    pub(crate) fn take_dirty(&mut self) -> KVec<Dirty> {
        self.dirty_bytes = 0;
        core::mem::take(&mut self.dirty)
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
                    let _ = self.moves.push(mv, GFP_NOWAIT);
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
                        let _ = self.moves.push(mv, GFP_NOWAIT);
                    }
                    None => {}
                }
            }
        }
    }
}

fn join_nowait(dir: &[u8], name: &[u8]) -> Option<KVec<u8>> {
    let mut out = KVec::with_capacity(dir.len() + name.len() + 1, GFP_NOWAIT).ok()?;
    if !dir.is_empty() {
        out.extend_from_slice(dir, GFP_NOWAIT).ok()?;
        out.push(b'/', GFP_NOWAIT).ok()?;
    }
    out.extend_from_slice(name, GFP_NOWAIT).ok()?;
    Some(out)
}

/// A task set once and referenced from then on, so that it can be read
/// without a lock.
///
/// # Invariants
///
/// The pointer is null, or a task on which we own a reference; once set,
/// it never changes.
struct TaskOnce(AtomicPtr<bindings::task_struct>);

impl TaskOnce {
    fn new() -> Self {
        Self(AtomicPtr::new(ptr::null_mut()))
    }

    /// Sets the task, unless one is set already.
    fn set(&self, task: &Task) {
        let task = ARef::into_raw(ARef::from(task));
        let raw = task.as_ptr().cast::<bindings::task_struct>();
        let unset = ptr::null_mut();
        // INVARIANT: the reference taken above is stored, or dropped below.
        let stored = self
            .0
            .compare_exchange(unset, raw, Ordering::AcqRel, Ordering::Acquire);
        if stored.is_err() {
            // SAFETY: `task` carries the reference taken above, not stored.
            drop(unsafe { ARef::from_raw(task) });
        }
    }

    fn get(&self) -> Option<&Task> {
        let task = NonNull::new(self.0.load(Ordering::Acquire))?;
        // SAFETY: a set task never changes and stays referenced for as long
        // as `self` lives (type invariant); `Task` wraps `task_struct`
        // transparently.
        Some(unsafe { task.cast::<Task>().as_ref() })
    }
}

impl Drop for TaskOnce {
    fn drop(&mut self) {
        if let Some(task) = NonNull::new(*self.0.get_mut()) {
            // SAFETY: the reference this owns (type invariant), dropped once.
            drop(unsafe { ARef::from_raw(task.cast::<Task>()) });
        }
    }
}
