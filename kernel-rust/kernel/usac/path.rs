// SPDX-License-Identifier: GPL-2.0

//! A held reference to a directory (`struct path`).

use crate::inode::Inode;
use kernel::bindings;
use kernel::error::{from_err_ptr, to_result};
use kernel::prelude::*;
use kernel::str::CStr;

/// Which permissions a caller needs on a directory.
#[derive(Clone, Copy)]
pub(crate) enum Access {
    /// List, create and delete entries.
    ReadWriteSearch,
}

impl Access {
    fn mask(self) -> i32 {
        match self {
            Access::ReadWriteSearch => {
                (bindings::MAY_READ | bindings::MAY_WRITE | bindings::MAY_EXEC) as i32
            }
        }
    }
}

/// A directory, pinned with a reference on its mount and dentry.
///
/// # Invariants
///
/// `self.0` holds a reference on `mnt` and `dentry`, and `dentry` has a
/// positive directory inode. `self.1` is the mount the lookup found, for
/// identity only (it holds no reference): `self.0.mnt` itself, or the
/// mount that [`DirPath::on_private_mount`] cloned.
pub(crate) struct DirPath(bindings::path, *const bindings::vfsmount);

// SAFETY: a referenced path may be used and released from any task.
unsafe impl Send for DirPath {}
// SAFETY: shared use only reads the pointers; VFS calls do their own locking.
unsafe impl Sync for DirPath {}

impl DirPath {
    /// Looks `name` up relative to the caller's working directory and root,
    /// following symlinks, and requires a directory.
    pub(crate) fn lookup(name: &CStr) -> Result<Self> {
        let mut path = bindings::path {
            mnt: core::ptr::null_mut(),
            dentry: core::ptr::null_mut(),
        };
        let flags = bindings::LOOKUP_FOLLOW | bindings::LOOKUP_DIRECTORY;
        // SAFETY: `name` is NUL-terminated and `path` is valid for writes;
        // `kern_path` fills it with referenced pointers only on success.
        to_result(unsafe { bindings::kern_path(name.as_char_ptr(), flags, &mut path) })?;
        // INVARIANT: the lookup succeeded with LOOKUP_DIRECTORY, so `path`
        // holds references to a directory.
        Ok(Self(path, path.mnt))
    }

    /// The same directory on a private clone of its mount, rooted at it (as
    /// BSD process accounting keeps its file): the call's references keep
    /// no mount of the user's busy, so `umount(2)` succeeds whenever nothing
    /// else uses the mount, and then ends the call. Walks from it stay on
    /// its file system: a mount below the directory is not crossed.
    pub(crate) fn on_private_mount(self) -> Result<Self> {
        // SAFETY: `self.0` is a referenced path (type invariant).
        let clone = from_err_ptr(unsafe { bindings::mnt_clone_internal(&self.0) })?;
        let (found, dentry) = (self.1, self.0.dentry);
        let user_mount = self.0.mnt;
        // Our dentry reference moves to the clone's path; the one on the
        // user's mount is dropped below.
        core::mem::forget(self);
        // SAFETY: the reference on the user's mount that `self` held.
        unsafe { bindings::mntput(user_mount) };
        // INVARIANT: `mnt_clone_internal` returned a referenced mount, and
        // the dentry reference came from `self`.
        Ok(Self(bindings::path { mnt: clone, dentry }, found))
    }

    /// The raw path, for VFS calls relative to this directory.
    pub(crate) fn raw(&self) -> &bindings::path {
        &self.0
    }

    /// The mount the directory was found on (not its private clone).
    pub(crate) fn mount(&self) -> *const bindings::vfsmount {
        self.1
    }

    /// The directory's inode: what identifies it across mounts.
    pub(crate) fn inode(&self) -> &Inode {
        // SAFETY: the dentry is referenced and positive (type invariant), so
        // its inode is pinned for as long as `self` lives.
        unsafe { Inode::from_raw((*self.0.dentry).d_inode) }
    }

