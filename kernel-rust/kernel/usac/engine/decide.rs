// SPDX-License-Identifier: GPL-2.0

//! One name on both sides: looks at it, asks [`plan::decide`] what to do
//! against the base, and carries the action out through the other steps.
//! The policy lives in `plan.rs`, not here.

use super::apply::Replacing;
use super::remove::Removed;
use super::run::park;
use super::*;

impl Engine {
    pub(super) fn stat(&self, side: Side, rel: &[u8]) -> Result<Option<(Held, Entry)>> {
        let Some(held) = vfs::lookup(self.root(side), rel)? else {
            return Ok(None);
        };
        let mut entry = held.stat()?;
        if entry.kind == Kind::Symlink {
            // Symlinks are equal when their targets are, whatever the times
            // (the sync cannot set them): see `settle_links`.
            entry.mtime = Time::default();
        } else {
            let (granularity, range) = self.times;
            entry.mtime = entry.mtime.clamped(range).coarsened(granularity);
            if !self.modes_compared() {
                // Not kept on one side: not compared, and what a copy from
                // that side gets where modes are kept.
                entry.mode = Holds::default_mode(entry.kind);
            }
            if !self.root(side.other()).inode().keeps_acls() && held.has_acl()? {
                // What a side without ACLs can hold of an entry with one:
                // its owner's bits alone (`vfs::mkdir`, `vfs::copy_file`).
                entry.mode &= !0o077;
            }
        }
        Ok(Some((held, entry)))
    }

    /// `y` as the planner should see it beside `x`: two symlinks whose
    /// targets have one length look alike by size and time, so their
    /// targets are compared byte for byte, and `y` made to differ if they do.
    pub(super) fn as_compared_with(x: &(Held, Entry), y: &(Held, Entry)) -> Result<Entry> {
        let mut seen = y.1;
        if x.1.kind == Kind::Symlink
            && y.1.kind == Kind::Symlink
            && x.1.size == y.1.size
            && vfs::read_link(&x.0)? != vfs::read_link(&y.0)?
        {
            seen.size ^= 1;
        }
        Ok(seen)
    }

    /// Brings one name to the same state on both sides, unless the rules
    /// ignore it; the rules are read again each time their file was
    /// mirrored.
    ///
    /// `recent` are the changes of the batch at work, sorted by path.
    pub(super) fn sync_name(
        &self,
        rel: &[u8],
        why: Reason,
        work: &mut KVVec<Dirty>,
        parked: &mut KVVec<Dirty>,
        recent: &[Dirty],
    ) -> Result {
        if self.verdict(rel)?.ignored {
            // Nothing of it is mirrored, and what the base knew of it is
            // forgotten: a rule removed later brings it in as a union.
            if self.base.lock().get(rel)?.is_some() {
                self.forgotten(rel)?;
            }
            return Ok(());
        }
        let synced = self.sync_entry(rel, why, work, parked, recent);
        // New rules: the whole tree again, for the names they no longer
        // ignore.
        let reloaded = if rel != ignore::RULES_FILE {
            Ok(())
        } else if self.load_rules()? {
            push_scan(work, b"")
        } else {
            Ok(())
        };
        synced.and(reloaded)
    }

