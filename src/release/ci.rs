//! A release past one machine: `release plan` writes one CI job per target, `release collect`
//! merges the jobs' parts. Input: the release file (plan) or the parts' directories (collect).
//! Output: a job matrix on stdout; one release directory. Invariant: collect accepts only parts
//! of one release (same name, version, fixes and target list), every target exactly once, each
//! module's sha256 checked; the merged index is the one a one-machine build writes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::json;

use super::index::{self, Index};
use super::spec;
use crate::cli::{PlanFormat, ReleaseCollectArgs, ReleasePlanArgs};

/// The output directory of the job for `target`.
pub fn part_dir(target: &str) -> String {
    format!("part-{target}")
}

/// `klp-build release plan RELEASE.toml --format ...`.
pub fn plan(args: &ReleasePlanArgs) -> anyhow::Result<u8> {
    let release = spec::read(&args.file)?;
    let file = args.file.display().to_string();
    let jobs: Vec<serde_json::Value> = release
        .targets
        .iter()
        .map(|t| {
            let part = part_dir(t.key());
            json!({
                "target": t.key(),
                "output": part,
                "command": ["klp-build", "release", "build", file, "--target", t.key(), "-o", part],
            })
        })
        .collect();
    let parts: Vec<String> = release.targets.iter().map(|t| part_dir(t.key())).collect();
    let output = args.output.display().to_string();
    let mut collect = vec!["klp-build".to_string(), "release".into(), "collect".into()];
    collect.extend(parts.iter().cloned());
    collect.extend(["-o".to_string(), output.clone()]);
    let text = match args.format {
        PlanFormat::Json => {
            serde_json::to_string_pretty(&json!({ "jobs": jobs, "collect": collect }))? + "\n"
        }
        PlanFormat::Github => {
            let include: Vec<serde_json::Value> = release
                .targets
                .iter()
                .map(|t| json!({ "target": t.key(), "output": part_dir(t.key()) }))
                .collect();
            serde_json::to_string(&json!({ "include": include }))? + "\n"
        }
        PlanFormat::Gitlab => {
            let mut y = String::from(
                "# A child pipeline written by `klp-build release plan --format gitlab`.\nstages: [build, collect]\n\n",
            );
            y.push_str("build:\n  stage: build\n  parallel:\n    matrix:\n      - TARGET:\n");
            for t in &release.targets {
                y.push_str(&format!("          - {}\n", yaml_str(t.key())));
            }
            y.push_str(&format!(
                "  script:\n    - klp-build release build {} --target \"$TARGET\" -o \"part-$TARGET\"\n  artifacts:\n    paths: [\"part-$TARGET\"]\n\n",
                yaml_str(&file)
            ));
            y.push_str(&format!(
                "collect:\n  stage: collect\n  script:\n    - klp-build release collect part-* -o {}\n  artifacts:\n    paths: [{}]\n",
                yaml_str(&output),
                yaml_str(&output)
            ));
            y
        }
    };
    super::build::print_out(&text)?;
    Ok(0)
}

/// A YAML double-quoted scalar.
fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// `klp-build release collect PART... -o DIR`.
pub fn collect(args: &ReleaseCollectArgs) -> anyhow::Result<u8> {
    let mut parts = Vec::new();
    for p in &args.parts {
        let i = Index::read(p).with_context(|| format!("part {}", p.display()))?;
        parts.push((p.clone(), i));
    }
    let (first_dir, first) = &parts[0];
    for (dir, i) in &parts[1..] {
        let same = i.release.name == first.release.name
            && i.release.version == first.release.version
            && i.release.targets == first.release.targets
            && serde_json::to_value(&i.fixes)? == serde_json::to_value(&first.fixes)?
            && serde_json::to_value(&i.release)? == serde_json::to_value(&first.release)?;
        if !same {
            bail!(
                "part {} is not of the same release as {} ({} {} vs {} {}, or other fixes or targets): \
                 collect the parts of one release file",
                dir.display(),
                first_dir.display(),
                i.release.name,
                i.release.version,
                first.release.name,
                first.release.version
            );
        }
    }
    let mut targets: Vec<(PathBuf, index::IndexTarget)> = Vec::new();
    for (dir, i) in &parts {
        for t in &i.targets {
            if let Some((other, _)) = targets.iter().find(|(_, x)| x.target == t.target) {
                bail!(
                    "target {} is in two parts, {} and {}: each job builds one target",
                    t.target,
                    other.display(),
                    dir.display()
                );
            }
            if let (Some(m), Some(sum)) = (&t.module, &t.sha256) {
                let path = dir.join(m);
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("part {}: {}", dir.display(), path.display()))?;
                if &index::sha256_hex(&bytes) != sum {
                    bail!(
                        "{}: sha256 differs from the part's index.json: the part was changed after it was built",
                        path.display()
                    );
                }
            }
            targets.push((dir.clone(), t.clone()));
        }
    }
    let missing: Vec<&String> = first
        .release
        .targets
        .iter()
        .filter(|k| !targets.iter().any(|(_, t)| &t.target == *k))
        .collect();
    if !missing.is_empty() {
        bail!(
            "no part has target(s) {}: collect every job's part",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    targets.sort_by_key(|(_, t)| t.position);
    let out = &args.output;
    prepare_output(out, first, args.force)?;
    let staging = out.join(".klp-build-partial");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    for (dir, t) in &targets {
        copy_dir(&dir.join(&t.kernel_release), &staging.join(&t.target))?;
    }
    let mut merged = first.clone();
    merged.targets = targets.into_iter().map(|(_, t)| t).collect();
    super::build::publish(out, &staging, &merged)?;
    super::build::print_out(&format!(
        "collected {} target(s) of {} {} from {} part(s) into {}\n",
        merged.targets.len(),
        merged.release.name,
        merged.release.version,
        parts.len(),
        out.display()
    ))?;
    Ok(u8::from(merged.failed()))
}

/// Refuses an output directory that holds another release, unless `force`.
fn prepare_output(out: &Path, index: &Index, force: bool) -> anyhow::Result<()> {
    if !out.exists() || force {
        return Ok(());
    }
    match Index::read(out) {
        Ok(i)
            if i.release.name == index.release.name
                && i.release.version == index.release.version =>
        {
            Ok(())
        }
        Ok(i) => bail!(
            "-o {}: holds release {} {}; choose another directory, or --force",
            out.display(),
            i.release.name,
            i.release.version
        ),
        Err(_) if std::fs::read_dir(out).map_or(true, |mut d| d.next().is_none()) => Ok(()),
        Err(_) => bail!(
            "-o {}: not empty and not a release's output; choose another directory, or --force",
            out.display()
        ),
    }
}

/// Copies the regular files of `from` (one level, as a target's directory has) to `to`.
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    if !from.exists() {
        return Ok(());
    }
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        if e.file_type()?.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}
