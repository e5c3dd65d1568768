use super::*;
use proptest::prelude::*;

fn at(secs: i64) -> Time {
    Time { secs, nanos: 0 }
}

fn file(size: u64, secs: i64) -> Entry {
    Entry { kind: Kind::File, size, mtime: at(secs), mode: 0o644, uid: 1000, gid: 1000 }
}

fn dir() -> Entry {
    Entry { kind: Kind::Dir, size: 0, mtime: at(0), mode: 0o755, uid: 1000, gid: 1000 }
}

/// No event and no scan named the entry.
const NONE: Reason = Reason {
    changed_a: false,
    changed_b: false,
    rescan: false,
    closed_a: false,
    closed_b: false,
    moved_in: false,
    created: false,
    shallow: false,
};
const ON_A: Reason = Reason { changed_a: true, ..NONE };
const ON_B: Reason = Reason { changed_b: true, ..NONE };
const BOTH: Reason = Reason { changed_a: true, changed_b: true, ..NONE };
const SCAN: Reason = Reason { rescan: true, ..NONE };

#[test]
fn new_file_is_copied_to_the_other_side() {
    assert_eq!(decide_by_events(Some(file(4, 1)), None, ON_A), Action::Copy { from: Side::A });
    assert_eq!(decide_by_events(None, Some(file(4, 1)), ON_B), Action::Copy { from: Side::B });
}

#[test]
fn delete_is_mirrored() {
    assert_eq!(decide_by_events(None, Some(file(4, 1)), ON_A), Action::Remove { on: Side::B });
    assert_eq!(decide_by_events(Some(dir()), None, ON_B), Action::Remove { on: Side::A });
}

#[test]
fn a_modify_wins_over_a_delete() {
    // Deleted on B while A changed it: A's version comes back to B.
    assert_eq!(decide_by_events(Some(file(4, 9)), None, BOTH), Action::Copy { from: Side::A });
}

#[test]
fn scans_never_delete() {
    assert_eq!(decide_by_events(Some(file(4, 1)), None, SCAN), Action::Copy { from: Side::A });
    assert_eq!(decide_by_events(None, Some(dir()), SCAN), Action::MakeDir { on: Side::A });
    let scan_after_delete = Reason { rescan: true, ..ON_A };
    assert_eq!(decide_by_events(None, Some(file(1, 1)), scan_after_delete), Action::Copy { from: Side::B });
}

#[test]
fn our_own_copy_coming_back_is_no_work() {
    // After a copy both sides have the same size and mtime: the event of
    // the rename on the destination must not cause a second copy.
    assert_eq!(decide_by_events(Some(file(4, 7)), Some(file(4, 7)), ON_B), Action::Nothing);
    assert_eq!(decide_by_events(Some(file(4, 7)), Some(file(4, 7)), SCAN), Action::Nothing);
}

#[test]
fn a_close_after_writing_is_compared_byte_for_byte_within_one_timestamp_tick() {
    // Two writes of the same size in one tick look alike by size and mtime.
    let closed_on_a = Reason { closed_a: true, ..ON_A };
    assert_eq!(
        decide_by_events(Some(file(4, 7)), Some(file(4, 7)), closed_on_a),
        Action::CopyUnlessSame { from: Side::A }
    );
    // A scan has no such knowledge: equal by size and mtime is in sync.
    assert_eq!(
        decide_by_events(Some(file(4, 7)), Some(file(4, 7)), Reason { closed_a: true, ..SCAN }),
        Action::Nothing
    );
}

#[test]
fn a_file_renamed_over_a_lookalike_is_copied() {
    // n1 renamed over n2 on A, both written in one tick with one size.
    let moved_onto_a = Reason { moved_in: true, ..ON_A };
    assert_eq!(
        decide_by_events(Some(file(3, 7)), Some(file(3, 7)), moved_onto_a),
        Action::CopyUnlessSame { from: Side::A }
    );
}

#[test]
fn a_file_created_and_closed_on_one_side_is_new_there() {
    let written = Reason { created: true, closed_a: true, ..ON_A };
    assert_eq!(written.created_on(), Some(Side::A));
    assert_eq!(Reason { created: true, closed_b: true, ..ON_B }.created_on(), Some(Side::B));
    // Still being written, also changed on B, seen by a scan, or renamed in.
    assert_eq!(Reason { closed_a: false, ..written }.created_on(), None);
    assert_eq!(Reason { changed_b: true, ..written }.created_on(), None);
    assert_eq!(Reason { rescan: true, ..written }.created_on(), None);
    assert_eq!(Reason { moved_in: true, ..written }.created_on(), None);
}

