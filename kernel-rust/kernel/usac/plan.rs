// SPDX-License-Identifier: GPL-2.0

//! What to do with one name, given what each side holds and which side
//! reported a change. Pure logic on `core` only: the same file builds in the
//! kernel and on the host (`userland/plan`), where it is unit and property
//! tested.

/// One of the two mirrored trees.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    /// `dir_a`, the first argument.
    A,
    /// `dir_b`, the second argument.
    B,
}

impl Side {
    /// The other tree.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// The kind of a directory entry, as far as mirroring cares.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A regular file: its content, mode and mtime are mirrored.
    File,
    /// A directory: mirrored as a directory, its entries one by one.
    Dir,
    /// A symbolic link: its target text is mirrored, never followed.
    Symlink,
    /// A FIFO, socket or device node: skipped.
    Special,
}

/// A modification time as the file system keeps it: any second a user can
/// set (before 1970, after 2262) fits, and comparing needs no arithmetic.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Time {
    /// Seconds since the epoch.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nanos: u32,
}

impl Time {
    /// This time as a file system that keeps times to `granularity`
    /// nanoseconds (its `s_time_gran`: a divisor of a second, or a whole
    /// number of seconds) keeps it: rounded down.
    pub fn coarsened(self, granularity: u32) -> Time {
        const SECOND: u32 = 1_000_000_000;
        if granularity <= 1 {
            self
        } else if granularity < SECOND {
            Time {
                secs: self.secs,
                nanos: self.nanos - self.nanos % granularity,
            }
        } else {
            let step = i64::from(granularity / SECOND);
            Time {
                // Out of range only next to i64::MIN, where no file system
                // keeps a time: left as it is.
                secs: self
                    .secs
                    .checked_sub(self.secs.rem_euclid(step))
                    .unwrap_or(self.secs),
                nanos: 0,
            }
        }
    }
}

impl Time {
    /// This time as a file system that keeps only times from `min` to
    /// `max` seconds (its `s_time_min`, `s_time_max`) keeps it: clamped.
    pub fn clamped(self, (min, max): (i64, i64)) -> Time {
        if self.secs < min {
            Time {
                secs: min,
                nanos: 0,
            }
        } else if self.secs > max {
            Time {
                secs: max,
                nanos: 0,
            }
        } else {
            self
        }
    }
}

/// `MSDOS_SUPER_MAGIC`: vfat and msdos.
const FAT_MAGIC: u64 = 0x4d44;
/// `EXFAT_SUPER_MAGIC`.
const EXFAT_MAGIC: u64 = 0x2011_bab0;
/// `FUSE_SUPER_MAGIC`.
const FUSE_MAGIC: u64 = 0x6573_5546;
/// `XFS_SUPER_MAGIC`.
const XFS_MAGIC: u64 = 0x5846_5342;

/// What a file system can hold of a tree, decided once per side from its
/// superblock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Holds {
    /// Permission bits and owners (FAT and exFAT have one fixed mode,
    /// and refuse a chmod or chown that would change it).
    pub modes: bool,
    /// Symbolic links.
    pub symlinks: bool,
    /// Any name: FAT and exFAT refuse some characters, trailing dots and
    /// spaces, and names that are no UTF-8.
    pub any_name: bool,
    /// How finely it keeps an mtime, in nanoseconds.
    pub time_granularity: u32,
    /// The first and last second it can keep.
    pub times: (i64, i64),
    /// An inode number stays with its file: not so on FUSE, where a
    /// daemon may number a path anew each time the kernel forgets it.
    pub stable_inodes: bool,
    /// The change cookie moves only when content or attributes change:
    /// XFS moves it whenever it logs the inode (blocks allocated at
    /// writeback, an atime update after a read).
    pub content_cookie: bool,
}

