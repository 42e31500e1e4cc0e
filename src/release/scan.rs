//! The scan: a release's fixes against one target's source tree and config, without building.
//! Input: the fixes in order, the unconfigured source tree and the target's `.config`. Output: per
//! fix, whether it applies (with the hunks that needed an offset or fuzz), is already in that
//! kernel (it reverse-applies), touches only code the config does not build, or is refused (why).
//! Invariant: the source tree is only read: every `patch` runs on scratch copies; a fix is
//! `not-affected` only when kbuild's own Makefiles, evaluated with the target's config, leave out
//! every object it touches (anything unsure counts as affected).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::spec::FixSpec;
use crate::patch;

/// What a fix is on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum FixStatus {
    /// It applies and touches code the target builds; `hunks` are those applied at an offset or
    /// with fuzz (worth a look: a fuzzed hunk can land in the wrong function).
    Applies {
        /// `file: hunk #N at line L (offset O, fuzz F)`.
        hunks: Vec<String>,
    },
    /// The target already contains it: every patch reverse-applies.
    AlreadyFixed,
    /// It applies, but every object it touches is left out by the target's config.
    NotAffected {
        /// Which objects, and the config option that leaves each out.
        reason: String,
    },
    /// It cannot be built for this target.
    Refused {
        /// The hunk that failed, or the file that cannot be livepatched.
        reason: String,
    },
}

impl FixStatus {
    /// The status word of `index.json` and the scan's table.
    pub fn word(&self) -> &'static str {
        match self {
            FixStatus::Applies { .. } => "applies",
            FixStatus::AlreadyFixed => "already-fixed",
            FixStatus::NotAffected { .. } => "not-affected",
            FixStatus::Refused { .. } => "refused",
        }
    }
}

/// One fix's scan on one target.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScannedFix {
    /// The fix's id.
    pub id: String,
    /// The patches tried on this kernel (a backport's where one matched).
    #[serde(default)]
    pub patches: Vec<String>,
    /// Its status there.
    #[serde(flatten)]
    pub status: FixStatus,
}

/// Scans `fixes`, in order, against `source` (unconfigured is fine) with `config`. Fixes apply
/// cumulatively: a later fix is tried on the tree with the earlier ones applied, as the build
/// applies them.
pub fn scan(source: &Path, config: &Path, fixes: &[FixSpec]) -> anyhow::Result<Vec<ScannedFix>> {
    let scratch = tempfile::Builder::new()
        .prefix("klp-build-scan.")
        .tempdir()
        .context("creating a scratch dir for the scan")?;
    let tree = scratch.path().join("tree");
    let mut copied = BTreeSet::new();
    // The tree's sources are read under its build lock: a build of another fix in the same tree
    // has the patched copy of a file swapped in while it compiles, and a scan reading it then
    // would find the fix not applying (a release scanning the lab tree while a test built there).
    // A tree that cannot take the lock file (read-only) is read as it is.
    let _lock = crate::kernel::lock::lock(source, &mut crate::progress::Quiet).ok();
    let makefiles = Kbuild::new(source, config);
    let mut out = Vec::new();
    for (n, fix) in fixes.iter().enumerate() {
        let mut scanned = Vec::new();
        let mut refusals = Vec::new();
        for p in &fix.patches {
            let s = patch::scan(p, source)?;
            refusals.extend(s.refusals.iter().cloned());
            scanned.push(s);
        }
        if !refusals.is_empty() {
            out.push(ScannedFix {
                id: fix.id.clone(),
                patches: vec![],
                status: FixStatus::Refused {
                    reason: refusals.join("; "),
                },
            });
            continue;
        }
        for s in &scanned {
            for f in &s.files {
                if copied.insert(f.clone()) {
                    let to = tree.join(f);
                    if let Some(d) = to.parent() {
                        std::fs::create_dir_all(d)
                            .with_context(|| format!("creating {}", d.display()))?;
                    }
                    std::fs::copy(source.join(f), &to).with_context(|| {
                        format!("copying {} for the scan", source.join(f).display())
                    })?;
                }
            }
        }
        let status = try_fix(&tree, scratch.path(), n, fix, &scanned)?;
        let status = match status {
            FixStatus::Applies { hunks } => {
                let files: Vec<&str> = scanned
                    .iter()
                    .flat_map(|s| s.files.iter().map(String::as_str))
                    .collect();
                match makefiles.left_out(&files) {
                    Some(reason) => FixStatus::NotAffected { reason },
                    None => FixStatus::Applies { hunks },
                }
            }
            other => other,
        };
        out.push(ScannedFix {
            id: fix.id.clone(),
            patches: vec![],
            status,
        });
    }
    Ok(out)
}