#[test]
fn a_change_on_one_side_replaces_the_other() {
    assert_eq!(decide_by_events(Some(file(5, 9)), Some(file(4, 7)), ON_A), Action::Copy { from: Side::A });
    // Even when the changed side's mtime is older (set back by touch -d).
    assert_eq!(decide_by_events(Some(file(5, 1)), Some(file(4, 7)), ON_A), Action::Copy { from: Side::A });
}

#[test]
fn both_changed_is_a_conflict_won_by_the_newer_mtime_or_a() {
    assert_eq!(decide_by_events(Some(file(5, 9)), Some(file(4, 7)), BOTH), Action::Conflict { winner: Side::A });
    assert_eq!(decide_by_events(Some(file(5, 7)), Some(file(4, 9)), BOTH), Action::Conflict { winner: Side::B });
    assert_eq!(decide_by_events(Some(file(5, 7)), Some(file(4, 7)), SCAN), Action::Conflict { winner: Side::A });
}

#[test]
fn mode_only_change_copies_the_mode() {
    let mut x = file(4, 7);
    x.mode = 0o600;
    assert_eq!(decide_by_events(Some(x), Some(file(4, 7)), ON_A), Action::CopyMode { from: Side::A });
    assert_eq!(decide_by_events(Some(file(4, 7)), Some(x), ON_B), Action::CopyMode { from: Side::B });
}

#[test]
fn directories_are_made_and_scanned() {
    assert_eq!(decide_by_events(Some(dir()), None, ON_A), Action::MakeDir { on: Side::B });
    assert_eq!(decide_by_events(Some(dir()), Some(dir()), SCAN), Action::ScanDir { mode_from: None });
    assert_eq!(decide_by_events(Some(dir()), Some(dir()), ON_A), Action::Nothing);
}

#[test]
fn directory_modes_are_mirrored() {
    let private = Entry { mode: 0o700, ..dir() };
    assert_eq!(decide_by_events(Some(private), Some(dir()), ON_A), Action::CopyMode { from: Side::A });
    assert_eq!(decide_by_events(Some(private), Some(dir()), ON_B), Action::CopyMode { from: Side::B });
    assert_eq!(decide_by_events(Some(dir()), Some(private), SCAN), Action::ScanDir { mode_from: Some(Side::A) });
}

#[test]
fn writes_on_both_sides_within_one_tick_are_compared_byte_for_byte() {
    let closed_on_both = Reason { closed_a: true, closed_b: true, ..BOTH };
    assert_eq!(decide_by_events(Some(file(3, 7)), Some(file(3, 7)), closed_on_both), Action::ConflictUnlessSame);
    // Without a close on either side nothing was written.
    assert_eq!(decide_by_events(Some(file(3, 7)), Some(file(3, 7)), BOTH), Action::Nothing);
}

#[test]
fn special_files_are_skipped() {
    let fifo = Entry { kind: Kind::Special, ..file(0, 0) };
    assert_eq!(decide_by_events(Some(fifo), None, ON_A), Action::Skip);
    assert_eq!(decide_by_events(Some(fifo), Some(file(1, 1)), ON_A), Action::Skip);
}

#[test]
fn file_replacing_a_directory_wins_when_it_changed() {
    assert_eq!(decide_by_events(Some(file(1, 1)), Some(dir()), ON_A), Action::Copy { from: Side::A });
    assert_eq!(decide_by_events(Some(file(1, 1)), Some(dir()), ON_B), Action::MakeDir { on: Side::A });
}

#[test]
fn conflict_suffix_is_utc_date_and_time() {
    assert_eq!(&conflict_suffix(0), b".sync-conflict-19700101-000000");
    // 2026-11-23 15:26:41 UTC
    assert_eq!(&conflict_suffix(1_795_447_601), b".sync-conflict-20261123-152641");
    // 2000-02-29 23:59:59 UTC (a leap day)
    assert_eq!(&conflict_suffix(951_868_799), b".sync-conflict-20000229-235959");
}

#[test]
fn a_burst_on_one_name_is_one_piece_of_work() {
    let mut items: Vec<(&[u8], Reason)> = Vec::new();
    for _ in 0..1000 {
        items.push((b"log.txt", ON_A));
    }
    items.push((b"other", ON_B));
    items.push((b"log.txt", ON_B));
    let mut seen = Vec::new();
    items.sort_by(|x, y| x.0.cmp(y.0));
    for_each_coalesced(&items, |x, y| x.0.cmp(y.0), |x| x.1, |x, why| seen.push((x.0, why)));
    assert_eq!(seen, vec![(&b"log.txt"[..], BOTH), (&b"other"[..], ON_B)]);
}

