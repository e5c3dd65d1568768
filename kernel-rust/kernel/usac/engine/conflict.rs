// SPDX-License-Identifier: GPL-2.0

//! Names that cannot both stay: both sides changed one name (both
//! versions are kept), or a name folds onto another on a case-folding side
//! (it steps aside). Nothing is lost.

use super::*;

impl Engine {
    /// `rel` on `side` takes the place of another name on the other side,
    /// which folds case (`foo` beside `Foo` on FAT): it moves aside under a
    /// conflict name, which both sides can hold, and is mirrored as that.
    pub(super) fn step_aside(&self, side: Side, rel: &[u8], work: &mut KVVec<Dirty>) -> Result {
        let Some((held, entry)) = self.stat(side, rel)? else {
            return Ok(());
        };
        let (dir, name) = vfs::split(rel);
        let aside = self.free_conflict_name(dir, name, &entry)?;
        vfs::rename_entry(self.root(side), dir, name, &aside, &held)?;
        pr_info!(
            "\"{}\" differs only in case from a name on dir_{:?}, which cannot hold both: moved aside as \"{}\"\n",
            kernel::str::BStr::from_bytes(rel),
            side.other(),
            kernel::str::BStr::from_bytes(&aside)
        );
        push_scan(work, &vfs::join(dir, &aside)?)
    }

    /// Both sides changed `rel`: the loser's version moves aside under a
    /// conflict name, the winner's takes the name, and both sides end up
    /// with both versions. A directory is moved aside whole, and mirrored
    /// by the scan of its new name: nothing of either version is removed.
    /// Only the loser's entry as it was looked at (`lost`) moves aside: if
    /// the user put another under the name since, `EAGAIN` (decided again).
    pub(super) fn keep_both(
        &self,
        winner: Side,
        rel: &[u8],
        won: &Entry,
        (lost, seen): (&Entry, &Held),
        work: &mut KVVec<Dirty>,
    ) -> Result {
        let loser = winner.other();
        let (dir, name) = vfs::split(rel);
        let aside = self.free_conflict_name(dir, name, lost)?;
        vfs::rename_entry(self.root(loser), dir, name, &aside, seen)?;
        // The loser's version first: once moved aside it has no event left
        // that would bring it over.
        let aside_rel = vfs::join(dir, &aside)?;
        // What was agreed on under the name now lives under the new one.
        self.base.lock().rename(rel, &aside_rel)?;
        if lost.kind == Kind::Dir {
            push_scan(work, &aside_rel)?;
        } else {
            let copied = self.copy(loser, &aside_rel, lost, None, None)?;
            self.agreed_on(&aside_rel, &copied)?;
        }
        if won.kind == Kind::Dir {
            push_scan(work, rel)
        } else {
            let copied = self.copy(winner, rel, won, None, None)?;
            self.agreed_on(rel, &copied)
        }
    }

    /// `NAME.sync-conflict-YYYYMMDD-HHMMSS`, with `-N` added when an
    /// earlier conflict in the same second took that name on either side,
    /// and the stem shortened where the name would be too long.
    pub(super) fn free_conflict_name(
        &self,
        dir: &[u8],
        name: &[u8],
        lost: &Entry,
    ) -> Result<KVec<u8>> {
        let suffix = naming::conflict_suffix(lost.mtime.secs);
        let mut buf = [0u8; naming::NAME_MAX];
        for n in 0..100u8 {
            let len = naming::conflict_name(name, &suffix, n, &mut buf);
            let aside = clone_bytes(&buf[..len])?;
            let rel = vfs::join(dir, &aside)?;
            if self.stat(Side::A, &rel)?.is_none() && self.stat(Side::B, &rel)?.is_none() {
                return Ok(aside);
            }
        }
        Err(kernel::error::code::EEXIST)
    }
}
