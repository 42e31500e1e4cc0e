//! The kernel `verify` boots. Input: `--kernel` as given (a Debian kernel release, a
//! vmlinuz/bzImage file, or a built tree) and `--modules`. Output: [`BootKernel`]: the image, its
//! release, and where its modules are. Invariant: the release is read from the image itself (the
//! bzImage header's version string), so a module built for another kernel is refused before any
//! boot, whatever the file is called.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// A kernel ready to boot.
#[derive(Debug, Clone)]
pub struct BootKernel {
    /// The bzImage.
    pub image: PathBuf,
    /// Its release (`6.1.0-57-amd64`), from its header.
    pub release: String,
    /// Its modules (`lib/modules/<release>` or a built tree), when known.
    pub modules: Option<PathBuf>,
}

/// Finds the kernel `spec` names; `log` hears about downloads.
pub fn resolve(
    spec: &str,
    modules: Option<&Path>,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<BootKernel> {
    let path = Path::new(spec);
    let (image, default_modules) = if path.is_dir() {
        let image = path.join("arch/x86/boot/bzImage");
        if !image.is_file() {
            bail!(
                "--kernel {spec}: a directory, but not a built kernel tree: {} does not exist (run `make bzImage modules` there, or give the image file)",
                image.display()
            );
        }
        (image, Some(path.to_path_buf()))
    } else if path.is_file() {
        (path.to_path_buf(), None)
    } else if spec.contains('/') {
        bail!("--kernel {spec}: no such file or directory; give a vmlinuz/bzImage file, a built kernel tree, or a Debian kernel release such as 6.1.0-57-amd64");
    } else {
        let cache = crate::release::cache_dir()?;
        let suites = crate::release::debian::Suites::default();
        let k = crate::release::debian::resolve(&cache, spec, &suites, log)
            .map_err(|e| anyhow::anyhow!("--kernel {spec}: {e:#}"))?;
        (k.vmlinuz, Some(k.modules))
    };
    let bytes = crate::input::read(
        &image,
        crate::input::Kind::Image,
        &format!("--kernel {spec}"),
    )?;
    let release = bzimage_release(&bytes).with_context(|| {
        format!(
            "--kernel {spec}: {} is not an x86 bzImage (no \"HdrS\" boot header with a version string); give the vmlinuz or arch/x86/boot/bzImage, not the ELF vmlinux",
            image.display()
        )
    })?;
    Ok(BootKernel {
        image,
        release,
        modules: modules.map(Path::to_path_buf).or(default_modules),
    })
}

/// The release in an x86 bzImage: the boot protocol's header (`HdrS` at 0x202) points at a
/// version string (`kernel_version`, at 0x20e, is its offset minus 0x200), which starts with the
/// release: `6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1 SMP ...`.
pub fn bzimage_release(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let field = image.get(0x20e..0x210)?;
    let offset = usize::from(u16::from_le_bytes([field[0], field[1]])) + 0x200;
    let text = image.get(offset..(offset + 256).min(image.len()))?;
    let end = text.iter().position(|b| *b == 0 || *b == b' ')?;
    let release = std::str::from_utf8(&text[..end]).ok()?;
    (!release.is_empty() && release.is_ascii()).then(|| release.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(version: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        b[0x300..0x300 + version.len()].copy_from_slice(version);
        b
    }

    #[test]
    fn the_release_is_read_from_the_boot_header() {
        assert_eq!(
            bzimage_release(&image(
                b"6.1.0-57-amd64 (debian-kernel@lists.debian.org) #1\0"
            )),
            Some("6.1.0-57-amd64".into())
        );
    }

    #[test]
    fn what_is_no_bzimage_has_no_release_and_no_panic() {
        assert_eq!(bzimage_release(b"\x7fELF"), None);
        assert_eq!(bzimage_release(&[0u8; 0x300]), None);
        let mut b = image(b"x");
        b[0x20e..0x210].copy_from_slice(&0xffffu16.to_le_bytes());
        assert_eq!(bzimage_release(&b), None, "a version offset past the end");
        let mut cut = image(b"no-terminator");
        cut.truncate(0x300 + "no-terminator".len());
        assert_eq!(
            bzimage_release(&cut),
            None,
            "a version string cut by the end of the file"
        );
    }
}