/// Tries one fix's patches on `tree`: forward (and applies them there when they all apply),
/// else reverse.
fn try_fix(
    tree: &Path,
    scratch: &Path,
    n: usize,
    fix: &FixSpec,
    scanned: &[patch::ScannedPatch],
) -> anyhow::Result<FixStatus> {
    let mut files = Vec::new();
    for (i, s) in scanned.iter().enumerate() {
        let f = scratch.join(format!("{n}-{i}.patch"));
        std::fs::write(&f, &s.text).with_context(|| format!("writing {}", f.display()))?;
        files.push(f);
    }
    let forward: Vec<PatchRun> = scanned
        .iter()
        .zip(&files)
        .map(|(s, f)| run_patch(tree, f, s.strip, false, true))
        .collect::<anyhow::Result<_>>()?;
    if forward.iter().all(|r| r.ok) {
        let mut hunks = Vec::new();
        for ((s, f), p) in scanned.iter().zip(&files).zip(&fix.patches) {
            let r = run_patch(tree, f, s.strip, false, false)?;
            if !r.ok {
                anyhow::bail!(
                    "{}: applied in a dry run but not for real on the scan's copy:\n{}",
                    p.display(),
                    r.output
                );
            }
            hunks.extend(r.moved_hunks(p));
        }
        return Ok(FixStatus::Applies { hunks });
    }
    let reverse: Vec<PatchRun> = scanned
        .iter()
        .zip(&files)
        .map(|(s, f)| run_patch(tree, f, s.strip, true, true))
        .collect::<anyhow::Result<_>>()?;
    if reverse.iter().all(|r| r.ok) {
        return Ok(FixStatus::AlreadyFixed);
    }
    let failed: Vec<String> = forward
        .iter()
        .zip(&fix.patches)
        .filter(|(r, _)| !r.ok)
        .map(|(r, p)| format!("{}: {}", p.display(), r.failures().join("; ")))
        .collect();
    Ok(FixStatus::Refused {
        reason: format!("does not apply: {}", failed.join("; ")),
    })
}

/// One GNU patch run.
struct PatchRun {
    ok: bool,
    output: String,
}

impl PatchRun {
    /// The `Hunk #N FAILED at L.` lines with the file they belong to.
    fn failures(&self) -> Vec<String> {
        let mut file = "";
        let mut out = Vec::new();
        for l in self.output.lines() {
            if let Some(f) = l
                .strip_prefix("checking file ")
                .or(l.strip_prefix("patching file "))
            {
                file = f.trim_matches(['\'', '"', '`']);
            } else if l.contains("FAILED") || l.contains("No file to patch") {
                out.push(format!("{file}: {}", l.trim()));
            }
        }
        if out.is_empty() {
            out.push(
                self.output
                    .lines()
                    .last()
                    .unwrap_or("patch failed")
                    .to_string(),
            );
        }
        out
    }

    /// Hunks applied at an offset or with fuzz.
    fn moved_hunks(&self, patch: &Path) -> Vec<String> {
        let mut file = "";
        let mut out = Vec::new();
        for l in self.output.lines() {
            if let Some(f) = l.strip_prefix("patching file ") {
                file = f.trim_matches(['\'', '"', '`']);
            } else if l.starts_with("Hunk #") && (l.contains("offset") || l.contains("fuzz")) {
                out.push(format!(
                    "{}: {file}: {}",
                    patch.file_name().unwrap_or_default().to_string_lossy(),
                    l.trim().trim_end_matches('.')
                ));
            }
        }
        out
    }
}

