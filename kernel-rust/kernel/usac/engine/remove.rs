// SPDX-License-Identifier: GPL-2.0

//! Mirroring a deletion: a file or a whole tree, except what changed on
//! that side since (it is newer than the delete, and mirrored back).

use super::*;

/// How much of a tree [`Engine::remove_tree`] removed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Removed {
    All,
    /// All but the ignored names, and the directories that hold them.
    ButIgnored,
    /// All but files as agreed that a task has open for writing, and the
    /// directories that hold them: the writers' closes decide, against the
    /// base kept for those files.
    Waiting,
}

impl Removed {
    /// `Ok` when nothing stayed: for a tree that must go to make room.
    pub(super) fn or_not_empty(self) -> Result {
        match self {
            Removed::All => Ok(()),
            Removed::ButIgnored | Removed::Waiting => Err(vfs::not_empty()),
        }
    }
}

impl Engine {
    /// True when an event on `side` named `path` that the thread has not
    /// acted on yet: in the batch at work (`recent`, sorted), or still
    /// pending. Such an entry is newer than the decision to remove.
    pub(super) fn changed_meanwhile(&self, side: Side, path: &[u8], recent: &[Dirty]) -> bool {
        let first = recent.partition_point(|d| d.path.as_slice() < path);
        let in_batch = recent[first..]
            .iter()
            .take_while(|d| d.path.as_slice() == path)
            .any(|d| d.why.changed_on(side));
        in_batch || self.events.named_on(side, path)
    }

