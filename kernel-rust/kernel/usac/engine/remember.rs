// SPDX-License-Identifier: GPL-2.0

//! The remembered base: loaded at the start (trusted only when the caller
//! owns it), updated as both sides agree, saved off the thread at most once
//! a second and a last time when the call ends.

use super::apply::Placed;
use super::*;

impl Engine {
    /// The base the last call left in `a` for this pair, or an empty one
    /// (then nothing is deleted at start: a name on one side is copied).
    /// Names the base has but one side lacks are deletions to mirror; when
    /// that is most of them, the side is more likely an empty or wrong disk
    /// than emptied by its user, and they are not mirrored.
    ///
    /// Only a base file that the caller (or root) owns and nobody else may
    /// write is trusted: anyone who can write `dir_a`'s top could otherwise
    /// forge one that makes a privileged call delete what that user cannot.
    /// A name that cannot be looked up (a directory another user closed
    /// meanwhile) stays as remembered. Loading ends with `EINTR` on a signal.
    pub(super) fn load_base(a: &DirPath, b: &DirPath, roots: &Roots, caller: u32) -> Result<Base> {
        let Some(held) = vfs::lookup(a, record::FILE_NAME)? else {
            return Ok(Base::new());
        };
        let file = held.stat()?;
        let trusted = (file.uid == caller || file.uid == 0) && file.mode & 0o022 == 0;
        // A name that still matters is an inode on one side at least (a
        // hard link is one on its side, but files of their own on the
        // other): a larger base is not read, nor decoded beyond that many
        // names, so that its memory stays bounded by the trees'.
        let max_names = match (a.inodes_in_use(), b.inodes_in_use()) {
            (Some(on_a), Some(on_b)) => on_a.saturating_add(on_b),
            _ => u64::MAX,
        };
        let max_bytes = max_names
            .saturating_mul(BASE_BYTES_PER_NAME)
            .min(MAX_BASE_BYTES);
        let unusable = if !trusted {
            Err(Unusable::Untrusted)
        } else if file.size > max_bytes {
            Err(Unusable::LargerThanTheTrees)
        } else {
            match vfs::read_file(&held, max_bytes) {
                Ok(bytes) => match Base::decode(&bytes, roots, max_names, wait::signal_pending)? {
                    Ok(base) => Ok(base),
                    Err(why) => Err(why),
                },
                Err(e) if e == ENOMEM || e == EINTR => return Err(e),
                Err(_) => Err(Unusable::Unreadable),
            }
        };
        let mut base = match unusable {
            Ok(base) => base,
            Err(why) => {
                pr_info!(
                    "the remembered base {} in dir_a is not usable ({:?}): nothing is deleted at start\n",
                    kernel::str::BStr::from_bytes(record::FILE_NAME),
                    why
                );
                return Ok(Base::new());
            }
        };
        for (side, root) in [(Side::A, a), (Side::B, b)] {
            let mut missing = KVVec::new();
            let mut unlooked = 0usize;
            let mut stopped = false;
            for (path, _) in base.names() {
                thread::yield_now();
                if wait::signal_pending() {
                    stopped = true;
                    break;
                }
                match vfs::lookup(root, path) {
                    Ok(Some(_)) => {}
                    Ok(None) => missing.push(clone_bytes(path)?, GFP)?,
                    Err(e) if e == ENOMEM => return Err(e),
                    Err(e) => {
                        if unlooked == 0 {
                            pr_info!(
                                "cannot look up \"{}\" in dir_{:?} at start (error {}): kept as remembered\n",
                                kernel::str::BStr::from_bytes(path),
                                side,
                                e.to_errno()
                            );
                        }
                        unlooked = unlooked.saturating_add(1);
                    }
                }
            }
            if stopped {
                thread::drop_later((base, missing));
                return Err(EINTR);
            }
            if unlooked > 1 {
                pr_info!(
                    "{} remembered names in all could not be looked up in dir_{:?} at start\n",
                    unlooked,
                    side
                );
            }
            let len = base.len();
            if missing.len() > INTERLOCK_MIN && missing.len() > len / 2 {
                pr_warn!(
                    "{} of {} remembered names are missing from dir_{:?}: not deleting them from the other side\n",
                    missing.len(),
                    len,
                    side
                );
                for path in missing.iter() {
                    base.forget(path)?;
                }
            }
        }
        Ok(base)
    }

