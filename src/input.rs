//! The one checked reader of klp-build's input files. Input: a path, the kind of file expected and
//! how the user named it (an option such as `--diff`, or a role such as `module`). Output: the
//! bytes (a module's decompressed when it is `.ko.xz`, `.ko.zst` or `.ko.gz`) or an open file.
//! Invariant: nothing is read from what is not a regular file (a FIFO, a character device such as
//! `/dev/zero`, a directory), and never more than the kind's bound, also when the file grows while
//! it is read or a stream decompresses to more: every error names the option or role, the path and
//! the bound, so an endless or huge input is an error in milliseconds instead of a run until memory
//! is exhausted. Not routed here, on purpose: klp-build's own files it just wrote (the kbuild log,
//! the rebuild journal, whose "not found" is meaningful), and `/proc` files of the machine.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::bail;

const MIB: u64 = 1 << 20;

/// What a file is expected to be; each kind has its own size bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A relocatable object (`.o`): fs/ext4/super.o with debug info is about 5 MiB.
    Object,
    /// A kernel module (`.ko`, also decompressed): the largest distro modules with debug info
    /// (amdgpu) are a few hundred MiB.
    Module,
    /// A patch (`--diff`): large series are a few MiB.
    Patch,
    /// A kernel `.config`: about 300 KiB.
    Config,
    /// A text symbol listing (System.map, `/proc/kallsyms`, `Module.symvers`): 10-20 MiB.
    Symbols,
    /// An ELF vmlinux (streamed through a read cache, not read whole): a `-dbg` one is 1 GiB.
    Vmlinux,
    /// A header or build file of the kernel tree, or klp-build's own file in the work dir.
    Tree,
    /// A module signing key or X.509 certificate (PEM or DER): a few KiB.
    Key,
    /// A boot image (vmlinuz, bzImage): 10-15 MiB for a distro kernel.
    Image,
    /// A shell script run in a guest (`verify --check`): a few KiB.
    Script,
}

impl Kind {
    /// The most this kind may hold, in bytes.
    pub fn limit(self) -> u64 {
        match self {
            Kind::Object => 1024 * MIB,
            Kind::Module => 1024 * MIB,
            Kind::Patch => 64 * MIB,
            Kind::Config => 16 * MIB,
            Kind::Symbols => 512 * MIB,
            Kind::Vmlinux => 8192 * MIB,
            Kind::Tree => 256 * MIB,
            Kind::Key => MIB,
            Kind::Image => 256 * MIB,
            Kind::Script => 16 * MIB,
        }
    }

    /// What the user is told the file should be.
    fn noun(self) -> &'static str {
        match self {
            Kind::Object => "an object file",
            Kind::Module => "a kernel module",
            Kind::Patch => "a patch",
            Kind::Config => "a kernel config",
            Kind::Symbols => "a symbol listing",
            Kind::Vmlinux => "a vmlinux",
            Kind::Tree => "a file of the kernel tree",
            Kind::Key => "a key or certificate file",
            Kind::Image => "a kernel image (vmlinuz, bzImage)",
            Kind::Script => "a shell script",
        }
    }
}

