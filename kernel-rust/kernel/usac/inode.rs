// SPDX-License-Identifier: GPL-2.0

//! An inode, always reached through a count or a borrow of a pinning
//! reference (a dentry or path held by the caller).

use crate::plan::Holds;
use core::ptr::NonNull;
use kernel::bindings;
use kernel::types::{AlwaysRefCounted, Opaque};

/// A `struct inode`.
///
/// # Invariants
///
/// Instances are only reached through a borrow of something that pins the
/// inode (a referenced dentry) or through a count (`ARef<Inode>`).
#[repr(transparent)]
pub(crate) struct Inode(Opaque<bindings::inode>);

// SAFETY: inodes are shared kernel objects used from any task; every field
// read here is stable while the inode lives or read as the VFS reads it.
unsafe impl Send for Inode {}
// SAFETY: as above.
unsafe impl Sync for Inode {}

// SAFETY: `ihold` and `iput` keep the inode alive while a count is held.
unsafe impl AlwaysRefCounted for Inode {
    fn inc_ref(&self) {
        // SAFETY: `self` is pinned (type invariant), so its count is not 0.
        unsafe { bindings::ihold(self.0.get()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: the caller gives up one count it owned.
        unsafe { bindings::iput(obj.cast::<bindings::inode>().as_ptr()) };
    }
}

impl Inode {
    /// The inode behind a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to an inode pinned for at least `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::inode) -> &'a Self {
        // SAFETY: valid and pinned for `'a` by the caller's promise; `Inode`
        // wraps `struct inode` transparently.
        unsafe { &*ptr.cast::<Self>() }
    }

    /// The raw inode, for the C API.
    pub(crate) fn as_raw(&self) -> *mut bindings::inode {
        self.0.get()
    }

    /// The inode number.
    pub(crate) fn ino(&self) -> u64 {
        // SAFETY: pinned (type invariant); `i_ino` never changes.
        unsafe { (*self.0.get()).i_ino as u64 }
    }

    /// Device and inode number: what names it in a base file.
    pub(crate) fn identity(&self) -> [u64; 2] {
        // SAFETY: pinned (type invariant), and its superblock with it;
        // neither field changes while it lives.
        unsafe { [u64::from((*(*self.0.get()).i_sb).s_dev), self.ino()] }
    }

    /// What its file system can hold: permission bits, symlinks, which
    /// names, which times.
    pub(crate) fn holds(&self) -> Holds {
        // SAFETY: pinned (type invariant), and its superblock with it; these
        // fields are set before the superblock is live and never change.
        let (magic, granularity, times) = unsafe {
            let sb = (*self.0.get()).i_sb;
            (
                (*sb).s_magic as u64,
                (*sb).s_time_gran,
                ((*sb).s_time_min, (*sb).s_time_max),
            )
        };
        Holds::of(magic, granularity, times)
    }

    /// True when its file system keeps POSIX ACLs.
    pub(crate) fn keeps_acls(&self) -> bool {
        // SAFETY: the inode is valid (type invariant), and its superblock
        // outlives it.
        unsafe { bindings::usac_keeps_acls(self.0.get()) }
    }

    /// True when its file system keeps extended attributes.
    pub(crate) fn keeps_xattrs(&self) -> bool {
        // SAFETY: the inode is valid (type invariant).
        unsafe { bindings::usac_keeps_xattrs(self.0.get()) }
    }

    /// True once the directory was removed (`rmdir` marks it dead).
    pub(crate) fn is_dead(&self) -> bool {
        // SAFETY: pinned (type invariant); `i_flags` is read without a lock,
        // as `IS_DEADDIR` does.
        unsafe { (*self.0.get()).i_flags & bindings::S_DEAD != 0 }
    }
}
