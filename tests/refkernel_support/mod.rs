//! The reference kernel of replace-set.md for integration tests, included with
//! `mod refkernel_support;`: reads `lab/refkernel.sh` (Debian's linux-source-6.12 with
//! `testdata/kernel/replace-set.patch`, built small and cached) into a [`RefKernel`], builds
//! livepatch modules against its tree with kbuild, and boots it in QEMU with a test script.
//! Invariant: a test gets a complete built kernel or is skipped with a printed reason; under
//! `CI=true` (or with `KLP_LAB=1`) `lab/refkernel.sh` builds what is missing, and a kernel that
//! still cannot be had is a panic, since CI must not pass by skipping.
#![allow(dead_code)]
// Also included by `support` in the test crates that have both: one file, one rule.
#[allow(clippy::duplicate_mod)]
#[path = "../ci_env/mod.rs"]
mod ci_env;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};

/// `--diff <patch> --source <tree> --symbols <vmlinux> --work-dir <work> -j 2 -o <ko>`: a
/// klp-build command line that builds inside the reference tree, but for options of the test's
/// own.
pub fn klp_build_args(
    kernel: &RefKernel,
    patch: &Path,
    work: &Path,
    ko: &Path,
) -> Vec<std::ffi::OsString> {
    [
        ("--diff", patch.as_os_str()),
        ("--source", kernel.tree.as_os_str()),
        ("--symbols", kernel.vmlinux.as_os_str()),
        ("--work-dir", work.as_os_str()),
        ("-j", "2".as_ref()),
        ("-o", ko.as_os_str()),
    ]
    .into_iter()
    .flat_map(|(option, value)| [option.into(), value.to_os_string()])
    .collect()
}

/// The built reference kernel (the keys `lab/refkernel.sh` prints).
#[derive(Debug, Clone)]
pub struct RefKernel {
    /// `REF_TREE`: the complete built tree: kbuild dir for `M=` modules and a built-tree target
    /// for klp-build (its `vmlinux`, `Module.symvers`, `.config`, objects and `.cmd` files).
    pub tree: PathBuf,
    /// `REF_BZIMAGE`: the image [`boot`] runs.
    pub bzimage: PathBuf,
    /// `REF_VMLINUX`: the linked kernel, the symbol source of the built-tree target.
    pub vmlinux: PathBuf,
    /// `REF_SYMVERS`: the tree's `Module.symvers`.
    pub symvers: PathBuf,
    /// `REF_CONFIG`: the tree's `.config`.
    pub config: PathBuf,
    /// `REF_RELEASE`: `uname -r` of the kernel (`6.12.117-replace-set`).
    pub release: String,
    /// `REF_VERSION`: the Debian version of `linux-source-6.12` it was built from.
    pub version: String,
}

/// The result of one QEMU boot.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The serial console log (kernel messages and the script's output), `\r` removed.
    pub log: String,
    /// The log's verdict line is `KLP-TEST-RESULT: PASS`: the script exited 0.
    pub passed: bool,
    /// Where the log is kept (`target/klp-e2e/<name>.log`), for a failure message to point at.
    pub log_file: PathBuf,
}

static KERNEL: OnceLock<Result<RefKernel, String>> = OnceLock::new();

/// One guest at a time per test process: software emulation takes a whole core.
static BOOTS: Mutex<()> = Mutex::new(());

/// The reference kernel, found or built once per test process. `None` means skip: "SKIP <test>:
/// <reason>" is printed to stderr. Under `CI=true` a kernel that cannot be had panics instead.
pub fn ref_kernel(test: &str) -> Option<&'static RefKernel> {
    match KERNEL.get_or_init(load) {
        Ok(kernel) => Some(kernel),
        Err(reason) if ci() => {
            panic!("{test}: the reference kernel is required under CI=true: {reason}")
        }
        Err(reason) => {
            // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
            let _ = writeln!(std::io::stderr(), "SKIP {test}: {reason}");
            None
        }
    }
}

