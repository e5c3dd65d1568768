// SPDX-License-Identifier: GPL-2.0

//! What a file carries besides its bytes: owner, mode, times, ACLs and
//! user extended attributes, copied as the caller may.

use super::*;

/// One of an inode's POSIX ACLs.
#[derive(Clone, Copy)]
pub(super) enum AclKind {
    /// Who may access the inode.
    Access,
    /// What entries made in a directory inherit.
    Default,
}

impl AclKind {
    pub(super) fn name(self) -> &'static CStr {
        match self {
            Self::Access => c_str!("system.posix_acl_access"),
            Self::Default => c_str!("system.posix_acl_default"),
        }
    }
}

/// A dentry and the idmap of its mount, as the ACL calls take them.
///
/// # Invariants
///
/// Both are pinned for `'a` (by the [`Held`] or [`OpenFile`] they came
/// from), and the dentry is positive.
#[derive(Clone, Copy)]
pub(super) struct At<'a> {
    pub(super) idmap: *mut bindings::mnt_idmap,
    pub(super) dentry: *mut bindings::dentry,
    pub(super) _pinned: PhantomData<&'a ()>,
}

/// A POSIX ACL read from an inode.
///
/// # Invariants
///
/// `self.0` holds one reference on a valid `posix_acl`.
pub(super) struct Acl(NonNull<bindings::posix_acl>);

impl Drop for Acl {
    fn drop(&mut self) {
        // SAFETY: we own one reference (type invariant).
        unsafe { bindings::posix_acl_release(self.0.as_ptr()) };
    }
}

pub(super) fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as c_int))
}

impl Acl {
    /// The ACL `kind` of `at`: `None` when it has none (its permission bits
    /// say all), or its file system keeps none.
    pub(super) fn of(at: At<'_>, kind: AclKind) -> Result<Option<Self>> {
        // SAFETY: `at` is pinned and positive (type invariant); the name is
        // NUL-terminated.
        let acl = unsafe { bindings::vfs_get_acl(at.idmap, at.dentry, kind.name().as_char_ptr()) };
        match from_err_ptr(acl) {
            // INVARIANT: `vfs_get_acl` hands out a reference.
            Ok(acl) => Ok(NonNull::new(acl).map(Self)),
            Err(e) if e == eopnotsupp() || e.to_errno() == -(bindings::ENODATA as c_int) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// A copy of its own: `vfs_set_acl` rewrites IDs in place for an
    /// idmapped mount, and what `of` returned is the source inode's cached
    /// ACL (overlayfs's copy-up clones for the same reason).
    pub(super) fn clone(&self) -> Result<Self> {
        // SAFETY: a valid ACL (type invariant); charged as `GFP` is.
        let copy =
            unsafe { bindings::posix_acl_clone(self.0.as_ptr(), bindings::GFP_KERNEL_ACCOUNT) };
        // INVARIANT: a new ACL with one reference, ours.
        NonNull::new(copy).map(Self).ok_or(ENOMEM)
    }

    /// Tag, permissions and ID of each entry.
    pub(super) fn entries(&self) -> impl Iterator<Item = (i16, u16, u32)> + '_ {
        // SAFETY: a valid ACL (type invariant); an ACL is replaced, never
        // changed, once an inode holds it.
        let acl = unsafe { self.0.as_ref() };
        // SAFETY: an ACL holds `a_count` entries.
        let entries = unsafe { acl.a_entries.as_slice(acl.a_count as usize) };
        entries.iter().map(|e| {
            // SAFETY: both members of the union are one `u32` wrapper.
            let id = unsafe { e.__bindgen_anon_1.e_uid.val };
            (e.e_tag, e.e_perm, id)
        })
    }
}

pub(super) fn same_acl(x: &Option<Acl>, y: &Option<Acl>) -> bool {
    match (x, y) {
        (None, None) => true,
        (Some(x), Some(y)) => x.entries().eq(y.entries()),
        _ => false,
    }
}

/// Makes the ACL `kind` of `to` what that of `from` is, none included (a
/// new file inherits its directory's default ACL, which a source without
/// one must not gain). `EOPNOTSUPP` when `from` has one and `to`'s file
/// system keeps none.
pub(super) fn copy_acl(from: At<'_>, to: At<'_>, kind: AclKind) -> Result {
    let acl = Acl::of(from, kind)?;
    if same_acl(&acl, &Acl::of(to, kind)?) {
        return Ok(());
    }
    let name = kind.name().as_char_ptr();
    match acl {
        Some(acl) => {
            let acl = acl.clone()?;
            // SAFETY: `to` is pinned and positive (type invariant), its inode
            // unlocked (`vfs_set_acl` locks it); `acl` is ours, and the file
            // system takes references of its own.
            to_result(unsafe { bindings::vfs_set_acl(to.idmap, to.dentry, name, acl.0.as_ptr()) })
        }
        // SAFETY: as above.
        None => match to_result(unsafe { bindings::vfs_remove_acl(to.idmap, to.dentry, name) }) {
            Err(e) if e == eopnotsupp() || e.to_errno() == -(bindings::ENODATA as c_int) => Ok(()),
            other => other,
        },
    }
}

pub(super) fn acl_kinds(dir: bool) -> &'static [AclKind] {
    if dir {
        &[AclKind::Access, AclKind::Default]
    } else {
        &[AclKind::Access]
    }
}

