// SPDX-License-Identifier: GPL-2.0

//! Changes to names under their parents' locks, the way the VFS expects:
//! create, unlink, rmdir, rename (with a check of what is replaced), and
//! symlinks.

use super::*;

/// The directory part and the last component of a relative path.
pub(crate) fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&c| c == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

/// `dir/name` (or `name` at the root).
pub(crate) fn join(dir: &[u8], name: &[u8]) -> Result<KVec<u8>> {
    let mut out = KVec::with_capacity(dir.len() + name.len() + 1, GFP)?;
    if !dir.is_empty() {
        out.extend_from_slice(dir, GFP)?;
        out.push(b'/', GFP)?;
    }
    out.extend_from_slice(name, GFP)?;
    Ok(out)
}

/// Write access to a mount for the duration of a change.
pub(super) struct MountWrite(*mut bindings::vfsmount);

impl MountWrite {
    pub(super) fn get(mnt: *mut bindings::vfsmount) -> Result<Self> {
        // SAFETY: `mnt` is referenced by the caller's path.
        to_result(unsafe { bindings::mnt_want_write(mnt) })?;
        Ok(Self(mnt))
    }
}

impl Drop for MountWrite {
    fn drop(&mut self) {
        // SAFETY: pairs with the successful `mnt_want_write` in `get`.
        unsafe { bindings::mnt_drop_write(self.0) };
    }
}

/// A directory locked as the parent of the entry being changed.
pub(super) struct LockedParent<'a> {
    dir: &'a HeldDir,
}

impl<'a> LockedParent<'a> {
    pub(super) fn lock(dir: &'a HeldDir) -> Self {
        // SAFETY: the inode is pinned by `dir`; the sync thread takes no
        // other VFS lock around it, matching the VFS's parent-then-child order.
        unsafe {
            bindings::inode_lock_nested(
                dir.inode(),
                bindings::inode_i_mutex_lock_class_I_MUTEX_PARENT as c_uint,
            )
        };
        Self { dir }
    }

    /// The (possibly negative) dentry of `name` in the locked directory.
    pub(super) fn child(&self, name: &[u8]) -> Result<Child> {
        lookup_locked(self.dir, name)
    }

    pub(super) fn dir_inode(&self) -> *mut bindings::inode {
        self.dir.inode()
    }
}

impl Drop for LockedParent<'_> {
    fn drop(&mut self) {
        // SAFETY: locked in `lock`.
        unsafe { bindings::inode_unlock(self.dir.inode()) };
    }
}

/// A dentry reference from a lookup.
pub(super) struct Child(*mut bindings::dentry);

impl Child {
    pub(super) fn is_negative(&self) -> bool {
        // SAFETY: the dentry is referenced.
        unsafe { (*self.0).d_inode.is_null() }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: we own the reference from `lookup_one_len`.
        unsafe { bindings::dput(self.0) };
    }
}

/// The held parent directory of `rel` and the last component.
pub(super) fn parent_of<'r>(root: &DirPath, rel: &'r [u8]) -> Result<(HeldDir, &'r [u8])> {
    let (dir, name) = split(rel);
    let parent = lookup_dir(root, dir)?.ok_or(ENOENT)?;
    Ok((parent, name))
}

/// Removes the non-directory `rel`.
pub(crate) fn unlink(root: &DirPath, rel: &[u8]) -> Result {
    unlink_checked(root, rel, None)
}

/// Removes the non-directory `rel` if it still is the entry `seen`;
/// `EAGAIN` if the user put another there since it was looked at (checked
/// under the directory's lock).
pub(crate) fn unlink_entry(root: &DirPath, rel: &[u8], seen: &Held) -> Result {
    unlink_checked(root, rel, Some(seen))
}

