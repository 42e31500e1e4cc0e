//! The guest's initramfs. Input: Debian's busybox-static, the `/init` script and the files the
//! guest needs (modules, the user's scripts). Output: a gzip-compressed newc cpio archive, as the
//! kernel unpacks it. Invariant: every entry is owned by root and the archive depends only on its
//! inputs (entries in the order given, mtime 0), so two runs make the same bytes.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};
use cpio::newc::{Builder, ModeFileType};

/// Where Debian's busybox-static puts its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// An archive under construction.
pub struct Initramfs {
    entries: Vec<(String, u32, Vec<u8>)>,
}

impl Initramfs {
    /// An archive with the directories a busybox system needs and busybox with every applet it
    /// lists linked under its full path (`/sbin/insmod -> /bin/busybox`).
    pub fn busybox() -> anyhow::Result<Initramfs> {
        let busybox = Path::new(BUSYBOX);
        let bytes = std::fs::read(busybox).with_context(|| {
            format!("{BUSYBOX}: cannot read it; install busybox-static (apt-get install busybox-static)")
        })?;
        // The initramfs has no libc, so a dynamically linked busybox (package `busybox`) cannot
        // run there; its ELF has a PT_INTERP program header.
        if has_interpreter(&bytes) {
            bail!("{BUSYBOX} is dynamically linked and cannot run without a libc in the guest; install busybox-static (apt-get install busybox-static)");
        }
        let out = std::process::Command::new(busybox)
            .arg("--list-full")
            .output()
            .with_context(|| format!("running {BUSYBOX} --list-full"))?;
        if !out.status.success() {
            bail!("{BUSYBOX} --list-full failed: install busybox-static (apt-get install busybox-static)");
        }
        let mut r = Initramfs {
            entries: Vec::new(),
        };
        for d in [
            "bin", "sbin", "usr", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "verify",
        ] {
            r.dir(d);
        }
        r.file("bin/busybox", 0o755, bytes);
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            let applet = applet.trim().trim_start_matches('/');
            if applet.is_empty() || applet == "bin/busybox" || applet.contains("..") {
                continue;
            }
            r.symlink(applet, "/bin/busybox");
        }
        Ok(r)
    }

    /// A directory.
    pub fn dir(&mut self, path: &str) {
        self.entries.push((
            path.to_string(),
            u32::from(ModeFileType::Directory) | 0o755,
            Vec::new(),
        ));
    }

    /// A regular file.
    pub fn file(&mut self, path: &str, mode: u32, bytes: Vec<u8>) {
        self.entries.push((
            path.to_string(),
            u32::from(ModeFileType::Regular) | mode,
            bytes,
        ));
    }

    /// A symbolic link to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.entries.push((
            path.to_string(),
            u32::from(ModeFileType::Symlink) | 0o777,
            target.as_bytes().to_vec(),
        ));
    }

    /// The archive, gzip-compressed, written to `out`.
    pub fn write(&self, out: &Path) -> anyhow::Result<()> {
        let f =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let mut gz =
            flate2::write::GzEncoder::new(std::io::BufWriter::new(f), flate2::Compression::fast());
        for (i, (name, mode, bytes)) in self.entries.iter().enumerate() {
            let size = u32::try_from(bytes.len())
                .with_context(|| format!("{name}: too large for a cpio archive"))?;
            let mut w = Builder::new(name)
                .ino(u32::try_from(i + 1).unwrap_or(u32::MAX))
                .mode(*mode)
                .nlink(if mode & 0o170000 == u32::from(ModeFileType::Directory) {
                    2
                } else {
                    1
                })
                .write(&mut gz, size);
            w.write_all(bytes)
                .with_context(|| format!("writing {}", out.display()))?;
            w.finish()
                .with_context(|| format!("writing {}", out.display()))?;
        }
        cpio::newc::trailer(&mut gz).with_context(|| format!("writing {}", out.display()))?;
        gz.finish()
            .and_then(|mut w| w.flush())
            .with_context(|| format!("writing {}", out.display()))?;
        Ok(())
    }
}

/// Whether an ELF file has a PT_INTERP program header (is dynamically linked). Bounds are checked:
/// a file that is no 64-bit ELF counts as static, and running it then says what it is.
fn has_interpreter(elf: &[u8]) -> bool {
    use object::read::elf::{FileHeader, ProgramHeader};
    let Ok(h) = object::elf::FileHeader64::<object::Endianness>::parse(elf) else {
        return false;
    };
    let Ok(endian) = h.endian() else {
        return false;
    };
    h.program_headers(endian, elf).is_ok_and(|phs| {
        phs.iter()
            .any(|p| p.p_type(endian) == object::elf::PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The archive reads back with the cpio crate's reader, entries in order with their modes.
    #[test]
    fn archive_reads_back_as_newc_with_modes_and_contents() {
        let d = tempfile::tempdir().unwrap();
        let mut r = Initramfs {
            entries: Vec::new(),
        };
        r.dir("verify");
        r.file("verify/check.sh", 0o755, b"echo ok\n".to_vec());
        r.symlink("sbin/insmod", "/bin/busybox");
        let out = d.path().join("i.cpio.gz");
        r.write(&out).unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap()),
            &mut raw,
        )
        .unwrap();
        let mut rest: &[u8] = &raw;
        let mut seen = Vec::new();
        loop {
            let mut reader = cpio::NewcReader::new(rest).unwrap();
            if reader.entry().is_trailer() {
                break;
            }
            let (name, mode) = (reader.entry().name().to_string(), reader.entry().mode());
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut body).unwrap();
            seen.push((name, mode, body));
            rest = reader.finish().unwrap();
        }
        assert_eq!(
            seen,
            vec![
                ("verify".into(), 0o040755, vec![]),
                ("verify/check.sh".into(), 0o100755, b"echo ok\n".to_vec()),
                ("sbin/insmod".into(), 0o120777, b"/bin/busybox".to_vec()),
            ]
        );
    }

    #[test]
    fn the_hosts_busybox_static_is_taken_and_a_dynamic_one_would_be_refused() {
        assert!(!has_interpreter(b"not an elf"));
        let ls = std::fs::read("/bin/ls").unwrap();
        assert!(has_interpreter(&ls), "/bin/ls is dynamically linked");
        if Path::new(BUSYBOX).exists() {
            let bb = std::fs::read(BUSYBOX).unwrap();
            assert_eq!(
                has_interpreter(&bb),
                Initramfs::busybox().is_err(),
                "busybox() refuses exactly a dynamic busybox"
            );
        }
    }
}