    fn sync_entry(
        &self,
        rel: &[u8],
        why: Reason,
        work: &mut KVVec<Dirty>,
        parked: &mut KVVec<Dirty>,
        recent: &[Dirty],
    ) -> Result {
        let name = vfs::split(rel).1;
        if let Some(call) = naming::temp_call(name) {
            return self.temp_of_another_call(call, rel);
        }
        for side in [Side::A, Side::B] {
            if !self.holds(side).takes_name(name) {
                return self.tell_once(rel, "refuses the name", side);
            }
        }
        if let Some(side) = why.created_on() {
            if self.copy_new(side, rel)? {
                return Ok(());
            }
        }
        let (a, b) = match (self.stat(Side::A, rel), self.stat(Side::B, rel)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) if e == vfs::case_collision() => {
                return self.step_aside(Side::B, rel, work)
            }
            (_, Err(e)) if e == vfs::case_collision() => {
                return self.step_aside(Side::A, rel, work)
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        // A file still open for writing is reported again on its close:
        // copying it now would copy a half-written file, and copying over it
        // would leave what its writer writes next in an unlinked file. So
        // the name waits, with its reasons, for that close. A close is
        // reported before its writer's count drops: the side that closed
        // may still look busy.
        let busy =
            |side: Side, now: &Option<(Held, Entry)>| written_to(now) && !why.closed_on(side);
        let (busy_a, busy_b) = (busy(Side::A, &a), busy(Side::B, &b));
        if busy_a || busy_b {
            // A writer that keeps the other side open (a log, a database)
            // may do so for days: said once, then mirrored on its close.
            for (side, busy) in [(Side::A, busy_a), (Side::B, busy_b)] {
                if busy && !why.changed_on(side) {
                    self.tell_once(
                        rel,
                        "has it open for writing: mirrored once it is closed",
                        side,
                    )?;
                }
            }
            return park(parked, rel, why);
        }
        let (ea, eb) = (a.as_ref().map(|s| s.1), b.as_ref().map(|s| s.1));
        let entry = |side| if side == Side::A { ea } else { eb };
        // What was looked up is opened as is: no second lookup to copy it.
        let held = |side| if side == Side::A { &a } else { &b }.as_ref().map(|s| &s.0);
        let (agreed, ids) = match self.base.lock().get(rel)? {
            Some((entry, ids)) => (Some(entry), ids),
            None => (None, Ids::default()),
        };
        // The inodes and change cookies of the versions looked at: what the
        // base records once both sides agree, not what the names hold by
        // then (a rewrite during a copy stays a change).
        let mut seen = Ids::default();
        for (i, (side, now)) in [(Side::A, &a), (Side::B, &b)].into_iter().enumerate() {
            if let Some((held, entry)) = now {
                seen.inos[i] = held.ino();
                if entry.kind == Kind::File && self.holds(side).content_cookie {
                    seen.cookies[i] = held.change_cookie()?;
                }
            }
        }
        // Another inode under the name than the one agreed on (renamed over,
        // maybe while no call ran), or the same one rewritten in place with
        // the same size within one timestamp tick (its change cookie moved,
        // nothing else did): a change however alike it looks. The same
        // inode with the cookie agreed on: its events (a close without a
        // write, a reader that opened it read-write) brought nothing new.
        let events = why;
        let mut why = why;
        for (i, (side, now)) in [(Side::A, &a), (Side::B, &b)].into_iter().enumerate() {
            let Some((held, entry)) = now else {
                continue;
            };
            let holds = self.holds(side);
            let other_inode = holds.stable_inodes && ids.inos[i] != 0 && held.ino() != ids.inos[i];
            let cookie_known = !other_inode
                && entry.kind == Kind::File
                && ids.cookies[i] != 0
                && seen.cookies[i] != 0
                && agreed.is_some_and(|agreed| entry.unchanged_since(&agreed));
            if other_inode || (cookie_known && seen.cookies[i] != ids.cookies[i]) {
                why = why.merge(Reason::moved_in_on(side));
            } else if cookie_known
                && holds.stable_inodes
                && ids.inos[i] != 0
                && events.changed_on(side)
            {
                why = why.without_news_on(side);
            }
        }
        let [base_now, a_now, b_now] = self.with_link_classes(rel, agreed, &a, &b)?;
        let cookie = |side| seen.cookies[index(side)];
        let source = |side| held(side).map(|held| (held, cookie(side)));
        // What a copy onto `side` may replace: the entry looked at, still
        // as it was then.
        let replacing = |side: Side| match (held(side), entry(side)) {
            (Some(held), Some(entry)) => Some(Replacing {
                held,
                entry,
                cookie: cookie(side),
                closed: events.closed_on(side),
            }),
            _ => None,
        };
        let done = match plan::decide(base_now, a_now, b_now, why) {
            Action::Nothing => match (&a, &b) {
                (Some((ha, x)), Some((hb, y))) if x.kind == y.kind => {
                    // Alike by what the planner sees; an ACL or extended
                    // attribute may have changed alone.
                    if let Some(from) = why.only_changed().filter(|_| x.kind != Kind::Symlink) {
                        let (src, dst) = if from == Side::A { (ha, hb) } else { (hb, ha) };
                        vfs::mirror_acls_and_xattrs(src, dst, x.kind == Kind::Dir)?;
                    }
                    // Recorded again if anything of the record is stale (an
                    // inode renamed in that looks the same).
                    if agreed != Some(*x) || ids != seen {
                        self.agreed(rel, x, seen)
                    } else {
                        Ok(())
                    }
                }
                (None, None) if agreed.is_some() => self.forgotten(rel),
                _ => Ok(()),
            },
            Action::Skip => {
                let side = if matches!(ea, Some(e) if e.kind == Kind::Special) {
                    Side::A
                } else {
                    Side::B
                };
                self.tell_once(rel, "holds a FIFO, socket or device node there", side)
            }
            Action::Copy { from } => {
                let src = entry(from).ok_or(ENOENT)?;
                if src.kind == Kind::Symlink && !self.holds(from.other()).symlinks {
                    return self.tell_once(rel, "holds no symlinks", from.other());
                }
                self.copy(from, rel, &src, source(from), replacing(from.other()))
                    .and_then(|copied| self.agreed_on(rel, &copied))
            }
            Action::MakeDir { on } => {
                let src = entry(on.other()).ok_or(ENOENT)?;
                if entry(on).is_some() {
                    self.remove_tree(on, rel, recent, source(on))?
                        .or_not_empty()?;
                }
                vfs::mkdir(
                    self.root(on),
                    rel,
                    self.holds(on).modes.then_some(src.mode),
                    held(on.other()).ok_or(ENOENT)?,
                )?;
                let mut made = seen;
                made.inos[index(on)] = vfs::lookup(self.root(on), rel)?.map_or(0, |h| h.ino());
                self.agreed(rel, &src, made)?;
                push_scan(work, rel)
            }
            Action::ScanDir { mode_from } => {
                if let Some(from) = mode_from {
                    self.copy_mode(from, &a, &b)?;
                }
                let kept = entry(mode_from.unwrap_or(Side::A)).ok_or(ENOENT)?;
                self.agreed(rel, &kept, seen)?;
                self.scan_dir(rel, work, deep_scan())
            }
            Action::Remove { on } => match self.remove_tree(on, rel, recent, source(on))? {
                Removed::All => self
                    .forgotten(rel)
                    .and_then(|()| self.parent_again(on, rel, work)),
                // Its record stays for the files that wait in it.
                Removed::Waiting => Ok(()),
                // The directory stays for its ignored names: still agreed
                // on, so that no later look at it brings it back.
                Removed::ButIgnored => self.forgotten(rel).and_then(|()| match agreed {
                    Some(entry) => self.agreed(rel, &entry, ids),
                    None => Ok(()),
                }),
            },
            Action::CopyMode { from } => {
                let src = entry(from).ok_or(ENOENT)?;
                self.copy_mode(from, &a, &b).and_then(|()| {
                    self.agreed(rel, &src, self.after_chmod(seen, from.other(), held)?)
                })
            }
            Action::Conflict { winner } => {
                let (won, lost) = (
                    entry(winner).ok_or(ENOENT)?,
                    entry(winner.other()).ok_or(ENOENT)?,
                );
                // Two files with the same bytes are one version.
                if won.kind == Kind::File
                    && lost.kind == Kind::File
                    && won.size == lost.size
                    && self.same_bytes(&a, &b)?
                {
                    self.copy(winner, rel, &won, source(winner), replacing(winner.other()))
                        .and_then(|copied| self.agreed_on(rel, &copied))
                } else {
                    let seen = held(winner.other()).ok_or(ENOENT)?;
                    self.keep_both(winner, rel, &won, (&lost, seen), work)
                }
            }
            Action::CopyUnlessSame { from } => {
                let src = entry(from).ok_or(ENOENT)?;
                if !self.same_bytes(&a, &b)? {
                    self.copy(from, rel, &src, source(from), replacing(from.other()))
                        .and_then(|copied| self.agreed_on(rel, &copied))
                } else {
                    self.copy_mode(from, &a, &b).and_then(|()| {
                        self.agreed(rel, &src, self.after_chmod(seen, from.other(), held)?)
                    })
                }
            }
            Action::ConflictUnlessSame => {
                let (x, y) = (ea.ok_or(ENOENT)?, eb.ok_or(ENOENT)?);
                if !self.same_bytes(&a, &b)? {
                    self.keep_both(Side::A, rel, &x, (&y, held(Side::B).ok_or(ENOENT)?), work)
                } else {
                    self.copy_mode(Side::A, &a, &b)
                        .and_then(|()| self.agreed(rel, &x, self.after_chmod(seen, Side::B, held)?))
                }
            }
        };
        match done {
            // A destination changed under us: look again with both changes
            // known, which makes it a conflict, not a loss.
            Err(e) if e == EAGAIN => self.requeue(rel, why),
            other => other,
        }
    }

    /// After `rel` went from `on`: a parent already gone from the other side
    /// stayed on `on` for what waited in it ([`Removed::Waiting`]), and is
    /// looked at again now.
    fn parent_again(&self, on: Side, rel: &[u8], work: &mut KVVec<Dirty>) -> Result {
        let parent = vfs::split(rel).0;
        if parent.is_empty() || vfs::lookup(self.root(on.other()), parent)?.is_some() {
            return Ok(());
        }
        push_dirty(work, parent, Reason::default())
    }

    /// `seen`, with the change cookie of `side`'s entry read again after a
    /// chmod of it moved it.
    pub(super) fn after_chmod<'h>(
        &self,
        mut seen: Ids,
        side: Side,
        held: impl Fn(Side) -> Option<&'h Held>,
    ) -> Result<Ids> {
        let i = index(side);
        if seen.cookies[i] != 0 {
            if let Some(held) = held(side) {
                seen.cookies[i] = held.change_cookie()?;
            }
        }
        Ok(seen)
    }

