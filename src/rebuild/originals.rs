//! The original objects of a rebuild. Input: the tree (its guard taken), the objects, the object
//! cache. Output: each object and its `.cmd` under `<stage>/orig/`, its klp object, and whether
//! the patched objects may be compiled by kbuild's recorded commands alone ([`Originals::direct_for`]).
//! Invariant: an original comes from the cache only on a full hit ([`ObjectCache::lookup`]);
//! every other is built by kbuild's make, traced, and stored with everything that build read. The
//! recorded commands are trusted only where running them on the original source gave kbuild's
//! objects byte for byte: a kernel whose kbuild changes an object after its command (the
//! `recordmcount` pass of kernels without `-mrecord-mcount`, the `ld -r` of modversions before
//! 5.4) fails that proof and keeps using make.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::guard::TreeGuard;
use super::make::{self, MakeOutcome};
use super::makelog::MakeTrace;
use super::object_cache::{BuildKey, ObjectCache, Record};
use super::{cmd_file, collect, compile, direct, kbuild_outputs, How, MISSING_SYSCALLS_DEP};
use crate::contract::KlpObject;
use crate::kernel::Kernel;
use crate::progress::Progress;

/// The originals, and what is known of the builds that made them.
pub struct Originals {
    /// Each object's klp object, in the order of the objects.
    pub klp: Vec<KlpObject>,
    /// Each object's recorded command, in make syntax.
    commands: Vec<(PathBuf, String)>,
    /// Why the patched objects need kbuild's make whatever the patch touches; `None` when the
    /// recorded commands were proven.
    not_direct: Option<String>,
    /// Every file kbuild's make read or considered, other than the objects' own sources.
    make_inputs: BTreeSet<String>,
}

impl Originals {
    /// The recorded commands, when they may build the patched objects: they were proven, and the
    /// patch touches only C sources and headers that no makefile, no `prepare` step and no other
    /// target kbuild's make looked at reads (a patched `syscall_64.tbl` or `asm-offsets.c`
    /// regenerates headers, a patched Makefile changes the commands); else why not.
    pub fn direct_for(&self, touched: &[String]) -> Result<&[(PathBuf, String)], String> {
        if let Some(why) = &self.not_direct {
            return Err(why.clone());
        }
        for t in touched {
            if !(t.ends_with(".c") || t.ends_with(".h")) {
                return Err(format!(
                    "the patch touches {t}, which is not a C source or header"
                ));
            }
            if self.make_inputs.contains(t) {
                return Err(format!(
                    "the patch touches {t}, which kbuild's make reads for more than these objects"
                ));
            }
        }
        Ok(&self.commands)
    }
}

