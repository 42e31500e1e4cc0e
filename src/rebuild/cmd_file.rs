//! Kbuild's per-object command files (`<dir>/.<file>.o.cmd`): the compile command, the source
//! file and the dependency list that fixdep writes after each compile. Input: one such file, or a
//! built tree to search. Output: [`CmdFile`], the [`KlpObject`] of an object, the objects that
//! depend on a file. Invariant: paths come out relative to the tree and normalized
//! (`arch/x86/boot/compressed/../../../../lib/x.c` is `lib/x.c`).

use std::path::{Component, Path, PathBuf};

use anyhow::Context;

use crate::contract::KlpObject;

/// One parsed `.<file>.o.cmd`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdFile {
    /// The object (`fs/proc/cmdline.o`).
    pub object: String,
    /// The compile command (`gcc -Wp,-MMD,... -c -o fs/proc/cmdline.o fs/proc/cmdline.c`).
    pub command: String,
    /// The file compiled (`fs/proc/cmdline.c`), absent for link steps.
    pub source: Option<String>,
    /// Every file the compile read, tree-relative where inside the tree (`$(wildcard ...)`
    /// config stamps left out).
    pub deps: Vec<String>,
}

/// `<dir>/.<file>.o.cmd` for the object `<dir>/<file>.o`.
pub fn path_of(object: &Path) -> PathBuf {
    let name = object
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    object.with_file_name(format!(".{name}.cmd"))
}

/// `a/b/../c` -> `a/c`, without touching the file system (the dep list names files of the tree,
/// which may be a symlink farm).
pub fn normalize(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) => out.push(s.to_str().unwrap_or("")),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    let joined = out.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// Parses the text of a `.cmd` file. Kbuild up to 6.2 writes `cmd_<obj> := ...`; 6.3 renamed it
/// `savedcmd_<obj>`.
pub fn parse(text: &str) -> CmdFile {
    let mut out = CmdFile::default();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line
            .strip_prefix("cmd_")
            .or_else(|| line.strip_prefix("savedcmd_"))
        {
            if let Some((obj, cmd)) = rest.split_once(" := ") {
                out.object = obj.to_string();
                out.command = cmd.to_string();
            }
        } else if let Some(rest) = line.strip_prefix("source_") {
            if let Some((_, src)) = rest.split_once(" := ") {
                out.source = Some(normalize(src.trim()));
            }
        } else if line.starts_with("deps_") && line.ends_with('\\') {
            for dep in lines.by_ref() {
                let d = dep.trim().trim_end_matches('\\').trim();
                if !d.is_empty() && !d.starts_with("$(wildcard") {
                    out.deps.push(normalize(d));
                }
                if !dep.ends_with('\\') {
                    break;
                }
            }
        }
    }
    out
}

/// Reads and parses a `.cmd` file.
pub fn read(path: &Path) -> anyhow::Result<CmdFile> {
    let text = crate::input::read_text(path, crate::input::Kind::Tree, "")
        .with_context(|| format!("reading kbuild command file {}", path.display()))?;
    Ok(parse(&text))
}

/// The klp object of an object compiled by `command`: kbuild passes `-DMODULE` only to objects of
/// loadable modules, with `-DKBUILD_MODNAME='"xfs"'` naming the module (`fs/xfs/.xfs_stats.o.cmd`).
/// Built-in objects get a KBUILD_MODNAME too (`cmdline`), so the name alone says nothing.
pub fn klp_object(command: &str) -> KlpObject {
    let mut module = false;
    let mut name = None;
    for tok in command.split_whitespace() {
        if tok == "-DMODULE" {
            module = true;
        } else if let Some(v) = tok.strip_prefix("-DKBUILD_MODNAME=") {
            name = Some(crate::kernel::normalize_modname(
                v.trim_matches(['\'', '"']),
            ));
        }
    }
    match (module, name) {
        (true, Some(n)) => KlpObject::Module(n),
        _ => KlpObject::Vmlinux,
    }
}

/// Directories of a built tree whose command files are not kernel objects: host programs, tools,
/// the initramfs builder.
const SKIPPED_DIRS: &[&str] = &[".git", "tools", "scripts", "Documentation", "usr", "debian"];

