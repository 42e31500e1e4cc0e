//! A build root for a compiler the host lacks: in, a Debian suite and the compiler text a kernel's
//! config names (`x86_64-linux-gnu-gcc-14 (Debian 14.2.0-19) 14.2.0`); out, a minimal root made by
//! mmdebstrap, cached by suite and package list, and a bubblewrap command that runs a program
//! inside it. Invariant: a root dir under the cache exists only when complete (made in a scratch
//! dir and renamed), and it is handed out only when its compiler prints exactly the config's text.

use super::apt::Mirrors;
use super::lock::Lock;
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// A root with the compiler a target kernel was built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRoot {
    pub dir: PathBuf,
    pub suite: String,
    /// The compiler's command name (`x86_64-linux-gnu-gcc-14`), as `CC=` takes it.
    pub compiler: String,
}

/// What a kernel build needs beside the compiler: kbuild's host tools (bison, flex, bc, libelf,
/// libssl for sign-file and objtool), pahole for BTF, kmod and cpio, the compressors of
/// Debian's modules (.ko.xz from 6.12 on), perl and python3 for scripts/.
/// `gcc` because kbuild's host programs (fixdep, objtool) are built with `HOSTCC=gcc`, whatever
/// the kernel's own compiler; ccache so a release's compiles can go through it.
const BASE_PACKAGES: &[&str] = &[
    "gcc",
    "ccache",
    "make",
    "bc",
    "bison",
    "flex",
    "libelf-dev",
    "libssl-dev",
    // kconfig asks the openssl program what it supports (7.x: CONFIG_OPENSSL_SUPPORTS_ML_DSA).
    "openssl",
    "dwarves",
    "kmod",
    "cpio",
    "xz-utils",
    "zstd",
    "perl",
    "python3",
    "patch",
    "binutils",
    "libc6-dev",
];

/// The Debian package providing a compiler command: `x86_64-linux-gnu-gcc-14` and `gcc-14` come
/// from `gcc-14`; `clang-19` from `clang-19`.
pub fn compiler_package(command: &str) -> String {
    let name = command.rsplit('/').next().unwrap_or(command);
    for triplet in ["x86_64-linux-gnu-", "aarch64-linux-gnu-"] {
        if let Some(rest) = name.strip_prefix(triplet) {
            return rest.to_string();
        }
    }
    name.to_string()
}

/// The first line `command --version` prints, run by `runner` (host or root), or None when it
/// does not run.
fn version_line(mut cmd: Command) -> Option<String> {
    let out = cmd.arg("--version").env("LC_ALL", "C").output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// Whether the host's `command` prints exactly `text` (CONFIG_CC_VERSION_TEXT): a kernel built by
/// `gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0` is rebuilt on a Debian 12 host, one built by
/// gcc-14 is not, even when some gcc-14 is installed from elsewhere.
pub fn host_has(command: &str, text: &str) -> bool {
    version_line(Command::new(command)).as_deref() == Some(text)
}

/// The host apt's relaxed Release checks, passed on to mmdebstrap's apt: a host whose mirror is
/// a frozen snapshot sets `Acquire::Check-Valid-Until "false"` (this one does, in
/// /etc/apt/apt.conf.d/99artifact-registry), and without it sid's InRelease ("expired, invalid
/// since 26d") fails mmdebstrap while the private apt state, which reads the host's apt.conf,
/// accepts it. Only the host's own choices are copied, never a default relaxation.
fn host_apt_checks() -> Vec<String> {
    let Ok(out) = Command::new("apt-config").arg("dump").output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            ["Acquire::Check-Valid-Until", "Acquire::Check-Date"]
                .iter()
                .find(|k| {
                    l.strip_prefix(*k)
                        .is_some_and(|rest| rest.trim() == "\"false\";")
                })
                .map(|k| format!("{k} \"false\""))
        })
        .collect()
}

