//! Host tests of the ignore rules (`kernel/usac/ignore.rs`): gitignore(5)'s examples and notes, the bad lines,
//! the worst cases for the kernel's stack and time, and a property against the `ignore` crate.

use super::*;
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// The rules of `text`, as the caller keeps them.
fn rules(text: &[u8]) -> Vec<Rule> {
    lines(text)
        .filter_map(|(_, line)| match line {
            Line::Rule(rule) => Some(rule),
            _ => None,
        })
        .collect()
}

fn check(text: &[u8], path: &[u8], is_dir: bool) -> Verdict {
    verdict(text, &rules(text), path, is_dir)
}

fn ignored(text: &[u8], path: &[u8], is_dir: bool) -> bool {
    check(text, path, is_dir).ignored
}

/// Ignored both as a file and as a directory.
fn both(text: &[u8], path: &[u8]) -> bool {
    let (file, dir) = (ignored(text, path, false), ignored(text, path, true));
    assert_eq!(file, dir, "{:?} on {:?}: file and directory differ", String::from_utf8_lossy(text), path);
    file
}

const IGNORED: Verdict = Verdict { ignored: true, deletable: false };
const DELETABLE: Verdict = Verdict { ignored: true, deletable: true };
const KEPT: Verdict = Verdict { ignored: false, deletable: false };

#[test]
fn a_slash_in_the_middle_anchors_a_trailing_one_does_not() {
    // gitignore(5): `doc/frotz/` matches `doc/frotz` but not `a/doc/frotz`; `frotz/` matches both.
    let anchored = b"doc/frotz/";
    assert!(ignored(anchored, b"doc/frotz", true));
    assert!(ignored(anchored, b"doc/frotz/x.txt", false));
    assert!(!ignored(anchored, b"a/doc/frotz", true));
    assert!(!ignored(anchored, b"doc/frotz", false));
    let anywhere = b"frotz/";
    assert!(ignored(anywhere, b"frotz", true));
    assert!(ignored(anywhere, b"a/frotz", true));
    assert!(ignored(anywhere, b"a/b/frotz/c", false));
    assert!(!ignored(anywhere, b"a/frotz", false));
}

#[test]
fn a_name_pattern_matches_at_any_depth() {
    let text = b"*.html";
    assert!(both(text, b"index.html"));
    assert!(both(text, b"a/b/index.html"));
    assert!(!both(text, b"index.htm"));
    assert!(!both(text, b"index.html.bak"));
    assert!(both(text, b"x.html/inner"));
}

#[test]
fn a_leading_slash_anchors_to_the_top() {
    let text = b"/*.c";
    assert!(both(text, b"cat-file.c"));
    assert!(!both(text, b"mozilla-sha1/sha1.c"));
    // `*` never crosses a `/`, nor does `?`.
    assert!(!both(b"/a*b", b"a/x/b"));
    assert!(!both(b"/a?b", b"a/b"));
    assert!(both(b"/a?b", b"axb"));
}

#[test]
fn trailing_double_star_is_everything_inside_not_the_directory() {
    let text = b"foo/**";
    assert!(both(text, b"foo/a"));
    assert!(both(text, b"foo/a/b"));
    assert!(!both(text, b"foo"));
    assert!(!both(text, b"x/foo/a"));
    assert!(!both(text, b"foobar/a"));
}

#[test]
fn leading_double_star_is_any_directory() {
    let text = b"**/foo";
    assert!(both(text, b"foo"));
    assert!(both(text, b"a/foo"));
    assert!(both(text, b"a/b/foo"));
    assert!(both(text, b"a/foo/inside"));
    assert!(!both(text, b"foox"));
    let text = b"**/foo/bar";
    assert!(both(text, b"foo/bar"));
    assert!(both(text, b"x/foo/bar"));
    assert!(both(text, b"x/y/foo/bar"));
    assert!(!both(text, b"foo/x/bar"));
    assert!(!both(text, b"foo"));
}

