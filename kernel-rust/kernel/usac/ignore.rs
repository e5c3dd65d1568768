// SPDX-License-Identifier: GPL-2.0

//! The ignore rules: which paths of the synced tree the sync leaves alone,
//! read from a rules file at the top of either tree. The rules are those of
//! gitignore(5), plus Syncthing's `(?d)` prefix for the ignored paths that
//! may be removed to let a directory go. Parsing keeps only spans into the
//! file's text, and matching neither allocates nor recurses: a rule may be
//! as long as the file, and the kernel stack is small. Pure logic on `core`
//! only, host-tested with `plan.rs` (`userland/plan`, `ignore_tests.rs`).

/// Name of the rules file at the top of either tree.
pub const RULES_FILE: &[u8] = b".real-time-sync-ignore";

/// Longest rules file read; a longer one is said and not used.
pub const MAX_RULES_LEN: usize = 64 * 1024;

/// One parsed rule: where its pattern lies in the text, and its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The pattern's span in the text, without the prefixes, the trailing
    /// slash and the trailing spaces.
    start: u32,
    end: u32,
    /// `!`: a path it matches is not ignored.
    negated: bool,
    /// A trailing `/`: it matches directories only.
    dir_only: bool,
    /// A `/` at the start or in the middle: matched against the whole path,
    /// not against the name at any depth.
    anchored: bool,
    /// `(?d)`: what it ignores may be removed.
    deletable: bool,
}

/// What one line of a rules file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// A blank line or a comment.
    None,
    /// A rule.
    Rule(Rule),
    /// A line that is no valid rule, skipped (the caller says so).
    Bad,
}

/// The lines of `text` with their 1-based numbers. Lines end at `\n`, a
/// `\r` before it is dropped; a rule's span is kept for [`verdict`].
pub fn lines(text: &[u8]) -> impl Iterator<Item = (usize, Line)> + '_ {
    let mut at = 0usize;
    // `split_inclusive`: a final `\n` ends the last line, it starts none.
    text.split_inclusive(|&c| c == b'\n')
        .enumerate()
        .map(move |(i, line)| {
            let start = at;
            at = at.saturating_add(line.len());
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            (i.saturating_add(1), parse(line, start))
        })
}

/// What `line`, found at `offset` in the text, is.
fn parse(line: &[u8], offset: usize) -> Line {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.contains(&0) {
        return Line::Bad;
    }
    if matches!(line.first(), None | Some(b'#')) {
        return Line::None;
    }
    let mut pattern = line.get(..trimmed_len(line)).unwrap_or(line);
    if pattern.is_empty() {
        return Line::None;
    }
    // Where `pattern` starts in `line`, as prefixes are taken off.
    let mut start = offset;
    let deletable = if let Some(rest) = pattern.strip_prefix(b"(?d)") {
        pattern = rest;
        start = start.saturating_add(4);
        true
    } else {
        false
    };
    let negated = if let Some(rest) = pattern.strip_prefix(b"!") {
        if deletable {
            // A path re-included is not removed: the two do not mix.
            return Line::Bad;
        }
        pattern = rest;
        start = start.saturating_add(1);
        true
    } else {
        false
    };
    let dir_only = if let Some(rest) = pattern.strip_suffix(b"/") {
        pattern = rest;
        true
    } else {
        false
    };
    let anchored = pattern.contains(&b'/');
    if let Some(rest) = pattern.strip_prefix(b"/") {
        pattern = rest;
        start = start.saturating_add(1);
    }
    if pattern.is_empty() || !is_valid(pattern) {
        return Line::Bad;
    }
    let end = start.saturating_add(pattern.len());
    match (u32::try_from(start), u32::try_from(end)) {
        (Ok(start), Ok(end)) => Line::Rule(Rule {
            start,
            end,
            negated,
            dir_only,
            anchored,
            deletable,
        }),
        _ => Line::Bad,
    }
}

/// The length of `line` without its trailing spaces, as git counts them:
/// a space escaped with a backslash is kept.
fn trimmed_len(line: &[u8]) -> usize {
    let mut len = 0usize;
    let mut kept = 0usize;
    let mut rest = line;
    while let Some((&c, after)) = rest.split_first() {
        rest = after;
        len = len.saturating_add(1);
        if c == b'\\' {
            // The escaped byte is kept, whatever it is.
            if let Some((_, after)) = rest.split_first() {
                rest = after;
                len = len.saturating_add(1);
            }
            kept = len;
        } else if c != b' ' {
            kept = len;
        }
    }
    kept
}

