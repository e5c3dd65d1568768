// SPDX-License-Identifier: GPL-2.0

//! The table of live calls: a directory may be in one live pair only
//! (`EBUSY`), each user may run a bounded number of calls (`EMFILE`), and
//! an unmount finds the calls it must end.

use crate::memcg::GFP;
use crate::notify::InodeId;
use crate::path::DirPath;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::alloc::{KBox, KVec};
use kernel::bindings;
use kernel::error::{
    code::{EBUSY, EMFILE},
    to_result, Result,
};

/// Live calls one user may have at once.
pub(crate) const MAX_CALLS_PER_USER: usize = 128;

/// # Invariants
///
/// `unmounting` stays valid for as long as the pair is in the table: its
/// [`Registration`] frees the flag only after taking the pair out. `caller`
/// is null once the caller left the call (the pair may stay while its last
/// save ends), and valid until then.
struct LivePair {
    a: InodeId,
    b: InodeId,
    mounts: [*const bindings::vfsmount; 2],
    uid: u32,
    id: u64,
    /// The call's own number, in its temporary names.
    call: u64,
    caller: *mut bindings::task_struct,
    unmounting: *const AtomicBool,
}

impl LivePair {
    fn shares_a_directory_with(&self, a: InodeId, b: InodeId) -> bool {
        self.a == a || self.b == a || self.a == b || self.b == b
    }
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
    pub(crate) fn new(a: &DirPath, b: &DirPath, uid: u32, call: u64) -> Result<Self> {
        let mounts = [a.mount(), b.mount()];
        let (a, b) = (InodeId::of(a.inode()), InodeId::of(b.inode()));
        let unmounting = KBox::new(AtomicBool::new(false), GFP)?;
        loop {
            // Read before looking: a call that ends after the look wakes
            // the wait below.
            // SAFETY: reads a counter.
            let ended = unsafe { bindings::usac_calls_ended() };
            let mut locked = Locked::lock();
            let table = locked.table();
            let mut calls_of_user = 0;
            let mut ending = false;
            for pair in table.pairs.iter() {
                if pair.shares_a_directory_with(a, b) {
                    // A call that returned and only saves its base: the new
                    // one waits for it, and then reads what it saved.
                    if !pair.caller.is_null() {
                        return Err(EBUSY);
                    }
                    ending = true;
                }
                if pair.uid == uid {
                    calls_of_user += 1;
                }
            }
            if ending {
                drop(locked);
                // SAFETY: sleeps interruptibly in process context, no lock held.
                to_result(unsafe { bindings::usac_wait_call_ended(ended) })?;
                continue;
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
                call,
                // SAFETY: the running task.
                caller: unsafe { bindings::get_current() },
                unmounting: &*unmounting,
            };
            // INVARIANT: the caller calls `caller_left` before it leaves the
            // call; the flag lives as long as `Self`.
            table.pairs.push(pair, GFP)?;
            return Ok(Self { id, unmounting });
        }
    }

    /// The caller leaves the call: from now on the pair only waits for the
    /// last save of its base.
    pub(crate) fn caller_left(&self) {
        let mut locked = Locked::lock();
        if let Some(pair) = locked.table().pairs.iter_mut().find(|p| p.id == self.id) {
            // INVARIANT: never used again once null.
            pair.caller = core::ptr::null_mut();
        }
    }

    /// True once an unmount of one of the mounts asked the call to end.
    pub(crate) fn unmounting(&self) -> bool {
        self.unmounting.load(Ordering::Acquire)
    }
}

/// True while the call numbered `call` runs or saves its base: its
/// temporary names are its own, not left over by a crash.
pub(crate) fn call_is_live(call: u64) -> bool {
    let mut locked = Locked::lock();
    locked.table().pairs.iter().any(|pair| pair.call == call)
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
        // SAFETY: a pair in the table has a live flag, and a live caller
        // unless it is null (type invariant); it stays in the table while
        // we hold the lock.
        unsafe {
            (*pair.unmounting).store(true, Ordering::Release);
            if !pair.caller.is_null() {
                bindings::wake_up_process(pair.caller);
            }
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
        drop(locked);
        // SAFETY: wakes whoever waits for a call to let go of its pair.
        unsafe { bindings::usac_call_ended() };
    }
}
