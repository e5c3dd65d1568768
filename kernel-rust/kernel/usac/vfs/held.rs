// SPDX-License-Identifier: GPL-2.0

//! Held dentries: a name looked up under a root and kept referenced, and
//! the walks that find them.

use super::*;

/// Paths shorter than this are made NUL-terminated on the stack: a burst
/// of small files does several lookups per file, and an allocation each
/// shows.
pub(super) const SHORT_PATH: usize = 128;

/// A relative path, NUL-terminated for the C API (`.` for the root itself).
pub(super) struct CPath {
    short: [u8; SHORT_PATH],
    long: KVec<u8>,
}

impl CPath {
    pub(super) fn new(rel: &[u8]) -> Result<Self> {
        if rel.len() >= bindings::PATH_MAX as usize {
            return Err(Error::from_errno(-(bindings::ENAMETOOLONG as c_int)));
        }
        let rel: &[u8] = if rel.is_empty() { b"." } else { rel };
        let mut path = Self {
            short: [0; SHORT_PATH],
            long: KVec::new(),
        };
        if rel.len() < SHORT_PATH {
            // The zeroes after it terminate it.
            path.short[..rel.len()].copy_from_slice(rel);
        } else {
            path.long = KVec::with_capacity(rel.len() + 1, GFP)?;
            path.long.extend_from_slice(rel, GFP)?;
            path.long.push(0, GFP)?;
        }
        Ok(path)
    }

    pub(super) fn as_ptr(&self) -> *const c_char {
        let bytes = if self.long.is_empty() {
            self.short.as_ptr()
        } else {
            self.long.as_ptr()
        };
        bytes.cast()
    }
}

/// A referenced entry (`struct path`) under one of the roots.
///
/// # Invariants
///
/// `self.0` holds a reference on its mount and its positive dentry.
pub(crate) struct Held(bindings::path);

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: we own one reference (type invariant).
        unsafe { bindings::path_put(&self.0) };
    }
}

impl Held {
    pub(super) fn path(&self) -> &bindings::path {
        &self.0
    }

    pub(super) fn mnt(&self) -> *mut bindings::vfsmount {
        self.0.mnt
    }

    pub(super) fn dentry(&self) -> *mut bindings::dentry {
        self.0.dentry
    }

    pub(super) fn inode(&self) -> *mut bindings::inode {
        // SAFETY: the dentry is referenced and positive (type invariant).
        unsafe { (*self.0.dentry).d_inode }
    }

    /// The inode, pinned while `self` lives.
    pub(crate) fn as_inode(&self) -> &Inode {
        // SAFETY: the dentry is referenced and positive (type invariant).
        unsafe { Inode::from_raw(self.inode()) }
    }

    pub(super) fn idmap(&self) -> *mut bindings::mnt_idmap {
        // SAFETY: the mount is referenced (type invariant).
        unsafe { bindings::mnt_idmap(self.0.mnt) }
    }

    pub(super) fn at(&self) -> At<'_> {
        // INVARIANT: `self` pins its mount and dentry while the borrow lasts.
        At {
            idmap: self.idmap(),
            dentry: self.dentry(),
            _pinned: PhantomData,
        }
    }

    /// True when the entry has an access ACL beyond its permission bits.
    pub(crate) fn has_acl(&self) -> Result<bool> {
        Ok(Acl::of(self.at(), AclKind::Access)?.is_some())
    }

    /// What the entry is, for the planner.
    pub(crate) fn stat(&self) -> Result<Entry> {
        // SAFETY: `kstat` is plain data, filled by `vfs_getattr`.
        let mut st: bindings::kstat = unsafe { core::mem::zeroed() };
        // SAFETY: the path is referenced (type invariant).
        to_result(unsafe {
            bindings::vfs_getattr(
                &self.0,
                &mut st,
                bindings::STATX_BASIC_STATS,
                bindings::AT_STATX_SYNC_AS_STAT as c_uint,
            )
        })?;
        let mode = u32::from(st.mode);
        let kind = match mode & bindings::S_IFMT {
            bindings::S_IFREG => Kind::File,
            bindings::S_IFDIR => Kind::Dir,
            bindings::S_IFLNK => Kind::Symlink,
            _ => Kind::Special,
        };
        Ok(Entry {
            kind,
            // Never negative for an inode; a file system that says otherwise
            // gets an empty file, not a wrapped size.
            size: u64::try_from(st.size).unwrap_or(0),
            mtime: Time {
                secs: st.mtime.tv_sec,
                nanos: u32::try_from(st.mtime.tv_nsec).unwrap_or(0),
            },
            mode: mode & 0o7777,
            uid: st.uid.val,
            gid: st.gid.val,
        })
    }

    /// The inode number.
    pub(crate) fn ino(&self) -> u64 {
        self.as_inode().ino()
    }

    /// The low half of the inode's change cookie (`i_version`, which every
    /// change of content or attributes moves), never 0; 0 where the file
    /// system keeps none.
    pub(crate) fn change_cookie(&self) -> Result<u32> {
        change_cookie_of(&self.0)
    }

    /// True when the running credentials may list the directory (read and
    /// search it), as `opendir(3)` plus a lookup would need.
    pub(crate) fn may_list(&self) -> bool {
        let mask = (bindings::MAY_READ | bindings::MAY_EXEC) as c_int;
        // SAFETY: the path is referenced (type invariant).
        unsafe { bindings::path_permission(&self.0, mask) == 0 }
    }

    /// True while some task has the file open for writing: its close will
    /// report it again, so copying now would only copy a half-written file.
    pub(crate) fn open_for_write(&self) -> bool {
        // SAFETY: the inode is pinned by our dentry reference.
        unsafe { bindings::inode_is_open_for_write(self.inode()) }
    }
}