impl Holds {
    /// For a superblock with `magic`, `s_time_gran` and the range of
    /// `s_time_min` to `s_time_max`.
    pub fn of(magic: u64, time_granularity: u32, times: (i64, i64)) -> Holds {
        let fat_like = magic == FAT_MAGIC || magic == EXFAT_MAGIC;
        Holds {
            modes: !fat_like,
            symlinks: !fat_like,
            any_name: !fat_like,
            // FAT says 1 ns, but keeps an mtime in 2-second steps.
            time_granularity: if magic == FAT_MAGIC {
                2_000_000_000
            } else {
                time_granularity
            },
            times,
            stable_inodes: magic != FUSE_MAGIC,
            content_cookie: magic != XFS_MAGIC,
        }
    }

    /// False for a name this file system refuses (or would store as
    /// another name: FAT strips trailing dots).
    pub fn takes_name(&self, name: &[u8]) -> bool {
        const REFUSED: &[u8] = b"\"*/:<>?\\|";
        self.any_name
            || (core::str::from_utf8(name).is_ok()
                && !name.iter().any(|c| *c < 0x20 || REFUSED.contains(c))
                && !matches!(name.last(), Some(b'.' | b' ')))
    }

    /// How two sides compare times: at the coarser granularity, within the
    /// range both can keep.
    pub fn common_times(&self, other: &Holds) -> (u32, (i64, i64)) {
        (
            self.time_granularity.max(other.time_granularity),
            (
                self.times.0.max(other.times.0),
                self.times.1.min(other.times.1),
            ),
        )
    }

    /// The permission bits an entry of `kind` gets on a side that keeps
    /// them, from a side that does not (as a umask of 022 gives).
    pub fn default_mode(kind: Kind) -> u32 {
        match kind {
            Kind::Dir => 0o755,
            Kind::Symlink => 0o777,
            Kind::File | Kind::Special => 0o644,
        }
    }
}

/// What one side holds under a name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry {
    /// The kind of the entry.
    pub kind: Kind,
    /// Size in bytes (for a symlink: the length of its target).
    pub size: u64,
    /// Modification time (for a symlink: zero, the sync cannot set it).
    pub mtime: Time,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Owner (kernel user ID).
    pub uid: u32,
    /// Group (kernel group ID).
    pub gid: u32,
}

/// The setuid and setgid bits.
pub const SET_ID_BITS: u32 = 0o6000;

impl Entry {
    /// Both sides hold the same thing: what the sync itself leaves behind
    /// (same kind, size and mtime), so a change coming back is no new work.
    pub fn in_sync_with(&self, other: &Entry) -> bool {
        self.kind == other.kind
            && (self.kind == Kind::Dir || (self.size == other.size && self.mtime == other.mtime))
    }

    /// Still what `base` recorded: kind, size and mtime (a directory: its
    /// kind), and permission bits that agree.
    pub fn unchanged_since(&self, base: &Entry) -> bool {
        self.kind == base.kind
            && (self.kind == Kind::Dir || (self.size == base.size && self.mtime == base.mtime))
            && self.mode_agrees_with(base)
    }

    /// The permission bits a copy of this entry gets when it belongs to
    /// `uid`:`gid`: setuid and setgid only where those are this entry's
    /// owner and group, as `cp` does, so a copy never grants a privilege
    /// that its owner did not.
    pub fn mode_for_copy_owned_by(&self, uid: u32, gid: u32) -> u32 {
        if self.kind != Kind::File || (uid, gid) == (self.uid, self.gid) {
            self.mode
        } else {
            self.mode & !SET_ID_BITS
        }
    }

    /// The permission bits agree: equal, or `other` is what a copy of this
    /// entry may carry under its owner (and the other way round).
    pub fn mode_agrees_with(&self, other: &Entry) -> bool {
        self.mode_for_copy_owned_by(other.uid, other.gid) == other.mode
            || other.mode_for_copy_owned_by(self.uid, self.gid) == self.mode
    }
}