fn entry() -> impl Strategy<Value = Option<Entry>> {
    let kind = prop_oneof![Just(Kind::File), Just(Kind::Dir), Just(Kind::Symlink), Just(Kind::Special)];
    proptest::option::of(
        (
            kind,
            0u64..4,
            prop_oneof![Just(i64::MIN), Just(-1i64), 0i64..4, Just(i64::MAX)],
            0u32..2,
            any::<bool>(),
            0u32..2,
        )
            .prop_map(|(kind, size, secs, nanos, setuid, uid)| Entry {
                kind,
                size,
                mtime: Time { secs, nanos },
                mode: if setuid { 0o4755 } else { 0o755 },
                uid,
                gid: uid,
            }),
    )
}

fn reason() -> impl Strategy<Value = Reason> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(changed_a, changed_b, rescan, closed, moved_in, created, shallow)| Reason {
            changed_a,
            changed_b,
            rescan,
            closed_a: closed && changed_a,
            closed_b: closed && changed_b,
            moved_in,
            created,
            shallow: shallow && rescan,
        },
    )
}

/// Applies an action to a two-sided model and says whether it makes the
/// sides agree (conflicts keep the loser elsewhere, so the name agrees).
fn apply(a: Option<Entry>, b: Option<Entry>, action: Action) -> (Option<Entry>, Option<Entry>) {
    match action {
        Action::Nothing | Action::Skip | Action::ScanDir { mode_from: None } => (a, b),
        Action::ScanDir { mode_from: Some(Side::A) } => (a, a),
        Action::ScanDir { mode_from: Some(Side::B) } => (b, b),
        // The model has no bytes: equal or not, A's version holds the name.
        Action::ConflictUnlessSame => (a, a),
        Action::Copy { from: Side::A }
        | Action::CopyUnlessSame { from: Side::A }
        | Action::Conflict { winner: Side::A } => (a, a),
        Action::Copy { from: Side::B }
        | Action::CopyUnlessSame { from: Side::B }
        | Action::Conflict { winner: Side::B } => (b, b),
        Action::MakeDir { on: Side::A } => (b, b),
        Action::MakeDir { on: Side::B } => (a, a),
        Action::Remove { .. } => (None, None),
        Action::CopyMode { from: Side::A } => (a, a),
        Action::CopyMode { from: Side::B } => (b, b),
    }
}

fn agree(a: &Option<Entry>, b: &Option<Entry>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x.in_sync_with(y) && x.mode_agrees_with(y),
        _ => false,
    }
}

proptest! {
    #[test]
    fn one_step_makes_both_sides_agree(a in entry(), b in entry(), why in reason()) {
        let action = decide_by_events(a, b, why);
        let special = |e: &Option<Entry>| matches!(e, Some(Entry { kind: Kind::Special, .. }));
        prop_assume!(!special(&a) && !special(&b));
        let (a2, b2) = apply(a, b, action);
        prop_assert!(agree(&a2, &b2), "{a:?} {b:?} {why:?} -> {action:?}");
        // Agreeing sides need nothing more: no echo, no endless ping-pong.
        // (An event without a close: a close is always copied.)
        let again = decide_by_events(a2, b2, Reason { changed_a: true, ..Reason::default() });
        prop_assert!(matches!(again, Action::Nothing | Action::ScanDir { mode_from: None }), "then {:?}", again);
    }

    #[test]
    fn scans_never_delete_anything(a in entry(), b in entry(), why in reason()) {
        let why = Reason { rescan: true, ..why };
        let action = decide_by_events(a, b, why);
        prop_assert!(!matches!(action, Action::Remove { .. }), "{:?}", action);
    }

    #[test]
    fn a_delete_never_beats_a_change_on_the_other_side(x in entry(), why in reason()) {
        prop_assume!(x.is_some());
        let why = Reason { changed_a: true, ..why };
        let action = decide_by_events(x, None, why);
        prop_assert!(!matches!(action, Action::Remove { .. }), "{:?}", action);
    }

    #[test]
    fn conflict_suffix_is_well_formed(secs in -10_000_000_000i64..100_000_000_000) {
        let s = conflict_suffix(secs);
        prop_assert!(s.starts_with(b".sync-conflict-"));
        prop_assert!(s[15..23].iter().chain(&s[24..30]).all(u8::is_ascii_digit));
        prop_assert_eq!(s[23], b'-');
    }
}

#[test]
fn times_past_2262_and_before_1970_order_without_overflow() {
    let (far, past) = (file(4, 9_300_000_000), file(4, -2_000_000_000));
    assert_eq!(decide_by_events(Some(past), Some(far), BOTH), Action::Conflict { winner: Side::B });
    assert_eq!(decide_by_events(Some(far), Some(past), BOTH), Action::Conflict { winner: Side::A });
    let s = conflict_suffix(i64::MAX);
    assert_eq!(&s[15..], b"99991231-235959");
    let s = conflict_suffix(i64::MIN);
    assert_eq!(&s[15..], b"00000101-000000");
}

