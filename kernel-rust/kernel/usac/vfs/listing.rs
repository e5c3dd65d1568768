// SPDX-License-Identifier: GPL-2.0

//! Directory listings: the names a directory holds, read with
//! `iterate_dir`, with a stop check between pieces.

use super::*;

/// The names of a directory, in one buffer: a directory of many thousand
/// entries costs two allocations, not one per name (freeing that many
/// small ones takes longer than a signal may wait, on a debug kernel).
pub(crate) struct Listing {
    bytes: KVVec<u8>,
    entries: KVVec<ListedAt>,
}

pub(super) struct ListedAt {
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
pub(super) fn symlink_met() -> Error {
    Error::from_errno(-(bindings::ELOOP as c_int))
}

/// Errors that come from racing with the user's own changes.
pub(crate) fn raced(err: Error) -> bool {
    // ELOOP: a file replaced by a symlink while opened without following.
    [ENOENT, not_empty(), EEXIST, ENOTDIR, EISDIR, symlink_met()].contains(&err)
}

#[repr(C)]
pub(super) struct Lister<'a> {
    ctx: bindings::dir_context,
    names: Listing,
    added: usize,
    failed: bool,
    /// Asked every [`STOP_CHECK_EVERY`] names: a huge directory is listed
    /// in many milliseconds.
    stop: &'a dyn Fn() -> bool,
    stopped: bool,
}

pub(super) const STOP_CHECK_EVERY: usize = 64;

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
        to_result(unsafe { bindings::iterate_dir(dir.as_ptr(), &mut lister.ctx) })?;
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