/// [`Held::change_cookie`] of the referenced `path`.
pub(super) fn change_cookie_of(path: &bindings::path) -> Result<u32> {
    // SAFETY: `kstat` is plain data, filled by `vfs_getattr`.
    let mut st: bindings::kstat = unsafe { core::mem::zeroed() };
    // SAFETY: the caller holds a reference on `path`.
    to_result(unsafe {
        bindings::vfs_getattr(
            path,
            &mut st,
            bindings::STATX_CHANGE_COOKIE,
            bindings::AT_STATX_SYNC_AS_STAT as c_uint,
        )
    })?;
    if st.result_mask & bindings::STATX_CHANGE_COOKIE == 0 {
        return Ok(0);
    }
    // The low half: four billion changes between two looks wrap it.
    Ok(match st.change_cookie as u32 {
        0 => u32::MAX,
        low => low,
    })
}

/// `EBUSY`: a file held under a lease that its holder has not given up
/// yet. Opening it does not wait (a lease break waits up to
/// `lease-break-time`, 45 s by default, for everyone behind it); the name
/// is tried again after a back-off.
pub(crate) fn leased() -> Error {
    Error::from_errno(-(bindings::EBUSY as c_int))
}

/// Looks `rel` up below `root` without following any symlink; `None` when
/// it does not exist, or when a parent is no directory any more (a symlink
/// included: its target is outside what we mirror). `ENOENT` (a race) when
/// the entry found was renamed before its name could be checked.
pub(crate) fn lookup(root: &DirPath, rel: &[u8]) -> Result<Option<Held>> {
    walk(root, rel, 0)
}

/// A held directory: only directories can be looked into.
///
/// # Invariants
///
/// The held dentry is a directory.
pub(super) struct HeldDir(Held);

impl core::ops::Deref for HeldDir {
    type Target = Held;

    fn deref(&self) -> &Held {
        &self.0
    }
}

/// Like [`lookup`], for a directory to act in: `None` also when `rel` is no
/// directory (any more).
pub(super) fn lookup_dir(root: &DirPath, rel: &[u8]) -> Result<Option<HeldDir>> {
    // INVARIANT: with LOOKUP_DIRECTORY the walk fails on anything else (the
    // root, returned without a walk, is a directory by `DirPath`'s).
    Ok(walk(root, rel, bindings::LOOKUP_DIRECTORY)?.map(HeldDir))
}

pub(super) fn walk(root: &DirPath, rel: &[u8], flags: u32) -> Result<Option<Held>> {
    if rel.is_empty() {
        // The root itself, the parent of most names: no walk needed.
        let root = *root.raw();
        // SAFETY: `root` is referenced by `DirPath`; this takes a reference
        // of our own.
        unsafe { bindings::path_get(&root) };
        // INVARIANT: a positive dentry (a directory) and its mount, both
        // referenced just above.
        return Ok(Some(Held(root)));
    }
    let name = CPath::new(rel)?;
    let mut path = bindings::path {
        mnt: core::ptr::null_mut(),
        dentry: core::ptr::null_mut(),
    };
    let root = root.raw();
    // A directory swapped for a symlink must not lead us out of the tree.
    let flags = flags | bindings::LOOKUP_NO_SYMLINKS;
    // SAFETY: `root` is referenced by `DirPath`; `name` is NUL-terminated;
    // `path` receives references only on success.
    let ret = unsafe {
        bindings::vfs_path_lookup(root.dentry, root.mnt, name.as_ptr(), flags, &mut path)
    };
    match to_result(ret) {
        // INVARIANT: a successful lookup without LOOKUP_CREATE returns a
        // referenced, positive dentry.
        Ok(()) => {
            let held = Held(path);
            let last = split(rel).1;
            // SAFETY: the dentry is referenced by `held`; `last` is valid
            // for its length.
            let spelling = unsafe {
                bindings::usac_dentry_spelling(held.dentry(), last.as_ptr(), last.len() as c_uint)
            };
            match spelling {
                0 => Ok(Some(held)),
                1 => Err(case_collision()),
                // Renamed by the user since the lookup: what the name holds
                // now is not known, so it is a race (the parent is looked at
                // again), never a name found missing.
                _ => Err(ENOENT),
            }
        }
        Err(e) if e == ENOENT || e == ENOTDIR || e == symlink_met() => Ok(None),
        Err(e) => Err(e),
    }
}