#[test]
fn a_copy_owned_by_someone_else_carries_no_setuid_or_setgid_bit() {
    let prog = Entry { mode: 0o6755, uid: 1000, gid: 1000, ..file(4, 1) };
    assert_eq!(prog.mode_for_copy_owned_by(1000, 1000), 0o6755);
    assert_eq!(prog.mode_for_copy_owned_by(0, 0), 0o755);
    assert_eq!(prog.mode_for_copy_owned_by(1000, 0), 0o755);
    // Directories keep setgid: it only says which group new entries get.
    let shared = Entry { mode: 0o2775, ..dir() };
    assert_eq!(shared.mode_for_copy_owned_by(0, 0), 0o2775);
}

#[test]
fn a_stripped_copy_agrees_with_its_setuid_source() {
    let prog = Entry { mode: 0o4755, uid: 1000, gid: 1000, ..file(4, 1) };
    let copy = Entry { mode: 0o755, uid: 65534, gid: 65534, ..file(4, 1) };
    assert_eq!(decide_by_events(Some(prog), Some(copy), SCAN), Action::Nothing);
    assert_eq!(decide_by_events(Some(copy), Some(prog), ON_A), Action::Nothing);
    // Same owner: the bits are the caller's own to copy.
    let own = Entry { mode: 0o755, ..prog };
    assert_eq!(decide_by_events(Some(prog), Some(own), ON_A), Action::CopyMode { from: Side::A });
}

#[test]
fn kinds_that_clash_without_a_one_sided_change_keep_both() {
    let newer_file = file(4, 9);
    let older_dir = Entry { mtime: at(1), ..dir() };
    assert_eq!(decide_by_events(Some(older_dir), Some(newer_file), SCAN), Action::Conflict { winner: Side::B });
    assert_eq!(decide_by_events(Some(newer_file), Some(older_dir), BOTH), Action::Conflict { winner: Side::A });
    // A delete plus a create on one side replaces the other kind.
    assert_eq!(decide_by_events(Some(newer_file), Some(older_dir), ON_A), Action::Copy { from: Side::A });
}

#[test]
fn temporary_names_are_per_call() {
    let name = temp_name(0xabc, 7);
    assert!(is_temp_name_of(0xabc, &name));
    assert!(!is_temp_name_of(0xabd, &name));
    assert!(!is_temp_name_of(0xabc, b".usac-tmp-notes"));
    assert!(!is_temp_name_of(0xabc, &name[..name.len() - 1]));
    assert_eq!(&name[..], b".usac-tmp-0000000000000abc-0000000000000007");
}

proptest! {
    #[test]
    fn no_decision_destroys_a_version_without_a_change_against_it(a in entry(), b in entry(), why in reason()) {
        // Without a one-sided change, whatever differs is kept: no remove,
        // and a replaced version is a conflict that keeps it.
        prop_assume!(why.only_changed().is_none());
        let action = decide_by_events(a, b, why);
        prop_assert!(!matches!(action, Action::Remove { .. } | Action::Copy { .. } if a.is_some() && b.is_some()), "{:?}", action);
        prop_assert!(!matches!(action, Action::MakeDir { .. } if a.is_some() && b.is_some()), "{:?}", action);
    }
}

/// The three-way rules (the base is what both sides last agreed on).
mod with_base {
    use super::*;

    #[test]
    fn a_delete_on_one_side_is_mirrored_even_by_a_scan() {
        let f = file(4, 1);
        assert_eq!(decide(Some(f), None, Some(f), SCAN), Action::Remove { on: Side::B });
        assert_eq!(decide(Some(f), Some(f), None, NONE), Action::Remove { on: Side::A });
    }

    #[test]
    fn a_change_on_one_side_wins_without_a_conflict() {
        let (old, new) = (file(4, 1), file(5, 2));
        assert_eq!(decide(Some(old), Some(new), Some(old), SCAN), Action::Copy { from: Side::A });
        assert_eq!(decide(Some(old), Some(old), Some(new), BOTH), Action::Copy { from: Side::B });
    }

    #[test]
    fn changes_on_both_sides_conflict_unless_alike() {
        let (old, x, y) = (file(4, 1), file(5, 2), file(6, 3));
        assert_eq!(decide(Some(old), Some(x), Some(y), SCAN), Action::Conflict { winner: Side::B });
        assert_eq!(decide(Some(old), Some(x), Some(x), SCAN), Action::Nothing);
    }

    #[test]
    fn a_change_wins_over_a_delete() {
        let (old, new) = (file(4, 1), file(5, 2));
        assert_eq!(decide(Some(old), None, Some(new), SCAN), Action::Copy { from: Side::B });
    }