    /// Writes the base into `dir_a` for the next call, if it changed since
    /// the last save: complete under a temporary name first, then renamed
    /// over the last one. Runs as the caller, on any thread.
    pub(super) fn save_base(&self) -> Result {
        let _as_caller = self.creds.assume();
        let _charged = self.memcg.charge();
        let _one_at_a_time = self.saving.lock();
        // Taken before the flushes: what changes later is not on the
        // devices yet, and waits for the next save.
        let (bytes, version) = {
            let base = self.base.lock();
            if !base.unsaved() {
                return Ok(());
            }
            (base.encode(&self.roots)?, base.version())
        };
        // What the base records as agreed must be on both devices first: a
        // side that a crash rolled back must not look changed by its user
        // (its older version would then be copied over the newer one).
        self.b.sync_file_system()?;
        if !self.a.same_file_system(&self.b) {
            self.a.sync_file_system()?;
        }
        let temp = naming::temp_name(self.call_id, self.temp_seq.fetch_add(1, Ordering::Relaxed));
        let written = vfs::write_new_file(&self.a, &temp, &bytes)
            .and_then(|()| vfs::rename_in(&self.a, b"", &temp, record::FILE_NAME, Target::Replace));
        match written {
            Ok(()) => self.base.lock().saved(version),
            Err(_) => {
                let _ = vfs::unlink(&self.a, &temp);
            }
        }
        written
    }

    /// Both sides agree on `entry` under `rel` now, held by the inodes
    /// `ids` (the roots themselves need no record: they are the pair).
    pub(super) fn agreed(&self, rel: &[u8], entry: &Entry, ids: Ids) -> Result {
        if rel.is_empty() {
            return Ok(());
        }
        // A symlink is agreed on with its exact target (A's, as both hold it).
        let target = match entry.kind {
            Kind::Symlink => match vfs::lookup(&self.a, rel)? {
                Some(held) => vfs::read_link(&held)?,
                None => return Ok(()),
            },
            _ => KVec::new(),
        };
        self.base.lock().set(rel, *entry, ids, &target)
    }

    /// Both sides hold the copy just `placed` under `rel`.
    pub(super) fn agreed_on(&self, rel: &[u8], placed: &Placed) -> Result {
        self.base
            .lock()
            .set(rel, placed.entry, placed.ids, &placed.target)
    }

    /// The base's entry and both sides' as the planner should see them:
    /// size and time cannot tell two symlinks apart, so each distinct
    /// target among the three gets a number, which stands for its size.
    pub(super) fn with_link_classes(
        &self,
        rel: &[u8],
        agreed: Option<Entry>,
        a: &Option<(Held, Entry)>,
        b: &Option<(Held, Entry)>,
    ) -> Result<[Option<Entry>; 3]> {
        let link = |e: &Option<Entry>| matches!(e, Some(e) if e.kind == Kind::Symlink);
        let mut seen = [agreed, a.as_ref().map(|s| s.1), b.as_ref().map(|s| s.1)];
        if !seen.iter().any(link) {
            return Ok(seen);
        }
        let target = |side: &Option<(Held, Entry)>| match side {
            Some((held, e)) if e.kind == Kind::Symlink => vfs::read_link(held).map(Some),
            _ => Ok(None),
        };
        let (ta, tb) = (target(a)?, target(b)?);
        let base_link = link(&agreed);
        let as_agreed = |t: &KVec<u8>| -> Result<bool> {
            Ok(base_link && self.base.lock().same_target(rel, t)?)
        };
        let class_a = match &ta {
            Some(t) if as_agreed(t)? => 0,
            _ => 1,
        };
        let class_b = match &tb {
            Some(t) if as_agreed(t)? => 0,
            Some(t) if ta.as_ref() == Some(t) => class_a,
            _ => 2,
        };
        for (entry, class) in seen.iter_mut().zip([0, class_a, class_b]) {
            if let Some(e) = entry.as_mut().filter(|e| e.kind == Kind::Symlink) {
                e.size = class;
            }
        }
        Ok(seen)
    }