/// Builds or finds the original of every object; see the module doc.
pub fn build(
    target: &Kernel,
    guard: &mut TreeGuard,
    objects: &[PathBuf],
    stage: &Path,
    cache: Option<&ObjectCache>,
    progress: &mut dyn Progress,
) -> anyhow::Result<Originals> {
    let key = BuildKey {
        tree: std::fs::canonicalize(&target.source)
            .with_context(|| format!("reading {}", target.source.display()))?,
        args: make::args(target),
    };
    let mut outputs: BTreeSet<String> = [MISSING_SYSCALLS_DEP.to_string()].into();
    for o in objects {
        outputs.extend(
            kbuild_outputs(o)
                .iter()
                .map(|f| f.to_string_lossy().into_owned()),
        );
    }
    let mut hits = Vec::new();
    let mut misses = Vec::new();
    for o in objects {
        let name = o.to_string_lossy();
        match cache.map(|c| c.lookup(&key, &name)) {
            Some(Ok(hit)) => {
                progress.detail(&format!("{name}: the original from the object cache"));
                hits.push((o.clone(), hit));
            }
            Some(Err(why)) => {
                progress.detail(&format!("{name}: building the original ({why})"));
                misses.push(o.clone());
            }
            None => misses.push(o.clone()),
        }
    }
    // Without a cache, nothing is proven or kept: every object is built by kbuild's make, the
    // patched ones too.
    let mut not_direct = cache
        .is_none()
        .then(|| "--no-object-cache builds every object with kbuild's make".to_string());
    let mut make_inputs = BTreeSet::new();
    if !misses.is_empty() {
        let (outcome, trace) = compile(
            target,
            guard,
            &misses,
            stage,
            "orig",
            How::Make {
                record: cache.is_some(),
            },
            progress,
        )?;
        super::ensure_built(outcome, "orig", &misses, target, stage)?;
        collect(target, &misses, stage, "orig", None)?;
        match trace {
            None if cache.is_none() => {}
            None => {
                not_direct = Some(
                    "make's trace of the original build could not be read (a translated make?)"
                        .into(),
                );
            }
            Some(trace) => {
                let built = Built {
                    target,
                    objects: &misses,
                    stage,
                    trace: &trace,
                    outputs: &outputs,
                };
                let inputs = built.make_inputs()?;
                let proven = built.prove_commands(guard, progress)?;
                if !proven {
                    not_direct = Some(
                        "kbuild's recorded commands do not rebuild its objects byte for byte in this tree".into(),
                    );
                }
                if let Some(c) = cache {
                    built.store(c, &key, &inputs, proven, progress);
                }
                make_inputs.extend(inputs);
            }
        }
    }
    for (o, hit) in &hits {
        let dest = stage.join("orig").join(o);
        let cmd = stage.join("orig").join(cmd_file::path_of(o));
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&dest, &hit.object)
            .with_context(|| format!("writing {}", dest.display()))?;
        std::fs::write(&cmd, &hit.cmd).with_context(|| format!("writing {}", cmd.display()))?;
        if !hit.direct && not_direct.is_none() {
            not_direct = Some(format!(
                "kbuild's recorded command does not rebuild {} byte for byte in this tree",
                o.display()
            ));
        }
        make_inputs.extend(hit.make_inputs.iter().cloned());
    }
    let mut klp = Vec::new();
    let mut commands = Vec::new();
    for o in objects {
        let path = stage.join("orig").join(cmd_file::path_of(o));
        let text = crate::input::read(&path, crate::input::Kind::Tree, "")?;
        let text = String::from_utf8_lossy(&text);
        klp.push(cmd_file::klp_object(&cmd_file::parse(&text).command));
        let command = direct::recorded(&text).with_context(|| {
            format!(
                "{}: kbuild wrote no command for {}",
                path.display(),
                o.display()
            )
        })?;
        commands.push((o.clone(), command));
    }
    Ok(Originals {
        klp,
        commands,
        not_direct,
        make_inputs,
    })
}

/// One make's originals, built and traced.
struct Built<'a> {
    target: &'a Kernel,
    objects: &'a [PathBuf],
    stage: &'a Path,
    trace: &'a MakeTrace,
    /// The files a build writes (the objects, their `.cmd` and dep files, `.missing-syscalls.d`).
    outputs: &'a BTreeSet<String>,
}

