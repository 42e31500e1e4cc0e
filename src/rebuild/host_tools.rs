//! Whether a single-object make would rebuild the tree's host tools. Input: the source tree.
//! Output: nothing, or an error that says where the tree was prepared and how to prepare it here.
//! Invariant: klp-build never lets kbuild rebuild `tools/objtool` or `resolve_btfids` in the
//! user's tree. Their build (tools/build, not kbuild) records every command with absolute paths
//! (`cmd_/usr/src/linux/tools/objtool/check.o := gcc -Wp,-MD,/usr/src/linux/...`), so in a tree
//! that was copied or moved after `make modules_prepare` (cp -a keeps the mtimes, cp -r does not:
//! both change the path) the first `make fs/proc/cmdline.o` recompiles both tools, about 150
//! files, in the tree: a change that the guard of the objects cannot undo.

use std::path::{Path, PathBuf};

/// The host tools that `make prepare` builds with absolute paths, relative to the tree.
const TOOLS: &[&str] = &["tools/objtool", "tools/bpf/resolve_btfids"];

/// The tree prefix that a tool's `.cmd` file names: `/old/linux` of
/// `cmd_/old/linux/tools/objtool/check.o := ...`, with the file that says it.
fn recorded_prefix(source: &Path, tool: &str) -> Option<(PathBuf, PathBuf)> {
    let dir = source.join(tool);
    let mut cmds: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.') && n.ends_with(".o.cmd"))
        })
        .collect();
    cmds.sort();
    for cmd in cmds {
        let Ok(text) = crate::input::read(&cmd, crate::input::Kind::Tree, "") else {
            continue;
        };
        let text = String::from_utf8_lossy(&text);
        let Some(target) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("cmd_"))
            .and_then(|l| l.split(" := ").next())
        else {
            continue;
        };
        let marker = format!("/{tool}/");
        if let Some(at) = target.find(&marker) {
            return Some((PathBuf::from(&target[..at]), cmd));
        }
    }
    None
}

/// Fails when `source`'s host tools were built for another path; see the module doc.
pub fn check(source: &Path, jobs: usize) -> anyhow::Result<()> {
    let here = source
        .canonicalize()
        .unwrap_or_else(|_| source.to_path_buf());
    for tool in TOOLS {
        let Some((prefix, cmd)) = recorded_prefix(source, tool) else {
            continue;
        };
        let same = prefix == here || prefix.canonicalize().is_ok_and(|p| p == here);
        if !same {
            anyhow::bail!(
                "{} was prepared at {} ({} names that path): kbuild's host tools record absolute paths, so a build \
                 here would rebuild {} in this tree and leave it changed. Prepare the tree once at its new path, \
                 then run klp-build again:\n    make -C {} -j{jobs} modules_prepare",
                source.display(),
                prefix.display(),
                cmd.display(),
                TOOLS.join(" and "),
                source.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree_with_objtool_cmd(recorded: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("tools/objtool")).unwrap();
        std::fs::write(
            t.path().join("tools/objtool/.check.o.cmd"),
            format!("cmd_{recorded}/tools/objtool/check.o := gcc -Wp,-MD,{recorded}/tools/objtool/.check.o.d\n"),
        )
        .unwrap();
        t
    }

    #[test]
    fn a_tree_prepared_here_passes() {
        let t = tree_with_objtool_cmd("PLACEHOLDER");
        let here = t.path().canonicalize().unwrap();
        let f = here.join("tools/objtool/.check.o.cmd");
        let text = std::fs::read_to_string(&f).unwrap();
        std::fs::write(&f, text.replace("PLACEHOLDER", &here.display().to_string())).unwrap();
        check(t.path(), 2).unwrap();
        // No tools built yet: nothing recorded, nothing to say.
        check(tempfile::tempdir().unwrap().path(), 2).unwrap();
    }

    #[test]
    fn a_moved_tree_is_refused_with_the_way_out() {
        let t = tree_with_objtool_cmd("/usr/src/linux-old");
        let e = check(t.path(), 4).unwrap_err().to_string();
        assert!(e.contains("was prepared at /usr/src/linux-old"), "{e}");
        assert!(e.contains(".check.o.cmd names that path"), "{e}");
        assert!(e.contains("modules_prepare"), "{e}");
    }
}