    /// Neither side holds `rel` any more.
    pub(super) fn forgotten(&self, rel: &[u8]) -> Result {
        self.base.lock().forget(rel)
    }

    /// Saves the base if it changed, after a save still running, and frees
    /// it.
    pub(super) fn finish(&self) {
        if let Err(err) = self.save_base() {
            pr_warn!(
                "cannot save {} in dir_a (error {}): the next call starts from an older base\n",
                kernel::str::BStr::from_bytes(record::FILE_NAME),
                err.to_errno()
            );
        }
        drop(core::mem::replace(&mut *self.base.lock(), Base::new()));
    }
}

/// When the thread writes the base: after work, at most once a second (an
/// idle thread with unsaved changes wakes once for it, then sleeps until
/// the next event), less and less often while saves fail (a side whose
/// device fails), said once; and a last time when the call ends.
pub(super) struct Saver {
    pub(super) at: Ktime,
    pub(super) every_ms: i64,
}

impl Saver {
    pub(super) fn new() -> Self {
        Self {
            at: Ktime::ktime_get(),
            every_ms: SAVE_EVERY_MS,
        }
    }

    /// Milliseconds until the next save is due: none left when 0 or less.
    pub(super) fn due_in_ms(&self) -> i64 {
        let since = ktime_ms_delta(Ktime::ktime_get(), self.at);
        self.every_ms.saturating_sub(since)
    }

    /// Saves the base on a kworker: its flushes of both file systems may
    /// take seconds on a slow disk, which a signal must not wait for. When
    /// the thread is asked to stop, the save goes on alone.
    pub(super) fn save(&mut self, engine: &Arc<Engine>, limiter: &mut Option<RateLimit>) {
        self.at = Ktime::ktime_get();
        let shared = engine.clone();
        match thread::off_thread(move || shared.save_base(), thread::should_stop) {
            Ok(Ok(())) => self.every_ms = SAVE_EVERY_MS,
            Ok(Err(err)) => {
                if self.every_ms == SAVE_EVERY_MS && limiter.allows() {
                    pr_warn!(
                        "cannot save {} in dir_a (error {}): retried, up to {} s apart\n",
                        kernel::str::BStr::from_bytes(record::FILE_NAME),
                        err.to_errno(),
                        SAVE_RETRY_MAX_MS / 1000
                    );
                }
                self.every_ms = self.every_ms.saturating_mul(2).min(SAVE_RETRY_MAX_MS);
            }
            Err(_) => {}
        }
    }
}

/// The end of a call after its thread stopped: the last save of the base,
/// on a worker, so that the caller returns at once however large the base
/// is. The pair stays registered until then: a new call for it waits, an
/// unmount too.
#[pin_data]
pub(super) struct Finishing {
    pub(super) engine: Arc<Engine>,
    #[pin]
    pub(super) work: Work<Finishing>,
}

impl_has_work! {
    impl HasWork<Self> for Finishing { self.work }
}

impl Finishing {
    pub(super) fn start(engine: Arc<Engine>) {
        let own = engine.clone();
        let finishing = Arc::pin_init(
            pin_init!(Finishing {
                engine: own,
                work <- new_work!("usac_finish"),
            }),
            GFP,
        );
        match finishing {
            Ok(finishing) => {
                let _ = workqueue::system_unbound().enqueue(finishing);
            }
            // Without the memory to defer it, the caller waits for it.
            Err(_) => engine.finish(),
        }
    }
}

impl WorkItem for Finishing {
    type Pointer = Arc<Finishing>;

    fn run(this: Arc<Finishing>) {
        this.engine.finish();
    }
}
