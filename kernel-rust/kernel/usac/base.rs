// SPDX-License-Identifier: GPL-2.0

//! The remembered base of a pair: for every name, what both sides last
//! agreed on. Kept in memory while the call runs and in one hidden file in
//! `dir_a` between calls (format in `record.rs`).

use crate::memcg::GFP;
use crate::plan::{Entry, Kind, Time};
use crate::record::{self, Roots, Unusable};
use crate::thread;
use crate::vec;
use core::cmp::Ordering;
use kernel::alloc::{KBox, KVVec, KVec};
use kernel::error::code::{EINTR, EINVAL, ENOMEM};
use kernel::prelude::*;
use kernel::rbtree::RBTree;

/// A relative path below a root, ordered byte by byte, so that the names
/// below a directory `d` are the run of keys that start with `d/`. Boxed,
/// not a vector: eight bytes less in every node.
struct Name(KBox<[u8]>);

impl Name {
    fn of(path: &[u8]) -> Result<Self> {
        Ok(Self(vec::boxed_copy(path)?))
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.0[..] == other.0[..]
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0[..].cmp(&other.0[..])
    }
}

/// True for `d/...` below the directory `dir`.
fn below(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

/// Which inodes held a name on A and on B when both sides agreed on it.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ids {
    /// The inode numbers (0: not known): another inode under the name (a
    /// rename over it) is a change however alike it looks.
    pub(crate) inos: [u64; 2],
    /// The low half of each inode's change cookie (`i_version`; 0: not
    /// known): a rewrite in place within one timestamp tick, same size,
    /// shows only there.
    pub(crate) cookies: [u32; 2],
}

/// What both sides agreed on for a name: an [`Entry`] packed so that a
/// tree node (links, name, this) fits 96 bytes, since a base may hold
/// millions of names.
#[derive(Clone, Copy)]
struct Agreed {
    size: u64,
    secs: i64,
    ids: Ids,
    nanos: u32,
    uid: u32,
    gid: u32,
    /// Permission bits (`0o7777`).
    mode: u16,
    kind: Kind,
}

impl Agreed {
    fn new(entry: &Entry, ids: Ids) -> Self {
        Self {
            size: entry.size,
            secs: entry.mtime.secs,
            ids,
            nanos: entry.mtime.nanos,
            uid: entry.uid,
            gid: entry.gid,
            // Stat gives `mode & 0o7777`, which fits.
            mode: (entry.mode & 0o7777) as u16,
            kind: entry.kind,
        }
    }