pub(super) fn unlink_checked(root: &DirPath, rel: &[u8], seen: Option<&Held>) -> Result {
    let (parent, name) = parent_of(root, rel)?;
    let _write = MountWrite::get(parent.mnt())?;
    let locked = LockedParent::lock(&parent);
    let child = locked.child(name)?;
    if child.is_negative() {
        return Err(ENOENT);
    }
    // SAFETY: a positive dentry, referenced by `child`, under its parent's
    // lock.
    if seen.is_some_and(|seen| unsafe { (*child.0).d_inode } != seen.inode()) {
        return Err(EAGAIN);
    }
    // SAFETY: parent locked, child looked up under that lock.
    to_result(unsafe {
        bindings::vfs_unlink(
            parent.idmap(),
            locked.dir_inode(),
            child.0,
            core::ptr::null_mut(),
        )
    })
}

/// Removes the empty directory `rel`.
pub(crate) fn rmdir(root: &DirPath, rel: &[u8]) -> Result {
    let (parent, name) = parent_of(root, rel)?;
    let _write = MountWrite::get(parent.mnt())?;
    let locked = LockedParent::lock(&parent);
    let child = locked.child(name)?;
    if child.is_negative() {
        return Err(ENOENT);
    }
    // SAFETY: parent locked, child looked up under that lock.
    to_result(unsafe { bindings::vfs_rmdir(parent.idmap(), locked.dir_inode(), child.0) })
}

/// Creates the directory `rel` with `mode` and the ACLs of `like` (the
/// source directory); a target that keeps no ACLs where `like` has one
/// gets its owner's bits alone. With no `mode` (a target without modes),
/// the directory is made as its file system makes them.
pub(crate) fn mkdir(root: &DirPath, rel: &[u8], mode: Option<u32>, like: &Held) -> Result {
    let (parent, name) = parent_of(root, rel)?;
    let _write = MountWrite::get(parent.mnt())?;
    let locked = LockedParent::lock(&parent);
    let child = locked.child(name)?;
    // SAFETY: parent locked, child looked up under that lock; `vfs_mkdir`
    // answers -EEXIST for a positive dentry.
    to_result(unsafe {
        bindings::vfs_mkdir(
            parent.idmap(),
            locked.dir_inode(),
            child.0,
            mode.unwrap_or(0o755) as bindings::umode_t,
        )
    })?;
    if child.is_negative() {
        // Made, but not bound to this dentry (some network file systems):
        // its ACLs and mode come with the next scan of its parent.
        return Err(EAGAIN);
    }
    // INVARIANT: the new directory's dentry is referenced by `child` and
    // positive; its parent stays locked, which the VFS's parent-then-child
    // lock order allows for the child's inode lock the calls below take.
    let made = At {
        idmap: parent.idmap(),
        dentry: child.0,
        _pinned: PhantomData,
    };
    let Some(mode) = mode else {
        return Ok(());
    };
    let mode = copy_acls_and_xattrs(like.at(), made, true, mode)?;
    // The parent's default ACL may have masked the mode it was made with.
    set_mode(made, mode)
}

/// What a rename does to an existing target.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// Replace it.
    Replace,
    /// Replace it only if it is still the entry `seen` and, unless its
    /// writer was just seen closing it (`closed`), nobody has it open for
    /// writing (what a writer writes next would land in a removed file);
    /// else `EAGAIN`. Checked under the directory's lock.
    ReplaceOnly {
        /// The entry decided on.
        seen: &'a Held,
        /// Its writer's close was reported: its count may not have
        /// dropped yet.
        closed: bool,
    },
    /// Fail with `EEXIST` if there is one: checked under the directory's
    /// lock, so nobody slips a file in between. We check it ourselves, as
    /// `renameat2` does: `vfs_rename` leaves `RENAME_NOREPLACE` to its caller
    /// (most file systems ignore the flag, 9p, NFS and FUSE refuse it).
    MustNotExist,
}

/// Renames `from` to `to`, both in the directory `dir`.
pub(crate) fn rename_in(
    root: &DirPath,
    dir: &[u8],
    from: &[u8],
    to: &[u8],
    target: Target<'_>,
) -> Result {
    rename_checked(root, dir, from, to, target, None)
}

