//! Whether the tree's configuration builds an object, read from kbuild Makefiles when there is no
//! built tree to ask. Input: the tree, its `.config`, an object (`fs/ext2/inode.o`). Output:
//! [`Reach`]. Invariant: `No` only when every Makefile line that lists the object, its composite
//! module or its directory depends on an option the config does not set; anything the reader does
//! not understand (lines inside `ifeq`, names built from variables) counts as built. A single
//! target builds whatever it is given (`make fs/ext2/inode.o` compiles with ext2 off in Debian's
//! config), so without this a livepatch could target functions the running kernel does not have.

use std::path::Path;

use crate::kernel::config::KConfig;

/// The answer for one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Built, as far as the Makefiles say.
    Yes,
    /// Not built: the Makefile line and the option that is not set.
    No(String),
}

/// One Makefile line listing an object or directory.
#[derive(Debug)]
struct Listing {
    /// `None`: unconditional or not understood; `Some(option)`: depends on `CONFIG_...`.
    option: Option<String>,
    /// The object is a member of this composite (`xfs` for `xfs-y += xfs_stats.o`).
    composite: Option<String>,
    /// The line, for the message (`fs/ext2/Makefile: obj-$(CONFIG_EXT2_FS) += ext2.o`).
    line: String,
}

/// Whether `object` (tree-relative) is built by `config`.
pub fn object(source: &Path, config: &KConfig, object: &Path) -> Reach {
    reach(source, config, object, 0)
}

fn reach(source: &Path, config: &KConfig, object: &Path, depth: usize) -> Reach {
    let Some(dir) = object.parent() else {
        return Reach::Yes;
    };
    let name = object
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    if depth > 8 {
        return Reach::Yes;
    }
    // The object is listed in its own dir or, with a path (`libxfs/xfs_ag.o`), in one above.
    let mut listings = Vec::new();
    let mut listed_in = dir;
    let mut up = Some(dir);
    for _ in 0..3 {
        let Some(d) = up else { break };
        let rel = object
            .strip_prefix(d)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let found = listings_in(source, d, &rel, &name);
        if !found.is_empty() {
            listings = found;
            listed_in = d;
            break;
        }
        up = d.parent();
    }
    if listings.is_empty() {
        return Reach::Yes; // not understood: named through a variable, or generated
    }
    let mut reasons = Vec::new();
    for l in &listings {
        if let Some(opt) = &l.option {
            if config.get(opt).is_none_or(|v| v == "n") {
                reasons.push(format!("{opt} is not set ({})", l.line));
                continue;
            }
        }
        let up = match &l.composite {
            Some(c) => reach(source, config, &listed_in.join(format!("{c}.o")), depth + 1),
            None => directory(source, config, listed_in),
        };
        match up {
            Reach::Yes => return Reach::Yes,
            Reach::No(why) => reasons.push(why),
        }
    }
    Reach::No(reasons.join("; "))
}