/// `N MiB` (or bytes below one MiB), for the messages.
fn size(n: u64) -> String {
    if n >= MIB {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

/// An I/O error's reason without the `(os error N)` suffix, for messages that name the path
/// themselves.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// `--diff fix.patch`, or the path alone when the caller names no option or role.
fn label(what: &str, path: &Path) -> String {
    if what.is_empty() {
        path.display().to_string()
    } else {
        format!("{what} {}", path.display())
    }
}

/// What a non-regular file is, from its type.
fn what_it_is(ft: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Checks that `path` (named `what` in messages: `--diff`, `module`) is a regular file within
/// the kind's bound, and opens it. Symlinks are followed, as `open` does.
pub fn open(path: &Path, kind: Kind, what: &str) -> anyhow::Result<File> {
    let p = label(what, path);
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{p}: {}", io_reason(&e)))?;
    if !meta.is_file() {
        bail!(
            "{p}: is {}, not a regular file; give {} (klp-build reads no devices, pipes or directories)",
            what_it_is(meta.file_type()),
            kind.noun()
        );
    }
    if meta.len() > kind.limit() {
        bail!(
            "{p}: {} is more than the {} {} may hold; check that this is the right file",
            size(meta.len()),
            size(kind.limit()),
            kind.noun()
        );
    }
    File::open(path).map_err(|e| anyhow::anyhow!("{p}: {}", io_reason(&e)))
}

/// Reads at most `limit` bytes of `r` (`Err` with the count read when there is more).
fn read_bounded(r: impl Read, limit: u64) -> std::io::Result<Result<Vec<u8>, u64>> {
    let mut buf = Vec::new();
    r.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Ok(Err(buf.len() as u64));
    }
    Ok(Ok(buf))
}

/// The whole file, checked as [`open`] does; a file that grows past the bound while it is read
/// (or a `/proc` file, whose size says 0) is cut off at the bound with an error.
pub fn read(path: &Path, kind: Kind, what: &str) -> anyhow::Result<Vec<u8>> {
    let f = open(path, kind, what)?;
    match read_bounded(f, kind.limit()) {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => bail!(
            "{}: more than the {} {} may hold; check that this is the right file",
            label(what, path),
            size(kind.limit()),
            kind.noun()
        ),
        Err(e) => bail!("{}: {}", label(what, path), io_reason(&e)),
    }
}

/// The file as text (invalid UTF-8 replaced, as the kernel's own text files are read).
pub fn read_text(path: &Path, kind: Kind, what: &str) -> anyhow::Result<String> {
    let b = read(path, kind, what)?;
    Ok(match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// A module file's compression, by its name (as kmod tells them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `.ko`.
    None,
    /// `.ko.xz` (Debian 13 and 6.12 backports).
    Xz,
    /// `.ko.zst` (Fedora, Arch, Ubuntu).
    Zstd,
    /// `.ko.gz`.
    Gzip,
}

impl Compression {
    /// The compression of a file named `name`.
    pub fn of(name: &str) -> Compression {
        if name.ends_with(".ko.xz") {
            Compression::Xz
        } else if name.ends_with(".ko.zst") {
            Compression::Zstd
        } else if name.ends_with(".ko.gz") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }

    /// The module name of a file name: `ext4.ko.xz` -> `ext4`, `None` for what is no module.
    pub fn module_stem(name: &str) -> Option<&str> {
        [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
            .iter()
            .find_map(|ext| name.strip_suffix(ext))
    }
}

/// A module's bytes, decompressed when its name says `.ko.xz`, `.ko.zst` or `.ko.gz`, never more
/// than [`Kind::Module`]'s bound after decompression; a corrupt stream is an error naming the file.
pub fn read_module(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let compression = Compression::of(&name);
    let f = open(path, Kind::Module, what)?;
    let limit = Kind::Module.limit();
    let r = match compression {
        Compression::None => read_bounded(f, limit),
        Compression::Xz => read_bounded(xz2::read::XzDecoder::new(f), limit),
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(f).and_then(|d| read_bounded(d, limit))
        }
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(f), limit),
    };
    let kind = match compression {
        Compression::None => "",
        Compression::Xz => "xz ",
        Compression::Zstd => "zstd ",
        Compression::Gzip => "gzip ",
    };
    match r {
        Ok(Ok(b)) if compression != Compression::None && !b.starts_with(b"\x7fELF") => bail!(
            "{}: the {kind}stream does not hold an ELF module; check the file (e.g. `xz -t`, `zstd -t`, `gzip -t`)",
            label(what, path)
        ),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => bail!(
            "{}: decompresses to more than the {} a kernel module may hold; check that this is the right file",
            label(what, path),
            size(limit)
        ),
        Err(e) if compression == Compression::None => {
            bail!("{}: {}", label(what, path), io_reason(&e))
        }
        Err(e) => bail!(
            "{}: corrupt {kind}stream: {}; replace the file with an intact copy",
            label(what, path),
            io_reason(&e)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_directories_are_refused_naming_the_option() {
        let e = read(Path::new("/dev/zero"), Kind::Patch, "--diff")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--diff /dev/zero") && e.contains("character device"),
            "{e}"
        );
        let d = tempfile::tempdir().unwrap();
        let e = read(d.path(), Kind::Config, "--config")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--config") && e.contains("a directory"), "{e}");
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read(&fifo, Kind::Symbols, "--symbols")
            .unwrap_err()
            .to_string();
        assert!(e.contains("FIFO"), "{e}");
    }

    #[test]
    fn a_file_over_the_bound_names_the_bound() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big.config");
        let f = File::create(&p).unwrap();
        f.set_len(Kind::Config.limit() + 1).unwrap();
        let e = read(&p, Kind::Config, "--config").unwrap_err().to_string();
        assert!(e.contains("16 MiB") && e.contains("a kernel config"), "{e}");
    }

    #[test]
    fn module_stems_of_compressed_names() {
        assert_eq!(Compression::module_stem("ext4.ko.xz"), Some("ext4"));
        assert_eq!(Compression::module_stem("ext4.ko.zst"), Some("ext4"));
        assert_eq!(Compression::module_stem("ext4.ko"), Some("ext4"));
        assert_eq!(Compression::module_stem("ext4.ko.bz2"), None);
        assert_eq!(Compression::of("a.ko.gz"), Compression::Gzip);
    }
}