/// Renames `from` to `to` (a new name) in the directory `dir`, if `from`
/// still names the entry `seen`; `EAGAIN` if the user put another there
/// since it was looked at (checked under the directory's lock).
pub(crate) fn rename_entry(
    root: &DirPath,
    dir: &[u8],
    from: &[u8],
    to: &[u8],
    seen: &Held,
) -> Result {
    rename_checked(root, dir, from, to, Target::MustNotExist, Some(seen))
}

pub(super) fn rename_checked(
    root: &DirPath,
    dir: &[u8],
    from: &[u8],
    to: &[u8],
    target: Target<'_>,
    seen: Option<&Held>,
) -> Result {
    let parent = lookup_dir(root, dir)?.ok_or(ENOENT)?;
    let _write = MountWrite::get(parent.mnt())?;
    let locked = LockedParent::lock(&parent);
    let old = locked.child(from)?;
    let new = locked.child(to)?;
    if old.is_negative() {
        return Err(ENOENT);
    }
    // SAFETY: a positive dentry, referenced by `old`, under its parent's lock.
    if seen.is_some_and(|seen| unsafe { (*old.0).d_inode } != seen.inode()) {
        return Err(EAGAIN);
    }
    match target {
        Target::MustNotExist if !new.is_negative() => return Err(EEXIST),
        // SAFETY: the dentry is referenced by `new`, under its parent's
        // lock; its inode, if any, is pinned by it.
        Target::ReplaceOnly { seen, closed } => unsafe {
            let inode = (*new.0).d_inode;
            if inode != seen.inode() || (!closed && bindings::inode_is_open_for_write(inode)) {
                return Err(EAGAIN);
            }
        },
        _ => {}
    }
    let mut rd = bindings::renamedata {
        old_mnt_idmap: parent.idmap(),
        old_dir: locked.dir_inode(),
        old_dentry: old.0,
        new_mnt_idmap: parent.idmap(),
        new_dir: locked.dir_inode(),
        new_dentry: new.0,
        delegated_inode: core::ptr::null_mut(),
        flags: 0,
    };
    // SAFETY: both dentries were looked up under the parent's lock, which
    // is what `lock_rename` takes for a rename within one directory.
    to_result(unsafe { bindings::vfs_rename(&mut rd) })
}

/// Looks `name` up in `dir`, which the caller has locked.
pub(super) fn lookup_locked(dir: &HeldDir, name: &[u8]) -> Result<Child> {
    if name.is_empty() || name.len() > bindings::NAME_MAX as usize || name.contains(&b'/') {
        return Err(EINVAL);
    }
    // SAFETY: the caller holds the parent's lock as `lookup_one_len`
    // requires; the parent is a directory (type invariant of `HeldDir`), so
    // its inode has a lookup operation; `name` has `len` valid bytes.
    let dentry = from_err_ptr(unsafe {
        bindings::lookup_one_len(
            name.as_ptr().cast::<c_char>(),
            dir.dentry(),
            name.len() as c_int,
        )
    })?;
    Ok(Child(dentry))
}

/// Both parents of a rename, locked in the VFS's order by `lock_rename`.
pub(super) struct RenameLock<'a> {
    to: &'a HeldDir,
    from: &'a HeldDir,
    trap: *mut bindings::dentry,
}

impl<'a> RenameLock<'a> {
    pub(super) fn lock(to: &'a HeldDir, from: &'a HeldDir) -> Result<Self> {
        // SAFETY: both dentries are referenced; `lock_rename` takes the
        // rename mutex when they differ and both parent locks.
        let trap = from_err_ptr(unsafe { bindings::lock_rename(to.dentry(), from.dentry()) })?;
        Ok(Self { to, from, trap })
    }
}

impl Drop for RenameLock<'_> {
    fn drop(&mut self) {
        // SAFETY: locked by `lock_rename` with the same arguments.
        unsafe { bindings::unlock_rename(self.to.dentry(), self.from.dentry()) };
    }
}