/// Whether the parent's Makefile descends into `dir` (`obj-$(CONFIG_EXT2_FS) += ext2/`).
fn directory(source: &Path, config: &KConfig, dir: &Path) -> Reach {
    let Some(parent) = dir.parent() else {
        return Reach::Yes;
    };
    let name = format!(
        "{}/",
        dir.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    let listings = listings_in(source, parent, &name, &name);
    if listings.is_empty() {
        return Reach::Yes; // the top Kbuild names arch/$(SRCARCH)/, which is not read here
    }
    let mut reasons = Vec::new();
    for l in &listings {
        match &l.option {
            Some(opt) if config.get(opt).is_none_or(|v| v == "n") => {
                reasons.push(format!("{opt} is not set ({})", l.line))
            }
            _ if parent.as_os_str().is_empty() => return Reach::Yes,
            _ => match directory(source, config, parent) {
                Reach::Yes => return Reach::Yes,
                Reach::No(why) => reasons.push(why),
            },
        }
    }
    Reach::No(reasons.join("; "))
}

/// The lines of `dir`'s Makefile or Kbuild whose object list names `rel` (the path from `dir`), or
/// `name` inside `$(addprefix <dir of rel>/, ...)`.
fn listings_in(source: &Path, dir: &Path, rel: &str, name: &str) -> Vec<Listing> {
    let mut out = Vec::new();
    let prefix = rel.strip_suffix(name).unwrap_or("");
    for mk in ["Kbuild", "Makefile"] {
        let path = source.join(dir).join(mk);
        let Ok(text) = crate::input::read_text(&path, crate::input::Kind::Tree, "") else {
            continue;
        };
        let shown = dir.join(mk);
        let mut conditional = 0usize;
        for line in logical_lines(&text) {
            let t = line.trim_start();
            if ["ifeq", "ifneq", "ifdef", "ifndef"]
                .iter()
                .any(|k| t.starts_with(k))
            {
                conditional += 1;
                continue;
            }
            if t.starts_with("endif") {
                conditional = conditional.saturating_sub(1);
                continue;
            }
            let Some((lhs, rhs)) = split_assignment(t) else {
                continue;
            };
            let words: Vec<&str> = rhs
                .split(|c: char| c.is_whitespace() || ",()".contains(c))
                .collect();
            let named = words.contains(&rel)
                || (!prefix.is_empty() && words.contains(&name) && rhs.contains(prefix));
            if !named {
                continue;
            }
            let Some((composite, option)) = list_kind(lhs) else {
                continue;
            };
            let option = if conditional > 0 { None } else { option };
            out.push(Listing {
                option,
                composite,
                line: format!(
                    "{}: {}",
                    shown.display(),
                    t.split_whitespace().collect::<Vec<_>>().join(" ")
                ),
            });
        }
        if !out.is_empty() {
            break;
        }
    }
    out
}

/// Joins `\`-continued lines and drops comments.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("");
        match line.strip_suffix('\\') {
            Some(l) => {
                cur.push_str(l);
                cur.push(' ');
            }
            None => {
                cur.push_str(line);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    out.push(cur);
    out
}

fn split_assignment(line: &str) -> Option<(&str, &str)> {
    for op in ["+=", ":=", "?=", "="] {
        if let Some((l, r)) = line.split_once(op) {
            return Some((l.trim(), r));
        }
    }
    None
}

/// The kind of list a variable is: `(composite, option)`. `obj-y`, `lib-y`: (None, None);
/// `obj-$(CONFIG_X)`: (None, Some(X)); `xfs-y`, `xfs-objs`: (Some(xfs), None); `xfs-$(CONFIG_X)`:
/// (Some(xfs), Some(X)). `None` for variables that are not object lists (`ccflags-y`,
/// `CFLAGS_x.o`, `hostprogs`, `always-y`, `targets`).
fn list_kind(lhs: &str) -> Option<(Option<String>, Option<String>)> {
    let (base, cond) = if let Some(b) = lhs
        .strip_suffix("-y")
        .or_else(|| lhs.strip_suffix("-m"))
        .or_else(|| lhs.strip_suffix("-objs"))
    {
        (b, None)
    } else {
        let start = lhs.find("-$(")?;
        let cond = &lhs[start + 1..];
        // `$(CONFIG_X)`, or `$(subst m,y,$(CONFIG_X))`: the one option inside.
        let opt_start = cond.find("CONFIG_")?;
        let opt: String = cond[opt_start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        (&lhs[..start], Some(opt))
    };
    if base.is_empty()
        || !base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    const NOT_OBJECTS: &[&str] = &[
        "ccflags",
        "asflags",
        "ldflags",
        "subdir-ccflags",
        "subdir-asflags",
        "always",
        "extra",
        "hostprogs",
        "userprogs",
        "targets",
        "subdir",
        "head",
        "clean-files",
    ];
    if NOT_OBJECTS.contains(&base) {
        return None;
    }
    let composite = (!matches!(base, "obj" | "lib")).then(|| base.to_string());
    Some((composite, cond))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A source tree of `(path, text)` files, for the tests of what reads the tree's Makefiles.
    pub(in crate::rebuild) fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let p = dir.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn follows_composites_and_directories() {
        let t = tree(&[
            ("Kbuild", "obj-y += fs/\n"),
            ("fs/Makefile", "obj-$(CONFIG_EXT2_FS) += ext2/\nobj-$(CONFIG_XFS_FS) += xfs/\nobj-y += proc/\n"),
            ("fs/ext2/Makefile", "obj-$(CONFIG_EXT2_FS) += ext2.o\n\next2-y := balloc.o dir.o \\\n\t  inode.o\n"),
            ("fs/xfs/Makefile", "obj-$(CONFIG_XFS_FS) += xfs.o\nxfs-y += $(addprefix libxfs/, \\\n xfs_ag.o)\nxfs-$(CONFIG_XFS_RT) += xfs_rtalloc.o\n"),
            ("fs/proc/Makefile", "obj-y += proc.o\nCFLAGS_cmdline.o += -DX\nproc-y += cmdline.o\nifeq ($(CONFIG_X),y)\nproc-$(CONFIG_NOPE) += cond.o\nendif\n"),
        ]);
        let config =
            KConfig::parse("# CONFIG_EXT2_FS is not set\nCONFIG_XFS_FS=m\nCONFIG_PROC_FS=y\n");
        let r = |o: &str| object(t.path(), &config, Path::new(o));
        assert_eq!(r("fs/proc/cmdline.o"), Reach::Yes);
        assert_eq!(
            r("fs/proc/cond.o"),
            Reach::Yes,
            "inside ifeq: not understood, so built"
        );
        assert_eq!(r("fs/proc/unlisted.o"), Reach::Yes);
        assert_eq!(r("fs/xfs/libxfs/xfs_ag.o"), Reach::Yes);
        let Reach::No(why) = r("fs/ext2/inode.o") else {
            panic!("ext2 is off")
        };
        assert_eq!(
            why,
            "CONFIG_EXT2_FS is not set (fs/ext2/Makefile: obj-$(CONFIG_EXT2_FS) += ext2.o)"
        );
        let Reach::No(why) = r("fs/xfs/xfs_rtalloc.o") else {
            panic!("XFS_RT is off")
        };
        assert!(
            why.starts_with(
                "CONFIG_XFS_RT is not set (fs/xfs/Makefile: xfs-$(CONFIG_XFS_RT) += xfs_rtalloc.o)"
            ),
            "{why}"
        );
    }

    #[test]
    fn list_kinds() {
        assert_eq!(list_kind("obj-y"), Some((None, None)));
        assert_eq!(
            list_kind("obj-$(CONFIG_A)"),
            Some((None, Some("CONFIG_A".into())))
        );
        assert_eq!(
            list_kind("obj-$(subst m,y,$(CONFIG_B))"),
            Some((None, Some("CONFIG_B".into())))
        );
        assert_eq!(
            list_kind("nf_conntrack-$(CONFIG_NF_CT_PROTO_DCCP)"),
            Some((
                Some("nf_conntrack".into()),
                Some("CONFIG_NF_CT_PROTO_DCCP".into())
            ))
        );
        assert_eq!(list_kind("xfs-objs"), Some((Some("xfs".into()), None)));
        assert_eq!(list_kind("ccflags-y"), None);
        assert_eq!(list_kind("CFLAGS_cmdline.o"), None);
    }
}