    #[test]
    fn a_scan_of_agreeing_directories_looks_inside() {
        assert_eq!(decide(Some(dir()), Some(dir()), Some(dir()), SCAN), Action::ScanDir { mode_from: None });
        assert_eq!(decide(Some(dir()), Some(dir()), Some(dir()), ON_A), Action::Nothing);
    }

    #[test]
    fn a_new_name_on_one_side_is_copied() {
        // Gone from the base (deleted on both, then created on one side).
        assert_eq!(decide(None, Some(file(1, 1)), None, SCAN), Action::Copy { from: Side::A });
    }

    fn base_entry() -> impl Strategy<Value = Option<Entry>> {
        entry()
    }

    /// The entry on `side` is replaced or removed by `action`.
    fn destroys(action: Action, side: Side, a: Option<Entry>, b: Option<Entry>) -> bool {
        let there = if side == Side::A { a } else { b };
        match action {
            Action::Remove { on } => on == side,
            Action::Copy { from } | Action::CopyUnlessSame { from } => from != side && there.is_some(),
            Action::MakeDir { on } => on == side && there.is_some(),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn no_action_destroys_a_version_that_differs_from_the_base(
            base in base_entry(), a in entry(), b in entry(), why in reason()
        ) {
            let special = |e: &Option<Entry>| matches!(e, Some(Entry { kind: Kind::Special, .. }));
            prop_assume!(!special(&a) && !special(&b));
            let action = decide(base, a, b, why);
            for side in [Side::A, Side::B] {
                let there = if side == Side::A { a } else { b };
                if destroys(action, side, a, b) {
                    // Only what is still the agreed version may go: with a
                    // base, unchanged since; without one, only where an event
                    // said the other side alone changed, never on a bare scan.
                    let kept_safe = match (base, there) {
                        (Some(base), Some(e)) => e.unchanged_since(&base),
                        (Some(_), None) => true,
                        (None, _) => !why.rescan || why.only_changed() == Some(side.other()),
                    };
                    prop_assert!(kept_safe, "{base:?} {a:?} {b:?} {why:?} -> {action:?}");
                }
            }
        }

        #[test]
        fn one_step_with_a_base_makes_both_sides_agree(base in base_entry(), a in entry(), b in entry(), why in reason()) {
            let special = |e: &Option<Entry>| matches!(e, Some(Entry { kind: Kind::Special, .. }));
            prop_assume!(!special(&a) && !special(&b));
            let action = decide(base, a, b, why);
            let (a2, b2) = apply(a, b, action);
            prop_assert!(agree(&a2, &b2), "{base:?} {a:?} {b:?} {why:?} -> {action:?}");
        }
    }
}

/// The remembered base on disk.
mod base_file {
    use super::*;
    use crate::record::{self, Unusable};

    const ROOTS: record::Roots = [1, 2, 3, 4];

    fn encode(names: &[(&[u8], Entry)], roots: &record::Roots) -> Vec<u8> {
        let mut out = record::header(roots).to_vec();
        for (path, entry) in names {
            let target: &[u8] = if entry.kind == Kind::Symlink { b"../target" } else { b"" };
            let mut rec = vec![0u8; record::record_len(path.len(), entry.kind, target.len()).unwrap()];
            record::put_record(&mut rec, path, entry, &[7, 8], &[9, 10], target);
            out.extend_from_slice(&rec);
        }
        let sum = record::checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8], roots: &record::Roots) -> Result<Vec<(Vec<u8>, Entry)>, Unusable> {
        record::records(bytes, roots)?.map(|r| r.map(|(p, e, _, _, _)| (p.to_vec(), e))).collect()
    }

    #[test]
    fn what_is_written_reads_back() {
        let far = Entry { mtime: Time { secs: i64::MIN, nanos: 999_999_999 }, ..file(u64::MAX, 0) };
        let link = Entry { kind: Kind::Symlink, ..file(9, 0) };
        let names: Vec<(&[u8], Entry)> = vec![(b"a", file(4, 1)), (b"d/\xff\xfe", dir()), (b"far", far), (b"l", link)];
        let bytes = encode(&names, &ROOTS);
        let back = decode(&bytes, &ROOTS).unwrap();
        assert_eq!(back, names.iter().map(|(p, e)| (p.to_vec(), *e)).collect::<Vec<_>>());
        let targets: Vec<Vec<u8>> = record::records(&bytes, &ROOTS).unwrap().map(|r| r.unwrap().4.to_vec()).collect();
        assert_eq!(targets, [&b""[..], b"", b"", b"../target"]);
    }