fn run_patch(
    tree: &Path,
    file: &Path,
    strip: usize,
    reverse: bool,
    dry_run: bool,
) -> anyhow::Result<PatchRun> {
    let mut cmd = Command::new("patch");
    cmd.arg(format!("-p{strip}"))
        .args(["-f", "--no-backup-if-mismatch", "-r", "-", "-i"])
        .arg(file)
        .arg("-d")
        .arg(tree)
        .stdin(Stdio::null());
    if reverse {
        cmd.arg("-R");
    }
    if dry_run {
        cmd.arg("--dry-run");
    }
    let out = cmd
        .output()
        .context("running GNU patch: install it (apt-get install patch)")?;
    Ok(PatchRun {
        ok: out.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// kbuild's Makefiles of one tree, evaluated by make with one config: which objects and
/// directories the config builds. Each directory's Makefile is evaluated once.
struct Kbuild<'a> {
    source: &'a Path,
    config: &'a Path,
    cache: std::cell::RefCell<BTreeMap<PathBuf, Option<Evaluated>>>,
}

/// One directory's Makefile, evaluated.
#[derive(Clone)]
struct Evaluated {
    /// `obj-y`, `obj-m`, `subdir-y`, `subdir-m` after evaluation.
    built: BTreeSet<String>,
    /// Composite objects' parts: `xfs-y`, `xfs-objs`, ... -> their parts.
    parts: BTreeMap<String, BTreeSet<String>>,
    /// The Makefile's text, to tell "left out" (named but not selected) from "not named".
    text: String,
}

impl<'a> Kbuild<'a> {
    fn new(source: &'a Path, config: &'a Path) -> Self {
        Kbuild {
            source,
            config,
            cache: Default::default(),
        }
    }

    /// Why every compiled file of `files` is left out by the config, or `None` when any of them
    /// is (or may be) built. Headers and files of unknown kinds count as built: a header reaches
    /// objects through any include.
    fn left_out(&self, files: &[&str]) -> Option<String> {
        let mut reasons = Vec::new();
        for f in files {
            let obj = f.strip_suffix(".c").map(|s| format!("{s}.o"))?;
            reasons.push(self.object_left_out(Path::new(&obj))?);
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Why the object `dir/x.o` is not built with the config, or `None` when it may be. A
    /// directory left out is the reason for everything in it, so it is named first.
    fn object_left_out(&self, obj: &Path) -> Option<String> {
        let dir = obj.parent()?;
        let name = obj.file_name()?.to_str()?;
        let e = self.evaluate(dir)?;
        if !mentions(&e.text, name) {
            return None;
        }
        if let Some(why) = self.dir_left_out(dir) {
            return Some(why);
        }
        if self.selected(&e, name, 0) {
            return None;
        }
        // Name the option of the object itself, or of the composite object it is a part of.
        let mut gated = name.to_string();
        let mut via = String::new();
        for _ in 0..8 {
            if gate(&e.text, &gated).is_some() || e.built.contains(&gated) {
                break;
            }
            match e
                .parts
                .iter()
                .find(|(c, p)| p.contains(&gated) && **c != gated)
            {
                Some((c, _)) => {
                    via = format!(", a part of {c}");
                    gated = c.clone();
                }
                None => break,
            }
        }
        Some(format!(
            "{} is not built with this config{via}{}",
            obj.display(),
            gate(&e.text, &gated).map_or(String::new(), |g| format!(" ({g} is not set)"))
        ))
    }

    /// Why directory `dir` is not descended into, or `None` when it may be.
    fn dir_left_out(&self, dir: &Path) -> Option<String> {
        let parent = dir.parent()?;
        if parent.as_os_str().is_empty() || parent == Path::new("arch") {
            return None; // top-level directories are reached from the top Makefile
        }
        let sub = format!("{}/", dir.file_name()?.to_str()?);
        let e = self.evaluate(parent)?;
        if !mentions(&e.text, &sub) {
            return None;
        }
        if !e.built.contains(&sub) {
            return Some(format!(
                "{}/ is not built with this config{}",
                dir.display(),
                gate(&e.text, &sub).map_or(String::new(), |g| format!(" ({g} is not set)"))
            ));
        }
        self.dir_left_out(parent)
    }

    /// Whether `name` is in obj-y/obj-m, or a part of a composite object that is (recursively).
    fn selected(&self, e: &Evaluated, name: &str, depth: usize) -> bool {
        if e.built.contains(name) {
            return true;
        }
        depth < 8
            && e.parts.iter().any(|(composite, parts)| {
                parts.contains(name) && composite != name && self.selected(e, composite, depth + 1)
            })
    }

    fn evaluate(&self, dir: &Path) -> Option<Evaluated> {
        if let Some(e) = self.cache.borrow().get(dir) {
            return e.clone();
        }
        let e = self.evaluate_uncached(dir);
        self.cache.borrow_mut().insert(dir.to_path_buf(), e.clone());
        e
    }

    /// `make -f` of a small makefile that includes the config and the directory's Makefile (or
    /// Kbuild) and prints the lists; `None` when make fails (a Makefile that needs more of kbuild
    /// than the lists), which counts as "may be built".
    fn evaluate_uncached(&self, dir: &Path) -> Option<Evaluated> {
        let mk = ["Kbuild", "Makefile"]
            .iter()
            .map(|n| self.source.join(dir).join(n))
            .find(|p| p.is_file())?;
        let text = std::fs::read_to_string(&mk).ok()?;
        let probe = format!(
            "srctree := {src}\nobjtree := {src}\nsrc := {dir}\nobj := {dir}\n\
             include {config}\ninclude {mk}\n\
             $(info KLP_BUILT $(obj-y) $(obj-m) $(subdir-y) $(subdir-m))\n\
             $(foreach v,$(filter %-y %-objs %-m,$(.VARIABLES)),$(if $(filter obj-% subdir-% \
             lib-% always-% extra-% targets-% hostprogs-% userprogs-% ccflags-% asflags-% \
             ldflags-% subdir-ccflags-%,$(v)),,$(info KLP_PARTS $(v) $($(v)))))\n\
             klp-build-scan: ;\n",
            src = self.source.display(),
            dir = dir.display(),
            config = self.config.display(),
            mk = mk.display()
        );
        let out = Command::new("make")
            .args([
                "-s",
                "--no-print-directory",
                "-R",
                "-f",
                "-",
                "klp-build-scan",
            ])
            .current_dir(self.source)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                if let Some(mut i) = c.stdin.take() {
                    i.write_all(probe.as_bytes())?;
                }
                c.wait_with_output()
            })
            .ok()?;
        if !out.status.success() {
            return None;
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut built = BTreeSet::new();
        let mut parts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for l in stdout.lines() {
            if let Some(rest) = l.strip_prefix("KLP_BUILT") {
                built.extend(rest.split_whitespace().map(str::to_string));
            } else if let Some(rest) = l.strip_prefix("KLP_PARTS ") {
                let mut words = rest.split_whitespace();
                let Some(var) = words.next() else { continue };
                let Some(base) = var
                    .strip_suffix("-objs")
                    .or(var.strip_suffix("-y"))
                    .or(var.strip_suffix("-m"))
                else {
                    continue;
                };
                parts
                    .entry(format!("{base}.o"))
                    .or_default()
                    .extend(words.map(str::to_string));
            }
        }
        Some(Evaluated { built, parts, text })
    }
}

/// Whether a Makefile's text names `word` (an object or a `dir/`) as a whole word.
fn mentions(text: &str, word: &str) -> bool {
    text.lines().any(|l| {
        l.split(|c: char| c.is_whitespace() || c == '=' || c == '+' || c == ':' || c == '\\')
            .any(|w| w == word)
    })
}

/// The `$(CONFIG_X)` of the first line naming `word` (or of the variable that line continues).
fn gate(text: &str, word: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let i = lines.iter().position(|l| {
        l.split(|c: char| c.is_whitespace() || c == '=' || c == '+' || c == '\\')
            .any(|w| w == word)
    })?;
    // A continued assignment names its gate on the first line of the statement.
    let mut start = i;
    while start > 0 && lines[start - 1].trim_end().ends_with('\\') {
        start -= 1;
    }
    let l = lines[start];
    let at = l.find("$(CONFIG_")?;
    let end = l[at..].find(')')?;
    Some(l[at + 2..at + end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let p = d.path().join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        d
    }

    #[test]
    fn kbuild_lists_left_out_objects_and_directories_with_their_option() {
        let t = tree(&[
            ("drivers/Makefile", "obj-$(CONFIG_FOO) += foo/\nobj-y += bar/\n"),
            (
                "drivers/foo/Makefile",
                "obj-$(CONFIG_FOO) += foo.o\nfoo-y := core.o\nfoo-$(CONFIG_FOO_EXTRA) += extra.o\n",
            ),
            (
                "drivers/bar/Makefile",
                "obj-$(CONFIG_BAR) += bar.o\nobj-$(CONFIG_BAZ) += baz.o\nbar-objs := a.o \\\n  b.o\nbaz-y := c.o\n",
            ),
            (".config", "CONFIG_BAR=m\n# CONFIG_FOO is not set\n"),
        ]);
        let config = t.path().join(".config");
        let k = Kbuild::new(t.path(), &config);
        assert_eq!(k.left_out(&["drivers/bar/a.c"]), None);
        assert_eq!(k.left_out(&["drivers/bar/b.c"]), None);
        assert_eq!(
            k.left_out(&["drivers/bar/baz.c"]).as_deref(),
            Some("drivers/bar/baz.o is not built with this config (CONFIG_BAZ is not set)")
        );
        assert_eq!(
            k.left_out(&["drivers/foo/core.c"]).as_deref(),
            Some("drivers/foo/ is not built with this config (CONFIG_FOO is not set)")
        );
        assert_eq!(
            k.left_out(&["drivers/bar/c.c"]).as_deref(),
            Some("drivers/bar/c.o is not built with this config, a part of baz.o (CONFIG_BAZ is not set)")
        );
        // A header, or a file no Makefile names, may be built.
        assert_eq!(k.left_out(&["drivers/bar/baz.c", "drivers/bar/x.h"]), None);
        assert_eq!(k.left_out(&["drivers/bar/unnamed.c"]), None);
    }

    #[test]
    fn fixes_apply_in_order_reverse_apply_or_fail_with_their_hunk() {
        let t = tree(&[
            ("Makefile", ""),
            ("kernel/Makefile", "obj-y += a.o\n"),
            ("kernel/a.c", "int a(void)\n{\n\treturn 1;\n}\n"),
            (".config", ""),
        ]);
        let p = |name: &str, from: &str, to: &str| {
            let f = t.path().join(name);
            std::fs::write(
                &f,
                format!(
                    "--- a/kernel/a.c\n+++ b/kernel/a.c\n@@ -1,4 +1,4 @@\n int a(void)\n {{\n-\treturn {from};\n+\treturn {to};\n }}\n"
                ),
            )
            .unwrap();
            FixSpec {
                id: name.into(),
                patches: vec![f],
                backports: vec![],
            }
        };
        let fixes = [
            p("old", "0", "1"),
            p("one", "1", "2"),
            p("two", "2", "3"),
            p("bad", "7", "8"),
        ];
        let s = scan(t.path(), &t.path().join(".config"), &fixes).unwrap();
        let words: Vec<&str> = s.iter().map(|f| f.status.word()).collect();
        assert_eq!(words, ["already-fixed", "applies", "applies", "refused"]);
        match &s[3].status {
            FixStatus::Refused { reason } => {
                assert!(
                    reason.contains("kernel/a.c") && reason.contains("FAILED"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        // The tree itself is untouched.
        assert!(std::fs::read_to_string(t.path().join("kernel/a.c"))
            .unwrap()
            .contains("return 1"));
    }
}
