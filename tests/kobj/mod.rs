//! Real kernel objects for tests: compiles translation units of the lab's Debian source tree with
//! the kernel's own flags (kbuild single targets, plus `-ffunction-sections -fdata-sections` as
//! klp-build uses them) and caches the `.o` under the lab dir, keyed by the source file's hash.
//! The tree is left as it was: the in-tree `.o` and `.cmd` are removed unless they existed before,
//! and builds hold the tree lock so parallel tests never run two makes in one tree.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Prepares the lab's tree the way klp-build does (configure from the distro config and
/// `modules_prepare`, once; the lab leaves it unconfigured), so tests can compile objects in it.
pub fn prepared(lab: &crate::support::Lab) {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let opts = klp_build::kernel::KernelOptions {
            source: lab.src.clone(),
            kbuild: Some(lab.kbuild.clone()),
            config: Some(lab.config.clone()),
            jobs: 2,
        };
        klp_build::kernel::resolve(&opts)
            .and_then(|k| k.prepare(&mut klp_build::progress::Quiet))
            .expect("prepare the lab's source tree");
    });
}

/// Compiles `rel` (e.g. `fs/proc/cmdline.o`) in the prepared tree `src`, returns the cached copy.
/// kbuild's `.cmd` file of the compile (the real command line) is kept beside it, as
/// [`kernel_object_cmd`] returns it.
pub fn kernel_object(src: &Path, cache: &Path, rel: &str) -> PathBuf {
    let c_file = src.join(rel).with_extension("c");
    let source = std::fs::read(&c_file).unwrap_or_else(|e| panic!("{}: {e}", c_file.display()));
    let key = format!("{:016x}", fxhash(&source));
    let out = cache.join("objects").join(key).join(rel);
    if out.exists() && cmd_copy(&out).exists() {
        return out;
    }
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let obj = src.join(rel);
    let cmd = obj.with_file_name(format!(
        ".{}.cmd",
        obj.file_name().unwrap().to_str().unwrap()
    ));
    let existed = obj.exists() || cmd.exists();
    let lock = src.join(".klp-build.lock");
    let status = Command::new("flock")
        .arg(&lock)
        .args([
            "make",
            "-s",
            "-j2",
            "KCFLAGS=-ffunction-sections -fdata-sections",
        ])
        .arg(rel)
        .current_dir(src)
        .status()
        .expect("run flock make");
    assert!(status.success(), "make {rel} failed in {}", src.display());
    std::fs::copy(&obj, &out).unwrap();
    std::fs::copy(&cmd, cmd_copy(&out)).unwrap();
    if !existed {
        let _ = std::fs::remove_file(&obj);
        let _ = std::fs::remove_file(&cmd);
        let _ = std::fs::remove_file(obj.with_extension("o.d"));
    }
    out
}

/// The kbuild `.cmd` file of the compile of `rel`, from the cache (compiling it first if needed).
#[allow(dead_code)] // Used by the tests that check flags and the diff benchmark.
pub fn kernel_object_cmd(src: &Path, cache: &Path, rel: &str) -> PathBuf {
    cmd_copy(&kernel_object(src, cache, rel))
}

/// `rel` compiled by kbuild's own command line from a copy of its source with `from` replaced
/// by `to`, written under `tmp` (the tree is never modified) and reused while the change is the
/// same.
#[allow(dead_code)] // Used by the robustness test and the diff benchmark.
pub fn patched_object(
    src: &Path,
    cache: &Path,
    rel: &str,
    from: &str,
    to: &str,
    tmp: &Path,
) -> Result<PathBuf, String> {
    let cmd_file = kernel_object_cmd(src, cache, rel);
    let text = std::fs::read_to_string(&cmd_file).map_err(|e| e.to_string())?;
    let line = text.lines().next().unwrap_or_default();
    let (_, command) = line
        .split_once(":=")
        .ok_or_else(|| format!("{}: no command", cmd_file.display()))?;
    let rel_c = rel.replace(".o", ".c");
    let source = std::fs::read_to_string(src.join(&rel_c)).map_err(|e| e.to_string())?;
    if !source.contains(from) {
        return Err(format!("{rel_c} has no {from:?}"));
    }
    let dir = tmp.join(rel.replace('/', "_"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let c = dir.join("patched.c");
    let o = dir.join("patched.o");
    let patched = source.replacen(from, to, 1);
    if o.exists() && std::fs::read_to_string(&c).is_ok_and(|old| old == patched) {
        return Ok(o);
    }
    let _ = std::fs::remove_file(&o);
    std::fs::write(&c, patched).map_err(|e| e.to_string())?;
    let (parent, file) = rel.rsplit_once('/').unwrap_or(("", rel));
    let depfile = format!("{parent}/.{file}.d");
    let quote_dir = src.join(parent);
    let command = command
        .replace(&depfile, &dir.join("patched.o.d").display().to_string())
        .replace(&rel_c, &c.display().to_string())
        .replace(rel, &o.display().to_string())
        .replacen(" -c ", &format!(" -iquote {} -c ", quote_dir.display()), 1);
    // Under the tree lock, as kbuild's own compiles: the command reads the tree's headers.
    let st = Command::new("flock")
        .arg(src.join(".klp-build.lock"))
        .args(["sh", "-c", &command])
        .current_dir(src)
        .status()
        .map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("`{command}` failed"));
    }
    Ok(o)
}

fn cmd_copy(out: &Path) -> PathBuf {
    out.with_extension("o.cmd")
}

fn fxhash(data: &[u8]) -> u64 {
    // FNV-1a: a content key for the cache, not a security boundary.
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}
