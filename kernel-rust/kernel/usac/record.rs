// SPDX-License-Identifier: GPL-2.0

//! The remembered base on disk: a header naming both roots, one record per
//! name, and a checksum of all of it. Pure logic on `core` only: the same
//! file builds in the kernel and on the host (`userland/plan`), where it is
//! tested against truncation and corruption.
//!
//! Layout, little-endian: `MAGIC`, the roots as four `u64` (device and
//! inode number of A, then of B), then records (`u16` name length, the
//! relative path, `u8` kind, `u64` size, `i64` seconds, `u32` nanoseconds,
//! `u32` mode, `u32` uid, `u32` gid, the inode numbers on A and on B as
//! `u64`, their change cookies as `u32` (0: not known), and for a symlink
//! its exact target as a `u16` length and the bytes), then the `u64`
//! FNV-1a of everything before it.

use crate::plan::{Entry, Kind, Time};

/// The base file's name, in `dir_a`: never mirrored, on either side.
pub const FILE_NAME: &[u8] = b".real-time-sync-base";

/// First bytes of a base file, with the format's version.
pub const MAGIC: &[u8; 8] = b"usacbas3";

/// Bytes before the first record.
pub const HEADER_LEN: usize = MAGIC.len() + 32;

/// Bytes of the checksum at the end.
pub const TRAILER_LEN: usize = 8;

/// Bytes of a record after its name.
const FIELDS_LEN: usize = 1 + 8 + 8 + 4 + 4 + 4 + 4 + 16 + 8;

/// Which two directories a base was recorded for: device and inode number
/// of each root.
pub type Roots = [u64; 4];

/// The header of a base for `roots`.
pub fn header(roots: &Roots) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[..MAGIC.len()].copy_from_slice(MAGIC);
    for (i, id) in roots.iter().enumerate() {
        let at = MAGIC.len() + 8 * i;
        out[at..at + 8].copy_from_slice(&id.to_le_bytes());
    }
    out
}

/// Bytes of the record of a name of `name_len` bytes (and a symlink target
/// of `target_len`, for a symlink); `None` past `u16`.
pub fn record_len(name_len: usize, kind: Kind, target_len: usize) -> Option<usize> {
    u16::try_from(name_len).ok()?;
    u16::try_from(target_len).ok()?;
    let target = if kind == Kind::Symlink {
        2 + target_len
    } else {
        0
    };
    Some(2 + name_len + FIELDS_LEN + target)
}

/// Writes the record of `path` (with `target` for a symlink) into `out`,
/// which is exactly [`record_len`] long.
pub fn put_record(
    out: &mut [u8],
    path: &[u8],
    entry: &Entry,
    inos: &[u64; 2],
    cookies: &[u32; 2],
    target: &[u8],
) {
    let mut w = Writer { out, at: 0 };
    w.put(&(path.len() as u16).to_le_bytes());
    w.put(path);
    w.put(&[kind_code(entry.kind)]);
    w.put(&entry.size.to_le_bytes());
    w.put(&entry.mtime.secs.to_le_bytes());
    w.put(&entry.mtime.nanos.to_le_bytes());
    w.put(&entry.mode.to_le_bytes());
    w.put(&entry.uid.to_le_bytes());
    w.put(&entry.gid.to_le_bytes());
    w.put(&inos[0].to_le_bytes());
    w.put(&inos[1].to_le_bytes());
    w.put(&cookies[0].to_le_bytes());
    w.put(&cookies[1].to_le_bytes());
    if entry.kind == Kind::Symlink {
        w.put(&(target.len() as u16).to_le_bytes());
        w.put(target);
    }
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        self.out[self.at..end].copy_from_slice(bytes);
        self.at = end;
    }
}

/// FNV-1a of `bytes` taken eight bytes at a time (then byte by byte for
/// the rest): what the trailer holds. Eight times fewer steps than the
/// byte-wise hash matters for a large base saved while the caller waits.
pub fn checksum(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x100_0000_01b3;
    let mut words = bytes.chunks_exact(8);
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        hash = (hash ^ u64::from_le_bytes(w)).wrapping_mul(PRIME);
    }
    for &byte in words.remainder() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
    }
    hash
}

fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::File => 1,
        Kind::Dir => 2,
        Kind::Symlink => 3,
        Kind::Special => 4,
    }
}

/// Why a base cannot be used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unusable {
    /// Too short, a record cut off, or bytes after the last record.
    Truncated,
    /// Not a base of this format.
    NotABase,
    /// Recorded for other directories.
    OtherRoots,
    /// The checksum does not match: changed or damaged.
    Corrupt,
    /// The file could not be read (not a regular file, too large, an
    /// I/O error).
    Unreadable,
    /// Owned by another user than the caller and root, or writable by
    /// others than its owner: anyone could have written it.
    Untrusted,
    /// More names, or more bytes, than the two trees could need: forged,
    /// or for other trees.
    LargerThanTheTrees,
}

/// The records of `bytes`, once the header, the roots and the checksum
/// were checked; a record that does not parse ends the walk with an error.
pub fn records<'a>(bytes: &'a [u8], roots: &Roots) -> Result<Records<'a>, Unusable> {
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(Unusable::Truncated);
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(Unusable::NotABase);
    }
    let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let mut sum = [0u8; 8];
    sum.copy_from_slice(trailer);
    if checksum(body) != u64::from_le_bytes(sum) {
        return Err(Unusable::Corrupt);
    }
    if body[..HEADER_LEN] != header(roots) {
        return Err(Unusable::OtherRoots);
    }
    Ok(Records {
        rest: &body[HEADER_LEN..],
    })
}

/// The records of a checked base, in file order.
pub struct Records<'a> {
    rest: &'a [u8],
}

/// One record: the path, what was agreed on, the inode numbers on A and
/// B, their change cookies, and a symlink's target (empty for anything
/// else).
pub type Record<'a> = (&'a [u8], Entry, [u64; 2], [u32; 2], &'a [u8]);

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, Unusable>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = self.take();
        if parsed.is_err() {
            self.rest = &[];
        }
        Some(parsed)
    }
}

impl<'a> Records<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Unusable> {
        if self.rest.len() < n {
            return Err(Unusable::Truncated);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Unusable> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    fn take(&mut self) -> Result<Record<'a>, Unusable> {
        let len = usize::from(u16::from_le_bytes(self.array()?));
        let path = self.bytes(len)?;
        let kind = match self.array::<1>()?[0] {
            1 => Kind::File,
            2 => Kind::Dir,
            3 => Kind::Symlink,
            4 => Kind::Special,
            _ => return Err(Unusable::NotABase),
        };
        let entry = Entry {
            kind,
            size: u64::from_le_bytes(self.array()?),
            mtime: Time {
                secs: i64::from_le_bytes(self.array()?),
                nanos: u32::from_le_bytes(self.array()?),
            },
            mode: u32::from_le_bytes(self.array()?),
            uid: u32::from_le_bytes(self.array()?),
            gid: u32::from_le_bytes(self.array()?),
        };
        let inos = [
            u64::from_le_bytes(self.array()?),
            u64::from_le_bytes(self.array()?),
        ];
        let cookies = [
            u32::from_le_bytes(self.array()?),
            u32::from_le_bytes(self.array()?),
        ];
        let target = if kind == Kind::Symlink {
            let len = usize::from(u16::from_le_bytes(self.array()?));
            self.bytes(len)?
        } else {
            &[]
        };
        Ok((path, entry, inos, cookies, target))
    }
}