/// Why a name is looked at.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Reason {
    /// An event on side A named it.
    pub changed_a: bool,
    /// An event on side B named it.
    pub changed_b: bool,
    /// A scan (start, new directory, lost events) named it: nothing may be
    /// deleted for it, and directories are descended into.
    pub rescan: bool,
    /// A writer closed it on side A: copy it even if the closing writer
    /// still counts as open (fsnotify reports the close before the count
    /// drops).
    pub closed_a: bool,
    /// The same on side B.
    pub closed_b: bool,
    /// A rename put it here: what the name holds now may look like what
    /// it held before (same size, same timestamp tick) yet differ.
    pub moved_in: bool,
    /// A regular file was created under the name.
    pub created: bool,
    /// The scan that named it only lists one directory again (events were
    /// lost there): directories inside it are watched themselves, so one
    /// unchanged since the base is not descended into.
    pub shallow: bool,
}

impl Reason {
    /// Merges the reasons of two records of the same name.
    pub fn merge(self, other: Reason) -> Reason {
        Reason {
            changed_a: self.changed_a || other.changed_a,
            changed_b: self.changed_b || other.changed_b,
            rescan: self.rescan || other.rescan,
            closed_a: self.closed_a || other.closed_a,
            closed_b: self.closed_b || other.closed_b,
            moved_in: self.moved_in || other.moved_in,
            created: self.created || other.created,
            // Shallow only when no scan of the two was deep.
            shallow: (self.rescan || other.rescan)
                && (self.shallow || !self.rescan)
                && (other.shallow || !other.rescan),
        }
    }

    /// A writer closed it, on either side.
    pub fn closed(self) -> bool {
        self.closed_a || self.closed_b
    }

    /// A writer closed it on `side`.
    pub fn closed_on(self, side: Side) -> bool {
        match side {
            Side::A => self.closed_a,
            Side::B => self.closed_b,
        }
    }

    /// The events on `side` brought nothing new (its change cookie says
    /// so): what is left are the other side's.
    pub fn without_news_on(self, side: Side) -> Reason {
        let other = self.changed_on(side.other());
        Reason {
            changed_a: self.changed_a && side != Side::A,
            changed_b: self.changed_b && side != Side::B,
            closed_a: self.closed_a && side != Side::A,
            closed_b: self.closed_b && side != Side::B,
            // Not known per side: kept while the other side has events.
            moved_in: self.moved_in && other,
            created: self.created && other,
            ..self
        }
    }

    /// The side that created a file and closed it after writing, when
    /// nothing else named it: the other side almost never has the name yet,
    /// so the file may be copied over without looking there first, by a
    /// rename that refuses to replace anything.
    pub fn created_on(self) -> Option<Side> {
        match (
            self.created && self.closed() && !self.rescan && !self.moved_in,
            self.only_changed(),
        ) {
            (true, side) => side,
            (false, _) => None,
        }
    }

    /// A rename onto the name on `side`.
    pub fn moved_in_on(side: Side) -> Reason {
        Reason {
            changed_a: side == Side::A,
            changed_b: side == Side::B,
            moved_in: true,
            ..Reason::default()
        }
    }

    /// An event on `side` named it.
    pub fn changed_on(self, side: Side) -> bool {
        match side {
            Side::A => self.changed_a,
            Side::B => self.changed_b,
        }
    }

    /// The side that alone changed, if exactly one did.
    pub fn only_changed(self) -> Option<Side> {
        match (self.changed_a, self.changed_b) {
            (true, false) => Some(Side::A),
            (false, true) => Some(Side::B),
            _ => None,
        }
    }
}

/// What to do with one name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Action {
    /// Both sides agree.
    Nothing,
    /// Make the other side's entry a copy of `from`'s file or symlink
    /// (replacing whatever it holds there).
    Copy {
        /// The side whose version wins.
        from: Side,
    },
    /// Make a directory on `on` (replacing a non-directory), then scan it.
    MakeDir {
        /// The side that lacks the directory.
        on: Side,
    },
    /// A directory on both sides: scan both, after copying the permission
    /// bits from `mode_from` if they differ.
    ScanDir {
        /// The side whose mode wins, when the modes differ.
        mode_from: Option<Side>,
    },
    /// Remove the entry (a whole tree for a directory) from `on`.
    Remove {
        /// The side that still holds what the other deleted.
        on: Side,
    },
    /// Only the permission bits differ: copy them from `from`.
    CopyMode {
        /// The side whose mode wins.
        from: Side,
    },
    /// `from` wrote a file that looks like the other side's (same size,
    /// same timestamp tick): compare the bytes, copy if they differ, else
    /// copy the permission bits if those differ.
    CopyUnlessSame {
        /// The side that wrote.
        from: Side,
    },
    /// Both sides wrote a file and the two look alike: compare the bytes,
    /// and if they differ keep both as a conflict that `dir_a` wins (the
    /// tie rule); else copy `dir_a`'s permission bits if those differ.
    ConflictUnlessSame,
    /// Both sides changed the name: `winner` replaces it, the other version
    /// is kept under a conflict name on both sides.
    Conflict {
        /// The newer mtime, or A on a tie.
        winner: Side,
    },
    /// A FIFO, socket or device node: never mirrored.
    Skip,
}

