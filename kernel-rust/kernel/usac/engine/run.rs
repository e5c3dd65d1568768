// SPDX-License-Identifier: GPL-2.0

//! The thread's loop: sleeps until the handler records a change, takes
//! the pending names in batches, completes renames, and hands each name to
//! [`Engine::sync_name`]; saves the base between batches.

use super::remember::Saver;
use super::*;

impl Engine {
    /// The body of the sync thread.
    /// The thread's loop; `this` is `self`, shared with the saves it hands
    /// to a kworker.
    pub(super) fn sync(&self, this: &Arc<Self>) {
        let _as_caller = self.creds.assume();
        let _charged = self.memcg.charge();
        let mut limiter = RateLimit::new(5, 10);
        // Directories to reconcile once the queue is empty, because work in
        // them raced with the user's own changes; and how many such rounds
        // ran since the last event, to give up on a race that never ends.
        let mut later: KVVec<KVec<u8>> = KVVec::new();
        // Names left until a writer on the other side closes the file.
        let mut parked: KVVec<Dirty> = KVVec::new();
        let mut rounds = 0;
        // Jiffies left of the grace for created files, once it started.
        let mut grace_left = None;
        let mut saver = Saver::new();
        // Room for the handler to record directories that lost events,
        // allocated ahead, since the handler cannot wait for it.
        let mut room = None;
        let mut started = false;
        let mut failures = Failures::new();
        // Before the first batch, which reconciles the whole tree.
        match self.load_rules() {
            Err(err) if !thread::should_stop() => pr_warn!(
                "cannot read {} (error {}): read again when it changes\n",
                kernel::str::BStr::from_bytes(ignore::RULES_FILE),
                err.to_errno()
            ),
            _ => {}
        }
        loop {
            if room.is_none() {
                room = KVec::with_capacity(MAX_LOST_DIRS, GFP).ok();
            }
            // Only this thread changes the base: read before the sleep is
            // prepared, since its mutex may block.
            let unsaved = self.base.lock().unsaved();
            // Marked as sleeping before checking for work, so that a wake-up
            // in between is not lost.
            let asleep = Sleeper::prepare();
            if thread::should_stop() {
                break;
            }
            let grace_over = grace_left == Some(0);
            let (mut batch, mut moves, mut rescan_all) = self.take_pending(grace_over);
            if grace_over || !batch.is_empty() {
                grace_left = None;
            }
            let lost = self.events.take_lost(&mut room);
            let idle = batch.is_empty() && moves.is_empty() && !rescan_all && lost.is_empty();
            let retry = failures.wait_ms();
            let retry_due = idle && retry == Some(0);
            if idle && !retry_due && (later.is_empty() || rounds >= MAX_RETRY_ROUNDS) {
                // Directories that kept racing for all their rounds are not
                // given up: they join the names retried after a back-off,
                // each said once.
                for dir in core::mem::replace(&mut later, KVVec::new()).into_iter() {
                    if failures.failed(&dir) && limiter.allows() {
                        pr_info!(
                            "\"{}\" kept changing while it was mirrored: tried again after a back-off\n",
                            kernel::str::BStr::from_bytes(if dir.is_empty() { b"." } else { &dir })
                        );
                    }
                }
                // The next retry of failed names bounds every sleep.
                let retry = failures.wait_ms().map(kernel::time::msecs_to_jiffies);
                if self.events.pending.lock().dirty.is_empty() {
                    if !unsaved {
                        match retry {
                            Some(wait) => drop(asleep.sleep_for(wait)),
                            None => asleep.sleep(),
                        }
                        continue;
                    }
                    match u32::try_from(saver.due_in_ms()) {
                        Ok(wait) if wait > 0 => {
                            let wait = kernel::time::msecs_to_jiffies(wait);
                            asleep.sleep_for(retry.map_or(wait, |r| r.min(wait)));
                        }
                        _ => {
                            drop(asleep);
                            saver.save(this, &mut limiter);
                        }
                    }
                } else {
                    // Only created files wait: give their writers the grace
                    // to close them, unless something else comes.
                    let grace = grace_left
                        .unwrap_or_else(|| kernel::time::msecs_to_jiffies(CREATE_GRACE_MS));
                    let slept = retry.map_or(grace, |r| r.min(grace));
                    let left = asleep.sleep_for(slept);
                    grace_left = Some(grace.saturating_sub(slept.saturating_sub(left)));
                }
                continue;
            }
            // Running from here: what follows may sleep.
            drop(asleep);
            if retry_due {
                match failures.retry() {
                    Ok((names, whole_tree)) => {
                        rescan_all |= whole_tree;
                        for path in names.into_iter() {
                            let why = deep_scan();
                            if batch.push(Dirty { path, why }, GFP).is_err() {
                                rescan_all = true;
                            }
                        }
                    }
                    Err(_) => rescan_all = true,
                }
            }
            if idle {
                rounds += 1;
                for path in core::mem::replace(&mut later, KVVec::new()).into_iter() {
                    if batch
                        .push(
                            Dirty {
                                path,
                                why: deep_scan(),
                            },
                            GFP,
                        )
                        .is_err()
                    {
                        self.events.pending.lock().rescan_all = true;
                    }
                }
            } else {
                rounds = 0;
            }
            self.complete_renames(&mut batch, &mut moves, &mut rescan_all);
            // The first batch reconciles the whole tree by design.
            if rescan_all && started && limiter.allows() {
                pr_info!("events lost beyond what is tracked: reconciling the whole tree\n");
            }
            started = true;
            let names = Names {
                later: &mut later,
                parked: &mut parked,
                failures: &mut failures,
            };
            self.process(batch, moves, rescan_all, lost, &mut limiter, names);
            if saver.due_in_ms() <= 0 && self.base.lock().unsaved() {
                saver.save(this, &mut limiter);
            }
        }
    }