/// Every compiled object of the built tree `source` whose dep list names `file` (tree-relative),
/// with the file it was compiled from. Reads the `.<obj>.o.cmd` files kbuild left; module link
/// steps (`.<mod>.mod.o.cmd`) and assembler objects are not C translation units and are left out.
pub fn dependents(source: &Path, file: &str) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = source.join(&rel);
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let ft = match e.file_type() {
                Ok(t) => t,
                Err(_) => continue,
            };
            if ft.is_dir() {
                if !(rel.as_os_str().is_empty() && SKIPPED_DIRS.contains(&name.as_ref())) {
                    stack.push(rel.join(name.as_ref()));
                }
                continue;
            }
            if !(name.starts_with('.') && name.ends_with(".o.cmd")) || name.ends_with(".mod.o.cmd")
            {
                continue;
            }
            let bytes = match crate::input::read(&e.path(), crate::input::Kind::Tree, "") {
                Ok(b) => b,
                Err(_) => continue,
            };
            let text = String::from_utf8_lossy(&bytes);
            // Cheap filter first: a built distro tree has ~30,000 command files.
            if !text.contains(file.rsplit('/').next().unwrap_or(file)) {
                continue;
            }
            let cmd = parse(&text);
            let Some(src) = &cmd.source else { continue };
            if !src.ends_with(".c") {
                continue;
            }
            if src == file || cmd.deps.iter().any(|d| d == file) {
                out.push((cmd.object.clone(), src.clone()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CMD: &str = "cmd_fs/xfs/xfs_stats.o := gcc -Wp,-MMD,fs/xfs/.xfs_stats.o.d -nostdinc -O2 -DMODULE  -DKBUILD_BASENAME='\"xfs_stats\"' -DKBUILD_MODNAME='\"xfs\"' -D__KBUILD_MODNAME=kmod_xfs -c -o fs/xfs/xfs_stats.o fs/xfs/xfs_stats.c\n\n\
source_fs/xfs/xfs_stats.o := fs/xfs/xfs_stats.c\n\n\
deps_fs/xfs/xfs_stats.o := \\\n  include/linux/compiler-version.h \\\n    $(wildcard include/config/CC_VERSION_TEXT) \\\n  fs/xfs/xfs_stats.h \\\n  fs/xfs/libxfs/../xfs_linux.h \\\n  /usr/lib/gcc/x86_64-linux-gnu/12/include/stdarg.h \\\n\n\
fs/xfs/xfs_stats.o: $(deps_fs/xfs/xfs_stats.o)\n\n$(deps_fs/xfs/xfs_stats.o):\n";

    #[test]
    fn parses_command_source_and_deps() {
        let c = parse(CMD);
        assert_eq!(c.object, "fs/xfs/xfs_stats.o");
        assert_eq!(c.source.as_deref(), Some("fs/xfs/xfs_stats.c"));
        assert_eq!(
            c.deps,
            vec![
                "include/linux/compiler-version.h",
                "fs/xfs/xfs_stats.h",
                "fs/xfs/xfs_linux.h",
                "/usr/lib/gcc/x86_64-linux-gnu/12/include/stdarg.h"
            ]
        );
        assert_eq!(klp_object(&c.command), KlpObject::Module("xfs".into()));
    }

    #[test]
    fn builtin_objects_are_vmlinux() {
        let cmd = "gcc -O2 -DKBUILD_BASENAME='\"cmdline\"' -DKBUILD_MODNAME='\"cmdline\"' -c -o fs/proc/cmdline.o fs/proc/cmdline.c";
        assert_eq!(klp_object(cmd), KlpObject::Vmlinux);
        assert_eq!(
            klp_object("gcc -DMODULE -DKBUILD_MODNAME='\"nf-conntrack\"'"),
            KlpObject::Module("nf_conntrack".into())
        );
    }

    #[test]
    fn cmd_path_and_normalize() {
        assert_eq!(
            path_of(Path::new("fs/proc/cmdline.o")),
            Path::new("fs/proc/.cmdline.o.cmd")
        );
        assert_eq!(
            normalize("arch/x86/boot/compressed/../../../../lib/x.c"),
            "lib/x.c"
        );
        assert_eq!(normalize("/usr/lib/../include/x.h"), "/usr/include/x.h");
    }

    #[test]
    fn finds_dependents_in_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("fs/xfs")).unwrap();
        std::fs::create_dir_all(dir.path().join("scripts/mod")).unwrap();
        std::fs::write(dir.path().join("fs/xfs/.xfs_stats.o.cmd"), CMD).unwrap();
        // A host program's command file naming the same header is not a kernel object.
        std::fs::write(
            dir.path().join("scripts/mod/.x.o.cmd"),
            CMD.replace("fs/xfs/xfs_stats.o", "scripts/mod/x.o"),
        )
        .unwrap();
        let got = dependents(dir.path(), "fs/xfs/xfs_linux.h").unwrap();
        assert_eq!(
            got,
            vec![(
                "fs/xfs/xfs_stats.o".to_string(),
                "fs/xfs/xfs_stats.c".to_string()
            )]
        );
        assert!(dependents(dir.path(), "include/linux/other.h")
            .unwrap()
            .is_empty());
    }
}