/// Renames `from` to `to` (any directories below `root`), never replacing
/// an existing `to` (checked under the locks, as for [`Target::MustNotExist`]).
pub(crate) fn rename(root: &DirPath, from: &[u8], to: &[u8]) -> Result {
    let (from_dir, from_name) = parent_of(root, from)?;
    let (to_dir, to_name) = parent_of(root, to)?;
    if from_dir.mnt() != to_dir.mnt() {
        return Err(EXDEV);
    }
    let _write = MountWrite::get(to_dir.mnt())?;
    let locked = RenameLock::lock(&to_dir, &from_dir)?;
    let old = lookup_locked(locked.from, from_name)?;
    let new = lookup_locked(locked.to, to_name)?;
    if old.is_negative() {
        return Err(ENOENT);
    }
    // Moving a directory below itself, or over an ancestor.
    if old.0 == locked.trap {
        return Err(EINVAL);
    }
    if new.0 == locked.trap {
        return Err(not_empty());
    }
    if !new.is_negative() {
        return Err(EEXIST);
    }
    let mut rd = bindings::renamedata {
        old_mnt_idmap: from_dir.idmap(),
        old_dir: from_dir.inode(),
        old_dentry: old.0,
        new_mnt_idmap: to_dir.idmap(),
        new_dir: to_dir.inode(),
        new_dentry: new.0,
        delegated_inode: core::ptr::null_mut(),
        flags: 0,
    };
    // SAFETY: both parents are locked by `lock_rename`, both children were
    // looked up under those locks and checked against the trap.
    to_result(unsafe { bindings::vfs_rename(&mut rd) })
}

/// Returns once no rename out of the directory `rel` is in progress: a
/// rename holds its source directory locked until it has sent both of its
/// events, so taking the lock once waits for the second half of a rename
/// whose first half was seen.
pub(crate) fn wait_for_renames_in(root: &DirPath, rel: &[u8]) -> Result {
    let dir = lookup_dir(root, rel)?.ok_or(ENOENT)?;
    // SAFETY: the inode is pinned by `dir`; the sync thread holds no other
    // VFS lock here.
    unsafe { bindings::inode_lock_shared(dir.inode()) };
    // SAFETY: locked just above.
    unsafe { bindings::inode_unlock_shared(dir.inode()) };
    Ok(())
}

/// `ENOTUNIQ`: a lookup found another name than the one asked for (on a
/// file system that folds case, `foo` finds `Foo`).
pub(crate) fn case_collision() -> Error {
    Error::from_errno(-(bindings::ENOTUNIQ as c_int))
}

/// Creates the symlink `rel` pointing to `target`.
pub(crate) fn symlink(root: &DirPath, rel: &[u8], target: &[u8]) -> Result {
    let (parent, name) = parent_of(root, rel)?;
    let target = CPath::new(target)?;
    let _write = MountWrite::get(parent.mnt())?;
    let locked = LockedParent::lock(&parent);
    let child = locked.child(name)?;
    // SAFETY: parent locked, child looked up under it; `target` is
    // NUL-terminated.
    to_result(unsafe {
        bindings::vfs_symlink(parent.idmap(), locked.dir_inode(), child.0, target.as_ptr())
    })
}

/// The target text of the symlink `held`.
pub(crate) fn read_link(held: &Held) -> Result<KVec<u8>> {
    // SAFETY: plain data; `vfs_get_link` fills it in when it needs a release.
    let mut done: bindings::delayed_call = unsafe { core::mem::zeroed() };
    // SAFETY: the dentry is referenced; the result lives until
    // `do_delayed_call`.
    let target =
        from_err_ptr(unsafe { bindings::vfs_get_link(held.dentry(), &mut done) }.cast_mut())?;
    // SAFETY: a link body is a NUL-terminated string.
    let text = unsafe { kernel::str::CStr::from_char_ptr(target) };
    let mut out = KVec::new();
    let copied = out.extend_from_slice(text.as_bytes(), GFP);
    // SAFETY: releases what `vfs_get_link` handed out, exactly once.
    unsafe { bindings::do_delayed_call(&mut done) };
    copied?;
    Ok(out)
}
