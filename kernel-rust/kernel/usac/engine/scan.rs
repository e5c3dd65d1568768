// SPDX-License-Identifier: GPL-2.0

//! Walking a directory: marked on both sides first, then every name in it
//! queued as a name of its own; and putting a name back in the queue.

use super::*;

impl Engine {
    /// Puts `rel` back in the queue with the reasons it had.
    pub(super) fn requeue(&self, rel: &[u8], why: Reason) -> Result {
        let path = clone_bytes(rel)?;
        let mut pending = self.events.pending.lock();
        // No sleeping allocation under the spinlock: if this one fails, a
        // full rescan finds the name instead.
        if pending
            .dirty
            .push(Dirty { path, why }, memcg::nowait())
            .is_err()
        {
            pending.rescan_all = true;
        }
        pending.urgent = true;
        Ok(())
    }

    /// Watches the directory `rel` on both sides, then queues every name in
    /// it: marks first, so nothing that changes during the scan is lost.
    pub(super) fn scan_dir(&self, rel: &[u8], work: &mut KVVec<Dirty>, why: Reason) -> Result {
        let mut present = [false; 2];
        for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
            let Some(held) = vfs::lookup(self.root(side), rel)? else {
                continue;
            };
            // A directory the caller cannot list (a drop box) is not ours to
            // read: neither watched nor listed.
            if held.stat()?.kind != Kind::Dir || !held.may_list() {
                continue;
            }
            self.group
                .watch(self.events.clone(), held.as_inode(), side, rel)?;
            present[i] = true;
        }
        let list = |i: usize, side| -> Result<Option<vfs::Listing>> {
            if !present[i] {
                return Ok(None);
            }
            vfs::list_dir(self.root(side), rel, &thread::should_stop).map(Some)
        };
        let (on_a, on_b) = (list(0, Side::A)?, list(1, Side::B)?);
        // A name on both sides is queued once: sorted A's names are looked
        // up for each of B's.
        let mut names_on_a: KVVec<&[u8]> = KVVec::new();
        for listed in on_a.iter().flat_map(|listing| listing.iter()) {
            names_on_a.push(listed.name, GFP)?;
        }
        if !plan::heap_sort_by(
            names_on_a.as_mut_slice(),
            |x, y| x.cmp(y),
            thread::should_stop,
        ) {
            return Err(EINTR);
        }
        for (side, listing) in [(Side::A, &on_a), (Side::B, &on_b)] {
            for listed in listing.iter().flat_map(|listing| listing.iter()) {
                thread::yield_now();
                if thread::should_stop() {
                    return Err(EINTR);
                }
                if rel.is_empty() && listed.name == record::FILE_NAME {
                    continue;
                }
                let path = vfs::join(rel, listed.name)?;
                if naming::is_temp_name_of(self.call_id, listed.name) {
                    // Ours, left by a copy whose directory moved under it.
                    let _ = vfs::unlink(self.root(side), &path);
                    continue;
                }
                if side == Side::B && names_on_a.binary_search(&listed.name).is_ok() {
                    continue;
                }
                // Neither queued nor, for a directory, watched or listed.
                if self.verdict_of_listed(side, &path, &listed)?.ignored {
                    continue;
                }
                work.push(Dirty { path, why }, GFP)?;
            }
        }
        Ok(())
    }
}