/// Gives the entry `to` the ACLs and `user.*` extended attributes of
/// `from` where they differ: `setfacl` and `setfattr` change them alone,
/// with the permission bits as they were. ACLs are left alone when
/// `from`'s file system keeps none (it has none to give) or `to`'s keeps
/// none (its mode was narrowed instead); so are the attributes.
pub(crate) fn mirror_acls_and_xattrs(from: &Held, to: &Held, dir: bool) -> Result {
    let (from_inode, to_inode) = (from.as_inode(), to.as_inode());
    let acls = from_inode.keeps_acls() && to_inode.keeps_acls();
    let xattrs = from_inode.keeps_xattrs() && to_inode.keeps_xattrs();
    if !acls && !xattrs {
        return Ok(());
    }
    let _write = MountWrite::get(to.mnt())?;
    if acls {
        for &kind in acl_kinds(dir) {
            copy_acl(from.at(), to.at(), kind)?;
        }
    }
    if xattrs {
        copy_user_xattrs(from.at(), to.at())?;
    }
    Ok(())
}

/// The prefix of the extended attributes any owner may set, and that a
/// copy carries.
pub(super) const USER_XATTR_PREFIX: &[u8] = b"user.";

/// A list or value of variable size, read as the xattr calls answer them:
/// `fetch(null, 0)` gives the size, then `fetch(buffer, size)` fills a
/// buffer of that many writable bytes. A negative answer is an errno; one
/// that changed size in between (`ERANGE`, or another length) is `EAGAIN`,
/// and its event brings the name back.
pub(super) fn fetch_sized(mut fetch: impl FnMut(*mut c_void, usize) -> isize) -> Result<KVec<u8>> {
    let length = |ret: isize| usize::try_from(ret).map_err(|_| Error::from_errno(ret as c_int));
    let size = length(fetch(core::ptr::null_mut(), 0))?;
    let mut buffer = KVec::from_elem(0u8, size, GFP)?;
    if size == 0 {
        return Ok(buffer);
    }
    match fetch(buffer.as_mut_ptr().cast(), size) {
        ret if ret == -(bindings::ERANGE as isize) => Err(EAGAIN),
        ret if length(ret)? != size => Err(EAGAIN),
        _ => Ok(buffer),
    }
}

