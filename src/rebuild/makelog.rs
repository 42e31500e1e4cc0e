//! make's `--debug=v` trace of a single-object build. Input: the trace (make's stdout). Output:
//! [`MakeTrace`], the makefiles every make of the build read (`Reading makefile 'X'`) and the
//! files it considered as targets or prerequisites (`Considering target file 'X'`), as the trace
//! names them. Invariant: `None` when the trace has no `Reading makefiles...` line (a make that
//! printed nothing, or one translated by a locale that `LC_MESSAGES=C` does not reach, such as a
//! user's `LC_ALL`): then nothing is known of make's inputs, and nothing may be cached.

use std::collections::BTreeSet;

/// The inputs of one make run, paths as make printed them, normalized (relative to the tree for kbuild's
/// makes, which do not change directory; a sub-make run with `-C`, such as objtool's own build,
/// prints paths relative to its own directory).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MakeTrace {
    /// Every makefile read, `include`d `.cmd` files and `include/config/auto.conf` among them.
    pub read: BTreeSet<String>,
    /// Every file considered: each prerequisite whose timestamp make compared, existing or not.
    pub considered: BTreeSet<String>,
}

/// Reads the trace; see the module doc.
pub fn parse(text: &str) -> Option<MakeTrace> {
    let mut out = MakeTrace::default();
    let mut started = false;
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("Reading makefiles...") {
            started = true;
        } else if let Some(rest) = line.strip_prefix("Reading makefile ") {
            if let Some(name) = quoted(rest) {
                out.read.insert(super::cmd_file::normalize(name));
            }
        } else if let Some(rest) = line.strip_prefix("Considering target file ") {
            if let Some(name) = quoted(rest) {
                out.considered.insert(super::cmd_file::normalize(name));
            }
        }
    }
    started.then_some(out)
}

/// The name in make's quotes: `'X'` (make 4.3 and later) or `` `X' `` (earlier), up to the last
/// closing quote that is followed by make's own text (`.`, `...` or ` (`), so that a name with a
/// quote in it is read whole.
fn quoted(rest: &str) -> Option<&str> {
    let body = rest.strip_prefix('\'').or_else(|| rest.strip_prefix('`'))?;
    let end = body.rmatch_indices('\'').map(|(i, _)| i).find(|&i| {
        let after = &body[i + 1..];
        after.starts_with('.') || after.starts_with(" (")
    })?;
    let name = &body[..end];
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kbuild_trace_gives_its_makefiles_and_considered_files() {
        let text = "GNU Make 4.3\nReading makefiles...\nReading makefile 'Makefile'...\n\
            Reading makefile 'scripts/Kbuild.include' (search path) (no ~ expansion)...\n\
            Reading makefile 'kernel/.bounds.s.cmd' (search path) (don't care) (no ~ expansion)...\n\
            Updating goal targets....\n Considering target file 'fs/proc/cmdline.o'.\n\
              Considering target file 'arch/x86/entry/syscalls/syscall_64.tbl'.\n\
             File 'fs/proc/cmdline.o' was considered already.\n\
            Considering target file `old-make's.h'.\n";
        let t = parse(text).unwrap();
        assert_eq!(
            t.read.iter().map(String::as_str).collect::<Vec<_>>(),
            ["Makefile", "kernel/.bounds.s.cmd", "scripts/Kbuild.include"]
        );
        assert_eq!(
            t.considered.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "arch/x86/entry/syscalls/syscall_64.tbl",
                "fs/proc/cmdline.o",
                "old-make's.h"
            ]
        );
    }

    #[test]
    fn a_trace_without_make_s_own_lines_gives_nothing() {
        assert_eq!(parse(""), None);
        // A translated make: its inputs cannot be read, so nothing is cached.
        assert_eq!(
            parse("Lese Makefiles...\nLese Makefile »Makefile«...\n"),
            None
        );
    }
}