impl BuildRoot {
    /// The root for `suite` holding `compiler` (the config's first word), made when missing and
    /// checked against `cc_text`.
    pub fn ensure(
        cache: &Path,
        suite: &str,
        compiler: &str,
        cc_text: &str,
        extra: &[&str],
        mirrors: &Mirrors,
        log: &mut dyn FnMut(&str),
    ) -> Result<BuildRoot> {
        for tool in ["mmdebstrap", "bwrap"] {
            if Command::new(tool).arg("--version").output().is_err() {
                bail!("{tool} is missing: a kernel built with `{cc_text}` needs a {suite} build root; install it with `apt-get install mmdebstrap bubblewrap`");
            }
        }
        let mut packages: Vec<String> = BASE_PACKAGES.iter().map(|s| s.to_string()).collect();
        packages.push(compiler_package(compiler));
        packages.extend(extra.iter().map(|s| s.to_string()));
        packages.sort();
        packages.dedup();
        let base_suite = suite.strip_suffix("-security").unwrap_or(suite).to_string();
        let mut key = Sha256::new();
        key.update(base_suite.as_bytes());
        key.update(packages.join(",").as_bytes());
        let key: String = key
            .finalize()
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        let roots = cache.join("roots");
        fs::create_dir_all(&roots).with_context(|| format!("cannot create {}", roots.display()))?;
        let dir = roots.join(format!("{base_suite}-{key}"));
        let _lock = Lock::exclusive(&roots.join(format!("{base_suite}-{key}.lock")))?;
        if !dir.join(".complete").exists() {
            let scratch = roots.join(format!(".tmp-{base_suite}-{key}"));
            remove_root(&scratch)?;
            remove_root(&dir)?;
            let mut cmd = Command::new("mmdebstrap");
            cmd.arg("--variant=minbase")
                .arg("--mode=root")
                .arg("--quiet")
                .arg(format!("--include={}", packages.join(",")))
                .arg(&base_suite)
                .arg(&scratch)
                .arg(format!("deb {} {base_suite} main", mirrors.main));
            for opt in host_apt_checks() {
                cmd.arg(format!("--aptopt={opt}"));
            }
            // Security updates of a stable suite's toolchain land in -security; sid has none.
            if base_suite != "sid" && base_suite != "unstable" {
                cmd.arg(format!(
                    "deb {} {base_suite}-security main",
                    mirrors.security
                ));
            }
            log(&format!(
                "build root: mmdebstrap {base_suite} with {} into {}",
                packages.join(" "),
                dir.display()
            ));
            let t = Instant::now();
            let out = cmd.output().context("cannot run mmdebstrap")?;
            if !out.status.success() {
                let err = String::from_utf8_lossy(&out.stderr);
                // apt's reason (an expired Release file, a missing package) comes before
                // mmdebstrap's own last lines.
                let mut tail: Vec<&str> = err
                    .lines()
                    .rev()
                    .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
                    .take(8)
                    .collect();
                if tail.is_empty() {
                    tail = err.lines().rev().take(8).collect();
                }
                let _ = remove_root(&scratch);
                bail!(
                    "mmdebstrap of a {base_suite} root with {} failed:\n{}\nCheck the network access to {} and that the packages exist in {base_suite}",
                    packages.join(" "),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                    mirrors.main
                );
            }
            fs::write(scratch.join(".complete"), packages.join("\n") + "\n")
                .with_context(|| format!("cannot write {}", scratch.join(".complete").display()))?;
            fs::rename(&scratch, &dir).with_context(|| {
                format!("cannot rename {} to {}", scratch.display(), dir.display())
            })?;
            log(&format!(
                "build root: {} made in {:.0} s",
                dir.display(),
                t.elapsed().as_secs_f64()
            ));
        }
        let root = BuildRoot {
            dir,
            suite: base_suite,
            compiler: compiler.to_string(),
        };
        let found = version_line(root.command(&[], Path::new(compiler)));
        if found.as_deref() != Some(cc_text) {
            bail!(
                "the {} build root {} has `{}`, but the kernel's config names `{cc_text}`: {} has moved to another {} build. Rebuild against the suite's newer kernel, or use a root from snapshot.debian.org",
                root.suite,
                root.dir.display(),
                found.as_deref().unwrap_or("no working compiler"),
                root.suite,
                compiler_package(compiler)
            );
        }
        Ok(root)
    }

    /// A command that runs `program args` inside the root, with `binds` bound read-write at the
    /// same paths, /proc /dev /tmp set up, cwd kept. `program` itself (the klp-build binary, built
    /// on Debian 12, which runs on any newer glibc) is bound at its own path when it lies outside
    /// the root's /usr.
    pub fn command(&self, binds: &[PathBuf], program: &Path) -> Command {
        let mut cmd = Command::new("bwrap");
        cmd.arg("--bind").arg(&self.dir).arg("/");
        cmd.args(["--proc", "/proc", "--dev", "/dev", "--bind", "/tmp", "/tmp"]);
        let mut bound: Vec<PathBuf> = Vec::new();
        for b in binds {
            if b.as_os_str().is_empty() || bound.iter().any(|x| x == b) {
                continue;
            }
            cmd.arg("--bind").arg(b).arg(b);
            bound.push(b.clone());
        }
        if program.is_absolute()
            && program.exists()
            && !bound.iter().any(|b| program.starts_with(b))
        {
            cmd.arg("--ro-bind").arg(program).arg(program);
        }
        // The cwd is kept: bound too when no bind covers it, else bwrap's --chdir fails.
        if let Ok(cwd) = std::env::current_dir() {
            if !cwd.starts_with("/tmp") && !bound.iter().any(|b| cwd.starts_with(b)) {
                cmd.arg("--bind").arg(&cwd).arg(&cwd);
            }
            cmd.arg("--chdir").arg(cwd);
        }
        cmd.arg("--").arg(program);
        cmd
    }
}

/// Removes a (possibly half-made) root. Refuses anything not under a `roots` dir.
fn remove_root(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.parent().is_some_and(|p| p.ends_with("roots")) {
        bail!("refusing to remove {}: not a build root", dir.display());
    }
    fs::remove_dir_all(dir)
        .with_context(|| format!("cannot remove the stale build root {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_packages() {
        assert_eq!(compiler_package("x86_64-linux-gnu-gcc-14"), "gcc-14");
        assert_eq!(compiler_package("gcc-12"), "gcc-12");
        assert_eq!(
            compiler_package("/usr/bin/x86_64-linux-gnu-gcc-16"),
            "gcc-16"
        );
        assert_eq!(compiler_package(""), "");
    }
}
