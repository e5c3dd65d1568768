// SPDX-License-Identifier: GPL-2.0

//! Ignore rules: `.real-time-sync-ignore` at the top of either side, read
//! at start and again each time the thread has mirrored it. Whether a name
//! is ignored is decided here, once per name, for every step; `ignore.rs`
//! parses and matches.

use super::*;
use crate::ignore::{self, Line, Rule, Verdict};

/// The rules of one side's file, with the text they point into.
struct SideRules {
    text: KVVec<u8>,
    rules: KVVec<Rule>,
    /// The file could not be used; said once until it can be again.
    unusable: bool,
}

impl SideRules {
    fn none() -> Self {
        Self {
            text: KVVec::new(),
            rules: KVVec::new(),
            unusable: false,
        }
    }
}

/// The rules of both sides: while the two files differ, both apply.
pub(crate) struct Rules {
    sides: [SideRules; 2],
}

impl Rules {
    pub(crate) fn new() -> Self {
        Self {
            sides: [SideRules::none(), SideRules::none()],
        }
    }

    /// What the rules say of `rel` as a file and as a directory: ignored
    /// when either side's rules ignore it, deletable when every side that
    /// ignores it says so. The rules file itself is never ignored, so both
    /// sides keep the same rules.
    fn verdicts(&self, rel: &[u8]) -> (Verdict, Verdict) {
        let mut out = [Verdict {
            ignored: false,
            deletable: true,
        }; 2];
        if rel.is_empty() || rel == ignore::RULES_FILE {
            return (Verdict::default(), Verdict::default());
        }
        for side in &self.sides {
            if side.rules.is_empty() {
                continue;
            }
            let (as_file, as_dir) = ignore::verdicts(&side.text, &side.rules, rel);
            for (out, said) in out.iter_mut().zip([as_file, as_dir]) {
                if said.ignored {
                    out.ignored = true;
                    out.deletable &= said.deletable;
                }
            }
        }
        for out in out.iter_mut() {
            out.deletable &= out.ignored;
        }
        (out[0], out[1])
    }

    fn verdict(&self, rel: &[u8], is_dir: bool) -> Verdict {
        let (as_file, as_dir) = self.verdicts(rel);
        if is_dir {
            as_dir
        } else {
            as_file
        }
    }

    fn is_empty(&self) -> bool {
        self.sides.iter().all(|side| side.rules.is_empty())
    }
}

impl Engine {
    /// Reads both sides' rules files again; true when the rules changed.
    /// Then what the base knew of the names they now ignore is forgotten: a
    /// rule removed later brings them in as a union, never as a delete.
    pub(super) fn load_rules(&self) -> Result<bool> {
        let mut changed = false;
        for (i, side) in [Side::A, Side::B].into_iter().enumerate() {
            let text = self.read_rules(side)?;
            let mut rules = self.rules.lock();
            let now = &mut rules.sides[i];
            let unusable = text.is_none();
            let text = text.unwrap_or_else(KVVec::new);
            if now.text.as_slice() == text.as_slice() && now.unusable == unusable {
                continue;
            }
            if unusable && !now.unusable {
                pr_info!(
                    "dir_{:?}/{} cannot be used (not a regular file of at most {} bytes that can be read): its rules do not apply\n",
                    side,
                    kernel::str::BStr::from_bytes(ignore::RULES_FILE),
                    ignore::MAX_RULES_LEN
                );
            }
            let mut parsed = KVVec::new();
            for (number, line) in ignore::lines(&text) {
                match line {
                    Line::Rule(rule) => parsed.push(rule, GFP)?,
                    Line::Bad => pr_info!(
                        "line {} of dir_{:?}/{} is no valid pattern: skipped\n",
                        number,
                        side,
                        kernel::str::BStr::from_bytes(ignore::RULES_FILE)
                    ),
                    Line::None => {}
                }
            }
            *now = SideRules {
                text,
                rules: parsed,
                unusable,
            };
            changed = true;
        }
        if changed {
            self.forget_ignored()?;
        }
        Ok(changed)
    }