    #[test]
    fn other_roots_truncation_and_damage_are_refused() {
        let bytes = encode(&[(b"a", file(4, 1))], &ROOTS);
        assert_eq!(decode(&bytes, &[1, 2, 3, 5]), Err(Unusable::OtherRoots));
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut], &ROOTS).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(decode(&bad, &ROOTS).is_err(), "flip at {at}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_are_refused_or_read_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, &ROOTS);
            // With a valid header and checksum around them, too.
            let mut framed = record::header(&ROOTS).to_vec();
            framed.extend_from_slice(&bytes);
            let sum = record::checksum(&framed);
            framed.extend_from_slice(&sum.to_le_bytes());
            let _ = decode(&framed, &ROOTS);
        }
    }
}

proptest! {
    #[test]
    fn heap_sort_sorts_like_the_standard_sort(mut v in proptest::collection::vec(any::<u16>(), 0..300)) {
        let mut want = v.clone();
        want.sort();
        assert!(heap_sort_by(&mut v, |x, y| x.cmp(y), || false));
        prop_assert_eq!(v, want);
    }
}

#[test]
fn a_shallow_scan_leaves_unchanged_directories_to_their_own_marks() {
    let listed = Reason { shallow: true, ..SCAN };
    assert_eq!(decide(Some(dir()), Some(dir()), Some(dir()), listed), Action::Nothing);
    assert_eq!(decide(Some(dir()), Some(dir()), Some(dir()), SCAN), Action::ScanDir { mode_from: None });
    // A directory new since the base, or replaced by another, is descended.
    assert_eq!(decide(None, Some(dir()), Some(dir()), listed), Action::ScanDir { mode_from: None });
    let replaced = listed.merge(Reason::moved_in_on(Side::B));
    assert_eq!(decide(Some(dir()), Some(dir()), Some(dir()), replaced), Action::ScanDir { mode_from: None });
    // Files are decided three-way as by any scan.
    assert_eq!(decide(Some(file(1, 1)), None, Some(file(1, 1)), listed), Action::Remove { on: Side::B });
}

#[test]
fn a_deep_scan_wins_over_a_shallow_one() {
    let listed = Reason { shallow: true, ..SCAN };
    assert!(listed.merge(listed).shallow);
    assert!(!listed.merge(SCAN).shallow);
    assert!(!SCAN.merge(listed).shallow);
    assert!(listed.merge(ON_A).shallow);
    assert!(!ON_A.merge(ON_B).shallow);
}

#[test]
fn times_are_coarsened_as_a_file_system_keeps_them() {
    let t = Time { secs: 1_700_000_001, nanos: 987_654_321 };
    assert_eq!(t.coarsened(0), t);
    assert_eq!(t.coarsened(1), t);
    // exfat: 10 ms; 9p and ext4 with small inodes: 1 s; FAT's mtime: 2 s.
    assert_eq!(t.coarsened(10_000_000), Time { secs: 1_700_000_001, nanos: 980_000_000 });
    assert_eq!(t.coarsened(1_000_000_000), Time { secs: 1_700_000_001, nanos: 0 });
    assert_eq!(t.coarsened(2_000_000_000), Time { secs: 1_700_000_000, nanos: 0 });
    // Before 1970, rounded down too.
    assert_eq!(Time { secs: -3, nanos: 5 }.coarsened(2_000_000_000), Time { secs: -4, nanos: 0 });
    // Next to the ends of the range: no overflow.
    assert_eq!(Time { secs: i64::MIN, nanos: 1 }.coarsened(3_000_000_000).nanos, 0);
    assert_eq!(Time { secs: i64::MAX, nanos: 999_999_999 }.coarsened(2_000_000_000).secs, i64::MAX - 1);
}

proptest! {
    /// A coarsened time is never later, is less than one step earlier, and
    /// coarsening it again changes nothing: a copy whose time a coarser
    /// side cut compares equal to its source.
    #[test]
    fn coarsening_rounds_down_once(secs in any::<i64>(), nanos in 0u32..1_000_000_000,
                                   step in prop_oneof![Just(1u32), Just(1_000), Just(10_000_000),
                                                       Just(1_000_000_000), Just(2_000_000_000)]) {
        let t = Time { secs, nanos };
        let c = t.coarsened(step);
        prop_assert!(c <= t);
        prop_assert_eq!(c.coarsened(step), c);
        let as_nanos = |t: Time| i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos);
        if secs > i64::MIN + 2 {
            prop_assert!(as_nanos(t) - as_nanos(c) < i128::from(step));
        }
    }
}