/// The `user.*` extended attributes of `at`: each name (NUL-terminated)
/// with its value.
pub(super) fn user_xattrs(at: At<'_>) -> Result<KVec<(KVec<u8>, KVec<u8>)>> {
    // SAFETY: `at` is pinned and positive (type invariant); `fetch_sized`
    // passes a null buffer of size 0 or one of `size` writable bytes.
    let names = fetch_sized(|buffer, size| unsafe {
        bindings::vfs_listxattr(at.dentry, buffer.cast(), size)
    })?;
    let mut out = KVec::new();
    for name in names.split_inclusive(|&b| b == 0) {
        if !name.starts_with(USER_XATTR_PREFIX) || name.last() != Some(&0) {
            continue;
        }
        // SAFETY: as above, and `name` is NUL-terminated (checked above).
        let value = fetch_sized(|buffer, size| unsafe {
            bindings::vfs_getxattr(at.idmap, at.dentry, name.as_ptr().cast(), buffer, size)
        })?;
        let mut owned = KVec::with_capacity(name.len(), GFP)?;
        owned.extend_from_slice(name, GFP)?;
        out.push((owned, value), GFP)?;
    }
    Ok(out)
}

/// Makes the `user.*` extended attributes of `to` those of `from`. Nothing
/// where `to`'s file system refuses them (`EOPNOTSUPP`).
pub(super) fn copy_user_xattrs(from: At<'_>, to: At<'_>) -> Result {
    let want = user_xattrs(from)?;
    let have = user_xattrs(to)?;
    for (name, value) in want.iter() {
        if have.iter().any(|(n, v)| n == name && v == value) {
            continue;
        }
        // SAFETY: `to` is pinned and positive, its inode unlocked
        // (`vfs_setxattr` locks it); `name` is NUL-terminated and `value`
        // readable for its length.
        let ret = unsafe {
            bindings::vfs_setxattr(
                to.idmap,
                to.dentry,
                name.as_ptr().cast(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        match to_result(ret) {
            Err(e) if e == eopnotsupp() => return Ok(()),
            other => other?,
        }
    }
    for (name, _) in have.iter() {
        if want.iter().any(|(n, _)| n == name) {
            continue;
        }
        // SAFETY: as above.
        let ret = unsafe { bindings::vfs_removexattr(to.idmap, to.dentry, name.as_ptr().cast()) };
        match to_result(ret) {
            Err(e) if e.to_errno() == -(bindings::ENODATA as c_int) => (),
            other => other?,
        }
    }
    Ok(())
}

/// Gives `to` the ACLs of `from` (the default ACL too, for directories)
/// and its `user.*` extended attributes where `to` takes them, and answers
/// `mode` for `to`: `mode` itself where the ACLs came along, or its owner's
/// bits alone where `to` keeps no ACLs and `from` has one, so that no copy
/// is more permissive than its source.
pub(super) fn copy_acls_and_xattrs(from: At<'_>, to: At<'_>, dir: bool, mode: u32) -> Result<u32> {
    copy_user_xattrs(from, to)?;
    let mut narrowed = mode;
    for &kind in acl_kinds(dir) {
        match copy_acl(from, to, kind) {
            // A default ACL grants nothing on the directory itself.
            Err(e) if e == eopnotsupp() && matches!(kind, AclKind::Access) => {
                narrowed = mode & !0o077
            }
            Err(e) if e == eopnotsupp() => (),
            other => other?,
        }
    }
    Ok(narrowed)
}

/// Sets mode, mtime and, when `owner` is given, owner and group of an
/// open file's inode, in one change: the mode is checked against the new
/// owner, never applied to the old one first.
pub(super) fn set_attrs(
    file: &OpenFile,
    mode: Option<u32>,
    mtime: Time,
    owner: Option<(u32, u32)>,
) -> Result {
    let dentry = file.dentry();
    // SAFETY: the open file pins its dentry and positive inode.
    let inode = unsafe { (*dentry).d_inode };
    // SAFETY: plain data, the fields we set are marked in `ia_valid`.
    let mut attr: bindings::iattr = unsafe { core::mem::zeroed() };
    // The access time too (to now, as a new file's): a FUSE file system
    // built on libfuse's path API drops a change of the mtime alone.
    attr.ia_valid = bindings::ATTR_MTIME
        | bindings::ATTR_MTIME_SET
        | bindings::ATTR_ATIME
        | bindings::ATTR_CTIME;
    if let Some(mode) = mode {
        attr.ia_valid |= bindings::ATTR_MODE;
        attr.ia_mode = (mode & 0o7777 | (bindings::S_IFREG)) as bindings::umode_t;
    }
    attr.ia_mtime = bindings::timespec64 {
        tv_sec: mtime.secs,
        tv_nsec: mtime.nanos.try_into().unwrap_or(0),
    };
    if let Some((uid, gid)) = owner {
        attr.ia_valid |= bindings::ATTR_UID | bindings::ATTR_GID;
        attr.__bindgen_anon_1.ia_vfsuid = bindings::vfsuid_t { val: uid };
        attr.__bindgen_anon_2.ia_vfsgid = bindings::vfsgid_t { val: gid };
    }
    // SAFETY: `notify_change` wants the inode locked; the dentry is pinned.
    unsafe { bindings::inode_lock(inode) };
    // SAFETY: as above; no delegated inode is asked for.
    let ret = unsafe {
        bindings::notify_change(
            bindings::mnt_idmap(file.mnt()),
            dentry,
            &mut attr,
            core::ptr::null_mut(),
        )
    };
    // SAFETY: locked just above.
    unsafe { bindings::inode_unlock(inode) };
    to_result(ret)
}

/// Owner and group (kernel IDs) of an open file's inode.
pub(super) fn owner_of(file: &OpenFile) -> (u32, u32) {
    // SAFETY: the open file pins its dentry and positive inode; the IDs are
    // read without a lock, as `generic_fillattr` does.
    unsafe {
        let inode = (*file.dentry()).d_inode;
        ((*inode).i_uid.val, (*inode).i_gid.val)
    }
}

/// Sets the permission bits of the entry `held` (the inode that was looked
/// at, never whatever its name holds by now) and the ACLs of `like`, whose
/// mode `mode` is (narrowed as [`mkdir`] does).
pub(crate) fn chmod(held: &Held, mode: u32, like: &Held) -> Result {
    let _write = MountWrite::get(held.mnt())?;
    let dir = held.stat()?.kind == Kind::Dir;
    let mode = copy_acls_and_xattrs(like.at(), held.at(), dir, mode)?;
    set_mode(held.at(), mode)
}

/// Sets the permission bits of the inode at `at`, unless it has them.
pub(super) fn set_mode(at: At<'_>, mode: u32) -> Result {
    // SAFETY: the dentry is pinned and positive (type invariant of `At`).
    let inode = unsafe { (*at.dentry).d_inode };
    // SAFETY: the inode is pinned by its dentry.
    let now = u32::from(unsafe { (*inode).i_mode });
    if now & 0o7777 == mode & 0o7777 {
        return Ok(());
    }
    // SAFETY: plain data, the fields we set are marked in `ia_valid`.
    let mut attr: bindings::iattr = unsafe { core::mem::zeroed() };
    attr.ia_valid = bindings::ATTR_MODE | bindings::ATTR_CTIME;
    attr.ia_mode = (now & bindings::S_IFMT | mode & 0o7777) as bindings::umode_t;
    // SAFETY: `notify_change` wants the inode locked.
    unsafe { bindings::inode_lock(inode) };
    // SAFETY: as above; no delegated inode is asked for.
    let ret =
        unsafe { bindings::notify_change(at.idmap, at.dentry, &mut attr, core::ptr::null_mut()) };
    // SAFETY: locked just above.
    unsafe { bindings::inode_unlock(inode) };
    to_result(ret)
}

/// True when the running credentials may give files any owner.
pub(super) fn may_chown() -> bool {
    // SAFETY: checks the running task's (assumed) credentials only.
    unsafe { bindings::capable(bindings::CAP_CHOWN as c_int) }
}
