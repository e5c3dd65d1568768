// SPDX-License-Identifier: GPL-2.0

//! The remembered base of a pair: for every name, what both sides last
//! agreed on. Kept in memory while the call runs and in one hidden file in
//! `dir_a` between calls (format in `record.rs`).

use crate::plan::Entry;
use crate::record::{self, Roots, Unusable};
use core::cmp::Ordering;
use kernel::alloc::{flags::GFP_KERNEL, KVVec, KVec};
use kernel::error::code::{EINVAL, ENOMEM};
use kernel::prelude::*;
use kernel::rbtree::RBTree;
use kernel::sync::Arc;
use kernel::workqueue::{self, impl_has_work, new_work, Work, WorkItem};

/// A relative path below a root, ordered byte by byte, so that the names
/// below a directory `d` are the run of keys that start with `d/`.
struct Name(KVec<u8>);

impl Name {
    fn of(path: &[u8]) -> Result<Self> {
        let mut out = KVec::with_capacity(path.len(), GFP_KERNEL)?;
        out.extend_from_slice(path, GFP_KERNEL)?;
        Ok(Self(out))
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_slice() == other.0.as_slice()
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
        self.0.as_slice().cmp(other.0.as_slice())
    }
}

/// True for `d/...` below the directory `dir`.
fn below(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/'
}

/// What both sides agreed on for a name, with a symlink's exact target.
struct Agreed {
    entry: Entry,
    /// The inode numbers on A and on B (0: not known): another inode under
    /// the name (a rename over it) is a change however alike it looks.
    inos: [u64; 2],
    target: KVec<u8>,
}

/// What both sides last agreed on, per name.
pub(crate) struct Base {
    names: RBTree<Name, Agreed>,
    len: usize,
    /// Changed since it was last saved (or loaded).
    unsaved: bool,
}

impl Base {
    pub(crate) fn new() -> Self {
        Self {
            names: RBTree::new(),
            len: 0,
            unsaved: false,
        }
    }

    /// True when it changed since it was last saved.
    pub(crate) fn unsaved(&self) -> bool {
        self.unsaved
    }

    /// It was just saved as it is.
    pub(crate) fn saved(&mut self) {
        self.unsaved = false;
    }