    /// Device and inode number: what names this directory in a base file.
    pub(crate) fn identity(&self) -> [u64; 2] {
        self.inode().identity()
    }

    /// True when nothing can be written below it now (its file system
    /// remounted read-only, say).
    pub(crate) fn is_read_only(&self) -> bool {
        // SAFETY: the path is referenced (type invariant).
        unsafe { bindings::usac_read_only(&self.0) }
    }

    /// Writes out and waits on all of its file system, as `syncfs(2)`;
    /// `EBUSY` while an unmount or a remount holds the file system.
    pub(crate) fn sync_file_system(&self) -> Result {
        // SAFETY: the dentry is referenced (type invariant), and pins its
        // superblock.
        to_result(unsafe { bindings::usac_sync_fs((*self.0.dentry).d_sb) })
    }

    /// How many inodes its file system has in use, if it counts them (FAT
    /// and btrfs say none of none).
    pub(crate) fn inodes_in_use(&self) -> Option<u64> {
        // SAFETY: plain data, which `vfs_statfs` fills in.
        let mut counts: bindings::kstatfs = unsafe { core::mem::zeroed() };
        // SAFETY: the path is referenced (type invariant).
        let ret = unsafe { bindings::vfs_statfs(&self.0, &mut counts) };
        (ret == 0 && counts.f_files > 0).then(|| counts.f_files.saturating_sub(counts.f_ffree))
    }

    /// True when both lie on one file system.
    pub(crate) fn same_file_system(&self, other: &DirPath) -> bool {
        // SAFETY: both dentries are referenced (type invariant).
        unsafe { (*self.0.dentry).d_sb == (*other.0.dentry).d_sb }
    }

    /// True once the directory was removed (`rmdir` marks it dead).
    pub(crate) fn is_deleted(&self) -> bool {
        self.inode().is_dead()
    }

    /// Runs `f` with the inode of the parent directory, unless the directory
    /// is the root of its mount (which cannot be removed).
    pub(crate) fn with_parent<R>(&self, f: impl FnOnce(&Inode) -> R) -> Option<R> {
        // SAFETY: our dentry is referenced; `dget_parent` returns its parent
        // with a reference of its own.
        let parent = unsafe { bindings::dget_parent(self.0.dentry) };
        let result = if parent == self.0.dentry {
            None
        } else {
            // SAFETY: the parent is referenced and a positive directory, so
            // its inode is pinned until the `dput` below.
            Some(f(unsafe { Inode::from_raw((*parent).d_inode) }))
        };
        // SAFETY: drops the reference `dget_parent` took.
        unsafe { bindings::dput(parent) };
        result
    }

    /// Checks that the caller may use the directory as `access` says.
    pub(crate) fn check_access(&self, access: Access) -> Result {
        // SAFETY: `self.0` is a valid, referenced path by the type invariant.
        to_result(unsafe { bindings::path_permission(&self.0, access.mask()) })
    }

    /// True when both are the same directory or one lies inside the other,
    /// through the dentry tree or through the mount tree.
    pub(crate) fn overlaps(&self, other: &DirPath) -> bool {
        let (a, b) = (&self.0, &other.0);
        // SAFETY: both dentries are referenced (type invariant), so their
        // superblock pointers are valid to read.
        let same_sb = unsafe { (*a.dentry).d_sb == (*b.dentry).d_sb };
        // SAFETY: `is_subdir` and `path_is_under` only read the referenced
        // dentries and mounts, taking the locks they need themselves.
        unsafe {
            (same_sb
                && (bindings::is_subdir(a.dentry, b.dentry)
                    || bindings::is_subdir(b.dentry, a.dentry)))
                || bindings::path_is_under(a, b)
                || bindings::path_is_under(b, a)
        }
    }
}

impl Drop for DirPath {
    fn drop(&mut self) {
        // SAFETY: by the type invariant we own one reference on the path.
        unsafe { bindings::path_put(&self.0) };
    }
}
