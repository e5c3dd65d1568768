// SPDX-License-Identifier: GPL-2.0

//! An fsnotify group whose inode marks report changes in watched
//! directories to an [`EventSink`].
//!
//! Each mark owns a reference to its sink: fsnotify may still run a handler
//! after the group was released, until its grace period ends and it frees
//! the mark, and releasing the group need not wait for that.

use crate::inode::Inode;
use crate::memcg::{Charging, GFP};
use crate::plan::Side;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicPtr, Ordering};
use kernel::alloc::{KBox, KVec};
use kernel::bindings;
use kernel::error::{code::EEXIST, from_err_ptr, to_result, Result};
use kernel::ffi::{c_int, c_void};
use kernel::str::CStr;
use kernel::sync::Arc;

/// Events a watched directory reports: changes of its entries, content and
/// attribute changes of its children, and its own disappearance.
const WATCH_MASK: u32 = bindings::FS_CREATE
    | bindings::FS_DELETE
    | bindings::FS_MOVED_FROM
    | bindings::FS_MOVED_TO
    | bindings::FS_CLOSE_WRITE
    | bindings::FS_MODIFY
    | bindings::FS_ATTRIB
    | bindings::FS_DELETE_SELF
    | bindings::FS_MOVE_SELF
    | bindings::FS_UNMOUNT
    | bindings::FS_EVENT_ON_CHILD;

/// Events on the parent of a root that may be the removal of the root.
const PARENT_MASK: u32 = bindings::FS_DELETE;

/// The events that say a watched directory itself went away.
const GONE_MASK: u32 = bindings::FS_DELETE_SELF | bindings::FS_MOVE_SELF | bindings::FS_UNMOUNT;

/// One half of a rename inside the watched trees.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Moved {
    /// The name was renamed away (`FS_MOVED_FROM`).
    From(u32),
    /// The name was renamed here (`FS_MOVED_TO`).
    To(u32),
}

/// What an event says about the name beyond "it changed".
#[derive(Clone, Copy)]
pub(crate) struct Change {
    /// A writer closed it (`FS_CLOSE_WRITE`).
    pub(crate) closed: bool,
    /// Truncated while some task may write it: an `open(O_TRUNC)`, whose
    /// writer's close follows, or a `truncate(2)` by path, which holds
    /// write access only while it runs. Either has settled after a short
    /// grace, as a created file has.
    pub(crate) settling: bool,
    /// A directory appeared under the name (created or moved in): its
    /// content must be scanned and watched, whatever the other side holds.
    pub(crate) dir_appeared: bool,
    /// A regular file was created: its writer, if any, has not even opened
    /// it yet, so its content comes with the close that follows.
    pub(crate) file_created: bool,
}

/// An inode's address, to tell inodes apart: never dereferenced, so it may
/// outlive the inode.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct InodeId(usize);

impl InodeId {
    pub(crate) fn of(inode: &Inode) -> Self {
        Self::of_raw(inode.as_raw())
    }

    fn of_raw(inode: *const bindings::inode) -> Self {
        Self(inode as usize)
    }
}

/// Receives what the marks see. Called in the task that changed the file,
/// possibly under the directory's `i_rwsem`, with allocations charged to
/// the group's memory cgroup: implementations record and wake; they may
/// sleep to allocate (as inotify's handler does), never do I/O.
pub(crate) trait EventSink: Send + Sync {
    /// `name` in the watched directory `dir` changed; `moved` tells the
    /// half of a rename it was, with the cookie that pairs both halves;
    /// `how` what else the event says.
    fn changed(&self, dir: &WatchedDir<'_>, name: &[u8], moved: Option<Moved>, how: Change);
    /// The watched directory `dir` itself was deleted, moved or unmounted.
    fn dir_gone(&self, side: Side, dir: &[u8]);
    /// The entry whose inode is `entry` was removed from a root's parent: it
    /// may be the root (a directory we hold a reference on reports no
    /// `FS_DELETE_SELF`).
    fn parent_entry_removed(&self, entry: InodeId);
}

/// A watched directory, as a handler sees it.
pub(crate) struct WatchedDir<'a> {
    watch: &'a Watch,
}

