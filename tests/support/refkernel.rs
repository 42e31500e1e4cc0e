//! The reference kernel of replace-set.md for integration tests: reads `lab/refkernel.sh` (Debian's linux-source-6.12 with
//! `testdata/kernel/replace-set.patch`, built small and cached) into a [`RefKernel`], builds
//! livepatch modules against its tree with kbuild, and boots it in QEMU with a test script.
//! Invariant: a test gets a complete built kernel or is skipped with a printed reason; under
//! `CI=true` (or with `KLP_LAB=1`) `lab/refkernel.sh` builds what is missing, and a kernel that
//! still cannot be had is a panic, since CI must not pass by skipping.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};

use super::lab::{boot_image, ci, env_vars, file_name, log_dir, run_script, Boot, Image};

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

static KERNEL: OnceLock<Result<RefKernel, String>> = OnceLock::new();
static KERNEL_SIG: OnceLock<Result<RefKernel, String>> = OnceLock::new();

/// The reference kernel, found or built once per test process. `None` means skip: "SKIP <test>:
/// <reason>" is printed to stderr. Under `CI=true` a kernel that cannot be had panics instead.
pub fn ref_kernel(test: &str) -> Option<&'static RefKernel> {
    found(test, KERNEL.get_or_init(|| load(&[])))
}

/// The signing variant of the reference kernel (`lab/refkernel.sh --variant sig`:
/// `CONFIG_MODULE_SIG_FORCE` with the build's own key, `certs/signing_key.pem` in its tree),
/// found or built once per test process; skipped and failed as [`ref_kernel`].
pub fn ref_kernel_sig(test: &str) -> Option<&'static RefKernel> {
    found(test, KERNEL_SIG.get_or_init(|| load(&["--variant", "sig"])))
}

fn found(test: &str, kernel: &'static Result<RefKernel, String>) -> Option<&'static RefKernel> {
    match kernel {
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
    boot_with_programs(kernel, name, files, &[], script, timeout_s)
}

/// [`boot`], with host programs in the guest beside busybox: each of `programs` is
/// `lab/refkernel.sh initramfs -x`'s `SRC[:DEST]`, the program copied with its shared libraries.
pub fn boot_with_programs(
    kernel: &RefKernel,
    name: &str,
    files: &[PathBuf],
    programs: &[String],
    script: &str,
    timeout_s: u32,
) -> Result<Boot> {
    let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut args = vec!["initramfs"];
    for program in programs {
        args.extend(["-x", program.as_str()]);
    }
    // tinyconfig has no ACPI to power off with: the initramfs ends with `reboot -f`, which
    // lab/boot.sh's -no-reboot turns into QEMU's exit.
    let image = Image {
        kernel: &kernel.bzimage,
        initramfs: (&script_path(), &args),
        append: "",
        timeout_s: Some(timeout_s),
    };
    boot_image(&image, name, &files, script)
}

/// The kernel `lab/refkernel.sh` prints with `variant` (its `--variant NAME` arguments, or none):
/// the cached one, or under CI (or `KLP_LAB=1`) the one it builds.
fn load(variant: &[&str]) -> Result<RefKernel, String> {
    let build = ci() || std::env::var("KLP_LAB").as_deref() == Ok("1");
    let cached: Vec<&str> = variant.iter().copied().chain(["cached"]).collect();
    let env = match run_script(&script_path(), &cached, false) {
        Ok(env) => env,
        Err(why) if build => {
            let _ = writeln!(std::io::stderr(), "lab: {why}; running lab/refkernel.sh");
            run_script(&script_path(), variant, true)?
        }
        Err(why) => return Err(format!("{why} (or set KLP_LAB=1 to let the tests run it)")),
    };
    let vars = env_vars(&env);
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

fn script_path() -> PathBuf {
    super::lab::script_path("refkernel.sh")
}