/// Decides what to do with one name, three-way: `base` is what both sides
/// last agreed on for it, if anything. A side changed when it differs from
/// the base (or an event says so where size and time cannot tell: a close,
/// a symlink). One side changed: it wins, a delete included. Both changed:
/// a conflict unless both hold the same. No base: a union, by
/// [`decide_by_events`] but never deleting.
pub fn decide(base: Option<Entry>, a: Option<Entry>, b: Option<Entry>, why: Reason) -> Action {
    let Some(base) = base else {
        return match (decide_by_events(a, b, why), a, b) {
            // Never agreed on, and a version on each side: each is news,
            // whatever the events say (the other side's write may come a
            // moment after this side's event was taken). Both are kept.
            (Action::Copy { .. } | Action::MakeDir { .. }, Some(x), Some(y)) => Action::Conflict {
                winner: newer(&x, &y),
            },
            (Action::CopyUnlessSame { .. }, Some(_), Some(_)) => Action::ConflictUnlessSame,
            // A union: the version left was never mirrored, so the delete
            // was not of it. It is copied back, never removed.
            (Action::Remove { on }, Some(x), None) | (Action::Remove { on }, None, Some(x)) => {
                create_from(on, x)
            }
            (action, ..) => action,
        };
    };
    let changed = |now: Option<Entry>, side: Side| match now {
        None => true,
        Some(e) => {
            !e.unchanged_since(&base)
                || (why.changed_on(side)
                    && (why.closed_on(side) || why.moved_in || e.kind == Kind::Symlink))
        }
    };
    let (changed_a, changed_b) = (changed(a, Side::A), changed(b, Side::B));
    let dirs = matches!((a, b), (Some(x), Some(y)) if x.kind == Kind::Dir && y.kind == Kind::Dir);
    if !changed_a && !changed_b {
        // Both as last agreed; a scan still looks inside directories, but
        // one of a single directory leaves those below to their own marks.
        return if dirs && why.rescan && !why.shallow {
            Action::ScanDir { mode_from: None }
        } else {
            Action::Nothing
        };
    }
    let why_now = Reason {
        changed_a,
        changed_b,
        rescan: false,
        ..why
    };
    match decide_by_events(a, b, why_now) {
        Action::Nothing if dirs && why.rescan => Action::ScanDir { mode_from: None },
        Action::CopyMode { from } if dirs && why.rescan => Action::ScanDir {
            mode_from: Some(from),
        },
        action => action,
    }
}

/// Decides what to do with one name from the two sides and the events
/// alone: what a name without a base gets.
pub fn decide_by_events(a: Option<Entry>, b: Option<Entry>, why: Reason) -> Action {
    match (a, b) {
        (None, None) => Action::Nothing,
        (Some(x), None) => only_one_side(Side::A, x, why),
        (None, Some(y)) => only_one_side(Side::B, y, why),
        (Some(x), Some(y)) => both_sides(x, y, why),
    }
}

fn only_one_side(holder: Side, entry: Entry, why: Reason) -> Action {
    if entry.kind == Kind::Special {
        return Action::Skip;
    }
    // Deleted on the other side, and not changed here since: mirror the
    // delete. A modify on this side, or any scan, wins over a delete.
    if !why.rescan && why.only_changed() == Some(holder.other()) {
        return Action::Remove { on: holder };
    }
    create_from(holder, entry)
}