impl WatchedDir<'_> {
    /// The side it is on.
    pub(crate) fn side(&self) -> Side {
        self.watch.side
    }

    /// Its path, relative to the root of its side, when it was watched.
    pub(crate) fn path(&self) -> &[u8] {
        &self.watch.dir
    }

    /// A counted reference to the directory's mark, to look at the
    /// directory later; allocates nothing, so a handler that could not
    /// record an event can still record where it happened.
    pub(crate) fn hold(&self) -> DirRef {
        let mark = core::ptr::addr_of!(self.watch.mark).cast_mut();
        // SAFETY: the mark is alive while its handler runs, so its count is
        // not zero.
        unsafe { bindings::fsnotify_get_mark(mark) };
        // INVARIANT: the count was taken above.
        DirRef(NonNull::from(self.watch))
    }
}

/// A counted reference to a watched directory's mark (and so its
/// [`Watch`]). Dropping it may free the mark, which may sleep: never drop
/// one under a spinlock.
///
/// # Invariants
///
/// We own a count on the mark that heads the `Watch`.
pub(crate) struct DirRef(NonNull<Watch>);

// SAFETY: a counted mark may be used and put from any task; the `Watch`
// fields read through it never change.
unsafe impl Send for DirRef {}

impl DirRef {
    fn watch(&self) -> &Watch {
        // SAFETY: the `Watch` lives while its mark is counted (invariant).
        unsafe { self.0.as_ref() }
    }

    /// The side the directory is on.
    pub(crate) fn side(&self) -> Side {
        self.watch().side
    }

    /// Its path, relative to the root of its side, when it was watched.
    pub(crate) fn path(&self) -> &[u8] {
        &self.watch().dir
    }

    /// True when both refer to one mark.
    pub(crate) fn same_as(&self, other: &WatchedDir<'_>) -> bool {
        core::ptr::eq(self.0.as_ptr(), other.watch)
    }
}

impl Drop for DirRef {
    fn drop(&mut self) {
        // SAFETY: the count we own (type invariant), given up once; the
        // mark heads the `Watch`.
        unsafe { bindings::fsnotify_put_mark(self.0.as_ptr().cast::<bindings::fsnotify_mark>()) };
    }
}

/// What a mark knows: embeds the C mark so a handler can find it.
///
/// # Invariants
///
/// `mark` is the first field, so a pointer to it is a pointer to the
/// `Watch`; every `Watch` is allocated by [`Group::watch`] as a `KBox` and
/// freed by [`free_mark`] when fsnotify drops the last mark reference.
#[repr(C)]
struct Watch {
    mark: bindings::fsnotify_mark,
    sink: Arc<dyn EventSink>,
    side: Side,
    dir: KVec<u8>,
    /// On the parent of a root: only reports that a root may be deleted.
    parent_of_root: bool,
}

/// An fsnotify group and its marks.
///
/// # Invariants
///
/// `group` is null once destroyed, else a group allocated with [`OPS`] on
/// which we own the creation reference.
pub(crate) struct Group {
    group: AtomicPtr<bindings::fsnotify_group>,
}

// SAFETY: fsnotify groups are used from any task.
unsafe impl Send for Group {}
// SAFETY: as above; all group operations take the group's own locks.
unsafe impl Sync for Group {}

static OPS: bindings::fsnotify_ops = bindings::fsnotify_ops {
    handle_event: None,
    handle_inode_event: Some(handle_inode_event),
    free_group_priv: None,
    freeing_mark: None,
    free_event: None,
    free_mark: Some(free_mark),
};