#[test]
fn middle_double_star_is_zero_or_more_directories() {
    let text = b"a/**/b";
    for path in [&b"a/b"[..], b"a/x/b", b"a/x/y/b", b"a/b/b"] {
        assert!(both(text, path), "{path:?}");
    }
    for path in [&b"a/xb"[..], b"x/a/b", b"a", b"ab", b"a/x"] {
        assert!(!both(text, path), "{path:?}");
    }
    // `/**` is everything; as in git, any run of stars that is a whole component is a `**`.
    assert!(both(b"/**", b"a/b"));
    assert!(both(b"/***", b"a/b"));
    assert!(both(b"a/***/b", b"a/x/y/b"));
    // An empty component matches nothing.
    assert!(!both(b"a//b", b"a/b"));
    assert!(!ignored(b"**//", b"b", true));
    // Not a whole component, `**` is a `*` (gitignore(5); git itself lets `foo**/bar` match `foox/y/bar`, an
    // artefact of its literal-prefix shortcut that the `ignore` crate does not share either).
    assert!(!both(b"foo**/bar", b"foox/y/bar"));
    assert!(both(b"foo**/bar", b"foox/bar"));
    assert!(both(b"a/**b", b"a/xb"));
    assert!(!both(b"a/**b", b"a/x/b"));
    assert!(both(b"**x", b"d/ax"));
}

#[test]
fn the_last_matching_rule_wins() {
    let text = b"*.log\n!keep.log\n";
    assert!(both(text, b"a.log"));
    assert!(!both(text, b"keep.log"));
    assert!(!both(text, b"d/keep.log"));
    assert!(both(b"!keep.log\n*.log", b"keep.log"));
}

#[test]
fn nothing_inside_an_ignored_directory_is_re_included() {
    let text = b"build/\n!build/keep\n!build/keep/\n!keep\n";
    assert!(ignored(text, b"build", true));
    assert!(!ignored(text, b"build", false));
    assert!(both(text, b"build/keep"));
    assert!(both(text, b"build/keep/deep"));
    assert!(!both(text, b"src/keep"));
    // Re-including the directory itself works.
    let text = b"build*/\n!build2/\n";
    assert!(ignored(text, b"build1", true));
    assert!(!ignored(text, b"build2", true));
    assert!(!both(text, b"build2/x"));
    // The top-most ignored directory decides, even if a nearer one is re-included.
    assert!(both(b"a/\n!a/b/\n", b"a/b/c"));
}

#[test]
fn escapes_at_the_start() {
    assert!(both(b"\\#x", b"#x"));
    assert!(!both(b"#x", b"#x"));
    assert_eq!(lines(b"#x").collect::<Vec<_>>(), [(1, Line::None)]);
    let text = b"*\n\\!x\n";
    assert!(both(text, b"!x"));
    assert!(both(text, b"y"));
    let text = b"*\n!x\n";
    assert!(!both(text, b"x"));
    assert!(both(b"a\\*b", b"a*b"));
    assert!(!both(b"a\\*b", b"axb"));
}

#[test]
fn trailing_spaces_unless_escaped() {
    assert!(both(b"foo  ", b"foo"));
    assert!(!both(b"foo  ", b"foo "));
    assert!(both(b"foo\\ ", b"foo "));
    assert!(!both(b"foo\\ ", b"foo"));
    // Only spaces: a tab is kept.
    assert!(both(b"foo \t", b"foo \t"));
    assert!(both(b"foo\\  ", b"foo "));
    assert!(both(b"a b ", b"a b"));
    assert_eq!(lines(b"   ").collect::<Vec<_>>(), [(1, Line::None)]);
}

#[test]
fn bracket_expressions() {
    let text = b"[a-c].txt";
    assert!(both(text, b"a.txt"));
    assert!(both(text, b"c.txt"));
    assert!(!both(text, b"d.txt"));
    for negated in [&b"[!a]x"[..], b"[^a]x"] {
        assert!(both(negated, b"bx"));
        assert!(!both(negated, b"ax"));
        assert!(!both(negated, b"x"));
    }
    let digits = b"[[:digit:]]*";
    assert!(both(digits, b"1st"));
    assert!(!both(digits, b"first"));
    assert!(both(b"[]]", b"]"));
    assert!(both(b"[!]]", b"x"));
    assert!(!both(b"[!]]", b"]"));
    assert!(both(b"[a-]", b"-"));
    assert!(both(b"[\\]]", b"]"));
    assert!(both(b"[[:upper:][:digit:]]", b"Q"));
    assert!(both(b"[[:space:]]", b"\t"));
    assert!(!both(b"[[:alpha:]]", b"1"));
    // `[:` with no `:]` before the first `]` is no class but bytes.
    assert!(both(b"[[:]x", b":x"));
    // A `/` in a bracket expression splits nothing and never matches.
    assert!(!both(b"a[/]b", b"a/b"));
}

