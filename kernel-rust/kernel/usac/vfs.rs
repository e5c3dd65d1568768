// SPDX-License-Identifier: GPL-2.0

//! File work relative to a held directory, as the sync thread needs it:
//! lookups, stat, listing, copying, and changes made under the parent's
//! lock the way the VFS expects. Every call runs with the credentials the
//! thread assumed, so the VFS checks each permission as for the caller.

use crate::inode::Inode;
use crate::memcg::GFP;
use crate::path::DirPath;
use crate::plan::{Entry, Kind, Time};
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, Ordering};
use kernel::alloc::{KVVec, KVec};
use kernel::bindings;
use kernel::error::{
    code::{EAGAIN, EEXIST, EINTR, EINVAL, EIO, EISDIR, ENOENT, ENOMEM, ENOTDIR, EXDEV},
    from_err_ptr, to_result, Error, Result,
};
use kernel::ffi::{c_char, c_int, c_uint, c_void};
use kernel::{c_str, str::CStr};

/// Largest piece copied in one go: the stop check runs between pieces.
const COPY_CHUNK: usize = 4 << 20;

/// Paths shorter than this are made NUL-terminated on the stack: a burst
/// of small files does several lookups per file, and an allocation each
/// shows.
const SHORT_PATH: usize = 128;

/// A relative path, NUL-terminated for the C API (`.` for the root itself).
struct CPath {
    short: [u8; SHORT_PATH],
    long: KVec<u8>,
}

impl CPath {
    fn new(rel: &[u8]) -> Result<Self> {
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

    fn as_ptr(&self) -> *const c_char {
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
    fn path(&self) -> &bindings::path {
        &self.0
    }

    fn mnt(&self) -> *mut bindings::vfsmount {
        self.0.mnt
    }

    fn dentry(&self) -> *mut bindings::dentry {
        self.0.dentry
    }

    fn inode(&self) -> *mut bindings::inode {
        // SAFETY: the dentry is referenced and positive (type invariant).
        unsafe { (*self.0.dentry).d_inode }
    }

    /// The inode, pinned while `self` lives.
    pub(crate) fn as_inode(&self) -> &Inode {
        // SAFETY: the dentry is referenced and positive (type invariant).
        unsafe { Inode::from_raw(self.inode()) }
    }

    fn idmap(&self) -> *mut bindings::mnt_idmap {
        // SAFETY: the mount is referenced (type invariant).
        unsafe { bindings::mnt_idmap(self.0.mnt) }
    }

    fn at(&self) -> At<'_> {
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
fn change_cookie_of(path: &bindings::path) -> Result<u32> {
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
/// included: its target is outside what we mirror).
pub(crate) fn lookup(root: &DirPath, rel: &[u8]) -> Result<Option<Held>> {
    walk(root, rel, 0)
}

/// A held directory: only directories can be looked into.
///
/// # Invariants
///
/// The held dentry is a directory.
struct HeldDir(Held);

impl core::ops::Deref for HeldDir {
    type Target = Held;

    fn deref(&self) -> &Held {
        &self.0
    }
}

/// Like [`lookup`], for a directory to act in: `None` also when `rel` is no
/// directory (any more).
fn lookup_dir(root: &DirPath, rel: &[u8]) -> Result<Option<HeldDir>> {
    // INVARIANT: with LOOKUP_DIRECTORY the walk fails on anything else (the
    // root, returned without a walk, is a directory by `DirPath`'s).
    Ok(walk(root, rel, bindings::LOOKUP_DIRECTORY)?.map(HeldDir))
}

fn walk(root: &DirPath, rel: &[u8], flags: u32) -> Result<Option<Held>> {
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
            let named = unsafe {
                bindings::usac_dentry_named(held.dentry(), last.as_ptr(), last.len() as c_uint)
            };
            if named {
                Ok(Some(held))
            } else {
                Err(case_collision())
            }
        }
        Err(e) if e == ENOENT || e == ENOTDIR || e == symlink_met() => Ok(None),
        Err(e) => Err(e),
    }
}

/// An open file, closed synchronously on drop (kthreads have no task work
/// to defer a final `fput` to).
///
/// # Invariants
///
/// `self.0` is an open file we own.
struct OpenFile(*mut bindings::file);

// SAFETY: a file reference is not tied to the task that took it: any
// kernel thread may use it and put it (`__fput_sync` needs a kthread, and
// files are only handed between kthreads: the sync thread and kworkers).
unsafe impl Send for OpenFile {}

impl Drop for OpenFile {
    fn drop(&mut self) {
        // SAFETY: we own the file (type invariant); kthreads close with
        // `__fput_sync`.
        unsafe { bindings::__fput_sync(self.0) };
    }
}

impl OpenFile {
    /// Opens `rel` below `root`, never through a symlink: the directory
    /// part is walked by [`lookup_dir`], and the last component alone by
    /// name.
    fn open(root: &DirPath, rel: &[u8], flags: u32, mode: u32) -> Result<Self> {
        let (dir, last) = split(rel);
        let parent = lookup_dir(root, dir)?.ok_or(ENOENT)?;
        let name = CPath::new(last)?;
        // SAFETY: `parent` is referenced (type invariant of `Held`); `name`
        // is NUL-terminated.
        let file = from_err_ptr(unsafe {
            bindings::file_open_root(
                parent.path(),
                name.as_ptr(),
                (flags | bindings::O_LARGEFILE | bindings::O_NOFOLLOW) as c_int,
                mode as bindings::umode_t,
            )
        })?;
        // INVARIANT: `file_open_root` returned an open file.
        Ok(Self(file))
    }

    /// Another reference to the same open file, for flushing it.
    fn another(&self) -> Flush {
        // SAFETY: the file is open (type invariant); the new reference is
        // the one the returned `OpenFile` owns.
        let file = unsafe { bindings::usac_file_get(self.0) };
        // INVARIANT: `file` is a reference of our own to an open file.
        Flush(OpenFile(file))
    }

    /// Reads from `*pos` until `buf` is full or the file ends; returns how
    /// many bytes it read.
    fn read_full(&self, buf: &mut [u8], pos: &mut i64) -> Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            let rest = &mut buf[done..];
            // SAFETY: the file is open for reading (type invariant) and
            // `rest` is writable for its whole length.
            let n =
                unsafe { bindings::kernel_read(self.0, rest.as_mut_ptr().cast(), rest.len(), pos) };
            if n < 0 {
                return Err(Error::from_errno(n as c_int));
            }
            if n == 0 {
                break;
            }
            done += n as usize;
        }
        Ok(done)
    }