impl Group {
    /// A new group, without marks.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: `OPS` is a static with the two required callbacks. A user
        // group is charged to the caller's memory cgroup.
        let group = from_err_ptr(unsafe {
            bindings::fsnotify_alloc_group(&OPS, bindings::FSNOTIFY_GROUP_USER as c_int)
        })?;
        // SAFETY: the group is ours and has no marks yet; what its handler
        // allocates is charged to the caller's cgroup, put with the group.
        unsafe { bindings::usac_group_charge_current(group) };
        // INVARIANT: allocated with `OPS`; we own the creation reference.
        Ok(Self {
            group: AtomicPtr::new(group),
        })
    }

    /// Detaches every mark and drops our reference on the group. Handlers
    /// that started before may still run; fsnotify frees the marks, and with
    /// the last one the group, after its grace period. Later calls do
    /// nothing.
    pub(crate) fn release(&self) {
        let group = self.group.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !group.is_null() {
            // SAFETY: we owned the creation reference (type invariant) and
            // gave up the pointer above, so this runs once; every mark holds
            // a group reference of its own. Of `fsnotify_destroy_group` this
            // leaves out the event queue (we queue none) and the wait for
            // the grace period (marks keep their sinks alive).
            unsafe {
                bindings::fsnotify_clear_marks_by_group(
                    group,
                    bindings::fsnotify_obj_type_FSNOTIFY_OBJ_TYPE_INODE as u32,
                );
                bindings::fsnotify_put_group(group);
            }
        }
    }

    /// Watches the directory `inode`, known as `dir` on `side`, reporting to
    /// `sink`. If the group already watches it under another name (it was
    /// moved), the old mark is replaced.
    pub(crate) fn watch(
        &self,
        sink: Arc<dyn EventSink>,
        inode: &Inode,
        side: Side,
        dir: &[u8],
    ) -> Result {
        self.add(sink, inode, side, dir, false, WATCH_MASK)
    }

    /// Watches the parent `inode` of a root for the removal of entries.
    pub(crate) fn watch_parent_of_root(&self, sink: Arc<dyn EventSink>, inode: &Inode) -> Result {
        self.add(sink, inode, Side::A, &[], true, PARENT_MASK)
    }

    fn add(
        &self,
        sink: Arc<dyn EventSink>,
        inode: &Inode,
        side: Side,
        dir: &[u8],
        parent_of_root: bool,
        mask: u32,
    ) -> Result {
        let group = self.group.load(Ordering::Acquire);
        if group.is_null() {
            return Err(kernel::error::code::EINVAL);
        }
        let inode = inode.as_raw();
        // SAFETY: `inode` is pinned for the call by whoever lent it.
        let existing = unsafe {
            bindings::fsnotify_find_mark(
                inode.cast::<c_void>(),
                bindings::fsnotify_obj_type_FSNOTIFY_OBJ_TYPE_INODE as u32,
                group,
            )
        };
        if !existing.is_null() {
            let watch = existing.cast::<Watch>();
            // SAFETY: every mark of our group is the head of a live `Watch`
            // (type invariant of `Watch`), and we hold a reference on it.
            let same = unsafe {
                (*watch).parent_of_root == parent_of_root
                    && (parent_of_root || ((*watch).side == side && (*watch).dir.as_slice() == dir))
            };
            if !same {
                // SAFETY: `existing` is a mark of this group, referenced.
                unsafe { bindings::fsnotify_destroy_mark(existing, group) };
            }
            // SAFETY: drops the reference `fsnotify_find_mark` took.
            unsafe { bindings::fsnotify_put_mark(existing) };
            if same {
                return Ok(());
            }
        }
        let mut path = KVec::with_capacity(dir.len(), GFP)?;
        path.extend_from_slice(dir, GFP)?;
        let watch = KBox::new(
            Watch {
                // SAFETY: an all-zero mark is what `fsnotify_init_mark`
                // expects to start from (it clears it itself as well).
                mark: unsafe { core::mem::zeroed() },
                sink,
                side,
                dir: path,
                parent_of_root,
            },
            GFP,
        )?;
        let watch = KBox::into_raw(watch);
        // SAFETY: `watch` is a valid allocation; `addr_of_mut!` avoids
        // creating a reference to the C mark while fsnotify uses it.
        let mark = unsafe { core::ptr::addr_of_mut!((*watch).mark) };
        // SAFETY: `mark` is zeroed memory owned by us; the group is alive.
        // From here on the mark's refcount owns the allocation: the last
        // `fsnotify_put_mark` calls `free_mark`, which frees the `KBox`.
        unsafe {
            bindings::fsnotify_init_mark(mark, group);
            (*mark).mask = mask;
        }
        // SAFETY: `inode` is pinned for the call by whoever lent it.
        let ret = unsafe {
            bindings::fsnotify_add_mark(
                mark,
                inode.cast::<c_void>(),
                bindings::fsnotify_obj_type_FSNOTIFY_OBJ_TYPE_INODE as u32,
                0,
            )
        };
        // SAFETY: drops the reference of `fsnotify_init_mark`; on success the
        // inode's mark list holds its own.
        unsafe { bindings::fsnotify_put_mark(mark) };
        match to_result(ret) {
            // Raced with another watch of the same inode: it is watched.
            Err(e) if e == EEXIST => Ok(()),
            other => other,
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.release();
    }
}