fn create_from(from: Side, entry: Entry) -> Action {
    if entry.kind == Kind::Dir {
        Action::MakeDir { on: from.other() }
    } else {
        Action::Copy { from }
    }
}

fn newer(x: &Entry, y: &Entry) -> Side {
    if y.mtime > x.mtime {
        Side::B
    } else {
        Side::A
    }
}

fn both_sides(x: Entry, y: Entry, why: Reason) -> Action {
    if x.kind == Kind::Special || y.kind == Kind::Special {
        return Action::Skip;
    }
    let mode_from = (!x.mode_agrees_with(&y)).then(|| why.only_changed().unwrap_or(Side::A));
    if x.kind == Kind::Dir && y.kind == Kind::Dir {
        return match (why.rescan, mode_from) {
            (true, _) => Action::ScanDir { mode_from },
            (false, Some(from)) => Action::CopyMode { from },
            (false, None) => Action::Nothing,
        };
    }
    if x.in_sync_with(&y) {
        // Size and mtime cannot tell two writes within one timestamp tick
        // apart: after a close or a rename onto the name, the bytes decide.
        if (why.closed() || why.moved_in) && x.kind == Kind::File {
            match why.only_changed() {
                Some(from) => return Action::CopyUnlessSame { from },
                None if why.changed_a && why.changed_b => return Action::ConflictUnlessSame,
                None => {}
            }
        }
        return match mode_from {
            Some(from) => Action::CopyMode { from },
            None => Action::Nothing,
        };
    }
    match why.only_changed() {
        // Kinds differ after a change on one side only: a delete plus a
        // create there, mirrored as such.
        Some(from) if x.kind != y.kind => create_from(from, if from == Side::A { x } else { y }),
        Some(from) => Action::Copy { from },
        // Two versions and no way to tell which one is older news: the
        // newer takes the name, the other is kept beside it, whatever its
        // kind (a directory is renamed, never removed).
        None => Action::Conflict {
            winner: newer(&x, &y),
        },
    }
}

/// Sorts `items` by `order` in place, without recursion and with a stack
/// frame of a few words (core's sorts keep scratch space on the stack,
/// which a kernel thread deep in its work cannot spare).
///
/// Gives up (leaving `items` in some order) and returns false once `stop`
/// says so: a large batch takes long to sort on a slow machine.
pub fn heap_sort_by<T>(
    items: &mut [T],
    order: impl Fn(&T, &T) -> core::cmp::Ordering,
    stop: impl Fn() -> bool,
) -> bool {
    let less = |items: &[T], i: usize, j: usize| order(&items[i], &items[j]).is_lt();
    let sift_down = |items: &mut [T], mut root: usize, end: usize| loop {
        let mut child = 2 * root + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && less(items, child, child + 1) {
            child += 1;
        }
        if !less(items, root, child) {
            return;
        }
        items.swap(root, child);
        root = child;
    };
    let len = items.len();
    for start in (0..len / 2).rev() {
        if stop() {
            return false;
        }
        sift_down(items, start, len);
    }
    for end in (1..len).rev() {
        if stop() {
            return false;
        }
        items.swap(0, end);
        sift_down(items, 0, end);
    }
    true
}

/// Calls `act` once per run of equal items in `items`, which are sorted by
/// `order`, with the reasons of the run merged: a burst of events on one
/// name becomes one piece of work.
pub fn for_each_coalesced<T>(
    items: &[T],
    order: impl Fn(&T, &T) -> core::cmp::Ordering,
    reason: impl Fn(&T) -> Reason,
    mut act: impl FnMut(&T, Reason),
) {
    let mut start = 0;
    while start < items.len() {
        let mut why = reason(&items[start]);
        let mut end = start + 1;
        while end < items.len() && order(&items[start], &items[end]) == core::cmp::Ordering::Equal {
            why = why.merge(reason(&items[end]));
            end += 1;
        }
        act(&items[start], why);
        start = end;
    }
}