impl Built<'_> {
    /// The `.cmd` files of the objects, as kbuild wrote them (`<stage>/orig/`).
    fn cmd_texts(&self) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
        self.objects
            .iter()
            .map(|o| {
                let path = self.stage.join("orig").join(cmd_file::path_of(o));
                Ok((
                    o.clone(),
                    crate::input::read(&path, crate::input::Kind::Tree, "")?,
                ))
            })
            .collect()
    }

    /// Every file kbuild's make read or considered, and the sources and deps of every other
    /// target whose `.cmd` file it read (`prepare`'s `asm-offsets.s`, the syscall headers,
    /// `auto.conf`'s Kconfig files), less the objects' own sources and deps and the build's
    /// outputs.
    fn make_inputs(&self) -> anyhow::Result<BTreeSet<String>> {
        let mut own: BTreeSet<String> = BTreeSet::new();
        let mut own_cmds: BTreeSet<String> = BTreeSet::new();
        for (o, text) in self.cmd_texts()? {
            let c = cmd_file::parse(&String::from_utf8_lossy(&text));
            own.extend(c.deps);
            own.extend(c.source);
            own_cmds.insert(cmd_file::path_of(&o).to_string_lossy().into_owned());
        }
        let mut inputs: BTreeSet<String> = self
            .trace
            .read
            .iter()
            .chain(&self.trace.considered)
            .filter(|f| !own.contains(*f) && !self.outputs.contains(*f))
            .cloned()
            .collect();
        for f in &self.trace.read {
            if f.ends_with(".cmd") && !own_cmds.contains(f) {
                if let Ok(c) = cmd_file::read(&self.target.source.join(f)) {
                    inputs.extend(c.deps);
                    inputs.extend(c.source);
                }
            }
        }
        Ok(inputs)
    }

    /// Runs the recorded commands on the original source and compares what they build with
    /// kbuild's objects; true when every one is the same to the byte.
    fn prove_commands(
        &self,
        guard: &mut TreeGuard,
        progress: &mut dyn Progress,
    ) -> anyhow::Result<bool> {
        let mut commands = Vec::new();
        for (o, text) in self.cmd_texts()? {
            match direct::recorded(&String::from_utf8_lossy(&text)) {
                Some(c) => commands.push((o, c)),
                None => return Ok(false),
            }
        }
        let (outcome, _) = compile(
            self.target,
            guard,
            self.objects,
            self.stage,
            "orig-direct",
            How::Direct(&commands),
            progress,
        )?;
        if !matches!(outcome, MakeOutcome::Built) {
            progress.detail("kbuild's recorded commands failed on the original source");
            return Ok(false);
        }
        for o in self.objects {
            let ours = std::fs::read(self.target.source.join(o)).ok();
            let kbuilds = std::fs::read(self.stage.join("orig").join(o)).ok();
            if ours.is_none() || ours != kbuilds {
                progress.detail(&format!(
                    "{}: kbuild's recorded command builds another object than kbuild's make",
                    o.display()
                ));
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Stores each original; a cache that cannot be written costs the next run its speed, not
    /// this run its module, so it is a note.
    fn store(
        &self,
        cache: &ObjectCache,
        key: &BuildKey,
        inputs: &BTreeSet<String>,
        proven: bool,
        progress: &mut dyn Progress,
    ) {
        let result = (|| -> anyhow::Result<()> {
            for (o, cmd) in self.cmd_texts()? {
                let object = std::fs::read(self.stage.join("orig").join(&o))
                    .with_context(|| format!("reading the original {}", o.display()))?;
                let record = Record {
                    trace: self.trace,
                    object: &object,
                    cmd: &cmd,
                    outputs: self.outputs,
                    direct: proven,
                    make_inputs: inputs,
                };
                cache.store(key, &o.to_string_lossy(), &record)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            progress.note(&format!("the object cache was not updated: {e:#}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn originals(not_direct: Option<&str>) -> Originals {
        Originals {
            klp: vec![KlpObject::Vmlinux],
            commands: vec![(PathBuf::from("fs/proc/cmdline.o"), "gcc -c".into())],
            not_direct: not_direct.map(str::to_string),
            make_inputs: [
                "fs/proc/Makefile",
                "arch/x86/entry/syscalls/syscall_64.tbl",
                "include/linux/sched.h",
                "arch/x86/kernel/asm-offsets.c",
            ]
            .map(String::from)
            .into(),
        }
    }

    #[test]
    fn only_a_patch_to_the_objects_own_sources_skips_kbuilds_make() {
        let o = originals(None);
        let ok =
            |files: &[&str]| o.direct_for(&files.iter().map(|f| f.to_string()).collect::<Vec<_>>());
        assert_eq!(
            ok(&[
                "fs/proc/cmdline.c",
                "fs/proc/internal.h",
                "include/linux/new.h"
            ])
            .unwrap()
            .len(),
            1
        );
        for (file, why) in [
            ("fs/proc/Makefile", "not a C source or header"),
            (
                "arch/x86/entry/syscalls/syscall_64.tbl",
                "not a C source or header",
            ),
            ("include/linux/sched.h", "reads for more than these objects"),
            (
                "arch/x86/kernel/asm-offsets.c",
                "reads for more than these objects",
            ),
            ("fs/proc/Kconfig", "not a C source or header"),
        ] {
            let e = ok(&["fs/proc/cmdline.c", file]).unwrap_err();
            assert!(e.contains(file) && e.contains(why), "{file}: {e}");
        }
        let unproven = originals(Some("unproven"));
        let e = unproven.direct_for(&["fs/proc/cmdline.c".into()]);
        assert_eq!(e.unwrap_err(), "unproven");
    }
}