    fn entry(&self) -> Entry {
        Entry {
            kind: self.kind,
            size: self.size,
            mtime: Time {
                secs: self.secs,
                nanos: self.nanos,
            },
            mode: u32::from(self.mode),
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// What both sides last agreed on, per name.
pub(crate) struct Base {
    names: RBTree<Name, Agreed>,
    /// The exact targets of the symlinks among `names` (few, so kept apart
    /// rather than making every node larger).
    targets: RBTree<Name, KBox<[u8]>>,
    len: usize,
    /// Changes made, and how many of them the last save (or the load)
    /// held: a save that ran while the base changed leaves it unsaved.
    changes: u64,
    saved_changes: u64,
}

impl Base {
    pub(crate) fn new() -> Self {
        Self {
            names: RBTree::new(),
            targets: RBTree::new(),
            len: 0,
            changes: 0,
            saved_changes: 0,
        }
    }

    /// True when it changed since it was last saved.
    pub(crate) fn unsaved(&self) -> bool {
        self.changes != self.saved_changes
    }

    /// Which version of the base [`Base::encode`] gives now.
    pub(crate) fn version(&self) -> u64 {
        self.changes
    }

    /// The `version` encoded earlier was just saved.
    pub(crate) fn saved(&mut self, version: u64) {
        self.saved_changes = version;
    }

    fn changed(&mut self) {
        self.changes = self.changes.wrapping_add(1);
    }

    /// Names remembered.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every name with what was agreed on, in path order.
    pub(crate) fn names(&self) -> impl Iterator<Item = (&[u8], Entry)> {
        self.names
            .iter()
            .map(|(name, agreed)| (&name.0[..], agreed.entry()))
    }

    /// What both sides last agreed on for `path`, and the inode numbers
    /// that held it on A and on B.
    pub(crate) fn get(&self, path: &[u8]) -> Result<Option<(Entry, Ids)>> {
        Ok(self.names.get(&Name::of(path)?).map(|a| (a.entry(), a.ids)))
    }

    /// Whether the symlink agreed on for `path` pointed to `target`.
    pub(crate) fn same_target(&self, path: &[u8], target: &[u8]) -> Result<bool> {
        let agreed = self.targets.get(&Name::of(path)?);
        Ok(agreed.is_some_and(|t| t[..] == *target))
    }

    /// Both sides agree on `entry` under `path` now; `target` is a
    /// symlink's target (empty for anything else).
    pub(crate) fn set(&mut self, path: &[u8], entry: Entry, ids: Ids, target: &[u8]) -> Result {
        let name = Name::of(path)?;
        if entry.kind == Kind::Symlink {
            self.targets
                .try_create_and_insert(Name::of(path)?, vec::boxed_copy(target)?, GFP)?;
        } else {
            self.targets.remove(&name);
        }
        let old = self
            .names
            .try_create_and_insert(name, Agreed::new(&entry, ids), GFP)?;
        if old.is_none() {
            self.len += 1;
        }
        self.changed();
        Ok(())
    }

    /// Neither side holds `path` (nor anything below it) any more.
    pub(crate) fn forget(&mut self, path: &[u8]) -> Result {
        self.changed();
        self.len -= take_tree(&mut self.names, path)?.len();
        take_tree(&mut self.targets, path)?;
        Ok(())
    }

    /// `from` (and what is below it) was renamed to `to` on both sides.
    pub(crate) fn rename(&mut self, from: &[u8], to: &[u8]) -> Result {
        self.changed();
        let taken = take_tree(&mut self.names, from)?;
        self.len -= taken.len();
        let links = take_tree(&mut self.targets, from)?;
        for (path, agreed) in taken {
            let mut moved = KVec::with_capacity(path.len() - from.len() + to.len(), GFP)?;
            moved.extend_from_slice(to, GFP)?;
            moved.extend_from_slice(&path[from.len()..], GFP)?;
            let target = links
                .iter()
                .find(|(p, _)| p[..] == path[..])
                .map_or(&[][..], |(_, t)| t);
            self.set(&moved, agreed.entry(), agreed.ids, target)?;
        }
        Ok(())
    }

    /// The exact target of the symlink `name` (empty for anything else).
    fn target_of(&self, name: &Name) -> &[u8] {
        self.targets.get(name).map_or(&[], |t| &t[..])
    }

    /// The base as its file holds it, for the pair `roots`.
    pub(crate) fn encode(&self, roots: &Roots) -> Result<KVVec<u8>> {
        let mut total = record::HEADER_LEN + record::TRAILER_LEN;
        for (name, a) in self.names.iter() {
            let len = record::record_len(name.0.len(), a.kind, self.target_of(name).len())
                .ok_or(EINVAL)?;
            total = total.checked_add(len).ok_or(ENOMEM)?;
        }
        let mut out = KVVec::with_capacity(total, GFP)?;
        out.extend_from_slice(&record::header(roots), GFP)?;
        for (name, a) in self.names.iter() {
            thread::yield_now();
            let target = self.target_of(name);
            let len = record::record_len(name.0.len(), a.kind, target.len()).ok_or(EINVAL)?;
            let start = out.len();
            out.extend_with(len, 0, GFP)?;
            record::put_record(
                &mut out.as_mut_slice()[start..],
                &name.0,
                &a.entry(),
                &a.ids.inos,
                &a.ids.cookies,
                target,
            );
        }
        let sum = record::checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes(), GFP)?;
        Ok(out)
    }

    /// The base a file holds, if it is one for the pair `roots`: anything
    /// else (truncated, damaged, for other directories, a name that could
    /// lead outside the tree) is unusable as a whole.
    ///
    /// Ends with `EINTR` once `stop()` says so: half a million names take
    /// seconds on a slow machine.
    pub(crate) fn decode(
        bytes: &[u8],
        roots: &Roots,
        max_names: u64,
        stop: impl Fn() -> bool,
    ) -> Result<core::result::Result<Self, Unusable>> {
        let records = match record::records(bytes, roots) {
            Ok(records) => records,
            Err(why) => return Ok(Err(why)),
        };
        let mut base = Self::new();
        for parsed in records {
            thread::yield_now();
            if stop() {
                thread::drop_later(base);
                return Err(EINTR);
            }
            let (path, entry, inos, cookies, target) = match parsed {
                Ok(record) => record,
                Err(why) => return Ok(Err(why)),
            };
            if !is_plain_relative(path) {
                return Ok(Err(Unusable::NotABase));
            }
            if u64::try_from(base.len()).map_or(true, |names| names >= max_names) {
                thread::drop_later(base);
                return Ok(Err(Unusable::LargerThanTheTrees));
            }
            base.set(path, entry, Ids { inos, cookies }, target)?;
        }
        base.saved_changes = base.changes;
        Ok(Ok(base))
    }
}

/// Takes `path` and the names below it out of `tree`.
fn take_tree<V>(tree: &mut RBTree<Name, V>, path: &[u8]) -> Result<KVVec<(KBox<[u8]>, V)>> {
    let mut taken = KVVec::new();
    if let Some(value) = tree.remove(&Name::of(path)?) {
        taken.push((Name::of(path)?.0, value), GFP)?;
    }
    let mut first = KVec::with_capacity(path.len() + 1, GFP)?;
    first.extend_from_slice(path, GFP)?;
    first.push(b'/', GFP)?;
    let mut cursor = tree.cursor_lower_bound(&Name::of(&first)?);
    while let Some(at) = cursor {
        if !below(&at.current().0 .0, path) {
            break;
        }
        let (next, node) = at.remove_current();
        let (name, value) = node.to_key_value();
        taken.push((name.0, value), GFP)?;
        // The cursor moves to the next node, or to the previous one when
        // there is none: a name before the run, ending the loop.
        cursor = next;
    }
    Ok(taken)
}

/// A path of plain names: no empty, `.` or `..` component, no NUL.
fn is_plain_relative(path: &[u8]) -> bool {
    !path.is_empty()
        && !path.contains(&0)
        && path
            .split(|&c| c == b'/')
            .all(|part| !part.is_empty() && part != b"." && part != b"..")
}