#[test]
fn a_question_mark_is_one_byte() {
    let text = b"a?c";
    assert!(both(text, b"abc"));
    assert!(both(text, b"d/abc"));
    assert!(!both(text, b"ac"));
    assert!(!both(text, b"abbc"));
}

#[test]
fn a_trailing_slash_matches_directories_only() {
    let text = b"out/";
    assert!(ignored(text, b"out", true));
    assert!(!ignored(text, b"out", false));
    assert!(ignored(text, b"out/a.o", false));
    assert!(ignored(text, b"x/out/a.o", false));
    assert!(both(b"out", b"out"));
}

#[test]
fn deletable_rules() {
    assert_eq!(check(b"(?d)*.tmp", b"x.tmp", false), DELETABLE);
    assert_eq!(check(b"(?d)*.tmp", b"x.txt", false), KEPT);
    // The rule that decides tells, the last matching one.
    assert_eq!(check(b"(?d)*.o\n*.o", b"a.o", false), IGNORED);
    assert_eq!(check(b"*.o\n(?d)*.o", b"a.o", false), DELETABLE);
    // Inherited from the ignored directory, whatever the rules of what is inside.
    let text = b"(?d)cache/\n*.keep\n";
    assert_eq!(check(text, b"cache", true), DELETABLE);
    assert_eq!(check(text, b"cache/x/y", false), DELETABLE);
    assert_eq!(check(text, b"cache/x.keep", false), DELETABLE);
    let text = b"cache/\n(?d)cache/x\n";
    assert_eq!(check(text, b"cache/x", false), IGNORED);
    // `!(?d)x` is a re-include of the name `(?d)x`.
    assert_eq!(check(b"*\n!(?d)x", b"(?d)x", false), KEPT);
}

#[test]
fn bad_lines_are_said_and_skipped() {
    let text = b"a[b\nc\\\n!\n(?d)\n/\n(?d)!x\n[[:nope:]]\nx\0y\n!/\n//\n(?d)/\nd\\/\n[a\\]\n*.o\n";
    let got: Vec<(usize, bool)> = lines(text).map(|(n, line)| (n, line == Line::Bad)).collect();
    let want: Vec<(usize, bool)> = (1..=14).map(|n| (n, n != 14)).collect();
    assert_eq!(got, want);
    assert!(both(text, b"x.o"));
    assert!(!both(text, b"a[b"));
    assert!(!both(text, b"c\\"));
    // A NUL byte even in a comment; a trailing backslash even after spaces.
    assert_eq!(lines(b"#\0").next(), Some((1, Line::Bad)));
    assert_eq!(lines(b"x\\ \\").next(), Some((1, Line::Bad)));
    // Not bad: a `]` with no `[`, a class-like run outside brackets.
    assert!(both(b"a]", b"a]"));
    assert!(both(b"[:digit:]", b"d"));
}

#[test]
fn line_numbers_and_ends() {
    assert_eq!(lines(b"").count(), 0);
    let got: Vec<(usize, bool)> =
        lines(b"# c\n\n*.o\r\n\r\n").map(|(n, line)| (n, matches!(line, Line::Rule(_)))).collect();
    assert_eq!(got, [(1, false), (2, false), (3, true), (4, false)]);
    assert_eq!(lines(b"a\nb").count(), 2);
    let text = b"*.o\r\n!a.o\r\nd/\r\n#x\r\n";
    assert!(both(text, b"b.o"));
    assert!(!both(text, b"a.o"));
    assert!(!both(text, b"b.o\r"));
    assert!(ignored(text, b"d", true));
}

#[test]
fn any_bytes() {
    let text = b"\xff*\n[\x80-\xfe]x\n";
    assert!(both(text, b"\xff\xfe"));
    assert!(both(text, b"a/\x90x"));
    assert!(!both(text, b"a/\x7fx"));
    assert!(!both(text, b"ax"));
}