    /// Says a failure that is retried: a read-only side once for all its
    /// names, any other per name.
    pub(super) fn report_failure(
        &self,
        path: &[u8],
        err: Error,
        failures: &mut Failures,
        limiter: &mut Option<RateLimit>,
    ) {
        if err != EROFS {
            return limiter.report(path, err);
        }
        for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
            if self.root(side).is_read_only() && failures.first_read_only(i) {
                pr_warn!(
                    "dir_{:?} is read-only: changes wait until it is writable again\n",
                    side
                );
            }
        }
    }

    /// Takes what the handler left, unless it is only created files still
    /// within their grace (`grace_over` false).
    pub(super) fn take_pending(&self, grace_over: bool) -> (KVVec<Dirty>, KVVec<Move>, bool) {
        let mut pending = self.events.pending.lock();
        let ready = core::mem::take(&mut pending.urgent)
            || grace_over
            || pending.rescan_all
            || !pending.moves.is_empty();
        if !ready {
            return (KVVec::new(), KVVec::new(), false);
        }
        let batch = pending.take_dirty();
        let moves = core::mem::replace(&mut pending.moves, KVVec::new());
        let rescan_all = core::mem::replace(&mut pending.rescan_all, false);
        (batch, moves, rescan_all)
    }

    /// The thread may run between the two events of one rename; a half
    /// alone would turn a renamed tree into a delete plus a copy. So wait
    /// for every rename whose first half was taken to finish, and pair the
    /// second halves that came meanwhile.
    pub(super) fn complete_renames(
        &self,
        batch: &mut KVVec<Dirty>,
        moves: &mut KVVec<Move>,
        rescan_all: &mut bool,
    ) {
        // Each round needs a new rename to start during the last wait.
        for _ in 0..MAX_RENAME_WAITS {
            let mut waited = false;
            for mv in moves.iter() {
                if let Some(from) = mv.waiting_for_to() {
                    // A directory gone meanwhile has no rename to wait for.
                    let _ = vfs::wait_for_renames_in(self.root(mv.side), vfs::split(from).0);
                    waited = true;
                }
            }
            if !waited {
                return;
            }
            let (more, halves, rescan) = self.take_pending(true);
            *rescan_all |= rescan;
            for dirty in more.into_iter() {
                if batch.push(dirty, GFP).is_err() {
                    *rescan_all = true;
                }
            }
            for half in halves.into_iter() {
                if half.from.is_none() {
                    let first = moves.iter_mut().find(|m| {
                        m.side == half.side
                            && m.cookie == half.cookie
                            && m.waiting_for_to().is_some()
                    });
                    if let Some(first) = first {
                        first.to = half.to;
                    }
                } else {
                    // Without room it is reconciled as a delete plus a create.
                    let _ = moves.push(half, GFP);
                }
            }
        }
    }

    pub(super) fn process(
        &self,
        mut batch: KVVec<Dirty>,
        moves: KVVec<Move>,
        rescan_all: bool,
        lost: KVec<DirRef>,
        limiter: &mut Option<RateLimit>,
        names: Names<'_>,
    ) {
        let Names {
            later,
            parked,
            failures,
        } = names;
        if unpark(&mut batch, parked).is_err() {
            self.events.pending.lock().rescan_all = true;
        }
        let mut work: KVVec<Dirty> = KVVec::new();
        if rescan_all && push_scan(&mut work, b"").is_err() {
            self.events.pending.lock().rescan_all = true;
        }
        // Where events were lost, the directory is listed again and each
        // name decided three-way, so a delete among the lost events holds.
        let listed = Reason {
            rescan: true,
            shallow: true,
            ..Reason::default()
        };
        for dir in lost.iter() {
            if limiter.allows() {
                pr_info!(
                    "events lost in \"{}\" on dir_{:?}: listing it again\n",
                    kernel::str::BStr::from_bytes(dir.path()),
                    dir.side()
                );
            }
            match self.scan_dir(dir.path(), &mut work, listed) {
                // Gone or replaced: its parent's events tell.
                Err(err) if !vfs::raced(err) && !thread::should_stop() => {
                    self.events.pending.lock().rescan_all = true;
                }
                _ => {}
            }
        }
        drop(lost);
        // Renames first, so the names they touch then look in sync and a
        // moved tree is not copied again.
        let mut renamed: KVVec<&[u8]> = KVVec::new();
        for mv in moves.iter() {
            if let (Some(from), Some(to)) = (&mv.from, &mv.to) {
                match self.mirror_move(mv.side, from, to) {
                    Ok(Some(kind)) => {
                        // Marks below a moved directory carry the old path.
                        if (kind == Kind::Dir && push_scan(&mut work, to).is_err())
                            || renamed.push(to, GFP).is_err()
                        {
                            self.events.pending.lock().rescan_all = true;
                        }
                    }
                    // Raced with the user: the names are reconciled one by one.
                    Ok(None) => {}
                    Err(err) if vfs::raced(err) => {}
                    Err(err) => limiter.report(to, err),
                }
            }
        }
        // A heap sort: core's sort needs more stack than a kthread has to spare.
        let order = |x: &Dirty, y: &Dirty| x.path.as_slice().cmp(y.path.as_slice());
        if !plan::heap_sort_by(batch.as_mut_slice(), order, thread::should_stop) {
            return;
        }
        let recent = batch.as_slice();
        let mut handle = |path: &[u8], why: Reason, work: &mut KVVec<Dirty>| {
            match self.sync_name(path, why, work, parked, recent) {
                Ok(()) => failures.succeeded(path),
                // Raced with the user (a parent vanished or appeared, a
                // directory filled up): reconcile the parent directory, which
                // never deletes, instead of leaving the two sides apart.
                Err(err) if vfs::raced(err) => {
                    let parent = vfs::split(path).0;
                    let again = clone_bytes(parent).and_then(|p| Ok(later.push(p, GFP)?));
                    if (!why.rescan && push_scan(work, parent).is_err()) || again.is_err() {
                        self.events.pending.lock().rescan_all = true;
                    }
                }
                // Interrupted by the teardown: nothing to report.
                Err(_) if thread::should_stop() => {}
                Err(err) if Failures::passes(err) => {
                    if failures.failed(path) {
                        self.report_failure(path, err, failures, limiter);
                    }
                }
                Err(err) => limiter.report(path, err),
            }
        };
        self.drain(&mut work, &mut handle);
        plan::for_each_coalesced(
            recent,
            |x, y| x.path.as_slice().cmp(y.path.as_slice()),
            |d| d.why,
            |d, mut why| {
                // Renamed on the other side too: nothing new arrived there.
                if renamed.iter().any(|to| *to == d.path.as_slice()) {
                    why.moved_in = false;
                }
                thread::yield_now();
                if !thread::should_stop() {
                    handle(&d.path, why, &mut work);
                    self.drain(&mut work, &mut handle);
                }
            },
        );
    }

    /// Works through names found by scans, depth first.
    pub(super) fn drain(
        &self,
        work: &mut KVVec<Dirty>,
        handle: &mut impl FnMut(&[u8], Reason, &mut KVVec<Dirty>),
    ) {
        while let Some(item) = vec::pop(work) {
            thread::yield_now();
            if thread::should_stop() {
                return;
            }
            handle(&item.path, item.why, work);
        }
    }
}

