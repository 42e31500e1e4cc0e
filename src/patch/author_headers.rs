//! The headers patch authors include, made visible to the patched build only: klp-build's own
//! `"klp-build.h"`, kpatch-build's `"kpatch-macros.h"` and `"kpatch-syscall.h"`, and the kernel's
//! `<linux/livepatch_helpers.h>` (kmod-template's `AUTHOR_HEADERS`). Input: a patched copy's
//! text, the stage's include dir and the source tree. Output: the text with each such include
//! naming the absolute path of klp-build's copy, and the copies written there, side by side (they
//! include `"klp-build.h"` from their own directory).
//! Invariant: the original build and the kernel's own flags are untouched: passing `-I` through
//! KCFLAGS would change every object's recorded command line and make kbuild rebuild
//! `scripts/mod`, `bounds.s` and `asm-offsets.s` in the user's tree on every run with a new
//! work dir; rewriting the one include line in the patched copy changes nothing else.
//!
//! `<linux/livepatch_helpers.h>` is the one header a kernel tree may have itself (Linux 6.19 and
//! later): there the include is left alone and the tree's own header is used, since its macros
//! match that kernel (its `KLP_SYSCALL_DEFINEn` follows the tree's syscall wrappers) and its
//! callback registrations are the form klp-build reads anyway (`.discard.klp_callback_ptrs`).
//! Debian's 6.1 and 6.12 trees have none, and get klp-build's copy.

use std::path::Path;

use anyhow::Context;

/// Writes the provided headers into `include_dir` and returns `text` with every
/// `#include "NAME"` / `#include <NAME>` of one of them pointing at its copy there, except a
/// `<linux/livepatch_helpers.h>` that `source`'s own `include/` has. Other lines, and line
/// numbers, are unchanged.
pub fn point_at_copies(text: &str, include_dir: &Path, source: &Path) -> anyhow::Result<String> {
    let tree_has = |name: &str| source.join("include").join(name).is_file();
    let mut out = String::with_capacity(text.len());
    let mut wrote = false;
    for line in text.split_inclusive('\n') {
        let provided = included(line)
            .filter(|name| kmod_template::AUTHOR_HEADERS.iter().any(|(n, _)| n == name))
            .filter(|name| !(*name == kmod_template::LIVEPATCH_HELPERS_H_NAME && tree_has(name)));
        match provided {
            Some(name) => {
                if !wrote {
                    write_headers(include_dir)?;
                    wrote = true;
                }
                out.push_str(&format!(
                    "#include \"{}\"",
                    copy_of(include_dir, name).display()
                ));
                out.push_str(if line.ends_with('\n') { "\n" } else { "" });
            }
            None => out.push_str(line),
        }
    }
    Ok(out)
}

/// Where the copy of header `name` goes: every header flat in `include_dir`, by its file name.
fn copy_of(include_dir: &Path, name: &str) -> std::path::PathBuf {
    include_dir.join(name.rsplit('/').next().unwrap_or(name))
}

fn write_headers(include_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(include_dir)
        .with_context(|| format!("creating {}", include_dir.display()))?;
    for (name, body) in kmod_template::AUTHOR_HEADERS {
        let copy = copy_of(include_dir, name);
        std::fs::write(&copy, body).with_context(|| format!("writing {}", copy.display()))?;
    }
    Ok(())
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
        let out = point_at_copies(text, dir.path(), dir.path()).unwrap();
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
    fn compatibility_headers_are_written_beside_klp_build_h() {
        let dir = tempfile::tempdir().unwrap();
        let inc = dir.path().join("inc");
        let text = "#include \"kpatch-syscall.h\"\n#include <linux/livepatch_helpers.h>\n";
        let out = point_at_copies(text, &inc, dir.path()).unwrap();
        assert_eq!(
            out,
            format!(
                "#include \"{}\"\n#include \"{}\"\n",
                inc.join("kpatch-syscall.h").display(),
                inc.join("livepatch_helpers.h").display()
            )
        );
        // kpatch-syscall.h includes kpatch-macros.h, which includes klp-build.h, from its own dir.
        for name in ["klp-build.h", "kpatch-macros.h", "kpatch-syscall.h"] {
            assert!(inc.join(name).is_file(), "{name} not written");
        }
        assert!(kmod_template::KPATCH_SYSCALL_H.contains("#include \"kpatch-macros.h\""));
        assert!(kmod_template::KPATCH_MACROS_H.contains("#include \"klp-build.h\""));
    }

    #[test]
    fn a_tree_with_its_own_livepatch_helpers_h_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("include/linux")).unwrap();
        std::fs::write(src.join("include/linux/livepatch_helpers.h"), "").unwrap();
        let text = "#include <linux/livepatch_helpers.h>\n";
        assert_eq!(
            point_at_copies(text, &dir.path().join("inc"), &src).unwrap(),
            text
        );
        assert!(!dir.path().join("inc").exists());
    }

    #[test]
    fn other_includes_are_left_alone_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let text = "#include \"internal.h\"\n#include <linux/livepatch.h>\n";
        assert_eq!(
            point_at_copies(text, &dir.path().join("inc"), dir.path()).unwrap(),
            text
        );
        assert!(!dir.path().join("inc").exists());
    }
}