#[test]
fn a_whole_file_of_stars_is_fast_and_shallow() {
    let start = Instant::now();
    let stars = vec![b'*'; MAX_RULES_LEN];
    assert_eq!(check(&stars, b"a/b/c", false), IGNORED);
    // Anchored: 32768 components of `*` against a shallow and a deep path.
    let mut components = b"*/".repeat(MAX_RULES_LEN / 2);
    components.pop();
    assert!(!both(&components, b"a/b/c"));
    let deep = b"d/".repeat(500);
    assert!(!both(&components, &deep[..deep.len() - 1]));
    // And 21845 `**` components, the last one trailing.
    let doubles = b"**/".repeat(MAX_RULES_LEN / 3);
    assert!(both(&doubles[..doubles.len() - 1], b"a/b/c"));
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
}

#[test]
fn backtracking_is_bounded() {
    // A name of 4096 bytes (longer than any) against `a*a*...a*b`: quadratic at worst, never exponential.
    let start = Instant::now();
    let mut pattern = b"a*".repeat(200);
    pattern.push(b'b');
    let name = vec![b'a'; 4096];
    assert!(!both(&pattern, &name));
    let mut yes = name.clone();
    yes.push(b'b');
    assert!(both(&pattern, &yes));
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
    // The same over components: `a/**/a/**/...b` against a deep path of `a`, each of its ancestors checked.
    let start = Instant::now();
    let mut pattern = b"a/**/".repeat(100);
    pattern.push(b'b');
    let deep = b"a/".repeat(300);
    assert!(!both(&pattern, &deep[..deep.len() - 1]));
    assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
}

/// The pieces generated patterns are made of: the brief's alphabet, and a few more bracket, escape and space forms.
const PIECES: &[&str] =
    &["a", "b", "*", "?", "**", "/", "[ab]", "[!a]", "[b-c]", "\\a", "[[:alpha:]]", "[]a]", " ", "\\ "];

/// The names generated paths are made of.
const NAMES: &[&str] = &["a", "b", "ab", "ba", "aa", "a ", "c", "]a", "*", "A"];

/// A generated rule line: maybe `!`, one to four pieces, maybe a trailing `/`.
fn rule_line() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(prop::sample::select(PIECES), 1..5), any::<bool>()).prop_map(
        |(negated, pieces, dir)| {
            format!("{}{}{}", if negated { "!" } else { "" }, pieces.concat(), if dir { "/" } else { "" })
        },
    )
}

/// A generated path: one to four names.
fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(NAMES), 1..5).prop_map(|names| names.join("/"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn agrees_with_the_ignore_crate(
        candidates in prop::collection::vec(rule_line(), 3..9), path in path(), is_dir in any::<bool>()
    ) {
        use ::ignore::gitignore::GitignoreBuilder;
        // The lines both take as rules.
        let kept: Vec<&String> = candidates
            .iter()
            .filter(|line| matches!(lines(line.as_bytes()).next(), Some((_, Line::Rule(_)))))
            .filter(|line| GitignoreBuilder::new("/").add_line(None, line).is_ok())
            // An empty component (`a//b`, `**//`) never matches in git, as with us; the crate's glob lets some match.
            .filter(|line| !line.contains("//"))
            // A whole component of three or more stars is a `**` in git, as with us; not in the crate.
            .filter(|line| !line.contains("***"))
            .collect();
        let mut builder = GitignoreBuilder::new("/");
        for line in &kept {
            builder.add_line(None, line).unwrap();
        }
        let reference = builder.build().unwrap();
        let text = kept.iter().map(|line| line.as_str()).collect::<Vec<_>>().join("\n");
        let ours = ignored(text.as_bytes(), path.as_bytes(), is_dir);

        // The crate walks up from the path and stops at the first rule that matches, so a `!` rule re-includes
        // inside an ignored directory; git (`git check-ignore --no-index`) and we walk down and stop at the first
        // ignored directory. Those cases are left out: the crate's own matching, walked as git does, tells them.
        let walked_down = path.match_indices('/').any(|(at, _)| reference.matched(&path[..at], true).is_ignore())
            || reference.matched(&path, is_dir).is_ignore();
        let walked_up = reference.matched_path_or_any_parents(&path, is_dir).is_ignore();
        prop_assert_eq!(ours, walked_down, "rules {:?}, path {:?}, dir {}", kept, path, is_dir);
        prop_assume!(walked_up == walked_down);
        prop_assert_eq!(ours, walked_up, "rules {:?}, path {:?}, dir {}", kept, path, is_dir);
    }
}