    /// The text of `side`'s rules file: empty when there is none, `None`
    /// when it cannot be used.
    fn read_rules(&self, side: Side) -> Result<Option<KVVec<u8>>> {
        let held = match vfs::lookup(self.root(side), ignore::RULES_FILE) {
            Ok(Some(held)) => held,
            Ok(None) => return Ok(Some(KVVec::new())),
            Err(e) if e == ENOMEM => return Err(e),
            Err(_) => return Ok(None),
        };
        // `read_file` opens regular files only: a FIFO there never blocks.
        match vfs::read_file(&held, ignore::MAX_RULES_LEN as u64) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e == ENOMEM || e == EINTR => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// Forgets what the base knew of every name the rules ignore.
    fn forget_ignored(&self) -> Result {
        let rules = self.rules.lock();
        if rules.is_empty() {
            return Ok(());
        }
        let mut base = self.base.lock();
        let mut ignored: KVVec<KVec<u8>> = KVVec::new();
        for (path, entry) in base.names() {
            // A base of a million names and many rules takes seconds; a
            // stop leaves the rest to the next start, which does this again.
            thread::yield_now();
            if thread::should_stop() {
                return Err(EINTR);
            }
            // What is below an ignored directory goes with it.
            let below_last = ignored.last().is_some_and(|dir| {
                path.strip_prefix(dir.as_slice())
                    .is_some_and(|rest| rest.first() == Some(&b'/'))
            });
            if !below_last && rules.verdict(path, entry.kind == Kind::Dir).ignored {
                ignored.push(clone_bytes(path)?, GFP)?;
            }
        }
        for path in ignored.iter() {
            base.forget(path)?;
        }
        Ok(())
    }

    /// What the rules say of `rel`, whose kind is looked up on both sides
    /// only when a rule for directories alone makes it matter. Ignored when
    /// either side's entry is.
    pub(super) fn verdict(&self, rel: &[u8]) -> Result<Verdict> {
        let (as_file, as_dir) = self.verdicts(rel);
        if as_file == as_dir {
            return Ok(as_file);
        }
        let mut out = Verdict::default();
        for side in [Side::A, Side::B] {
            if let Some(held) = vfs::lookup(self.root(side), rel)? {
                let said = if held.stat()?.kind == Kind::Dir {
                    as_dir
                } else {
                    as_file
                };
                if said.ignored {
                    out = said;
                }
            }
        }
        Ok(out)
    }

    /// What the rules say of `path`, listed in a directory of `side`; its
    /// kind is looked up only when it matters.
    pub(super) fn verdict_of_listed(
        &self,
        side: Side,
        path: &[u8],
        listed: &vfs::Listed<'_>,
    ) -> Result<Verdict> {
        let (as_file, as_dir) = self.verdicts(path);
        if as_file == as_dir {
            return Ok(as_file);
        }
        Ok(if self.listed_is_dir(side, path, listed)? {
            as_dir
        } else {
            as_file
        })
    }

    /// What the rules say of `rel`, a directory when `is_dir`.
    pub(super) fn verdict_as(&self, rel: &[u8], is_dir: bool) -> Verdict {
        self.rules.lock().verdict(rel, is_dir)
    }

    /// What the rules say of `rel` as a file and as a directory.
    fn verdicts(&self, rel: &[u8]) -> (Verdict, Verdict) {
        self.rules.lock().verdicts(rel)
    }

    /// True when `listed`, at `path` on `side`, is a directory (looked up
    /// where the file system did not say).
    pub(super) fn listed_is_dir(
        &self,
        side: Side,
        path: &[u8],
        listed: &vfs::Listed<'_>,
    ) -> Result<bool> {
        Ok(listed.is_dir()
            || (listed.type_unknown()
                && vfs::lookup(self.root(side), path)?
                    .map(|held| held.stat())
                    .transpose()?
                    .map(|entry| entry.kind)
                    == Some(Kind::Dir)))
    }
}