/// Builds the modules of `src` (a dir with a `Kbuild`, `.c` and `.h` files, e.g.
/// `testdata/kernel/modules`) against the kernel's tree with `make -C <tree> M=<dir> modules`, in
/// a fresh copy under `target/klp-e2e/<name>/`, so the source dir stays clean. Returns that dir.
pub fn build_modules(kernel: &RefKernel, src: &Path, name: &str) -> Result<PathBuf> {
    let dir = log_dir().join(file_name(name));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let entries = std::fs::read_dir(src).with_context(|| format!("read {}", src.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("read {}", src.display()))?
            .path();
        let keep = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
            n == "Kbuild" || n == "Makefile" || n.ends_with(".c") || n.ends_with(".h")
        });
        if keep && path.is_file() {
            let to = dir.join(path.file_name().unwrap_or_default());
            std::fs::copy(&path, &to)
                .with_context(|| format!("copy {} to {}", path.display(), to.display()))?;
        }
    }
    let out = Command::new("make")
        .arg("-C")
        .arg(&kernel.tree)
        .arg(format!("M={}", dir.display()))
        .arg(format!(
            "-j{}",
            std::thread::available_parallelism().map_or(1, |n| n.get())
        ))
        .arg("modules")
        .stdin(Stdio::null())
        .output()
        .context("run make (is it installed?)")?;
    if !out.status.success() {
        bail!(
            "make -C {} M={} modules failed ({}):\n{}{}",
            kernel.tree.display(),
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(dir)
}

/// Boots the kernel with `files` in `/modules` and `script` as `/test.sh` (run with `sh -e`),
/// bounded by `timeout_s`. A script that fails, a panic or a timeout is `Ok` with
/// `passed == false`; `Err` means the boot could not be run at all.
pub fn boot(
    kernel: &RefKernel,
    name: &str,
    files: &[PathBuf],
    script: &str,
    timeout_s: u32,
) -> Result<Boot> {
    let tmp = tempfile::tempdir().context("create a temporary dir for the initramfs")?;
    let script_file = tmp.path().join("test.sh");
    std::fs::write(&script_file, script)
        .with_context(|| format!("write {}", script_file.display()))?;
    let initramfs = tmp.path().join("initramfs.gz");
    let out = Command::new("bash")
        .arg(script_path())
        .arg("initramfs")
        .arg("-o")
        .arg(&initramfs)
        .arg("-s")
        .arg(&script_file)
        .args(files)
        .stdin(Stdio::null())
        .output()
        .context("run bash lab/refkernel.sh initramfs")?;
    if !out.status.success() {
        bail!(
            "lab/refkernel.sh initramfs failed for boot {name} ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    let log_file = log_dir().join(format!("{}.log", file_name(name)));
    let out = {
        let _one_guest = BOOTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // lab/boot.sh as it is: TCG, -no-reboot (the initramfs ends with `reboot -f`, since
        // tinyconfig has no ACPI to power off with), bounded, verdict from the console.
        Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/boot.sh"))
            .arg("-l")
            .arg(&log_file)
            .arg("-t")
            .arg(timeout_s.to_string())
            .arg(&kernel.bzimage)
            .arg(&initramfs)
            .stdin(Stdio::null())
            .output()
            .context("run bash lab/boot.sh")?
    };
    let passed = match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => bail!(
            "lab/boot.sh could not boot {} for {name} ({}): {}",
            kernel.bzimage.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    };
    let log = std::fs::read(&log_file).with_context(|| format!("read {}", log_file.display()))?;
    let log = String::from_utf8_lossy(&log).replace('\r', "");
    Ok(Boot {
        log,
        passed,
        log_file,
    })
}

fn load() -> Result<RefKernel, String> {
    let build = ci() || std::env::var("KLP_LAB").as_deref() == Ok("1");
    let env = match run_script(&["cached"], false) {
        Ok(env) => env,
        Err(why) if build => {
            let _ = writeln!(std::io::stderr(), "lab: {why}; running lab/refkernel.sh");
            run_script(&[], true)?
        }
        Err(why) => return Err(format!("{why} (or set KLP_LAB=1 to let the tests run it)")),
    };
    let vars: HashMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
    let get = |key: &str| {
        vars.get(key)
            .map(|v| v.to_string())
            .ok_or_else(|| format!("lab/refkernel.sh printed no {key}: run bash lab/refkernel.sh"))
    };
    let kernel = RefKernel {
        tree: get("REF_TREE")?.into(),
        bzimage: get("REF_BZIMAGE")?.into(),
        vmlinux: get("REF_VMLINUX")?.into(),
        symvers: get("REF_SYMVERS")?.into(),
        config: get("REF_CONFIG")?.into(),
        release: get("REF_RELEASE")?,
        version: get("REF_VERSION")?,
    };
    for path in [
        &kernel.bzimage,
        &kernel.vmlinux,
        &kernel.symvers,
        &kernel.config,
    ] {
        if !path.is_file() {
            return Err(format!(
                "{} does not exist: run bash lab/refkernel.sh",
                path.display()
            ));
        }
    }
    Ok(kernel)
}

/// Runs `bash lab/refkernel.sh ARGS` and returns its stdout; the error is its last stderr line,
/// which names what is missing or failed. With `show_progress` (a build takes minutes) each
/// stderr line is also passed on as it comes.
fn run_script(args: &[&str], show_progress: bool) -> Result<String, String> {
    let mut child = Command::new("bash")
        .arg(script_path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run bash lab/refkernel.sh: {e}"))?;
    let mut last = String::new();
    // Its stdout is a few KEY=VALUE lines, far below a pipe's buffer: reading stderr to the end
    // first cannot deadlock.
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if show_progress {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
            if !line.trim().is_empty() {
                last = line;
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("wait for bash lab/refkernel.sh: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    match last.strip_prefix("lab: error: ") {
        Some(reason) => Err(reason.to_string()),
        None if last.is_empty() => Err(format!("lab/refkernel.sh failed ({})", out.status)),
        None => Err(format!("lab/refkernel.sh failed ({}): {last}", out.status)),
    }
}

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab/refkernel.sh")
}

/// `target/klp-e2e`: next to cargo's `target/tmp`, so it follows `CARGO_TARGET_DIR`.
fn log_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("klp-e2e")
}

fn file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn ci() -> bool {
    ci_env::under_ci()
}