/// True when every `[` of `pattern` is closed, names known classes only,
/// and no `\` is left with nothing to escape.
fn is_valid(pattern: &[u8]) -> bool {
    let mut rest = pattern;
    while let Some((&c, after)) = rest.split_first() {
        rest = match c {
            b'\\' => match after.split_first() {
                Some((_, after)) => after,
                None => return false,
            },
            b'[' => match bracket(after, 0) {
                Some((_, after)) => after,
                None => return false,
            },
            _ => after,
        };
    }
    true
}

/// The bracket expression `pattern` starts with (just after its `[`):
/// whether it matches `c`, and the pattern after its `]`. `None` when it is
/// not closed or names an unknown class. It follows git's wildmatch.
fn bracket(pattern: &[u8], c: u8) -> Option<(bool, &[u8])> {
    let (negated, mut rest) = match pattern.split_first() {
        Some((b'!' | b'^', after)) => (true, after),
        _ => (false, pattern),
    };
    let mut matched = false;
    // The last single byte, which a `-` makes the start of a range.
    let mut prev: Option<u8> = None;
    let mut first = true;
    loop {
        let (&m, after) = rest.split_first()?;
        if m == b']' && !first {
            return Some((matched != negated, after));
        }
        first = false;
        rest = after;
        match (m, prev) {
            (b'\\', _) => {
                let (&e, after) = rest.split_first()?;
                rest = after;
                matched |= e == c;
                prev = Some(e);
            }
            (b'-', Some(lo)) if rest.first().is_some_and(|&n| n != b']') => {
                let (&hi, after) = rest.split_first()?;
                rest = after;
                let hi = if hi == b'\\' {
                    let (&e, after) = rest.split_first()?;
                    rest = after;
                    e
                } else {
                    hi
                };
                matched |= (lo..=hi).contains(&c);
                prev = None;
            }
            (b'[', _) if rest.first() == Some(&b':') => {
                let body = rest.get(1..)?;
                // As git: the class ends at the first `]`, and is one only
                // when a `:` stands just before it.
                let close = body.iter().position(|&b| b == b']')?;
                match body.get(..close).and_then(|inner| inner.strip_suffix(b":")) {
                    Some(name) => {
                        matched |= in_class(name, c)?;
                        rest = body.get(close.saturating_add(1)..)?;
                        prev = None;
                    }
                    None => {
                        matched |= c == b'[';
                        prev = Some(b'[');
                    }
                }
            }
            (_, _) => {
                matched |= m == c;
                prev = Some(m);
            }
        }
    }
}

/// Whether `c` is in the POSIX class `name` (ASCII), `None` for a name
/// that is no class.
fn in_class(name: &[u8], c: u8) -> Option<bool> {
    Some(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c.is_ascii_graphic() || c == b' ',
        b"punct" => c.is_ascii_punctuation(),
        b"space" => matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return None,
    })
}

/// What the rules say of a path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The sync leaves the path alone.
    pub ignored: bool,
    /// Ignored by a `(?d)` rule (the rule that decided, the one of the
    /// ignored directory it lies in if any): it may be removed.
    pub deletable: bool,
}

/// What `rules` (parsed from `text`) say of `path`, a directory when
/// `is_dir`.
pub fn verdict(text: &[u8], rules: &[Rule], path: &[u8], is_dir: bool) -> Verdict {
    let (as_file, as_dir) = verdicts(text, rules, path);
    if is_dir {
        as_dir
    } else {
        as_file
    }
}

/// What `rules` say of `path` as a file and as a directory: its ancestors
/// are matched once for both.
pub fn verdicts(text: &[u8], rules: &[Rule], path: &[u8]) -> (Verdict, Verdict) {
    // From the top: nothing inside an ignored directory is re-included.
    let ancestors = path
        .iter()
        .enumerate()
        .filter(|&(_, &c)| c == b'/')
        .filter_map(|(at, _)| path.get(..at));
    for dir in ancestors {
        let verdict = last_match(text, rules, dir, true);
        if verdict.ignored {
            return (verdict, verdict);
        }
    }
    (
        last_match(text, rules, path, false),
        last_match(text, rules, path, true),
    )
}

/// What the last rule matching `path` itself says.
fn last_match(text: &[u8], rules: &[Rule], path: &[u8], is_dir: bool) -> Verdict {
    rules
        .iter()
        .rev()
        .find(|rule| matches(text, rule, path, is_dir))
        .map_or(Verdict::default(), |rule| Verdict {
            ignored: !rule.negated,
            deletable: !rule.negated && rule.deletable,
        })
}

