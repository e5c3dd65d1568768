//! What `usac-mem` and `tamalloc-demo` share: size parsing and the table
//! row of one process.

use realtimesync::mem::MemStats;

/// Parses a size: a number of bytes with an optional `K`, `M` or `G` suffix
/// (powers of 1024; `KiB`, `MiB`, `GiB` too).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, suffix) = t.split_at(digits);
    let num: usize = num.parse().map_err(|_| format!("not a size: {text:?}"))?;
    let shift = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("unknown size suffix in {text:?} (use K, M or G)")),
    };
    num.checked_mul(1usize << shift).ok_or_else(|| format!("size too large: {text:?}"))
}

/// The header of the table `usac-mem` prints.
pub const HEADER: &str = "    PID  RESERVED_KB COMMITTED_KB   OOM COMMITTED%";

/// One row of the table.
pub fn row(pid: libc::pid_t, s: &MemStats) -> String {
    format!("{pid:>7} {:>12} {:>12} {:>5} {:>9.1}%", s.reserved_kb, s.committed_kb, s.oom_score, s.committed_percent())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert!(parse_size(&format!("{}G", usize::MAX >> 10)).is_err());
    }

    #[test]
    fn a_row_shows_the_percentage() {
        let s = MemStats { reserved_kb: 1000, committed_kb: 250, oom_score: 667, pad: 0 };
        assert_eq!(row(42, &s), "     42         1000          250   667      25.0%");
    }
}
