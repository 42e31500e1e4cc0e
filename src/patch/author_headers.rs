//! The headers patch authors include (`#include "klp-build.h"`), made visible to the patched
//! build only. Input: a patched copy's text and the stage's include dir. Output: the text with
//! each such include naming the header's absolute path, and the header written there.
//! Invariant: the original build and the kernel's own flags are untouched: passing `-I` through
//! KCFLAGS would change every object's recorded command line and make kbuild rebuild
//! `scripts/mod`, `bounds.s` and `asm-offsets.s` in the user's tree on every run with a new
//! work dir; rewriting the one include line in the patched copy changes nothing else.

use std::path::Path;

use anyhow::Context;

/// The headers klp-build provides, by the name a patch includes them with, and their text.
const HEADERS: &[(&str, &str)] = &[(kmod_template::KLP_BUILD_H_NAME, kmod_template::KLP_BUILD_H)];

/// Writes the provided headers into `include_dir` and returns `text` with every
/// `#include "NAME"` / `#include <NAME>` of one of them pointing at its copy there. Other lines,
/// and line numbers, are unchanged.
pub fn point_at_copies(text: &str, include_dir: &Path) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut wrote = false;
    for line in text.split_inclusive('\n') {
        match included(line).and_then(|name| HEADERS.iter().find(|(n, _)| *n == name)) {
            Some((name, body)) => {
                if !wrote {
                    std::fs::create_dir_all(include_dir)
                        .with_context(|| format!("creating {}", include_dir.display()))?;
                    wrote = true;
                }
                let copy = include_dir.join(name);
                std::fs::write(&copy, body)
                    .with_context(|| format!("writing {}", copy.display()))?;
                out.push_str(&format!("#include \"{}\"", copy.display()));
                out.push_str(if line.ends_with('\n') { "\n" } else { "" });
            }
            None => out.push_str(line),
        }
    }
    Ok(out)
}

/// The name in an `#include "x"` or `#include <x>` line.
fn included(line: &str) -> Option<&str> {
    let rest = line
        .trim_start()
        .strip_prefix('#')?
        .trim_start()
        .strip_prefix("include")?
        .trim_start();
    let (open, close) = match rest.chars().next()? {
        '"' => ('"', '"'),
        '<' => ('<', '>'),
        _ => return None,
    };
    let inner = rest.strip_prefix(open)?;
    inner.find(close).map(|end| &inner[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn klp_build_h_include_points_at_the_copy_and_keeps_line_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let text =
            "#include <linux/fs.h>\n#  include \"klp-build.h\"\nint x;\n#include <klp-build.h>";
        let out = point_at_copies(text, dir.path()).unwrap();
        let copy = dir.path().join("klp-build.h");
        assert_eq!(
            out,
            format!(
                "#include <linux/fs.h>\n#include \"{0}\"\nint x;\n#include \"{0}\"",
                copy.display()
            )
        );
        assert_eq!(
            std::fs::read_to_string(&copy).unwrap(),
            kmod_template::KLP_BUILD_H
        );
    }

    #[test]
    fn other_includes_are_left_alone_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let text = "#include \"internal.h\"\n#include <linux/livepatch.h>\n";
        assert_eq!(
            point_at_copies(text, &dir.path().join("inc")).unwrap(),
            text
        );
        assert!(!dir.path().join("inc").exists());
    }
}
