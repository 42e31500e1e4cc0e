//! The kernel lab for end-to-end tests: reads `lab/env.sh [SERIES]` (the cache `lab/setup.sh
//! [SERIES]` fills) into a [`Lab`], once per series and test process, and boots its kernel in QEMU
//! with a test script and modules. Debian 12 has two kernel series, 6.1 ([`lab`]) and 6.12
//! ([`lab_series`]).
//! Invariant: a test that needs the lab either gets a complete one or is skipped with a printed
//! reason, and under `CI=true` the skip is a panic instead, since CI must not pass by skipping.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};

/// The Debian kernel that the end-to-end tests build against and boot (the keys of `lab/env.sh`).
#[derive(Debug, Clone)]
pub struct Lab {
    /// The Debian kernel series (`6.1`, `6.12`): the argument of `lab/setup.sh`.
    pub series: String,
    /// `LAB_DIR`: the cache dir of this kernel version; tests may cache their own files under it.
    pub dir: PathBuf,
    /// `LAB_SRC`: the unpacked Debian source tree (`linux-source-<series>`); treat it as read-only.
    pub src: PathBuf,
    /// `LAB_KBUILD`: the installed headers' kbuild dir, with `Module.symvers`.
    pub kbuild: PathBuf,
    /// `LAB_CONFIG`: the distro `.config` (`boot/config-<release>` of the image package).
    pub config: PathBuf,
    /// `LAB_VMLINUZ`: the distro kernel image that [`boot`] runs.
    pub vmlinuz: PathBuf,
    /// `LAB_KALLSYMS`: `/proc/kallsyms` captured from that kernel, with real addresses.
    pub kallsyms: PathBuf,
    /// `LAB_RELEASE`: `uname -r` of the kernel (`6.1.0-56-amd64`).
    pub release: String,
    /// `LAB_MODULES`: the image's `lib/modules/<release>`, with `modules.dep`.
    pub modules: PathBuf,
}

/// The result of one QEMU boot.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The serial console log (kernel messages and the script's output), `\r` removed.
    pub log: String,
    /// The log's verdict line is `KLP-TEST-RESULT: PASS`: the script exited 0.
    pub passed: bool,
    /// Where the log is kept, `target/klp-e2e/<name>.log`, for a failure message to point at.
    pub log_file: PathBuf,
}

/// The default series, what `lab/setup.sh` without arguments sets up.
pub const DEFAULT_SERIES: &str = "6.1";

/// The Debian 12 kernel series the end-to-end tests run on.
pub const SERIES: &[&str] = &["6.1", "6.12"];

static LAB: OnceLock<Result<Lab, String>> = OnceLock::new();
static LAB_6_12: OnceLock<Result<Lab, String>> = OnceLock::new();

/// QEMU runs one guest at a time per test process: software emulation takes a whole core, and
/// the machine has two.
static BOOTS: Mutex<()> = Mutex::new(());

/// The lab, set up once per test process. `None` means skip: "SKIP <test>: <reason>" is printed
/// to stderr. Under `CI=true` a missing or unusable lab panics with the reason instead. When the
/// cache is incomplete and `KLP_LAB=1` or `CI=true`, `lab/setup.sh` runs first.
pub fn lab(test: &str) -> Option<&'static Lab> {
    lab_series(test, DEFAULT_SERIES)
}

/// [`lab`] of Debian's kernel series `series` (one of [`SERIES`]).
pub fn lab_series(test: &str, series: &str) -> Option<&'static Lab> {
    let cell = match series {
        "6.1" => &LAB,
        "6.12" => &LAB_6_12,
        other => panic!("{test}: no kernel lab series {other:?}; the lab knows {SERIES:?}"),
    };
    match cell.get_or_init(|| load(series)) {
        Ok(lab) => Some(lab),
        Err(reason) if ci() => panic!("{test}: the kernel lab is required under CI=true: {reason}"),
        Err(reason) => {
            // Straight to the process's stderr: libtest captures `eprintln!` of passing tests,
            // and a skip must be seen.
            let _ = writeln!(std::io::stderr(), "SKIP {test}: {reason}");
            None
        }
    }
}

/// Boots `lab.vmlinuz` with `files` in `/modules` and `script` as `/test.sh` (run with `sh -e`),
/// bounded by 180 s. A script that fails, a panic or a timeout is `Ok` with `passed == false`;
/// `Err` means the boot could not be run at all.
pub fn boot(lab: &Lab, name: &str, files: &[&Path], script: &str) -> Result<Boot> {
    boot_with(lab, name, files, script, "")
}

/// [`boot`] with `append` added to the kernel command line (`module.sig_enforce=1`).
pub fn boot_with(
    lab: &Lab,
    name: &str,
    files: &[&Path],
    script: &str,
    append: &str,
) -> Result<Boot> {
    let image = Image {
        kernel: &lab.vmlinuz,
        initramfs: (&script_path("initramfs.sh"), &[]),
        append,
        timeout_s: None,
    };
    boot_image(&image, name, files, script)
}