/// True when `rule` matches `path` itself.
fn matches(text: &[u8], rule: &Rule, path: &[u8], is_dir: bool) -> bool {
    if rule.dir_only && !is_dir {
        return false;
    }
    // Lossless: `usize` is at least 32 bits on every Linux target.
    let Some(pattern) = text.get(rule.start as usize..rule.end as usize) else {
        return false;
    };
    if rule.anchored {
        match_path(pattern, path)
    } else {
        let name = path.rsplit(|&c| c == b'/').next().unwrap_or(path);
        match_name(pattern, name)
    }
}

/// What is left of a pattern or a path to match, `None` past its last
/// component.
type Rest<'a> = Option<&'a [u8]>;

/// The first component of `pattern` and what follows its `/` (`None`: it
/// was the last). A `/` in a bracket expression separates nothing; an
/// escaped one does, as in git where `\/` matches the separator.
fn component(pattern: &[u8]) -> (&[u8], Rest<'_>) {
    let mut rest = pattern;
    while let Some((&c, after)) = rest.split_first() {
        let (separator, next) = match (c, after.split_first()) {
            (b'/', _) => (true, after),
            (b'\\', Some((b'/', next))) => (true, next),
            (b'\\', Some((_, next))) => (false, next),
            (b'[', _) => (false, bracket(after, 0).map_or(after, |(_, next)| next)),
            _ => (false, after),
        };
        if separator {
            let len = pattern.len().saturating_sub(rest.len());
            return (pattern.get(..len).unwrap_or(pattern), Some(next));
        }
        rest = next;
    }
    (pattern, None)
}

/// The first component of `path` and what follows its `/`.
fn split_path(path: &[u8]) -> (&[u8], Rest<'_>) {
    let mut parts = path.splitn(2, |&c| c == b'/');
    (parts.next().unwrap_or(path), parts.next())
}

/// True when the anchored `pattern` matches the whole `path`: components one
/// by one, a `**` one standing for any number of them (a trailing one for
/// at least one). One backtrack point is enough (the last `**` takes one
/// more component on a mismatch), as in the classic wildcard match.
fn match_path(pattern: &[u8], path: &[u8]) -> bool {
    let mut p: Rest<'_> = Some(pattern);
    let mut t: Rest<'_> = Some(path);
    // The pattern after the last `**`, and the path from which it resumes.
    let mut star: Option<(Rest<'_>, Rest<'_>)> = None;
    loop {
        if let Some(rest) = p {
            let (glob, next) = component(rest);
            // As in git, any run of two or more stars is a `**`.
            if glob.len() >= 2 && glob.iter().all(|&c| c == b'*') {
                if next.is_some() || rest.len() == pattern.len() {
                    p = next;
                    star = Some((next, t));
                    continue;
                }
                // A trailing `/**`: everything inside, not the directory.
                if t.is_some() {
                    return true;
                }
            } else if let Some((name, after)) = t.map(split_path) {
                if match_name(glob, name) {
                    p = next;
                    t = after;
                    continue;
                }
            }
        } else if t.is_none() {
            return true;
        }
        let Some((after_star, Some(from))) = star else {
            return false;
        };
        let (_, after) = split_path(from);
        star = Some((after_star, after));
        p = after_star;
        t = after;
    }
}

/// True when the glob `pattern` (one component, no `/`) matches all of
/// `name`, with one backtrack point: the last `*` takes one more byte on a
/// mismatch.
fn match_name(pattern: &[u8], name: &[u8]) -> bool {
    let mut p = pattern;
    let mut t = name;
    // The pattern after the last `*`, and the name from which it resumes.
    let mut star: Option<(&[u8], &[u8])> = None;
    loop {
        if let Some((&c, rest)) = p.split_first() {
            if c == b'*' {
                p = rest;
                star = Some((rest, t));
                continue;
            }
            if let Some((&b, after)) = t.split_first() {
                let (ok, rest) = match c {
                    b'?' => (true, rest),
                    b'[' => bracket(rest, b).unwrap_or((b == c, rest)),
                    b'\\' => match rest.split_first() {
                        Some((&e, rest)) => (e == b, rest),
                        None => (false, rest),
                    },
                    _ => (b == c, rest),
                };
                if ok {
                    p = rest;
                    t = after;
                    continue;
                }
            }
        } else if t.is_empty() {
            return true;
        }
        let Some((after_star, from)) = star else {
            return false;
        };
        let Some((_, after)) = from.split_first() else {
            return false;
        };
        star = Some((after_star, after));
        p = after_star;
        t = after;
    }
}
