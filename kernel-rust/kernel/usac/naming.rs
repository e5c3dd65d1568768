// SPDX-License-Identifier: GPL-2.0

//! The names the sync makes: the temporary names copies are written under
//! (each call's own, told apart from another call's), and the conflict
//! names that keep both versions. Pure logic on `core` only, host-tested
//! with `plan.rs` (`userland/plan`).

/// Prefix of the temporary names the sync writes before renaming into
/// place.
pub const TEMP_PREFIX: &[u8] = b".usac-tmp-";

/// Length of a temporary name: the prefix, the call's 16 hex digits, a
/// dash and a sequence number's 16 hex digits.
pub const TEMP_NAME_LEN: usize = TEMP_PREFIX.len() + 33;

/// The temporary name number `seq` of the call `call` (a random number
/// drawn per call): no user's name is taken for one by accident.
pub fn temp_name(call: u64, seq: u64) -> [u8; TEMP_NAME_LEN] {
    let mut out = [b'-'; TEMP_NAME_LEN];
    out[..TEMP_PREFIX.len()].copy_from_slice(TEMP_PREFIX);
    put_hex(&mut out[TEMP_PREFIX.len()..], call);
    put_hex(&mut out[TEMP_PREFIX.len() + 17..], seq);
    out
}

/// The call whose temporary name `name` is, if it is one.
pub fn temp_call(name: &[u8]) -> Option<u64> {
    let rest = name.strip_prefix(TEMP_PREFIX)?;
    if rest.len() != 33 || rest[16] != b'-' {
        return None;
    }
    let hex = |digits: &[u8]| {
        digits.iter().try_fold(0u64, |value, d| {
            let digit = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                _ => return None,
            };
            Some(value << 4 | u64::from(digit))
        })
    };
    hex(&rest[17..])?;
    hex(&rest[..16])
}

/// True for the temporary names of the call `call` only.
pub fn is_temp_name_of(call: u64, name: &[u8]) -> bool {
    name.len() == TEMP_NAME_LEN
        && name[..TEMP_PREFIX.len() + 17] == temp_name(call, 0)[..TEMP_PREFIX.len() + 17]
}

fn put_hex(out: &mut [u8], value: u64) {
    for (i, digit) in out.iter_mut().take(16).enumerate() {
        *digit = b"0123456789abcdef"[(value >> (60 - 4 * i) & 0xf) as usize];
    }
}

/// `.sync-conflict-YYYYMMDD-HHMMSS`, appended to a name to keep the losing
/// version of a conflict.
pub const CONFLICT_SUFFIX_LEN: usize = 30;

/// The longest name a directory entry can have (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// Longest extension kept whole when a conflict name must be shortened.
const MAX_KEPT_EXTENSION: usize = 32;

/// The conflict name for `name` with `suffix`, and `-N` for an `n` from 1
/// to 99 (0: none), written into `out`; returns its length. A name that
/// would be longer than [`NAME_MAX`] loses the end of its stem, not its
/// extension nor the suffix (`report.txt.sync-conflict-...`), and is cut
/// at a character boundary when it is UTF-8.
pub fn conflict_name(
    name: &[u8],
    suffix: &[u8; CONFLICT_SUFFIX_LEN],
    n: u8,
    out: &mut [u8; NAME_MAX],
) -> usize {
    let mut number = [0u8; 3];
    let number_len = match n {
        0 => 0,
        1..=9 => {
            number[..2].copy_from_slice(&[b'-', b'0' + n]);
            2
        }
        _ => {
            let n = n.min(99);
            number.copy_from_slice(&[b'-', b'0' + n / 10, b'0' + n % 10]);
            3
        }
    };
    let added = suffix.len() + number_len;
    let room = NAME_MAX - added;
    let (stem, extension) = match name.iter().rposition(|&c| c == b'.') {
        Some(dot)
            if dot > 0 && name.len() - dot <= MAX_KEPT_EXTENSION && room > name.len() - dot =>
        {
            name.split_at(dot)
        }
        _ => (name, &name[name.len()..]),
    };
    let mut keep = stem.len().min(room - extension.len());
    if keep < stem.len() && core::str::from_utf8(name).is_ok() {
        // Back to the start of a character: no half of one is left.
        while keep > 0 && stem[keep] & 0xc0 == 0x80 {
            keep -= 1;
        }
    }
    let mut len = 0;
    for part in [&stem[..keep], extension, &suffix[..], &number[..number_len]] {
        out[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    len
}

/// The conflict suffix for a modification time (UTC).
pub fn conflict_suffix(mtime_secs: i64) -> [u8; CONFLICT_SUFFIX_LEN] {
    // Years 0 to 9999 fit the name; any other time is shown clamped, and
    // the clamp keeps the calendar arithmetic far from overflowing.
    let mtime_secs = mtime_secs.clamp(-62_167_219_200, 253_402_300_799);
    let days = mtime_secs.div_euclid(86_400);
    let secs = mtime_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut out = *b".sync-conflict-00000000-000000";
    let mut put = |at: usize, width: usize, mut value: i64| {
        for i in (0..width).rev() {
            out[at + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(15, 4, year.clamp(0, 9999));
    put(19, 2, month);
    put(21, 2, day);
    put(24, 2, secs / 3600);
    put(26, 2, secs / 60 % 60);
    put(28, 2, secs % 60);
    out
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