    /// Waits until what was written is on the device (`fdatasync`).
    fn sync_data(&self) -> Result {
        // SAFETY: the file is open (type invariant).
        to_result(unsafe { bindings::vfs_fsync(self.0, 1) })
    }

    /// Writes all of `buf` at `*pos`.
    fn write_all(&self, buf: &[u8], pos: &mut i64) -> Result {
        let mut done = 0;
        while done < buf.len() {
            let rest = &buf[done..];
            // SAFETY: the file is open (type invariant), and `kernel_write`
            // checks that it is open for writing; `rest` is readable for its
            // whole length.
            let n =
                unsafe { bindings::kernel_write(self.0, rest.as_ptr().cast(), rest.len(), pos) };
            if n < 0 {
                return Err(Error::from_errno(n as c_int));
            }
            if n == 0 {
                return Err(EIO);
            }
            done += n as usize;
        }
        Ok(())
    }

    /// Opens `held` for reading, after the permission check `open(2)`
    /// makes: the lookup was done already.
    fn open_for_reading(held: &Held) -> Result<Self> {
        let mask = (bindings::MAY_OPEN | bindings::MAY_READ) as c_int;
        // SAFETY: the path is referenced (type invariant of `Held`).
        to_result(unsafe { bindings::path_permission(&held.0, mask) })?;
        // SAFETY: the running task's credentials, referenced until the
        // `put_cred` below; `dentry_open` takes its own reference for the file.
        let cred = unsafe { bindings::get_current_cred() };
        // SAFETY: the path is referenced; `cred` is valid.
        // O_NONBLOCK: a lease makes the open fail at once instead of
        // waiting for its break (and a FIFO would not block, were one
        // ever opened); on a regular file it changes nothing else.
        let file = unsafe {
            bindings::dentry_open(
                &held.0,
                (bindings::O_RDONLY | bindings::O_LARGEFILE | bindings::O_NONBLOCK) as c_int,
                cred,
            )
        };
        // SAFETY: the reference taken above.
        unsafe { bindings::put_cred(cred) };
        // INVARIANT: `dentry_open` returned an open file, or an error.
        match from_err_ptr(file) {
            Ok(file) => Ok(Self(file)),
            Err(e) if e == EAGAIN => Err(leased()),
            Err(e) => Err(e),
        }
    }

