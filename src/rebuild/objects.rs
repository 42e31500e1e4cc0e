//! Which objects to rebuild for the touched files. Input: the source tree, its config and the files
//! the patch changes. Output: objects (`fs/proc/cmdline.o`) with the `.c` each is compiled from
//! and why it is rebuilt, plus notes on touched files that no object needs.
//! Invariant: only objects the tree's kbuild compiles are listed: a `.c` file's own object when a
//! Makefile names it, the objects that `#include` a `.c` (kernel/sched/build_policy.c includes
//! rt.c), and for a header the objects whose kbuild dep files name it, which only a built tree
//! has; no object outside the running kernel (vDSO, boot code) is ever listed.

use std::path::{Path, PathBuf};

use anyhow::bail;

use super::cmd_file;
use super::reach::{self, Reach};
use crate::kernel::config::KConfig;
use crate::patch::refuse::{self, Change, FileVerdict};

/// One object to rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Relative to the tree (`fs/proc/cmdline.o`).
    pub object: PathBuf,
    /// The `.c` it is compiled from (`fs/proc/cmdline.c`).
    pub source_file: PathBuf,
    /// Why it is rebuilt: `fs/proc/cmdline.c changed`, `includes fs/proc/internal.h`.
    pub why: String,
}

/// The objects to rebuild for `files` (tree-relative), each once, in order of the files; `config`
/// is the tree's configuration, read when the tree is not built (the Makefiles then say whether it
/// builds an object). A touched header that no object includes is said in `notes`.
pub fn plan(
    source: &Path,
    config: &Path,
    files: &[PathBuf],
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Planned>> {
    let built = crate::kernel::is_built(source);
    let config = if built {
        None
    } else {
        Some(KConfig::read(config)?)
    };
    let mut out: Vec<Planned> = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let rel = f.to_string_lossy().into_owned();
        let found = if rel.ends_with(".c") {
            for_c_file(source, &rel, built)?
        } else if built {
            let deps = cmd_file::dependents(source, &rel)?;
            if deps.is_empty() {
                notes.push(format!(
                    "{rel}: no object of {} includes it; nothing to rebuild for it",
                    source.display()
                ));
            }
            deps.into_iter()
                .map(|(o, s)| {
                    (
                        o,
                        s,
                        format!("includes {rel} (its kbuild dep file says so)"),
                    )
                })
                .collect()
        } else {
            errors.push(format!(
                "{rel}: a header change needs a built tree, to find the objects that include it from kbuild's dep files \
                 (.<object>.o.cmd); {} has none (no vmlinux). Build the tree once (make -j{} in it), or pass a built \
                 tree as --source; or make the change in the .c files that use the header",
                source.display(),
                crate::kernel::default_jobs()
            ));
            continue;
        };
        if found.is_empty() && rel.ends_with(".c") {
            errors.push(format!(
                "{rel}: no Makefile of {} builds it, and no .c file next to it includes it; it is not compiled in this \
                 configuration (see the CONFIG_ option in its Makefile), so no running code comes from it",
                source.display()
            ));
        }
        for (object, src, why) in found {
            // kernel objects only: arch/x86/boot/compressed/misc.c includes lib/decompress_*.c.
            if !matches!(
                refuse::verdict(Path::new(&src), Change::Modify),
                FileVerdict::Use
            ) {
                continue;
            }
            if let Some(config) = &config {
                if let Reach::No(why) = reach::object(source, config, Path::new(&object)) {
                    errors.push(format!(
                        "{rel}: {object} is not built in this configuration: {why}; no running code comes from it, so \
                         there is nothing to livepatch (is the tree configured for the target kernel?)"
                    ));
                    continue;
                }
            }
            if !out.iter().any(|p| p.object == Path::new(&object)) {
                out.push(Planned {
                    object: PathBuf::from(object),
                    source_file: PathBuf::from(src),
                    why,
                });
            }
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(out)
}

/// Objects built from the `.c` file `rel`, with why: its own object, else the objects including
/// it.
fn for_c_file(
    source: &Path,
    rel: &str,
    built: bool,
) -> anyhow::Result<Vec<(String, String, String)>> {
    let object = format!("{}.o", rel.strip_suffix(".c").unwrap_or(rel));
    let changed = format!("{rel} changed");
    if built {
        let cmd = source.join(cmd_file::path_of(Path::new(&object)));
        if cmd.is_file() {
            return Ok(vec![(object, rel.to_string(), changed)]);
        }
        return Ok(cmd_file::dependents(source, rel)?
            .into_iter()
            .map(|(o, s)| (o, s.clone(), format!("{s} includes {rel}")))
            .collect());
    }
    if named_by_makefile(source, Path::new(&object)) {
        return Ok(vec![(object, rel.to_string(), changed)]);
    }
    let mut out = Vec::new();
    for includer in includers(source, rel) {
        out.extend(
            for_c_file(source, &includer, built)?
                .into_iter()
                .map(|(o, s, _)| (o, s, format!("{includer} includes {rel}"))),
        );
    }
    Ok(out)
}

/// A Makefile or Kbuild of the object's dir or of up to three dirs above names it: as
/// `cmdline.o` (fs/proc/Makefile), or with the path from there (`libxfs/xfs_ag.o` in fs/xfs,
/// whose Makefile also lists it inside `$(addprefix libxfs/, xfs_ag.o ...)`).
fn named_by_makefile(source: &Path, object: &Path) -> bool {
    let name = object
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut dir = object.parent();
    for _ in 0..4 {
        let Some(d) = dir else { break };
        let rel_from_here = object
            .strip_prefix(d)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        for mk in ["Makefile", "Kbuild"] {
            let Ok(text) =
                crate::input::read_text(&source.join(d).join(mk), crate::input::Kind::Tree, "")
            else {
                continue;
            };
            let words = text.split(|c: char| c.is_whitespace() || "=+:,()\\".contains(c));
            if words.into_iter().any(|w| w == name || w == rel_from_here) {
                return true;
            }
        }
        dir = d.parent().filter(|p| !p.as_os_str().is_empty());
    }
    false
}

/// `.c` files in the same dir that `#include "<name>.c"` (kernel/sched/build_policy.c includes
/// idle.c, rt.c, deadline.c ...).
fn includers(source: &Path, rel: &str) -> Vec<String> {
    let path = Path::new(rel);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return vec![];
    };
    let Ok(entries) = std::fs::read_dir(source.join(dir)) else {
        return vec![];
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if !file.ends_with(".c") || file == name {
            continue;
        }
        let Ok(text) = crate::input::read_text(&e.path(), crate::input::Kind::Tree, "") else {
            continue;
        };
        let includes = text.lines().any(|l| {
            let l = l.trim_start();
            l.strip_prefix('#')
                .map(str::trim_start)
                .and_then(|l| l.strip_prefix("include"))
                .is_some_and(|l| l.trim() == format!("\"{name}\""))
        });
        if includes {
            out.push(dir.join(&file).to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rebuild::reach::tests::tree;

    fn touched(p: &str) -> PathBuf {
        p.into()
    }

    #[test]
    fn own_object_composite_member_and_includer() {
        let t = tree(&[
            (".config", "CONFIG_PROC_FS=y\n"),
            ("fs/proc/Makefile", "proc-y += cmdline.o consoles.o\n"),
            ("fs/proc/cmdline.c", ""),
            (
                "fs/xfs/Makefile",
                "xfs-y += $(addprefix libxfs/, \\\n\t\txfs_ag.o \\\n\t\txfs_alloc.o)\n",
            ),
            ("fs/xfs/libxfs/xfs_ag.c", ""),
            ("kernel/sched/Makefile", "obj-y += build_policy.o\n"),
            (
                "kernel/sched/build_policy.c",
                "#include \"idle.c\"\n# include \"rt.c\"\n",
            ),
            ("kernel/sched/rt.c", ""),
        ]);
        let got = plan(
            t.path(),
            &t.path().join(".config"),
            &[
                touched("fs/proc/cmdline.c"),
                touched("fs/xfs/libxfs/xfs_ag.c"),
                touched("kernel/sched/rt.c"),
            ],
            &mut Vec::new(),
        )
        .unwrap();
        let objs: Vec<_> = got
            .iter()
            .map(|p| (p.object.to_str().unwrap(), p.source_file.to_str().unwrap()))
            .collect();
        assert_eq!(
            objs,
            vec![
                ("fs/proc/cmdline.o", "fs/proc/cmdline.c"),
                ("fs/xfs/libxfs/xfs_ag.o", "fs/xfs/libxfs/xfs_ag.c"),
                ("kernel/sched/build_policy.o", "kernel/sched/build_policy.c"),
            ]
        );
        let why: Vec<_> = got.iter().map(|p| p.why.as_str()).collect();
        assert_eq!(
            why,
            [
                "fs/proc/cmdline.c changed",
                "fs/xfs/libxfs/xfs_ag.c changed",
                "kernel/sched/build_policy.c includes kernel/sched/rt.c"
            ]
        );
    }

    #[test]
    fn unbuilt_c_and_header_changes_are_errors() {
        let t = tree(&[
            (".config", "# CONFIG_EXT2_FS is not set\n"),
            ("fs/Makefile", "obj-$(CONFIG_EXT2_FS) += ext2/\n"),
            (
                "fs/ext2/Makefile",
                "obj-$(CONFIG_EXT2_FS) += ext2.o\next2-y := inode.o\n",
            ),
            ("fs/ext2/inode.c", ""),
            ("fs/proc/Makefile", "proc-y += cmdline.o\n"),
            ("fs/proc/orphan.c", ""),
            ("fs/proc/internal.h", ""),
        ]);
        let files = [
            touched("fs/proc/orphan.c"),
            touched("fs/proc/internal.h"),
            touched("fs/ext2/inode.c"),
        ];
        let e = plan(t.path(), &t.path().join(".config"), &files, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("fs/proc/orphan.c: no Makefile"), "{e}");
        assert!(
            e.contains("fs/proc/internal.h: a header change needs a built tree"),
            "{e}"
        );
        let ext2 = "fs/ext2/inode.c: fs/ext2/inode.o is not built in this configuration: CONFIG_EXT2_FS is not set \
                    (fs/ext2/Makefile: obj-$(CONFIG_EXT2_FS) += ext2.o)";
        assert!(e.contains(ext2), "{e}");
    }
}
