// SPDX-License-Identifier: GPL-2.0

//! Copying a file's bytes into a temporary name (`copy_file_range`'s offload,
//! splice or buffered), flushing them off the thread, comparing two files.

use super::*;

/// Largest piece copied in one go: the stop check runs between pieces.
pub(super) const COPY_CHUNK: usize = 4 << 20;

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
                    from.as_ptr(),
                    pos,
                    to.as_ptr(),
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
                &(*self.file.as_ptr()).f_path,
                Inode::from_raw((*self.file.as_ptr()).f_inode),
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
pub(crate) struct Flush(pub(super) OpenFile);

impl Flush {
    /// True when there is nothing to flush: the file system keeps its files
    /// in memory (tmpfs).
    pub(crate) fn is_noop(&self) -> bool {
        // SAFETY: the file is open (type invariant of `OpenFile`).
        unsafe { bindings::usac_fsync_is_noop(self.0.as_ptr()) }
    }

    /// Writes the copy's bytes to its device (`fdatasync`), then lets it go.
    pub(crate) fn run(self) -> Result {
        self.0.sync_data()
    }
}

/// How a large file's bytes move between two file systems, best first.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum CopyWay {
    /// `copy_file_range` offload (reflinks, server-side copies).
    Offload = 0,
    /// The kernel's splice between the two page caches.
    Splice = 1,
    /// Read into a buffer and write it out.
    Buffered = 2,
}

impl CopyWay {
    pub(super) fn flags(self) -> c_uint {
        if self == CopyWay::Offload {
            0
        } else {
            bindings::COPY_FILE_SPLICE
        }
    }

    pub(super) fn next(self) -> CopyWay {
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

    pub(super) fn get(&self) -> CopyWay {
        match self.0.load(Ordering::Relaxed) {
            0 => CopyWay::Offload,
            1 => CopyWay::Splice,
            _ => CopyWay::Buffered,
        }
    }

    pub(super) fn set(&self, way: CopyWay) {
        self.0.fetch_max(way as u8, Ordering::Relaxed);
    }
}

/// True for the answers of a file system that cannot copy this way.
pub(super) fn refused(err: Error) -> bool {
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
pub(super) const BUFFERED_COPY_MAX: usize = 16 << 10;

/// Bytes compared at a time by [`same_content`].
pub(super) const COMPARE_CHUNK: usize = 16 << 10;

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