    fn dentry(&self) -> *mut bindings::dentry {
        // SAFETY: the file is open (type invariant), so its path is pinned.
        unsafe { (*self.0).f_path.dentry }
    }

    fn mnt(&self) -> *mut bindings::vfsmount {
        // SAFETY: as above.
        unsafe { (*self.0).f_path.mnt }
    }

    fn at(&self) -> At<'_> {
        // INVARIANT: the open file pins its mount and dentry.
        At {
            // SAFETY: the mount is pinned by the open file.
            idmap: unsafe { bindings::mnt_idmap(self.mnt()) },
            dentry: self.dentry(),
            _pinned: PhantomData,
        }
    }
}

/// One of an inode's POSIX ACLs.
#[derive(Clone, Copy)]
enum AclKind {
    /// Who may access the inode.
    Access,
    /// What entries made in a directory inherit.
    Default,
}

impl AclKind {
    fn name(self) -> &'static CStr {
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
struct At<'a> {
    idmap: *mut bindings::mnt_idmap,
    dentry: *mut bindings::dentry,
    _pinned: PhantomData<&'a ()>,
}

/// A POSIX ACL read from an inode.
///
/// # Invariants
///
/// `self.0` holds one reference on a valid `posix_acl`.
struct Acl(NonNull<bindings::posix_acl>);

impl Drop for Acl {
    fn drop(&mut self) {
        // SAFETY: we own one reference (type invariant).
        unsafe { bindings::posix_acl_release(self.0.as_ptr()) };
    }
}

fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as c_int))
}

