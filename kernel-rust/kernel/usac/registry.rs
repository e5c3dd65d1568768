// SPDX-License-Identifier: GPL-2.0

//! The table of live calls: a directory may be in one live pair only
//! (`EBUSY`), each user may run a bounded number of calls (`EMFILE`), and
//! an unmount finds the calls it must end.

use crate::path::DirPath;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVec};
use kernel::bindings;
use kernel::error::{
    code::{EBUSY, EMFILE},
    Result,
};

/// Live calls one user may have at once.
pub(crate) const MAX_CALLS_PER_USER: usize = 128;

/// # Invariants
///
/// `caller` and `unmounting` stay valid for as long as the pair is in the
/// table: its [`Registration`], dropped by `caller` before it leaves the
/// call, frees the flag only after taking the pair out.
struct LivePair {
    a: *const bindings::inode,
    b: *const bindings::inode,
    mounts: [*const bindings::vfsmount; 2],
    uid: u32,
    id: u64,
    caller: *mut bindings::task_struct,
    unmounting: *const AtomicBool,
}

struct Table {
    pairs: KVec<LivePair>,
    next_id: u64,
}

/// The table, only touched with `usac_registry_lock` held.
struct Registry(UnsafeCell<Table>);

// SAFETY: every access goes through `Locked`, which holds the C mutex.
unsafe impl Sync for Registry {}

static REGISTRY: Registry = Registry(UnsafeCell::new(Table {
    pairs: KVec::new(),
    next_id: 0,
}));

/// Exclusive access to the table.
struct Locked;

impl Locked {
    fn lock() -> Self {
        // SAFETY: a plain mutex, taken in process context with no other lock.
        unsafe { bindings::usac_registry_lock() };
        Self
    }

    fn table(&mut self) -> &mut Table {
        // SAFETY: the mutex is held for as long as `self` lives, and the
        // `&mut self` borrow makes this the only reference.
        unsafe { &mut *REGISTRY.0.get() }
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: taken in `lock`.
        unsafe { bindings::usac_registry_unlock() };
    }
}

/// A live call's entry in the table, removed on drop.
pub(crate) struct Registration {
    id: u64,
    unmounting: KBox<AtomicBool>,
}

impl Registration {
    /// Registers the pair `a`, `b` of user `uid`, called by the current
    /// task, which keeps the registration until it leaves the call.
    pub(crate) fn new(a: &DirPath, b: &DirPath, uid: u32) -> Result<Self> {
        let mounts = [a.mount(), b.mount()];
        let (a, b) = (a.inode(), b.inode());
        let unmounting = KBox::new(AtomicBool::new(false), GFP_KERNEL)?;
        let mut locked = Locked::lock();
        let table = locked.table();
        let mut calls_of_user = 0;
        for pair in table.pairs.iter() {
            if pair.a == a || pair.b == a || pair.a == b || pair.b == b {
                return Err(EBUSY);
            }
            if pair.uid == uid {
                calls_of_user += 1;
            }
        }
        if calls_of_user >= MAX_CALLS_PER_USER {
            return Err(EMFILE);
        }
        let id = table.next_id;
        table.next_id += 1;
        let pair = LivePair {
            a,
            b,
            mounts,
            uid,
            id,
            // SAFETY: the running task.
            caller: unsafe { bindings::get_current() },
            unmounting: &*unmounting,
        };
        // INVARIANT: the caller keeps `Self` until it leaves the call.
        table.pairs.push(pair, GFP_KERNEL)?;
        Ok(Self { id, unmounting })
    }

    /// True once an unmount of one of the mounts asked the call to end.
    pub(crate) fn unmounting(&self) -> bool {
        self.unmounting.load(Ordering::Acquire)
    }
}

/// Asks every live call with a root on `mnt` to end, waking its caller;
/// true while there is one.
pub(crate) fn end_calls_on(mnt: *const bindings::vfsmount) -> bool {
    let mut locked = Locked::lock();
    let mut found = false;
    for pair in locked
        .table()
        .pairs
        .iter()
        .filter(|p| p.mounts.contains(&mnt))
    {
        // SAFETY: a pair in the table has a live flag and caller (type
        // invariant), and it stays in the table while we hold the lock.
        unsafe {
            (*pair.unmounting).store(true, Ordering::Release);
            bindings::wake_up_process(pair.caller);
        }
        found = true;
    }
    found
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut locked = Locked::lock();
        let pairs = &mut locked.table().pairs;
        if let Some(i) = pairs.iter().position(|p| p.id == self.id) {
            // Order does not matter: move the last entry into the hole.
            let last = pairs.len() - 1;
            pairs.as_mut_slice().swap(i, last);
            // SAFETY: shrinking by one; the entry at `last` is plain data
            // (raw pointers and integers) and needs no drop.
            unsafe { pairs.set_len(last) };
        }
    }
}