    /// Removes `rel` from `side`: a file, or a whole directory tree. What
    /// was changed on `side` since (a file created while the user's `rm -rf`
    /// ran on the other side) stays, with the directories that hold it: it
    /// is newer than the delete, and mirrored back. An event not yet acted
    /// on counts as such a change unless the file's change cookie says it
    /// is as agreed (a close without a write). A file as agreed that some
    /// task has open for writing stays with its base: its writer's close
    /// decides, and a write after the delete is then kept.
    ///
    /// Ignored names stay too, with the directories that hold them, and
    /// that is said once; unless all that keeps a directory are names of
    /// `(?d)` rules: then they go with it.
    ///
    /// A file or symlink goes only if it is still `seen` (the entry looked
    /// at, with its change cookie), when given.
    pub(super) fn remove_tree(
        &self,
        side: Side,
        rel: &[u8],
        recent: &[Dirty],
        seen: Option<(&Held, u32)>,
    ) -> Result<Removed> {
        let root = self.root(side);
        let Some(held) = vfs::lookup(root, rel)? else {
            return Ok(Removed::All);
        };
        if held.stat()?.kind != Kind::Dir {
            return match seen {
                Some((seen, cookie)) => {
                    if held.ino() != seen.ino() || (cookie != 0 && held.change_cookie()? != cookie)
                    {
                        return Err(EAGAIN);
                    }
                    vfs::unlink_entry(root, rel, seen)
                }
                None => vfs::unlink(root, rel),
            }
            .map(|()| Removed::All);
        }
        drop(held);
        // Post-order without recursion: the kernel stack is small.
        let mut stack: KVVec<(KVec<u8>, bool)> = KVVec::new();
        stack.push((clone_bytes(rel)?, false), GFP)?;
        let mut kept = false;
        let mut kept_ignored = false;
        let mut waiting: KVVec<(KVec<u8>, Entry, Ids)> = KVVec::new();
        while let Some((dir, emptied)) = vec::pop(&mut stack) {
            thread::yield_now();
            if thread::should_stop() {
                return Err(EINTR);
            }
            if emptied {
                match vfs::rmdir(root, &dir) {
                    // Once ignored names kept a directory, its parents fail
                    // too; a name that came since the listing is then not
                    // told apart: its own event mirrors it.
                    Err(e) if e == vfs::not_empty() => kept |= !kept_ignored && waiting.is_empty(),
                    Err(e) if e != ENOENT => return Err(e),
                    _ => {}
                }
                continue;
            }
            let entries = vfs::list_dir(root, &dir, &thread::should_stop)?;
            stack.push((clone_bytes(&dir)?, true), GFP)?;
            // Names of `(?d)` rules: removed only if nothing else keeps `dir`.
            let mut deletable: KVVec<(KVec<u8>, bool)> = KVVec::new();
            let mut ignored_here = false;
            for listed in entries.iter() {
                let path = vfs::join(&dir, listed.name)?;
                let is_dir = self.listed_is_dir(side, &path, &listed)?;
                let verdict = self.verdict_as(&path, is_dir);
                if verdict.deletable {
                    deletable.push((path, is_dir), GFP)?;
                    continue;
                }
                if verdict.ignored {
                    ignored_here = true;
                    continue;
                }
                thread::yield_now();
                if thread::should_stop() {
                    return Err(EINTR);
                }
                // Only what both sides agreed on goes: anything newer (never
                // synced, or changed since) stays, and is mirrored back.
                let agreed = self.base.lock().get(&path)?;
                let mut looked_at = None;
                // The same inode with the change cookie agreed on: not
                // changed at all, whatever its events say (a close without
                // a write).
                let mut vouched = false;
                let as_agreed = match agreed {
                    Some((agreed, _)) if is_dir => agreed.kind == Kind::Dir,
                    Some((agreed, ids)) => {
                        let i = index(side);
                        let (ino, cookie) = (ids.inos[i], ids.cookies[i]);
                        match self.stat(side, &path)? {
                            Some((held, now)) => {
                                let same_cookie = cookie == 0 || held.change_cookie()? == cookie;
                                let same = now.unchanged_since(&agreed)
                                    && (ino == 0 || held.ino() == ino)
                                    && same_cookie;
                                vouched = same && ino != 0 && cookie != 0;
                                looked_at = Some(held);
                                same
                            }
                            None => true,
                        }
                    }
                    None => false,
                };
                // An event not yet acted on that the cookie cannot vouch
                // for may be a change: newer than the delete.
                let news = !vouched && self.changed_meanwhile(side, &path, recent);
                match agreed {
                    _ if !as_agreed || news => {
                        kept = true;
                        continue;
                    }
                    // Its writer's close is reported, and decides.
                    Some((entry, ids))
                        if entry.kind == Kind::File
                            && looked_at.as_ref().is_some_and(Held::open_for_write) =>
                    {
                        waiting.push((path, entry, ids), GFP)?;
                        continue;
                    }
                    _ => {}
                }
                if is_dir {
                    stack.push((path, false), GFP)?;
                } else if let Some(held) = looked_at {
                    // Only the inode that was checked: one the user put
                    // there since stays.
                    match vfs::unlink_entry(root, &path, &held) {
                        Err(e) if e == EAGAIN => kept = true,
                        Err(e) if e != ENOENT => return Err(e),
                        _ => {}
                    }
                }
            }
            if ignored_here {
                kept_ignored = true;
                continue;
            }
            for (path, is_dir) in deletable.into_iter() {
                if is_dir {
                    // Everything below it matches the same `(?d)` rule.
                    stack.push((path, false), GFP)?;
                    continue;
                }
                match vfs::unlink(root, &path) {
                    Err(e) if e != ENOENT => return Err(e),
                    _ => {}
                }
            }
        }
        // What stayed is newer than what was agreed on: the directory is
        // no longer as agreed, and its parent's reconciliation (which then
        // has no base for it) mirrors what stayed back to the other side.
        // The files that wait keep their base, for their own events.
        if kept {
            self.forgotten(rel)?;
            let mut base = self.base.lock();
            for (path, entry, ids) in waiting.iter() {
                base.set(path, *entry, *ids, &[])?;
            }
            return Err(vfs::not_empty());
        }
        if !waiting.is_empty() {
            return Ok(Removed::Waiting);
        }
        if kept_ignored {
            self.tell_once(rel, "holds ignored names in it: kept there with them", side)?;
            return Ok(Removed::ButIgnored);
        }
        Ok(Removed::All)
    }
}