#[test]
fn a_name_never_agreed_on_with_a_version_on_each_side_keeps_both() {
    // The event of B's write may come after A's was taken: A's version
    // must not replace B's, nor B's A's, whatever the events say.
    assert_eq!(decide(None, Some(file(5, 9)), Some(file(4, 7)), ON_A), Action::Conflict { winner: Side::A });
    assert_eq!(decide(None, Some(file(5, 7)), Some(file(4, 9)), ON_A), Action::Conflict { winner: Side::B });
    assert_eq!(decide(None, Some(dir()), Some(file(4, 9)), ON_A), Action::Conflict { winner: Side::B });
    let closed_on_b = Reason { closed_b: true, ..ON_B };
    assert_eq!(decide(None, Some(file(4, 7)), Some(file(4, 7)), closed_on_b), Action::ConflictUnlessSame);
    // With a base, the side that did not change since is older news.
    assert_eq!(decide(Some(file(4, 7)), Some(file(5, 9)), Some(file(4, 7)), ON_A), Action::Copy { from: Side::A });
    // One side only: copied, as before.
    assert_eq!(decide(None, Some(file(4, 7)), None, ON_A), Action::Copy { from: Side::A });
}

#[test]
fn a_delete_of_a_name_never_agreed_on_deletes_nothing_on_the_other_side() {
    // No base: a union. The other side's version was never mirrored, so
    // the delete cannot have been of it: it is copied back, not removed.
    assert_eq!(decide(None, Some(file(4, 7)), None, ON_B), Action::Copy { from: Side::A });
    assert_eq!(decide(None, None, Some(file(4, 7)), ON_A), Action::Copy { from: Side::B });
    assert_eq!(decide(None, Some(dir()), None, ON_B), Action::MakeDir { on: Side::B });
    // With a base, the delete is mirrored.
    assert_eq!(decide(Some(file(4, 7)), Some(file(4, 7)), None, ON_B), Action::Remove { on: Side::A });
}

/// FAT's `s_time_min` and `s_time_max` (1980 to 2107, UTC).
const FAT_TIMES: (i64, i64) = (315_532_800, 4_354_819_198);
const WIDE: (i64, i64) = (i64::MIN, i64::MAX);

#[test]
fn fat_and_exfat_hold_no_modes_no_symlinks_and_not_every_name() {
    let vfat = Holds::of(0x4d44, 1, FAT_TIMES);
    let exfat = Holds::of(0x2011_bab0, 10_000_000, FAT_TIMES);
    let ext4 = Holds::of(0xef53, 1, WIDE);
    for fat in [vfat, exfat] {
        assert!(!fat.modes && !fat.symlinks);
        for refused in [
            &b"a:b"[..],
            b"q?",
            b"x*",
            b"l<",
            b"g>",
            b"p|",
            b"quo\"te",
            b"back\\slash",
            b"trail.",
            b"space ",
            b"tab\t",
            b"\xff\xfe",
        ] {
            assert!(!fat.takes_name(refused), "{:?}", String::from_utf8_lossy(refused));
        }
        for taken in [&b"ok"[..], b".hidden", b"a.b", b" lead", "caf\u{e9}".as_bytes()] {
            assert!(fat.takes_name(taken));
        }
    }
    assert!(ext4.modes && ext4.symlinks && ext4.takes_name(b"a:b") && ext4.takes_name(b"\xff."));
    // FAT keeps mtimes in 2-second steps though it says 1 ns.
    assert_eq!(vfat.time_granularity, 2_000_000_000);
    assert_eq!(exfat.time_granularity, 10_000_000);
    assert_eq!(ext4.common_times(&vfat), (2_000_000_000, FAT_TIMES));
    assert_eq!(Holds::default_mode(Kind::File), 0o644);
    assert_eq!(Holds::default_mode(Kind::Dir), 0o755);
}

#[test]
fn times_outside_what_a_side_keeps_compare_as_it_keeps_them() {
    let (min, max) = FAT_TIMES;
    assert_eq!(at(0).clamped(FAT_TIMES), at(min));
    assert_eq!(Time { secs: i64::MAX, nanos: 5 }.clamped(FAT_TIMES), at(max));
    let inside = Time { secs: min + 7, nanos: 3 };
    assert_eq!(inside.clamped(FAT_TIMES), inside);
    assert_eq!(Time { secs: i64::MIN, nanos: 1 }.clamped(WIDE), Time { secs: i64::MIN, nanos: 1 });
}

#[test]
fn a_temporary_name_tells_its_call() {
    let name = temp_name(0x0123_4567_89ab_cdef, 42);
    assert_eq!(temp_call(&name), Some(0x0123_4567_89ab_cdef));
    assert_eq!(temp_call(b".usac-tmp-"), None);
    let mut upper = name;
    upper[TEMP_PREFIX.len()] = b'A';
    assert_eq!(temp_call(&upper), None);
    let mut no_dash = name;
    no_dash[TEMP_PREFIX.len() + 16] = b'x';
    assert_eq!(temp_call(&no_dash), None);
    let mut longer = name.to_vec();
    longer.push(b'0');
    assert_eq!(temp_call(&longer), None);
    assert_eq!(temp_call(b"file"), None);
}