/// What the sync thread keeps between batches.
pub(super) struct Names<'a> {
    /// Directories to reconcile once the queue is empty.
    pub(super) later: &'a mut KVVec<KVec<u8>>,
    /// Names waiting for a writer's close, with their reasons.
    pub(super) parked: &'a mut KVVec<Dirty>,
    /// Names to try again after a back-off.
    pub(super) failures: &'a mut Failures,
}

/// Leaves `rel` until an event names it again (the close it waits for),
/// keeping `why`: merged then, both sides' changes are known, and a change
/// on each side is a conflict that keeps both versions.
pub(super) fn park(parked: &mut KVVec<Dirty>, rel: &[u8], why: Reason) -> Result {
    if let Some(known) = parked.iter_mut().find(|d| d.path.as_slice() == rel) {
        known.why = known.why.merge(why);
        return Ok(());
    }
    push_dirty(parked, rel, why)
}

/// Moves the parked names that `batch` names again into it, where they
/// coalesce with their new events.
pub(super) fn unpark(batch: &mut KVVec<Dirty>, parked: &mut KVVec<Dirty>) -> Result {
    if parked.is_empty() {
        return Ok(());
    }
    for item in core::mem::replace(parked, KVVec::new()).into_iter() {
        let named = batch.iter().any(|d| d.path == item.path);
        if named { &mut *batch } else { &mut *parked }.push(item, GFP)?;
    }
    Ok(())
}