    /// Gives the entry on the other side of `from` the permission bits and
    /// ACLs of `from`'s, as far as its owner may carry them; the very inode
    /// that was looked at, not whatever the name holds by now.
    pub(super) fn copy_mode(
        &self,
        from: Side,
        a: &Option<(Held, Entry)>,
        b: &Option<(Held, Entry)>,
    ) -> Result {
        let (src, dst) = match from {
            Side::A => (a, b),
            Side::B => (b, a),
        };
        let ((like, src), (held, dst)) = (src.as_ref().ok_or(ENOENT)?, dst.as_ref().ok_or(ENOENT)?);
        vfs::chmod(held, src.mode_for_copy_owned_by(dst.uid, dst.gid), like)
    }

    /// True when both sides' regular files hold the same bytes.
    pub(super) fn same_bytes(
        &self,
        a: &Option<(Held, Entry)>,
        b: &Option<(Held, Entry)>,
    ) -> Result<bool> {
        let (a, b) = (a.as_ref().ok_or(ENOENT)?, b.as_ref().ok_or(ENOENT)?);
        vfs::same_content(&a.0, &b.0, thread::should_stop)
    }
}

/// True for a regular file some task has open for writing.
pub(super) fn written_to(side: &Option<(Held, Entry)>) -> bool {
    matches!(side, Some((held, e)) if e.kind == Kind::File && held.open_for_write())
}
