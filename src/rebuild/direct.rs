//! Kbuild's recorded compile commands, run without kbuild. Input: the tree and, per object, the
//! command kbuild recorded in its `.cmd` file (`cmd_<obj> := ...`, `savedcmd_` from 6.3: make
//! syntax, `$` written `$$` and `#` written `$(pound)`). Output: the objects compiled in the tree
//! by those commands, through a makefile of klp-build's own (`-jN`, the same process-group and tag
//! handling as kbuild's make). Invariant: only used where the object cache proved that the
//! recorded command alone gives kbuild's object byte for byte, and where the patch touches no input
//! of kbuild's make besides the objects' own sources; kbuild's make costs a second per run (its
//! makefiles, `prepare`, `checksyscalls`) against a third of one for the compile of `cmdline.c`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;

use super::child;
use super::make::{self, MakeOutcome};
use crate::kernel::Kernel;
use crate::progress::{self, Progress};

/// The makefile that runs `commands` (object, recorded command text), one phony target each.
/// The text goes in a recursive variable, so make expands it once, as kbuild's own `$(cmd_$@)`
/// does; the recipe starts with `set -e` as kbuild's `cmd` does, so that objtool does not run
/// on an object whose compile failed.
fn makefile(commands: &[(PathBuf, String)]) -> String {
    let mut mk = String::from("# klp-build: kbuild's recorded commands\npound := \\#\n");
    let names: Vec<String> = (0..commands.len())
        .map(|i| format!("klp-obj-{i}"))
        .collect();
    for (name, (object, command)) in names.iter().zip(commands) {
        let _ = writeln!(mk, "# {}\n{name}-cmd = {command}", object.display());
    }
    let _ = writeln!(
        mk,
        ".PHONY: all {}\nall: {}",
        names.join(" "),
        names.join(" ")
    );
    for name in &names {
        let _ = writeln!(mk, "{name}:\n\t@set -e; $({name}-cmd)");
    }
    mk
}

/// Runs `commands` in the target's tree with its jobs; the makefile is written to `mk`, the
/// output to `log`, tagged `tag` (see `child`); `what` names the build for an interruption.
pub fn run(
    target: &Kernel,
    commands: &[(PathBuf, String)],
    mk: &Path,
    log: &Path,
    tag: &str,
    what: &str,
    progress: &mut dyn Progress,
) -> anyhow::Result<MakeOutcome> {
    std::fs::write(mk, makefile(commands)).with_context(|| format!("writing {}", mk.display()))?;
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(&target.source)
        .arg("-f")
        .arg(mk)
        .arg(format!("-j{}", target.jobs))
        .arg("-s")
        .env(child::TAG_VAR, tag)
        .stdin(Stdio::null())
        .stdout(
            out.try_clone()
                .with_context(|| format!("opening {}", log.display()))?,
        )
        .stderr(out);
    progress.command(&progress::command_line(&cmd));
    let status = child::run(&mut cmd, what)?;
    Ok(make::outcome(status, log))
}

/// The recorded command of a `.cmd` file's text, as written (make syntax).
pub fn recorded(cmd_text: &str) -> Option<String> {
    cmd_text.lines().find_map(|line| {
        let rest = line
            .strip_prefix("cmd_")
            .or_else(|| line.strip_prefix("savedcmd_"))?;
        rest.split_once(" := ").map(|(_, c)| c.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_makefile_expands_kbuild_s_escapes_once() {
        let dir = tempfile::tempdir().unwrap();
        // What kbuild writes for `echo '$HOME #x' > out`: `$` doubled, `#` as $(pound).
        let text = "savedcmd_a.o := printf '%s\\n' '$$HOME $(pound)x' > out\n";
        let command = recorded(text).unwrap();
        let mk = dir.path().join("direct.mk");
        std::fs::write(&mk, makefile(&[(PathBuf::from("a.o"), command)])).unwrap();
        let status = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(dir.path())
            .arg("-f")
            .arg(&mk)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out")).unwrap(),
            "$HOME #x\n"
        );
    }

    #[test]
    fn a_failing_command_stops_its_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let mk = dir.path().join("direct.mk");
        let cmds = [(PathBuf::from("a.o"), "false; touch ran".to_string())];
        std::fs::write(&mk, makefile(&cmds)).unwrap();
        let status = Command::new("make")
            .args(["-s", "-C"])
            .arg(dir.path())
            .arg("-f")
            .arg(&mk)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!status.success());
        assert!(!dir.path().join("ran").exists());
    }
}