/// The group's event callback.
///
/// # Safety
///
/// Called by fsnotify only, for a mark of our group that it keeps alive.
unsafe extern "C" fn handle_inode_event(
    mark: *mut bindings::fsnotify_mark,
    mask: u32,
    inode: *mut bindings::inode,
    _dir: *mut bindings::inode,
    file_name: *const bindings::qstr,
    cookie: u32,
) -> c_int {
    let watch = mark.cast::<Watch>();
    // SAFETY: fsnotify holds the mark alive (SRCU) during the call, and every
    // mark of our group is the head of a `Watch` (type invariant), which owns
    // a reference to its sink.
    let (watch, sink) = unsafe { (&*watch, &*(*watch).sink) };
    if watch.parent_of_root {
        if mask & PARENT_MASK != 0 {
            sink.parent_entry_removed(InodeId::of_raw(inode));
        }
        return 0;
    }
    // A directory renamed over a watched one leaves it dead (`S_DEAD`) with
    // only an attribute change (its link count) to tell.
    // SAFETY: the inode of a mark is pinned while its mark is attached;
    // `i_flags` is read without a lock, as `IS_DEADDIR` does.
    let dead = !inode.is_null() && unsafe { (*inode).i_flags } & bindings::S_DEAD != 0;
    if mask & GONE_MASK != 0 || (file_name.is_null() && dead) {
        sink.dir_gone(watch.side, &watch.dir);
        return 0;
    }
    if file_name.is_null() {
        return 0;
    }
    // SAFETY: event names are dentry names: valid and NUL-terminated for the
    // duration of the call.
    let name = unsafe { CStr::from_char_ptr((*file_name).name.cast()) };
    let moved = if mask & bindings::FS_MOVED_FROM != 0 {
        Some(Moved::From(cookie))
    } else if mask & bindings::FS_MOVED_TO != 0 {
        Some(Moved::To(cookie))
    } else {
        None
    };
    // SAFETY: fsnotify passes the child's inode, referenced for the call.
    let regular = !inode.is_null()
        && u32::from(unsafe { (*inode).i_mode }) & bindings::S_IFMT == bindings::S_IFREG;
    // `FS_MODIFY` comes from every write(2), after it dropped the inode's
    // lock, and from `notify_change` (a truncate, an mtime set alone),
    // which runs under it. A write's own close follows: it is dropped here,
    // at the cost of one check per write.
    let modified = mask & bindings::FS_MODIFY != 0;
    let (written_to, locked) = if modified && !inode.is_null() {
        // SAFETY: as above; both only read the inode's write count and
        // the state of its lock.
        unsafe {
            (
                bindings::inode_is_open_for_write(inode),
                bindings::usac_inode_is_locked(inode),
            )
        }
    } else {
        (false, false)
    };
    if modified && written_to && !locked {
        return 0;
    }
    let how = Change {
        closed: mask & bindings::FS_CLOSE_WRITE != 0,
        settling: modified && written_to,
        file_created: mask & bindings::FS_CREATE != 0 && regular,
        dir_appeared: mask & bindings::FS_ISDIR != 0
            && mask & (bindings::FS_CREATE | bindings::FS_MOVED_TO) != 0,
    };
    // SAFETY: the group outlives its marks, and its cgroup the group.
    let _charged = unsafe { Charging::to(bindings::usac_group_memcg((*mark).group)) };
    sink.changed(&WatchedDir { watch }, name.as_bytes(), moved, how);
    0
}

/// Frees a `Watch` when its mark's last reference goes.
///
/// # Safety
///
/// Called by fsnotify only, once per mark of our group.
unsafe extern "C" fn free_mark(mark: *mut bindings::fsnotify_mark) {
    // SAFETY: called once, on the last reference; the mark heads a `Watch`
    // that `Group::watch` allocated as a `KBox`.
    drop(unsafe { KBox::from_raw(mark.cast::<Watch>()) });
}