    /// Names remembered.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every name with what was agreed on, in path order.
    pub(crate) fn names(&self) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.names
            .iter()
            .map(|(name, agreed)| (name.0.as_slice(), &agreed.entry))
    }

    /// What both sides last agreed on for `path`, and the inode numbers
    /// that held it on A and on B.
    pub(crate) fn get(&self, path: &[u8]) -> Result<Option<(Entry, [u64; 2])>> {
        Ok(self.names.get(&Name::of(path)?).map(|a| (a.entry, a.inos)))
    }

    /// Whether the symlink agreed on for `path` pointed to `target`.
    pub(crate) fn same_target(&self, path: &[u8], target: &[u8]) -> Result<bool> {
        let agreed = self.names.get(&Name::of(path)?);
        Ok(agreed.is_some_and(|a| a.target.as_slice() == target))
    }

    /// Both sides agree on `entry` under `path` now; `target` is a
    /// symlink's target (empty for anything else).
    pub(crate) fn set(
        &mut self,
        path: &[u8],
        entry: Entry,
        inos: [u64; 2],
        target: &[u8],
    ) -> Result {
        let agreed = Agreed {
            entry,
            inos,
            target: Name::of(target)?.0,
        };
        let old = self
            .names
            .try_create_and_insert(Name::of(path)?, agreed, GFP_KERNEL)?;
        if old.is_none() {
            self.len += 1;
        }
        self.unsaved = true;
        Ok(())
    }

    /// Neither side holds `path` (nor anything below it) any more.
    pub(crate) fn forget(&mut self, path: &[u8]) -> Result {
        for _ in self.take_tree(path)? {}
        Ok(())
    }

    /// `from` (and what is below it) was renamed to `to` on both sides.
    pub(crate) fn rename(&mut self, from: &[u8], to: &[u8]) -> Result {
        for (path, agreed) in self.take_tree(from)? {
            let mut moved = KVec::with_capacity(path.len() - from.len() + to.len(), GFP_KERNEL)?;
            moved.extend_from_slice(to, GFP_KERNEL)?;
            moved.extend_from_slice(&path[from.len()..], GFP_KERNEL)?;
            self.set(&moved, agreed.entry, agreed.inos, &agreed.target)?;
        }
        Ok(())
    }

    /// Takes `path` and the names below it out of the base.
    fn take_tree(&mut self, path: &[u8]) -> Result<KVec<(KVec<u8>, Agreed)>> {
        let mut taken = KVec::new();
        self.unsaved = true;
        if let Some(agreed) = self.names.remove(&Name::of(path)?) {
            self.len -= 1;
            taken.push((Name::of(path)?.0, agreed), GFP_KERNEL)?;
        }
        let mut first = KVec::with_capacity(path.len() + 1, GFP_KERNEL)?;
        first.extend_from_slice(path, GFP_KERNEL)?;
        first.push(b'/', GFP_KERNEL)?;
        let mut cursor = self.names.cursor_lower_bound(&Name(first));
        while let Some(at) = cursor {
            if !below(&at.current().0 .0, path) {
                break;
            }
            let (next, node) = at.remove_current();
            self.len -= 1;
            let (name, agreed) = node.to_key_value();
            taken.push((name.0, agreed), GFP_KERNEL)?;
            // The cursor moves to the next node, or to the previous one
            // when there is none: a name before the run, ending the loop.
            cursor = next;
        }
        Ok(taken)
    }

    /// The base as its file holds it, for the pair `roots`.
    pub(crate) fn encode(&self, roots: &Roots) -> Result<KVVec<u8>> {
        let mut total = record::HEADER_LEN + record::TRAILER_LEN;
        for (name, a) in self.names.iter() {
            let len =
                record::record_len(name.0.len(), a.entry.kind, a.target.len()).ok_or(EINVAL)?;
            total = total.checked_add(len).ok_or(ENOMEM)?;
        }
        let mut out = KVVec::with_capacity(total, GFP_KERNEL)?;
        out.extend_from_slice(&record::header(roots), GFP_KERNEL)?;
        for (name, a) in self.names.iter() {
            let len =
                record::record_len(name.0.len(), a.entry.kind, a.target.len()).ok_or(EINVAL)?;
            let start = out.len();
            out.extend_with(len, 0, GFP_KERNEL)?;
            record::put_record(
                &mut out.as_mut_slice()[start..],
                &name.0,
                &a.entry,
                &a.inos,
                &a.target,
            );
        }
        let sum = record::checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes(), GFP_KERNEL)?;
        Ok(out)
    }

    /// The base a file holds, if it is one for the pair `roots`: anything
    /// else (truncated, damaged, for other directories, a name that could
    /// lead outside the tree) is unusable as a whole.
    pub(crate) fn decode(
        bytes: &[u8],
        roots: &Roots,
    ) -> Result<core::result::Result<Self, Unusable>> {
        let records = match record::records(bytes, roots) {
            Ok(records) => records,
            Err(why) => return Ok(Err(why)),
        };
        let mut base = Self::new();
        for parsed in records {
            let (path, entry, inos, target) = match parsed {
                Ok(record) => record,
                Err(why) => return Ok(Err(why)),
            };
            if !is_plain_relative(path) {
                return Ok(Err(Unusable::NotABase));
            }
            base.set(path, entry, inos, target)?;
        }
        base.unsaved = false;
        Ok(Ok(base))
    }
}

/// A path of plain names: no empty, `.` or `..` component, no NUL.
fn is_plain_relative(path: &[u8]) -> bool {
    !path.is_empty()
        && !path.contains(&0)
        && path
            .split(|&c| c == b'/')
            .all(|part| !part.is_empty() && part != b"." && part != b"..")
}

/// A base on its way to be freed by a worker.
#[pin_data]
struct Freeing {
    base: Base,
    #[pin]
    work: Work<Freeing>,
}

impl_has_work! {
    impl HasWork<Self> for Freeing { self.work }
}

impl WorkItem for Freeing {
    type Pointer = Arc<Freeing>;

    fn run(_this: Arc<Freeing>) {}
}

/// Frees `base` on the system workqueue: tens of thousands of names take
/// longer to free on a debug kernel than a signal may wait. Without the
/// memory to defer it, it is freed here.
pub(crate) fn free_later(base: Base) {
    if base.len == 0 {
        return;
    }
    let freeing = Arc::pin_init(
        pin_init!(Freeing {
            base,
            work <- new_work!("usac_free_base"),
        }),
        GFP_KERNEL,
    );
    if let Ok(freeing) = freeing {
        let _ = workqueue::system_unbound().enqueue(freeing);
    }
}
