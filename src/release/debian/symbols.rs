//! The symbols of a Debian kernel: in, its `linux-image-R-dbg` package; out, `vmlinux-R.syms`,
//! the vmlinux's ELF symbol table (FILE symbols included) without its DWARF, under the kernel's
//! cache dir. Invariant: the file exists only when complete (written beside and renamed); the
//! 860 MB package is read as a stream and closed as soon as the vmlinux has gone by, and deleted
//! afterwards.
//!
//! Why: Debian's `System.map` is a one-line placeholder in 6.1, 6.12 and 7.2 ("The real
//! System.map is in the linux-image-<version>-dbg package"). The dbg package's vmlinux is the
//! kernel that runs, with the symbol table in link order: locals grouped by translation unit
//! under their FILE symbol, which is how klp-build numbers same-named locals (sympos).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};

/// The most bytes a vmlinux member may have (Debian's 6.1 one is about 450 MB with DWARF).
const MAX_VMLINUX: u64 = 4 << 30;

/// `kernel/vmlinux-R.syms`, made from `deb` (the dbg package) when it is not there yet.
pub fn from_dbg_package(kernel: &Path, release: &str, deb: &Path) -> Result<PathBuf> {
    let out = kernel.join(format!("vmlinux-{release}.syms"));
    if out.is_file() {
        return Ok(out);
    }
    let raw = kernel.join(format!(".vmlinux-{release}.{}", std::process::id()));
    let result = extract_vmlinux(deb, release, &raw).and_then(|()| strip(&raw, &out));
    let _ = fs::remove_file(&raw);
    result.map(|()| out)
}

/// Streams the package's data and writes its vmlinux member to `to`, stopping at it.
fn extract_vmlinux(deb: &Path, release: &str, to: &Path) -> Result<()> {
    let mut child = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running dpkg-deb: install it (apt-get install dpkg)")?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("dpkg-deb gave no output pipe"))?;
    let found = (|| -> Result<bool> {
        let mut archive = tar::Archive::new(stdout);
        let wanted = [
            format!("usr/lib/debug/boot/vmlinux-{release}"),
            format!("usr/lib/debug/lib/modules/{release}/vmlinux"),
            format!("usr/lib/debug/usr/lib/modules/{release}/vmlinux"),
        ];
        for entry in archive.entries().context("reading the package's data")? {
            let mut entry = entry.context("reading the package's data")?;
            let path = entry.path().context("a member's name")?.into_owned();
            let name = path.to_string_lossy();
            let name = name.trim_start_matches("./");
            if !wanted.iter().any(|w| w == name) || !entry.header().entry_type().is_file() {
                continue;
            }
            let size = entry.size();
            if size > MAX_VMLINUX {
                bail!("{name} is {size} bytes, more than the {MAX_VMLINUX} a vmlinux may have");
            }
            let tmp = to.with_extension("part");
            let mut f =
                fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            std::io::copy(&mut (&mut entry).take(MAX_VMLINUX), &mut f)
                .with_context(|| format!("writing {} (is the disk full?)", tmp.display()))?;
            fs::rename(&tmp, to).with_context(|| format!("writing {}", to.display()))?;
            return Ok(true);
        }
        Ok(false)
    })();
    // The rest of the archive (the modules' debug info, gigabytes) is not needed.
    let _ = child.kill();
    let _ = child.wait();
    match found {
        Ok(true) => Ok(()),
        Ok(false) => bail!(
            "{} has no usr/lib/debug/boot/vmlinux-{release} nor .../modules/{release}/vmlinux",
            deb.display()
        ),
        Err(e) => Err(e.context(format!("reading {}", deb.display()))),
    }
}

/// `objcopy --strip-debug`: the symbol table and sections stay, DWARF goes (450 MB -> 60 MB).
fn strip(from: &Path, to: &Path) -> Result<()> {
    let tmp = to.with_extension("tmp");
    let out = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(from)
        .arg(&tmp)
        .stdin(Stdio::null())
        .output()
        .context("running objcopy: install binutils")?;
    if !out.status.success() {
        let _ = fs::remove_file(&tmp);
        bail!(
            "objcopy --strip-debug {}: {}",
            from.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::rename(&tmp, to).with_context(|| format!("writing {}", to.display()))
}
