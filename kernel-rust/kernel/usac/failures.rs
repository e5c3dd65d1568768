// SPDX-License-Identifier: GPL-2.0

//! Names whose sync failed for a reason that passes without any event: a
//! full file system (space freed elsewhere), a read-only one (remounted
//! read-write), a failing device. They are tried again after a back-off
//! that doubles up to [`MAX_DELAY_MS`] while nothing succeeds, and each is
//! said once until it succeeds: no busy loop, no flood of messages.

use crate::memcg::GFP;
use crate::vec;
use crate::vfs;
use kernel::alloc::{AllocError, KVec};
use kernel::error::code::{EIO, ENOSPC, EROFS};
use kernel::error::Error;
use kernel::prelude::*;
use kernel::time::{ktime_ms_delta, Ktime};

/// The first wait before a retry, in milliseconds.
const MIN_DELAY_MS: u32 = 500;
/// The longest wait between retries.
const MAX_DELAY_MS: u32 = 8000;
/// Names kept; beyond, a retry reconciles the whole tree.
const MAX_NAMES: usize = 4096;

pub(crate) struct Failures {
    names: KVec<KVec<u8>>,
    /// More failed than [`MAX_NAMES`].
    overflow: bool,
    delay_ms: u32,
    /// When the current wait started.
    since: Ktime,
    /// Which sides were said to be read-only since the last time nothing
    /// failed.
    read_only_said: [bool; 2],
}

impl Failures {
    pub(crate) fn new() -> Self {
        Self {
            names: KVec::new(),
            overflow: false,
            delay_ms: MIN_DELAY_MS,
            since: Ktime::ktime_get(),
            read_only_said: [false; 2],
        }
    }

    /// True for an error that can pass without an event on the name.
    pub(crate) fn passes(err: Error) -> bool {
        let quota = Error::from_errno(-(kernel::bindings::EDQUOT as i32));
        err == ENOSPC || err == EROFS || err == EIO || err == quota || err == vfs::leased()
    }

    /// `rel` failed with an error that [`passes`](Self::passes): true when
    /// it had not failed before (then it is worth saying).
    pub(crate) fn failed(&mut self, rel: &[u8]) -> bool {
        if self.names.is_empty() && !self.overflow {
            self.since = Ktime::ktime_get();
        }
        if self.names.iter().any(|n| n.as_slice() == rel) {
            return false;
        }
        let kept = self.names.len() < MAX_NAMES
            && copy_of(rel)
                .and_then(|copy| self.names.push(copy, GFP))
                .is_ok();
        self.overflow |= !kept;
        true
    }

    /// `rel` was brought in sync: forgotten, and the next retry of the
    /// others comes soon (whatever blocked them may have passed too).
    pub(crate) fn succeeded(&mut self, rel: &[u8]) {
        if self.names.is_empty() && !self.overflow {
            return;
        }
        if let Some(at) = self.names.iter().position(|n| n.as_slice() == rel) {
            let last = self.names.len() - 1;
            self.names.as_mut_slice().swap(at, last);
            drop(vec::pop(&mut self.names));
        }
        self.delay_ms = MIN_DELAY_MS;
        if self.names.is_empty() && !self.overflow {
            self.read_only_said = [false; 2];
        }
    }

    /// True the first time `side` (0 for A) is found read-only in a streak
    /// of failures.
    pub(crate) fn first_read_only(&mut self, side: usize) -> bool {
        !core::mem::replace(&mut self.read_only_said[side], true)
    }

    /// Milliseconds until the next retry (0: due now), or `None` when
    /// nothing waits for one.
    pub(crate) fn wait_ms(&self) -> Option<u32> {
        if self.names.is_empty() && !self.overflow {
            return None;
        }
        let waited = ktime_ms_delta(Ktime::ktime_get(), self.since);
        Some(u32::try_from(i64::from(self.delay_ms).saturating_sub(waited).max(0)).unwrap_or(0))
    }

    /// The names to try again now (kept until they succeed), and whether
    /// the whole tree needs it; the next wait is twice as long.
    pub(crate) fn retry(&mut self) -> Result<(KVec<KVec<u8>>, bool)> {
        let mut again = KVec::with_capacity(self.names.len(), GFP)?;
        for name in self.names.iter() {
            again.push(copy_of(name)?, GFP)?;
        }
        let whole_tree = core::mem::replace(&mut self.overflow, false);
        self.since = Ktime::ktime_get();
        self.delay_ms = self.delay_ms.saturating_mul(2).min(MAX_DELAY_MS);
        Ok((again, whole_tree))
    }
}

fn copy_of(bytes: &[u8]) -> Result<KVec<u8>, AllocError> {
    let mut copy = KVec::with_capacity(bytes.len(), GFP)?;
    copy.extend_from_slice(bytes, GFP)?;
    Ok(copy)
}
