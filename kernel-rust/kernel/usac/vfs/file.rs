// SPDX-License-Identifier: GPL-2.0

//! Open files: reading and writing them, and whole small files (the
//! base) written under a temporary name.

use super::*;

/// An open file, closed synchronously on drop (kthreads have no task work
/// to defer a final `fput` to).
///
/// # Invariants
///
/// `self.0` is an open file we own.
pub(super) struct OpenFile(*mut bindings::file);

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
    /// The open file, valid while `self` lives.
    pub(super) fn as_ptr(&self) -> *mut bindings::file {
        self.0
    }

    /// Opens `rel` below `root`, never through a symlink: the directory
    /// part is walked by [`lookup_dir`], and the last component alone by
    /// name.
    pub(super) fn open(root: &DirPath, rel: &[u8], flags: u32, mode: u32) -> Result<Self> {
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
    pub(super) fn another(&self) -> Flush {
        // SAFETY: the file is open (type invariant); the new reference is
        // the one the returned `OpenFile` owns.
        let file = unsafe { bindings::usac_file_get(self.0) };
        // INVARIANT: `file` is a reference of our own to an open file.
        Flush(OpenFile(file))
    }

    /// Reads from `*pos` until `buf` is full or the file ends; returns how
    /// many bytes it read.
    pub(super) fn read_full(&self, buf: &mut [u8], pos: &mut i64) -> Result<usize> {
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
    pub(super) fn sync_data(&self) -> Result {
        // SAFETY: the file is open (type invariant).
        to_result(unsafe { bindings::vfs_fsync(self.0, 1) })
    }

    /// Writes all of `buf` at `*pos`.
    pub(super) fn write_all(&self, buf: &[u8], pos: &mut i64) -> Result {
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
    pub(super) fn open_for_reading(held: &Held) -> Result<Self> {
        let mask = (bindings::MAY_OPEN | bindings::MAY_READ) as c_int;
        // SAFETY: the path is referenced (type invariant of `Held`).
        to_result(unsafe { bindings::path_permission(held.path(), mask) })?;
        // SAFETY: the running task's credentials, referenced until the
        // `put_cred` below; `dentry_open` takes its own reference for the file.
        let cred = unsafe { bindings::get_current_cred() };
        // SAFETY: the path is referenced; `cred` is valid.
        // O_NONBLOCK: a lease makes the open fail at once instead of
        // waiting for its break (and a FIFO would not block, were one
        // ever opened); on a regular file it changes nothing else.
        let file = unsafe {
            bindings::dentry_open(
                held.path(),
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

    pub(super) fn dentry(&self) -> *mut bindings::dentry {
        // SAFETY: the file is open (type invariant), so its path is pinned.
        unsafe { (*self.0).f_path.dentry }
    }

    pub(super) fn mnt(&self) -> *mut bindings::vfsmount {
        // SAFETY: as above.
        unsafe { (*self.0).f_path.mnt }
    }

    pub(super) fn at(&self) -> At<'_> {
        // INVARIANT: the open file pins its mount and dentry.
        At {
            // SAFETY: the mount is pinned by the open file.
            idmap: unsafe { bindings::mnt_idmap(self.mnt()) },
            dentry: self.dentry(),
            _pinned: PhantomData,
        }
    }
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