impl Acl {
    /// The ACL `kind` of `at`: `None` when it has none (its permission bits
    /// say all), or its file system keeps none.
    fn of(at: At<'_>, kind: AclKind) -> Result<Option<Self>> {
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
    fn clone(&self) -> Result<Self> {
        // SAFETY: a valid ACL (type invariant); charged as `GFP` is.
        let copy =
            unsafe { bindings::posix_acl_clone(self.0.as_ptr(), bindings::GFP_KERNEL_ACCOUNT) };
        // INVARIANT: a new ACL with one reference, ours.
        NonNull::new(copy).map(Self).ok_or(ENOMEM)
    }

    /// Tag, permissions and ID of each entry.
    fn entries(&self) -> impl Iterator<Item = (i16, u16, u32)> + '_ {
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

fn same_acl(x: &Option<Acl>, y: &Option<Acl>) -> bool {
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
fn copy_acl(from: At<'_>, to: At<'_>, kind: AclKind) -> Result {
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

fn acl_kinds(dir: bool) -> &'static [AclKind] {
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
const USER_XATTR_PREFIX: &[u8] = b"user.";

/// A list or value of variable size, read as the xattr calls answer them:
/// `fetch(null, 0)` gives the size, then `fetch(buffer, size)` fills a
/// buffer of that many writable bytes. A negative answer is an errno; one
/// that changed size in between (`ERANGE`, or another length) is `EAGAIN`,
/// and its event brings the name back.
fn fetch_sized(mut fetch: impl FnMut(*mut c_void, usize) -> isize) -> Result<KVec<u8>> {
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
fn user_xattrs(at: At<'_>) -> Result<KVec<(KVec<u8>, KVec<u8>)>> {
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
fn copy_user_xattrs(from: At<'_>, to: At<'_>) -> Result {
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
fn copy_acls_and_xattrs(from: At<'_>, to: At<'_>, dir: bool, mode: u32) -> Result<u32> {
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

/// The names of a directory, in one buffer: a directory of many thousand
/// entries costs two allocations, not one per name (freeing that many
/// small ones takes longer than a signal may wait, on a debug kernel).
pub(crate) struct Listing {
    bytes: KVVec<u8>,
    entries: KVVec<ListedAt>,
}

struct ListedAt {
    start: usize,
    len: usize,
    d_type: u32,
}

impl Listing {
    /// The entries, in the order the file system listed them.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Listed<'_>> {
        self.entries.iter().map(|at| Listed {
            name: &self.bytes[at.start..at.start + at.len],
            d_type: at.d_type,
        })
    }
}

/// A directory entry name with its type, as listed.
pub(crate) struct Listed<'a> {
    pub(crate) name: &'a [u8],
    /// `DT_DIR` and friends, or `DT_UNKNOWN` where the file system does not say.
    pub(crate) d_type: u32,
}

impl Listed<'_> {
    /// Known to be a directory (without a stat).
    pub(crate) fn is_dir(&self) -> bool {
        self.d_type == bindings::DT_DIR
    }

    /// The file system did not say what it is: a stat must.
    pub(crate) fn type_unknown(&self) -> bool {
        self.d_type == bindings::DT_UNKNOWN
    }
}

/// `ENOTEMPTY`, which the kernel crate does not name.
pub(crate) fn not_empty() -> Error {
    Error::from_errno(-(bindings::ENOTEMPTY as c_int))
}

/// `ELOOP`: a symlink where a lookup without following met one.
fn symlink_met() -> Error {
    Error::from_errno(-(bindings::ELOOP as c_int))
}

/// Errors that come from racing with the user's own changes.
pub(crate) fn raced(err: Error) -> bool {
    // ELOOP: a file replaced by a symlink while opened without following.
    [ENOENT, not_empty(), EEXIST, ENOTDIR, EISDIR, symlink_met()].contains(&err)
}

#[repr(C)]
struct Lister<'a> {
    ctx: bindings::dir_context,
    names: Listing,
    added: usize,
    failed: bool,
    /// Asked every [`STOP_CHECK_EVERY`] names: a huge directory is listed
    /// in many milliseconds.
    stop: &'a dyn Fn() -> bool,
    stopped: bool,
}

const STOP_CHECK_EVERY: usize = 64;

/// Collects one directory entry into the `Lister`.
///
/// # Safety
///
/// Called by `iterate_dir` only, with the context `list_dir` passed.
unsafe extern "C" fn list_actor(
    ctx: *mut bindings::dir_context,
    name: *const c_char,
    len: c_int,
    _offset: bindings::loff_t,
    _ino: u64,
    d_type: c_uint,
) -> bool {
    // SAFETY: `ctx` is the first field of the `Lister` that `list_dir`
    // passed to `iterate_dir`, alive and exclusively ours for the call.
    let lister = unsafe { &mut *ctx.cast::<Lister<'_>>() };
    // SAFETY: the file system passes `len` valid bytes at `name`.
    let name = unsafe { core::slice::from_raw_parts(name.cast::<u8>(), len as usize) };
    if name == b"." || name == b".." {
        return true;
    }
    if lister.added % STOP_CHECK_EVERY == 0 && (lister.stop)() {
        lister.stopped = true;
        return false;
    }
    let at = ListedAt {
        start: lister.names.bytes.len(),
        len: name.len(),
        d_type,
    };
    if lister.names.bytes.extend_from_slice(name, GFP).is_err()
        || lister.names.entries.push(at, GFP).is_err()
    {
        lister.failed = true;
        return false;
    }
    lister.added += 1;
    true
}

/// Lists the directory `rel` below `root`. Names are collected first and
/// acted on afterwards: `iterate_dir` holds the directory lock meanwhile.
/// Stops with `EINTR` when `stop()` turns true.
pub(crate) fn list_dir(root: &DirPath, rel: &[u8], stop: &dyn Fn() -> bool) -> Result<Listing> {
    let dir = OpenFile::open(root, rel, bindings::O_RDONLY | bindings::O_DIRECTORY, 0)?;
    let mut lister = Lister {
        ctx: bindings::dir_context {
            actor: Some(list_actor),
            pos: 0,
        },
        names: Listing {
            bytes: KVVec::new(),
            entries: KVVec::new(),
        },
        added: 0,
        failed: false,
        stop,
        stopped: false,
    };
    loop {
        lister.added = 0;
        // SAFETY: `dir` is an open directory; `lister.ctx` heads `lister`,
        // which outlives the call.
        to_result(unsafe { bindings::iterate_dir(dir.0, &mut lister.ctx) })?;
        if lister.failed {
            return Err(ENOMEM);
        }
        if lister.stopped {
            return Err(EINTR);
        }
        // Some file systems hand out one buffer's worth per call.
        if lister.added == 0 {
            break;
        }
    }
    Ok(lister.names)
}

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
struct MountWrite(*mut bindings::vfsmount);

impl MountWrite {
    fn get(mnt: *mut bindings::vfsmount) -> Result<Self> {
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
struct LockedParent<'a> {
    dir: &'a HeldDir,
}

impl<'a> LockedParent<'a> {
    fn lock(dir: &'a HeldDir) -> Self {
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
    fn child(&self, name: &[u8]) -> Result<Child> {
        lookup_locked(self.dir, name)
    }

    fn dir_inode(&self) -> *mut bindings::inode {
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
struct Child(*mut bindings::dentry);

impl Child {
    fn is_negative(&self) -> bool {
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
fn parent_of<'r>(root: &DirPath, rel: &'r [u8]) -> Result<(HeldDir, &'r [u8])> {
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

fn unlink_checked(root: &DirPath, rel: &[u8], seen: Option<&Held>) -> Result {
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

fn rename_checked(
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
fn lookup_locked(dir: &HeldDir, name: &[u8]) -> Result<Child> {
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
struct RenameLock<'a> {
    to: &'a HeldDir,
    from: &'a HeldDir,
    trap: *mut bindings::dentry,
}

impl<'a> RenameLock<'a> {
    fn lock(to: &'a HeldDir, from: &'a HeldDir) -> Result<Self> {
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

/// Sets mode, mtime and, when `owner` is given, owner and group of an
/// open file's inode, in one change: the mode is checked against the new
/// owner, never applied to the old one first.
fn set_attrs(file: &OpenFile, mode: Option<u32>, mtime: Time, owner: Option<(u32, u32)>) -> Result {
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
fn owner_of(file: &OpenFile) -> (u32, u32) {
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
fn set_mode(at: At<'_>, mode: u32) -> Result {
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

/// Copies the regular file `src`, as `seen` when it was looked at, into the
/// new file `dst_rel` below `dst` (created exclusively), with the
/// permission bits and mtime of `seen`; returns the copy still open.
/// Stops with `EINTR` when `waits.stop()` turns true between chunks.
///
/// The content is on the device (`waits.flush` ran its [`Flush`]) before the
/// attributes are set: the rename that publishes the copy never outlives a
/// crash that its blocks did not, and no write-back after the mtime was set
/// (FUSE's write-back cache, NFS) moves it.
///
/// A file that grew since is copied as it was: its writer's close brings
/// it back. Not asking for more saves a call per small file.
pub(crate) fn copy_file(
    src: &Held,
    dst: &DirPath,
    dst_rel: &[u8],
    seen: &Entry,
    carry: Carry,
    ways: &CopyWays,
    waits: &impl CopyWaits,
) -> Result<Copied> {
    let from = OpenFile::open_for_reading(src)?;
    let to = OpenFile::open(
        dst,
        dst_rel,
        bindings::O_WRONLY | bindings::O_CREAT | bindings::O_EXCL,
        0o600,
    )?;
    // As `cp -a`: a caller allowed to chown gives the copy the source's
    // owner; any other copy is the caller's, without setuid and setgid.
    let owner = (carry.owner && may_chown()).then_some((seen.uid, seen.gid));
    let (uid, gid) = owner.unwrap_or_else(|| owner_of(&to));
    // Before the owner changes: a caller may set ACLs on its own files.
    let mode = if carry.modes {
        Some(copy_acls_and_xattrs(
            src.at(),
            to.at(),
            false,
            seen.mode_for_copy_owned_by(uid, gid),
        )?)
    } else {
        None
    };
    if let Some(small) = usize::try_from(seen.size)
        .ok()
        .filter(|&n| n <= BUFFERED_COPY_MAX)
    {
        let mut buf = KVec::from_elem(0u8, small, GFP)?;
        let read = from.read_full(&mut buf, &mut 0)?;
        to.write_all(&buf[..read], &mut 0)?;
        waits.flush(to.another())?;
        set_attrs(&to, mode, seen.mtime, owner)?;
        return Ok(Copied {
            file: to,
            len: read as u64,
        });
    }
    let mut pos: i64 = 0;
    let mut way = ways.get();
    let mut buf = KVec::new();
    loop {
        let done = u64::try_from(pos).map_err(|_| EINVAL)?;
        let Some(left) = seen.size.checked_sub(done).filter(|&n| n > 0) else {
            break;
        };
        if waits.stop() {
            return Err(EINTR);
        }
        let chunk = usize::try_from(left.min(COPY_CHUNK as u64)).map_err(|_| EINVAL)?;
        let copied = match way {
            CopyWay::Buffered => {
                if buf.is_empty() {
                    buf = KVec::from_elem(0u8, BUFFERED_COPY_MAX, GFP)?;
                }
                let part = &mut buf[..chunk.min(BUFFERED_COPY_MAX)];
                let (mut read_at, mut write_at) = (pos, pos);
                from.read_full(part, &mut read_at)
                    .and_then(|n| to.write_all(&part[..n], &mut write_at).map(|()| n))
            }
            // SAFETY: both files are open, for reading and for writing.
            offload_or_splice => match unsafe {
                bindings::vfs_copy_file_range(
                    from.0,
                    pos,
                    to.0,
                    pos,
                    chunk,
                    offload_or_splice.flags(),
                )
            } {
                n if n < 0 => Err(Error::from_errno(n as c_int)),
                n => Ok(n as usize),
            },
        };
        let n = match copied {
            // Refused by these file systems (across them, or no offload or
            // splice there): the next way, from now on for the call.
            Err(err) if way != CopyWay::Buffered && refused(err) => {
                way = way.next();
                ways.set(way);
                continue;
            }
            other => other?,
        };
        if n == 0 {
            break;
        }
        pos = pos.checked_add(n as i64).ok_or(EINVAL)?;
    }
    waits.flush(to.another())?;
    set_attrs(&to, mode, seen.mtime, owner)?;
    Ok(Copied {
        file: to,
        len: u64::try_from(pos).map_err(|_| EINVAL)?,
    })
}

/// A copy made by [`copy_file`], still open. Closed when dropped: after it
/// was put in place, so that watchers see its close under its final name
/// and are not woken for the temporary one.
pub(crate) struct Copied {
    file: OpenFile,
    /// Bytes written: fewer than seen when the source shrank meanwhile.
    pub(crate) len: u64,
}

impl Copied {
    /// The copy's inode number and change cookie: what the base records
    /// for the side it was put on, taken from the copy itself, not from
    /// whatever the name holds by then.
    pub(crate) fn ids(&self) -> Result<(u64, u32)> {
        // SAFETY: the open file pins its path and its inode.
        let (path, inode) = unsafe {
            (
                &(*self.file.0).f_path,
                Inode::from_raw((*self.file.0).f_inode),
            )
        };
        Ok((inode.ino(), change_cookie_of(path)?))
    }
}

/// What a copy asks of its caller: whether to stop, and how to wait for
/// its bytes to reach the device.
pub(crate) trait CopyWaits {
    fn stop(&self) -> bool;
    fn flush(&self, flush: Flush) -> Result;
}

/// A second reference to a copy being made, to flush its bytes to the
/// device from another thread.
pub(crate) struct Flush(OpenFile);

impl Flush {
    /// True when there is nothing to flush: the file system keeps its files
    /// in memory (tmpfs).
    pub(crate) fn is_noop(&self) -> bool {
        // SAFETY: the file is open (type invariant of `OpenFile`).
        unsafe { bindings::usac_fsync_is_noop(self.0 .0) }
    }

    /// Writes the copy's bytes to its device (`fdatasync`), then lets it go.
    pub(crate) fn run(self) -> Result {
        self.0.sync_data()
    }
}

/// How a large file's bytes move between two file systems, best first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CopyWay {
    /// `copy_file_range` offload (reflinks, server-side copies).
    Offload = 0,
    /// The kernel's splice between the two page caches.
    Splice = 1,
    /// Read into a buffer and write it out.
    Buffered = 2,
}

impl CopyWay {
    fn flags(self) -> c_uint {
        if self == CopyWay::Offload {
            0
        } else {
            bindings::COPY_FILE_SPLICE
        }
    }

    fn next(self) -> CopyWay {
        match self {
            CopyWay::Offload => CopyWay::Splice,
            _ => CopyWay::Buffered,
        }
    }
}

/// The way copies into one side work, learnt from the first refusal and
/// kept for the call: a file system that refuses one copy's offload or
/// splice is not asked again for every file.
pub(crate) struct CopyWays(AtomicU8);

impl CopyWays {
    pub(crate) const fn new() -> Self {
        Self(AtomicU8::new(CopyWay::Offload as u8))
    }

    fn get(&self) -> CopyWay {
        match self.0.load(Ordering::Relaxed) {
            0 => CopyWay::Offload,
            1 => CopyWay::Splice,
            _ => CopyWay::Buffered,
        }
    }

    fn set(&self, way: CopyWay) {
        self.0.fetch_max(way as u8, Ordering::Relaxed);
    }
}

/// True for the answers of a file system that cannot copy this way.
fn refused(err: Error) -> bool {
    err == EXDEV || err == EINVAL || err == eopnotsupp()
}

/// What a copy takes over from its source besides content and mtime.
#[derive(Clone, Copy)]
pub(crate) struct Carry {
    /// Permission bits, ACLs and extended attributes: not where the
    /// target keeps no modes (FAT).
    pub(crate) modes: bool,
    /// Owner and group, where the caller may give them.
    pub(crate) owner: bool,
}

/// Files up to this size are copied through a buffer: a read and a write
/// cost less than setting up a splice.
const BUFFERED_COPY_MAX: usize = 16 << 10;

/// Bytes compared at a time by [`same_content`].
const COMPARE_CHUNK: usize = 16 << 10;

/// True when the regular files `a` and `b` (as looked up and seen to be
/// regular files: no FIFO swapped in meanwhile is opened) hold the same
/// bytes. Stops with `EINTR` when `stop()` turns true between chunks.
pub(crate) fn same_content(a: &Held, b: &Held, stop: impl Fn() -> bool) -> Result<bool> {
    let files = [
        OpenFile::open_for_reading(a)?,
        OpenFile::open_for_reading(b)?,
    ];
    let mut chunks = [
        KVec::from_elem(0u8, COMPARE_CHUNK, GFP)?,
        KVec::from_elem(0u8, COMPARE_CHUNK, GFP)?,
    ];
    let mut pos = [0i64; 2];
    loop {
        if stop() {
            return Err(EINTR);
        }
        let mut read = [0usize; 2];
        for i in 0..2 {
            read[i] = files[i].read_full(&mut chunks[i], &mut pos[i])?;
        }
        if chunks[0][..read[0]] != chunks[1][..read[1]] {
            return Ok(false);
        }
        if read[0] < COMPARE_CHUNK {
            return Ok(true);
        }
    }
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

/// The content of the regular file `held`, if it holds at most `max`
/// bytes; `EFBIG` if it holds more.
pub(crate) fn read_file(held: &Held, max: u64) -> Result<KVVec<u8>> {
    let seen = held.stat()?;
    if seen.kind != Kind::File {
        return Err(EINVAL);
    }
    if seen.size > max {
        return Err(Error::from_errno(-(bindings::EFBIG as c_int)));
    }
    let file = OpenFile::open_for_reading(held)?;
    let len = usize::try_from(seen.size).map_err(|_| EINVAL)?;
    let mut out = KVVec::from_elem(0u8, len, GFP)?;
    // A file that shrank since its stat is not the one that was seen.
    if file.read_full(out.as_mut_slice(), &mut 0)? != len {
        return Err(EIO);
    }
    Ok(out)
}

/// Creates the file `rel` (which must not exist) with `content`, flushed
/// to the device before it returns, so that a rename publishing it never
/// shows a file whose blocks are not written.
pub(crate) fn write_new_file(root: &DirPath, rel: &[u8], content: &[u8]) -> Result {
    let file = OpenFile::open(
        root,
        rel,
        bindings::O_WRONLY | bindings::O_CREAT | bindings::O_EXCL,
        0o600,
    )?;
    file.write_all(content, &mut 0)?;
    file.sync_data()
}

/// `ENOTUNIQ`: a lookup found another name than the one asked for (on a
/// file system that folds case, `foo` finds `Foo`).
pub(crate) fn case_collision() -> Error {
    Error::from_errno(-(bindings::ENOTUNIQ as c_int))
}

/// True when the running credentials may give files any owner.
fn may_chown() -> bool {
    // SAFETY: checks the running task's (assumed) credentials only.
    unsafe { bindings::capable(bindings::CAP_CHOWN as c_int) }
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
