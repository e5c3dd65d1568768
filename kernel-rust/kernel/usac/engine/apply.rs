// SPDX-License-Identifier: GPL-2.0

//! Carrying out a copy: into a temporary name, flushed off the thread,
//! then renamed over its target after checking that the target is still
//! what the plan saw.

use super::*;

impl Engine {
    /// Copies a file just created and written on `from` to the other side
    /// without looking there first. `Ok(false)` when the other side has the
    /// name after all, or `from` no regular file: then the name takes the
    /// full look.
    pub(super) fn copy_new(&self, from: Side, rel: &[u8]) -> Result<bool> {
        let Some((held, src)) = self.stat(from, rel)? else {
            return Ok(false);
        };
        if src.kind != Kind::File {
            return Ok(false);
        }
        let cookie = if self.holds(from).content_cookie {
            held.change_cookie()?
        } else {
            0
        };
        match self.copy(from, rel, &src, Some((&held, cookie)), None) {
            Ok(copied) => self.agreed_on(rel, &copied).map(|()| true),
            Err(e) if e == EAGAIN => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Mirrors the rename `from` -> `to` seen on `side` as a rename on the
    /// other side, when that side still holds what was renamed and nothing
    /// under the new name. Returns the kind of what it renamed; if it did
    /// not, the two names are reconciled one by one as a delete and a create.
    pub(super) fn mirror_move(&self, side: Side, from: &[u8], to: &[u8]) -> Result<Option<Kind>> {
        let other = side.other();
        // Into or out of what the rules ignore: only the other name counts.
        if self.verdict(from)?.ignored || self.verdict(to)?.ignored {
            return Ok(None);
        }
        let Some(moved) = self.stat(side, to)? else {
            return Ok(None);
        };
        let Some(there) = self.stat(other, from)? else {
            return Ok(None);
        };
        let there = Self::as_compared_with(&moved, &there)?;
        if self.stat(other, to)?.is_some() || !moved.1.in_sync_with(&there) {
            return Ok(None);
        }
        match vfs::rename(self.root(other), from, to) {
            // Refused for this entry (overlayfs moves no directory of its
            // lower layer): a delete plus a create, name by name.
            Err(e) if e == EXDEV => return Ok(None),
            other => other?,
        }
        self.base.lock().rename(from, to)?;
        Ok(Some(moved.1.kind))
    }

    /// Copies the file or symlink `rel` from `from` to the other side under a
    /// temporary name, then renames it over the target, which must still be
    /// `dst` as it was looked at (or nothing, without one). `source` is
    /// `rel` on `from` with its change cookie, when the caller looked it up
    /// already. Returns what the copy holds: what both sides now agree on.
    pub(super) fn copy(
        &self,
        from: Side,
        rel: &[u8],
        src: &Entry,
        source: Option<(&Held, u32)>,
        dst: Option<Replacing<'_>>,
    ) -> Result<Placed> {
        let to = from.other();
        let (dir, name) = vfs::split(rel);
        let seq = self.temp_seq.fetch_add(1, Ordering::Relaxed);
        let temp = naming::temp_name(self.call_id, seq);
        let temp_rel = vfs::join(dir, &temp)?;
        let looked_up;
        let (source, cookie) = match source {
            Some(seen) => seen,
            None => {
                // Opened only as the kind it was decided on: a FIFO renamed
                // over the name meanwhile is no file to read.
                let (held, now) = self.stat(from, rel)?.ok_or(ENOENT)?;
                if now.kind != src.kind {
                    return Err(EAGAIN);
                }
                let cookie = if src.kind == Kind::File && self.holds(from).content_cookie {
                    held.change_cookie()?
                } else {
                    0
                };
                looked_up = held;
                (&looked_up, cookie)
            }
        };
        let mut target = KVec::new();
        let written = match src.kind {
            Kind::File => {
                let (like, carry) = self.as_copied(from, rel, src)?;
                vfs::copy_file(
                    source,
                    self.root(to),
                    &temp_rel,
                    &like,
                    carry,
                    &self.copy_ways[index(to)],
                    self,
                )
                .map(Some)
            }
            Kind::Symlink => {
                target = vfs::read_link(source)?;
                vfs::symlink(self.root(to), &temp_rel, &target).map(|()| None)
            }
            Kind::Dir | Kind::Special => Err(EISDIR),
        };
        // The copy is closed once in place (when `copied` goes).
        let placed = written.and_then(|copied| {
            self.place(to, dir, &temp, name, rel, dst)?;
            let mut ids = Ids::default();
            ids.inos[index(from)] = source.ino();
            ids.cookies[index(from)] = cookie;
            let (ino, cookie) = match &copied {
                Some(copied) => copied.ids()?,
                None => (vfs::lookup(self.root(to), rel)?.map_or(0, |h| h.ino()), 0),
            };
            ids.inos[index(to)] = ino;
            if self.holds(to).content_cookie {
                ids.cookies[index(to)] = cookie;
            }
            // What the other side holds now: a source that shrank while it
            // was read is copied shorter, and is not what was agreed on.
            let entry = Entry {
                size: copied.as_ref().map_or(src.size, |c| c.len),
                ..*src
            };
            Ok(Placed { entry, target, ids })
        });
        if placed.is_err() {
            // Never leave a temporary name behind.
            let _ = vfs::unlink(self.root(to), &temp_rel);
        }
        placed
    }

    /// What a copy of `src` (`rel` on `from`) gets on the other side besides
    /// content and mtime. From a side without modes and owners, a file the
    /// copy replaces keeps its own (a private file stays private); a new
    /// one gets [`Holds::default_mode`] and the caller's owner.
    pub(super) fn as_copied(
        &self,
        from: Side,
        rel: &[u8],
        src: &Entry,
    ) -> Result<(Entry, vfs::Carry)> {
        let to = from.other();
        let carry = vfs::Carry {
            modes: self.holds(to).modes,
            owner: self.holds(from).modes && self.holds(to).modes,
        };
        if self.holds(from).modes || !self.holds(to).modes {
            return Ok((*src, carry));
        }
        let Some(there) = vfs::lookup(self.root(to), rel)? else {
            return Ok((*src, carry));
        };
        let there = there.stat()?;
        // The content comes from a side anyone may have written (a FAT
        // stick): the file it replaces keeps its bits, never set-id ones.
        let like = Entry {
            mode: there.mode & !plan::SET_ID_BITS,
            uid: there.uid,
            gid: there.gid,
            ..*src
        };
        Ok((
            like,
            vfs::Carry {
                modes: true,
                owner: true,
            },
        ))
    }

    /// `rel` is a temporary name of the call `call`: one that runs (on a
    /// tree that overlaps this one) owns it; one that ended left it behind
    /// in a crash, half written maybe, and it goes (its source is mirrored
    /// anew).
    pub(super) fn temp_of_another_call(&self, call: u64, rel: &[u8]) -> Result {
        if call == self.call_id || registry::call_is_live(call) {
            return Ok(());
        }
        for side in [Side::A, Side::B] {
            if matches!(self.stat(side, rel)?, Some((_, e)) if e.kind == Kind::File) {
                vfs::unlink(self.root(side), rel)?;
                pr_info!(
                    "removed \"{}\" from dir_{:?}: a temporary copy left by a call that did not end\n",
                    kernel::str::BStr::from_bytes(rel),
                    side
                );
            }
        }
        Ok(())
    }

    /// Renames the copy `temp` over `name` on side `to`, unless the user
    /// changed what is there since it was looked at (`dst`): another
    /// inode, the same one rewritten (its change cookie moved), or one
    /// somebody opened for writing meanwhile. Then `EAGAIN`, and the user's
    /// version stays; its own event brings the name back.
    pub(super) fn place(
        &self,
        to: Side,
        dir: &[u8],
        temp: &[u8],
        name: &[u8],
        rel: &[u8],
        dst: Option<Replacing<'_>>,
    ) -> Result {
        let Some(dst) = dst else {
            // Nothing was there: the rename itself checks it stays so.
            return match vfs::rename_in(self.root(to), dir, temp, name, Target::MustNotExist) {
                Err(e) if e == EEXIST => Err(EAGAIN),
                other => other,
            };
        };
        match self.stat(to, rel)? {
            Some((held, now)) if now == dst.entry && held.ino() == dst.held.ino() => {
                if dst.cookie != 0 && held.change_cookie()? != dst.cookie {
                    return Err(EAGAIN);
                }
            }
            _ => return Err(EAGAIN),
        }
        if dst.entry.kind == Kind::Dir {
            self.remove_tree(to, rel, &[], None)?.or_not_empty()?;
            return match vfs::rename_in(self.root(to), dir, temp, name, Target::MustNotExist) {
                Err(e) if e == EEXIST => Err(EAGAIN),
                other => other,
            };
        }
        let target = Target::ReplaceOnly {
            seen: dst.held,
            closed: dst.closed,
        };
        vfs::rename_in(self.root(to), dir, temp, name, target)
    }
}

impl vfs::CopyWaits for Engine {
    fn stop(&self) -> bool {
        thread::should_stop()
    }

    /// Waits until a copy's bytes are on its device, unless asked to stop.
    /// The flush runs on a kworker (seconds on a slow disk, which a signal
    /// must not wait for), holding the pair: an unmount waits for it.
    fn flush(&self, flush: vfs::Flush) -> Result {
        if flush.is_noop() {
            return Ok(());
        }
        let pair = self.registration.clone();
        let flushing = move || {
            let flushed = flush.run();
            drop(pair);
            flushed
        };
        thread::off_thread(flushing, thread::should_stop)?
    }
}

/// What a copy put in place: the entry, a symlink's exact target, and the
/// inodes of the source and of the copy.
pub(super) struct Placed {
    pub(super) entry: Entry,
    pub(super) target: KVec<u8>,
    pub(super) ids: Ids,
}

/// The entry a copy is to replace, as it was looked at.
#[derive(Clone, Copy)]
pub(super) struct Replacing<'a> {
    pub(super) held: &'a Held,
    pub(super) entry: Entry,
    /// Its change cookie then (0: not kept).
    pub(super) cookie: u32,
    /// Its writer's close was just reported.
    pub(super) closed: bool,
}