/// A kernel to boot and how its initramfs is made.
pub struct Image<'a> {
    /// The bzImage/vmlinuz.
    pub kernel: &'a Path,
    /// The script that makes the initramfs (`-o OUT -s SCRIPT FILES...` follow these arguments).
    pub initramfs: (&'a Path, &'a [&'a str]),
    /// Added to the kernel command line.
    pub append: &'a str,
    /// `lab/boot.sh -t`, its default (180 s) when `None`.
    pub timeout_s: Option<u32>,
}

/// Boots `image` with `files` in `/modules` and `script` as `/test.sh` through `lab/boot.sh`
/// (TCG, `-no-reboot`, bounded, verdict from the console), one guest at a time per process.
pub fn boot_image(image: &Image<'_>, name: &str, files: &[&Path], script: &str) -> Result<Boot> {
    let tmp = tempfile::tempdir().context("create a temporary dir for the initramfs")?;
    let script_file = tmp.path().join("test.sh");
    std::fs::write(&script_file, script)
        .with_context(|| format!("write {}", script_file.display()))?;
    let initramfs = tmp.path().join("initramfs.gz");
    let (maker, args) = image.initramfs;
    let out = Command::new("bash")
        .arg(maker)
        .args(args)
        .arg("-o")
        .arg(&initramfs)
        .arg("-s")
        .arg(&script_file)
        .args(files)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run bash {}", maker.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed for boot {name} ({}): {}",
            maker.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    let log_file = log_dir().join(format!("{}.log", file_name(name)));
    let out = {
        // A test that panicked while holding the lock poisons it; the next boot may still run.
        let _one_guest = BOOTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut cmd = Command::new("bash");
        cmd.arg(script_path("boot.sh")).arg("-l").arg(&log_file);
        if !image.append.is_empty() {
            cmd.arg("-a").arg(image.append);
        }
        if let Some(t) = image.timeout_s {
            cmd.arg("-t").arg(t.to_string());
        }
        cmd.arg(image.kernel)
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
            image.kernel.display(),
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

fn load(series: &str) -> Result<Lab, String> {
    let env = match run_script(&script_path("env.sh"), &[series], false) {
        Ok(env) => env,
        Err(why) if ci() || std::env::var("KLP_LAB").as_deref() == Ok("1") => {
            let _ = writeln!(
                std::io::stderr(),
                "lab: {why}; running lab/setup.sh {series}"
            );
            run_script(&script_path("setup.sh"), &[series], true)?
        }
        Err(why) => {
            return Err(format!("{why} (or set KLP_LAB=1 to let the tests run it)"));
        }
    };
    Lab::from_env(&env, series)
}

impl Lab {
    fn from_env(env: &str, series: &str) -> Result<Lab, String> {
        let vars = env_vars(env);
        let get = |key: &str| {
            vars.get(key)
                .map(|v| v.to_string())
                .ok_or_else(|| format!("lab/env.sh printed no {key}: run bash lab/setup.sh"))
        };
        Ok(Lab {
            series: series.to_string(),
            dir: get("LAB_DIR")?.into(),
            src: get("LAB_SRC")?.into(),
            kbuild: get("LAB_KBUILD")?.into(),
            config: get("LAB_CONFIG")?.into(),
            vmlinuz: get("LAB_VMLINUZ")?.into(),
            kallsyms: get("LAB_KALLSYMS")?.into(),
            release: get("LAB_RELEASE")?,
            modules: get("LAB_MODULES")?.into(),
        })
    }
}

/// The `KEY=VALUE` lines a lab script prints.
pub fn env_vars(env: &str) -> HashMap<&str, &str> {
    env.lines().filter_map(|l| l.split_once('=')).collect()
}

/// Runs `bash SCRIPT ARGS` and returns its stdout; the error is its last stderr line, which
/// names what is missing or failed. With `show_progress` (setup and builds take minutes) each
/// stderr line is also passed on to the terminal as it comes.
pub fn run_script(script: &Path, args: &[&str], show_progress: bool) -> Result<String, String> {
    let name = script
        .strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(script)
        .display()
        .to_string();
    let mut child = Command::new("bash")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run bash {name}: {e}"))?;
    let mut last = String::new();
    // Its stdout is a few KEY=VALUE lines, far below a pipe's buffer: reading stderr to the
    // end first cannot deadlock.
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
        .map_err(|e| format!("wait for bash {name}: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    match last.strip_prefix("lab: error: ") {
        Some(reason) => Err(reason.to_string()),
        None if last.is_empty() => Err(format!("{name} failed ({})", out.status)),
        None => Err(format!("{name} failed ({}): {last}", out.status)),
    }
}

/// `lab/<name>` of this checkout.
pub fn script_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab").join(name)
}

/// `target/klp-e2e`: next to cargo's `target/tmp`, so it follows `CARGO_TARGET_DIR`.
pub fn log_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("klp-e2e")
}

/// `name` as a file name: anything but `[A-Za-z0-9._-]` becomes `_`.
pub fn file_name(name: &str) -> String {
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

pub fn ci() -> bool {
    super::ci_env::under_ci()
}