#[test]
fn inode_numbers_on_fuse_and_change_cookies_on_xfs_say_nothing_of_content() {
    let fuse = Holds::of(0x6573_5546, 1, WIDE);
    let xfs = Holds::of(0x5846_5342, 1, WIDE);
    let ext4 = Holds::of(0xef53, 1, WIDE);
    assert!(!fuse.stable_inodes && fuse.content_cookie && fuse.modes);
    assert!(xfs.stable_inodes && !xfs.content_cookie && xfs.modes);
    assert!(ext4.stable_inodes && ext4.content_cookie);
}

fn conflict_name_of(name: &[u8], n: u8) -> Vec<u8> {
    let mut out = [0u8; NAME_MAX];
    let len = conflict_name(name, &conflict_suffix(0), n, &mut out);
    out[..len].to_vec()
}

#[test]
fn a_conflict_name_is_the_name_and_its_suffix_while_it_fits() {
    assert_eq!(conflict_name_of(b"notes.txt", 0), b"notes.txt.sync-conflict-19700101-000000");
    assert_eq!(conflict_name_of(b"notes.txt", 2), b"notes.txt.sync-conflict-19700101-000000-2");
    assert_eq!(conflict_name_of(b"notes.txt", 12), b"notes.txt.sync-conflict-19700101-000000-12");
}

#[test]
fn a_long_conflict_name_loses_the_end_of_its_stem_only() {
    let name = [b"n".repeat(240), b".txt".to_vec()].concat();
    let short = conflict_name_of(&name, 0);
    assert_eq!(short.len(), NAME_MAX);
    assert!(short.ends_with(b"n.txt.sync-conflict-19700101-000000"));
    let numbered = conflict_name_of(&name, 3);
    assert_eq!(numbered.len(), NAME_MAX);
    assert!(numbered.ends_with(b".txt.sync-conflict-19700101-000000-3"));
    // Without an extension worth keeping, the name itself is cut.
    let plain = conflict_name_of(&b"x".repeat(255), 0);
    assert_eq!(plain, [b"x".repeat(225), b".sync-conflict-19700101-000000".to_vec()].concat());
}

#[test]
fn a_shortened_conflict_name_never_splits_a_character() {
    let name = [b"a".to_vec(), "é".repeat(120).into_bytes(), b".md".to_vec()].concat();
    let short = conflict_name_of(&name, 0);
    assert!(short.len() <= NAME_MAX);
    assert!(std::str::from_utf8(&short).is_ok(), "{short:?}");
    assert!(short.ends_with(b".md.sync-conflict-19700101-000000"));
}

proptest! {
    #[test]
    fn conflict_names_always_fit_and_keep_the_suffix(
        name in proptest::collection::vec(1u8..=255, 1..=NAME_MAX),
        n in 0u8..100,
    ) {
        let name: Vec<u8> = name.into_iter().map(|c| if c == b'/' { b'_' } else { c }).collect();
        let out = conflict_name_of(&name, n);
        prop_assert!(out.len() <= NAME_MAX);
        let suffix = conflict_suffix(0);
        let at = out.len() - if n == 0 { 0 } else if n < 10 { 2 } else { 3 } - suffix.len();
        prop_assert_eq!(&out[at..at + suffix.len()], &suffix[..]);
        if name.len() + out.len() - at <= NAME_MAX {
            prop_assert_eq!(&out[..at], &name[..]);
        }
    }
}

#[test]
fn a_close_that_brought_nothing_new_leaves_a_delete_on_the_other_side_to_hold() {
    let base = file(4, 7);
    let closed_a_deleted_b = Reason { changed_a: true, changed_b: true, closed_a: true, ..NONE };
    // Counted as a change, the close brings the deleted file back.
    assert_eq!(decide(Some(base), Some(base), None, closed_a_deleted_b), Action::Copy { from: Side::A });
    // Known to have changed nothing (its change cookie), it does not.
    assert_eq!(
        decide(Some(base), Some(base), None, closed_a_deleted_b.without_news_on(Side::A)),
        Action::Remove { on: Side::A }
    );
    // A close on both sides of which one brought nothing: the other wins.
    let closed_both = Reason { closed_a: true, closed_b: true, ..BOTH };
    assert_eq!(
        decide(Some(base), Some(base), Some(file(5, 9)), closed_both.without_news_on(Side::A)),
        Action::Copy { from: Side::B }
    );
}
