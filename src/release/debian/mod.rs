//! Debian kernel targets from the archive: in, a kernel release (`uname -r`) and the suites to
//! search; out, a [`DebianKernel`] naming the unpacked image, headers, source, config and symbols
//! of that kernel, all at one package version, and a [`BuildRoot`] when the host lacks the
//! kernel's compiler. Invariant: nothing is installed or changed outside `cache` (the system's apt
//! and dpkg state are never written), and a cache entry exists only when complete.
//!
//! # Cache layout (under `<cache>/debian/`)
//! ```text
//! apt/                      private apt state: etc/sources.list, lists/, status (empty), cache/,
//!                           index/<suite> (the suite's linux-* stanzas), lock
//! debs/                     downloaded .debs until their kernel is unpacked; partial/, lock
//! kernels/<R>/<V>/          one kernel release R at package version V, complete:
//!     .complete             the layout version, then the packages it was unpacked from
//!                           (written before the rename; another layout is unpacked again)
//!     .used                 touched at every resolve: the entry's last use (`release cache`)
//!     image/                the image package(s) as shipped: boot/ or usr/lib/modules/<R>/
//!     headers/              headers + common + kbuild unpacked like / and mended (usr/src/...)
//!     source/linux-source-<series>/   the unpacked, unconfigured source tree
//! kernels/<R>/<V>.lock      flock of whoever unpacks R at V
//! kernels/<R>/.tmp-<V>      scratch of an unpack in progress (removed and redone when stale)
//! roots/<suite>-<hash>/     mmdebstrap build roots, keyed by suite and package list; .lock beside
//! ```
//! Epoch colons in V are written `%3a`, as apt names .deb files.

mod apt;
mod buildroot;
mod symbols;
mod unpack;

pub use apt::{compare_versions, Mirrors};
pub use buildroot::BuildRoot;

use anyhow::{anyhow, bail, Context, Result};
use apt::{Apt, Stanza};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where a Debian kernel's pieces are, all at one package version, unpacked privately under the
/// cache.
#[derive(Debug, Clone)]
pub struct DebianKernel {
    /// `6.1.0-57-amd64`, as `uname -r`.
    pub kernel_release: String,
    /// The package version, `6.1.192-3`.
    pub version: String,
    /// The suite it was found in, `bookworm-security`.
    pub suite: String,
    /// The unpacked linux-source tree (the dir holding Makefile), never configured here.
    pub source: PathBuf,
    /// The private, mended linux-headers-R dir: `make -C it M=... modules` works.
    pub kbuild: PathBuf,
    /// The image's config-R.
    pub config: PathBuf,
    /// System.map-R when it lists vmlinux's symbols; None when Debian ships the one-line
    /// placeholder ("The real System.map is in the linux-image-<version>-dbg package"), as 6.1,
    /// 6.12 and 7.2 all did on 2026-12-02. Use a kallsyms capture or [`Self::symbols_package`].
    pub symbols: Option<PathBuf>,
    /// The package whose vmlinux has every symbol (`linux-image-R-dbg`, about 900 MB).
    pub symbols_package: String,
    /// lib/modules/R of the image (modules as shipped: .ko, .ko.xz).
    pub modules: PathBuf,
    /// The bootable image (boot/vmlinuz-R, or sid's usr/lib/modules/R/vmlinuz.unsigned).
    pub vmlinuz: PathBuf,
    /// CONFIG_CC_VERSION_TEXT of the config.
    pub compiler: String,
    /// Some when the host lacks that compiler.
    pub build_root: Option<BuildRoot>,
    /// Bytes fetched by this call (0 when all cached).
    pub downloaded_bytes: u64,
    /// The packages unpacked, `name=version`.
    pub packages: Vec<String>,
}

/// The suites searched, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suites(pub Vec<String>);

impl Default for Suites {
    fn default() -> Self {
        Suites(
            [
                "bookworm",
                "bookworm-security",
                "trixie",
                "trixie-security",
                "sid",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DebianError {
    #[error(
        "Debian has no kernel {kernel_release} (no linux-headers-{kernel_release}) in {}: check the target's `uname -r`; a kernel leaves the archive some weeks after a newer ABI (snapshot.debian.org keeps it), and one of another suite needs that suite added",
        .searched.join(", ")
    )]
    Unavailable {
        kernel_release: String,
        searched: Vec<String>,
    },
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

/// The file whose mtime is a kernel entry's last use.
pub const USED_STAMP: &str = ".used";

/// Finds `kernel_release` in `suites`, downloads and unpacks its packages under `cache` (once),
/// and makes a build root when the host lacks its compiler.
pub fn resolve(
    cache: &Path,
    kernel_release: &str,
    suites: &Suites,
    log: &mut dyn FnMut(&str),
) -> Result<DebianKernel, DebianError> {
    check_release_name(kernel_release)?;
    let base = cache.join("debian");
    let apt = Apt::open(&base.join("apt"), &suites.0, log)?;
    let index = apt.index()?;
    let headers = format!("linux-headers-{kernel_release}");
    let Some((suite, hdr)) = newest(&index, &headers) else {
        return Err(DebianError::Unavailable {
            kernel_release: kernel_release.to_string(),
            searched: suites.0.clone(),
        });
    };
    let version = hdr.version().to_string();
    let plan = plan(&index, kernel_release, &version, suite)?;
    for note in &plan.notes {
        log(&format!("{kernel_release}: {note}"));
    }
    let suite = suite.to_string();
    let (kernel, downloaded_bytes) =
        unpack_kernel(&base, &apt, kernel_release, &version, &plan, log)?;
    // The last use, for `release cache prune --unused-days` (the mtime of an empty file: a
    // directory's own mtime changes only when an entry is added or removed).
    let _ = fs::File::create(kernel.join(USED_STAMP));

    let image = kernel.join("image");
    let modules = first_existing(&[
        image.join("usr/lib/modules").join(kernel_release),
        image.join("lib/modules").join(kernel_release),
    ])
    .with_context(|| {
        format!(
            "{} has no lib/modules/{kernel_release}",
            describe(&plan.image)
        )
    })?;
    let config = first_existing(&[
        image.join(format!("boot/config-{kernel_release}")),
        modules.join("config"),
    ])
    .with_context(|| format!("{} has no config-{kernel_release}", describe(&plan.image)))?;
    let map = first_existing(&[
        image.join(format!("boot/System.map-{kernel_release}")),
        modules.join("System.map"),
    ]);
    let mut downloaded_bytes = downloaded_bytes;
    let symbols = match map.filter(|m| !is_placeholder_map(m)) {
        Some(m) => Some(m),
        None => {
            let (syms, bytes) =
                dbg_symbols(&base, &apt, &index, kernel_release, &version, &kernel, log)?;
            downloaded_bytes += bytes;
            Some(syms)
        }
    };
    let vmlinuz = first_existing(&[
        image.join(format!("boot/vmlinuz-{kernel_release}")),
        modules.join("vmlinuz.unsigned"),
        modules.join("vmlinuz"),
    ])
    .with_context(|| format!("{} has no vmlinuz", describe(&plan.image)))?;
    let kbuild = kbuild_dir(&kernel, &headers, &plan)?;
    let source = find_source_tree(&kernel.join("source"))?;
    let config_text =
        fs::read_to_string(&config).with_context(|| format!("cannot read {}", config.display()))?;
    let compiler = cc_version_text(&config_text).with_context(|| {
        format!(
            "{} has no CONFIG_CC_VERSION_TEXT; is it a kernel config?",
            config.display()
        )
    })?;
    let build_root = build_root(
        &base,
        &apt,
        kernel_release,
        &suite,
        &compiler,
        &config_text,
        log,
    )?;
    Ok(DebianKernel {
        kernel_release: kernel_release.to_string(),
        version,
        suite,
        source,
        kbuild,
        config,
        symbols,
        symbols_package: format!("linux-image-{kernel_release}-dbg"),
        modules,
        vmlinuz,
        compiler,
        build_root,
        downloaded_bytes,
        packages: plan
            .all()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect(),
    })
}

/// `kernel_release` looks like what `uname -r` prints: letters, digits and `.+-~_`, not starting
/// with a dot or a dash (it becomes part of paths and package names).
fn check_release_name(kernel_release: &str) -> Result<()> {
    if kernel_release.is_empty()
        || kernel_release.starts_with(['.', '-'])
        || !kernel_release
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-' | '~' | '_'))
    {
        bail!("`{kernel_release}` is not a kernel release; give what `uname -r` prints on the target, e.g. 6.1.0-57-amd64");
    }
    Ok(())
}

/// The newest version of `package` in any suite of `index` (Debian version order), with its
/// suite; the first suite listed wins a tie.
fn newest<'i>(index: &'i [(String, Vec<Stanza>)], package: &str) -> Option<(&'i str, &'i Stanza)> {
    let mut best: Option<(&str, &Stanza)> = None;
    for (suite, stanzas) in index {
        for s in stanzas.iter().filter(|s| s.package() == package) {
            if best.is_none_or(|(_, b)| compare_versions(s.version(), b.version()).is_gt()) {
                best = Some((suite, s));
            }
        }
    }
    best
}

/// The kbuild dir the unpacked `headers` package gives, checked to hold the kernel's Makefile.
fn kbuild_dir(kernel: &Path, headers: &str, plan: &Plan) -> Result<PathBuf> {
    let kbuild = kernel.join("headers/usr/src").join(headers);
    if !kbuild.join("Makefile").is_file() {
        bail!(
            "{} has no Makefile after unpacking {}",
            kbuild.display(),
            describe(&plan.headers)
        );
    }
    Ok(kbuild)
}

/// A build root of `suite` when this host lacks the compiler the config names (trixie's gcc-14,
/// sid's gcc-16), with what a kernel with Rust needs to configure the same; `None` when the host
/// has that compiler.
fn build_root(
    base: &Path,
    apt: &Apt,
    kernel_release: &str,
    suite: &str,
    compiler: &str,
    config_text: &str,
    log: &mut dyn FnMut(&str),
) -> Result<Option<BuildRoot>> {
    let command = compiler.split_whitespace().next().unwrap_or("").to_string();
    Ok(if buildroot::host_has(&command, compiler) {
        None
    } else {
        log(&format!("{kernel_release} was built with `{compiler}`, which this host lacks: using a {suite} build root"));
        // A kernel with Rust (sid's 7.x) is configured with rustc, bindgen and the core
        // library's source present; without them kconfig turns CONFIG_RUST off and the tree
        // no longer matches the kernel.
        let rust: &[&str] = if config_text.lines().any(|l| l.trim() == "CONFIG_RUST=y") {
            &["rustc", "bindgen", "rust-src", "libclang-dev"]
        } else {
            &[]
        };
        Some(BuildRoot::ensure(
            base,
            suite,
            &command,
            compiler,
            rust,
            apt.mirrors(),
            log,
        )?)
    })
}

/// A package of the archive the kernel is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub size: u64,
    pub suite: String,
}

/// The packages of one kernel release at one version, by role.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    image: Vec<Pkg>,
    headers: Vec<Pkg>,
    source: Pkg,
    /// Where a package is taken at another version than the kernel's, and why.
    notes: Vec<String>,
}

impl Plan {
    fn all(&self) -> impl Iterator<Item = &Pkg> {
        self.image
            .iter()
            .chain(&self.headers)
            .chain(std::iter::once(&self.source))
    }
}

fn describe(pkgs: &[Pkg]) -> String {
    pkgs.iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The packages of `release` at `version`, read from the Depends fields rather than per-suite
/// rules: the image is `linux-image-R-unsigned` (bookworm, trixie) or, when the image is split
/// (sid's 7.x: `linux-image-R` depends on `linux-base-R`, `linux-binary-R`, `linux-modules-R`),
/// its pinned pieces with the unsigned binary preferred; the headers are `linux-headers-R` and the
/// `linux-headers-*`/`linux-kbuild-*` packages it depends on, each taken at `version` (bookworm's
/// `linux-kbuild-6.1 (>= V)` would otherwise pick a newer kbuild than the headers); the source is
/// `linux-source-<major.minor>` at `version`.
fn plan(
    index: &[(String, Vec<Stanza>)],
    release: &str,
    version: &str,
    suite: &str,
) -> Result<Plan> {
    let l = Lookup {
        index,
        release,
        version,
        suite,
    };
    let image = l.image()?;
    let (headers, notes) = l.headers()?;
    let upstream = version.split(['-', '~', '+']).next().unwrap_or(version);
    let series: Vec<&str> = upstream
        .rsplit(':')
        .next()
        .unwrap_or(upstream)
        .split('.')
        .take(2)
        .collect();
    let source_name = format!("linux-source-{}", series.join("."));
    let source = l
        .find(&source_name)
        .ok_or_else(|| l.missing(&source_name))?;
    Ok(Plan {
        image,
        headers,
        source,
        notes,
    })
}

/// The archive's index, searched for the packages of one kernel release at one version.
struct Lookup<'a> {
    index: &'a [(String, Vec<Stanza>)],
    release: &'a str,
    version: &'a str,
    suite: &'a str,
}

impl<'a> Lookup<'a> {
    /// Package `name` at the kernel's version, from the kernel's own suite where several have it.
    fn find(&self, name: &str) -> Option<Pkg> {
        let mut hits = self
            .index
            .iter()
            .flat_map(|(s, st)| st.iter().map(move |x| (s, x)))
            .filter(|(_, x)| x.package() == name && x.version() == self.version);
        let first = hits.next()?;
        let (s, x) = std::iter::once(first)
            .chain(hits)
            .find(|(s, _)| s.as_str() == self.suite)
            .unwrap_or(first);
        Some(Pkg {
            name: name.to_string(),
            version: self.version.to_string(),
            size: x.size(),
            suite: s.clone(),
        })
    }

    /// The stanza of `name` at the kernel's version, for its Depends.
    fn stanza(&self, name: &str) -> Option<&'a Stanza> {
        self.index
            .iter()
            .flat_map(|(_, st)| st)
            .find(|x| x.package() == name && x.version() == self.version)
    }

    /// The error for a package the index lacks at the kernel's version, naming the versions it
    /// has instead.
    fn missing(&self, name: &str) -> anyhow::Error {
        let (release, version, suite) = (self.release, self.version, self.suite);
        let mut others: Vec<&str> = self
            .index
            .iter()
            .flat_map(|(_, st)| st)
            .filter(|x| x.package() == name)
            .map(|x| x.version())
            .collect();
        others.sort_by(|a, b| compare_versions(a, b));
        others.dedup();
        if others.is_empty() {
            anyhow!("{name} at version {version} is not in the archive's index (needed for {release} found in {suite}); the archive may be mid-update: run again later")
        } else {
            anyhow!(
                "{name} at version {version} is not in the archive's index, which lists it only at {} (needed for \
                 {release} found in {suite}); Debian dropped that version from the suite: build for a kernel \
                 it still serves (`klp-build release kernels` lists them)",
                others.join(", ")
            )
        }
    }

    /// The image: `linux-image-R-unsigned`, or the pinned pieces of a split image (sid's 7.x)
    /// with the unsigned binary preferred, or a monolithic signed image.
    fn image(&self) -> Result<Vec<Pkg>> {
        let (release, version) = (self.release, self.version);
        if let Some(p) = self.find(&format!("linux-image-{release}-unsigned")) {
            return Ok(vec![p]);
        }
        let meta_name = format!("linux-image-{release}");
        let meta = self.stanza(&meta_name).ok_or_else(|| {
            self.missing(&format!("linux-image-{release}-unsigned or {meta_name}"))
        })?;
        let mut parts = Vec::new();
        for group in meta.depends() {
            let Some(dep) = group.into_iter().find(|d| {
                d.name.contains(release)
                    && d.rel
                        .as_ref()
                        .is_some_and(|(op, v)| op == "=" && v == version)
            }) else {
                continue;
            };
            let unsigned = dep
                .name
                .strip_prefix("linux-binary-")
                .map(|rest| format!("linux-binary-unsigned-{rest}"));
            let pkg = unsigned
                .as_deref()
                .and_then(|n| self.find(n))
                .or_else(|| self.find(&dep.name))
                .ok_or_else(|| self.missing(&dep.name))?;
            parts.push(pkg);
        }
        if parts.is_empty() {
            // A monolithic signed image.
            parts.push(
                self.find(&meta_name)
                    .ok_or_else(|| self.missing(&meta_name))?,
            );
        }
        Ok(parts)
    }

    /// `linux-headers-R` and the `linux-headers-*`/`linux-kbuild-*` packages it depends on, each
    /// at the kernel's version, but for a series kbuild the index no longer has there; with the
    /// notes that say where another version was taken.
    fn headers(&self) -> Result<(Vec<Pkg>, Vec<String>)> {
        let (release, version) = (self.release, self.version);
        let hdr_name = format!("linux-headers-{release}");
        let hdr = self
            .stanza(&hdr_name)
            .ok_or_else(|| self.missing(&hdr_name))?;
        let mut headers = vec![self
            .find(&hdr_name)
            .ok_or_else(|| self.missing(&hdr_name))?];
        let mut notes = Vec::new();
        for group in hdr.depends() {
            let Some(dep) = group.into_iter().find(|d| {
                d.name.starts_with("linux-headers-") || d.name.starts_with("linux-kbuild-")
            }) else {
                continue;
            };
            if headers.iter().any(|p| p.name == dep.name) {
                continue;
            }
            let pkg = match self.find(&dep.name) {
                Some(p) => p,
                None if dep.name.starts_with("linux-kbuild-") => {
                    let p = superseded_kbuild(self.index, &dep, version, self.suite)
                        .ok_or_else(|| self.missing(&dep.name))?;
                    notes.push(format!(
                        "{} {version} is no longer in the archive's index: using {} {}, the oldest \
                         of the same upstream version that {hdr_name}'s dependency allows, as apt \
                         would install beside these headers",
                        dep.name, p.name, p.version
                    ));
                    p
                }
                None => return Err(self.missing(&dep.name)),
            };
            headers.push(pkg);
        }
        if !headers.iter().any(|p| p.name.starts_with("linux-kbuild-")) {
            bail!("{hdr_name}={version} depends on no linux-kbuild-* package; its scripts/ would be missing");
        }
        Ok((headers, notes))
    }
}

/// A series' kbuild package (bookworm's `linux-kbuild-6.1`) at another revision of the same
/// upstream version, when the index no longer has the kernel's own: bookworm-security lists
/// `linux-headers-6.1.0-55-amd64` at 6.1.192-1 beside `linux-kbuild-6.1` at 6.1.192-3 only, and
/// the headers' `linux-kbuild-6.1 (>= 6.1.192-1)` is what apt installs with them on a real
/// machine. The oldest version that satisfies the dependency wins (nearest the kernel's); another
/// upstream version never does (its scripts and objtool are another release's).
fn superseded_kbuild(
    index: &[(String, Vec<Stanza>)],
    dep: &apt::Dep,
    version: &str,
    suite: &str,
) -> Option<Pkg> {
    let upstream = |v: &str| v.rsplit_once('-').map_or(v, |(u, _)| u).to_string();
    let satisfies = |v: &str| match &dep.rel {
        Some((op, want)) if op == ">=" => compare_versions(v, want).is_ge(),
        Some((op, want)) if op == "=" => v == want,
        Some(_) => false,
        None => true,
    };
    index
        .iter()
        .flat_map(|(s, st)| st.iter().map(move |x| (s, x)))
        .filter(|(_, x)| {
            x.package() == dep.name
                && upstream(x.version()) == upstream(version)
                && compare_versions(x.version(), version).is_gt()
                && satisfies(x.version())
        })
        .min_by(|(sa, a), (sb, b)| {
            compare_versions(a.version(), b.version())
                .then_with(|| (sb.as_str() == suite).cmp(&(sa.as_str() == suite)))
        })
        .map(|(s, x)| Pkg {
            name: dep.name.clone(),
            version: x.version().to_string(),
            size: x.size(),
            suite: s.clone(),
        })
}

/// The first line of a complete kernel dir's `.complete`: an entry of another layout (an older
/// klp-build's mending) is unpacked again rather than trusted.
const LAYOUT: &str = "klp-build debian kernel layout 2";

/// Downloads and unpacks the plan's packages into `kernels/R/V` once; concurrent callers wait on
/// the lock and find it done. Returns the kernel dir and the bytes downloaded.
fn unpack_kernel(
    base: &Path,
    apt: &Apt,
    release: &str,
    version: &str,
    plan: &Plan,
    log: &mut dyn FnMut(&str),
) -> Result<(PathBuf, u64)> {
    let dir_name = version.replace(':', "%3a");
    let parent = base.join("kernels").join(release);
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let kernel = parent.join(&dir_name);
    let _lock = lock::Lock::exclusive(&parent.join(format!("{dir_name}.lock")))?;
    let marker = fs::read_to_string(kernel.join(".complete")).unwrap_or_default();
    if marker.lines().next() == Some(LAYOUT) {
        return Ok((kernel, 0));
    }
    let t = Instant::now();
    let want: Vec<(String, String, u64)> = plan
        .all()
        .map(|p| (p.name.clone(), p.version.clone(), p.size))
        .collect();
    let debs_dir = base.join("debs");
    let (debs, bytes) = apt.download(&want, &debs_dir, log)?;
    let deb_of = |p: &Pkg| -> Result<&PathBuf> {
        let prefix = format!("{}_{}_", p.name, p.version.replace(':', "%3a"));
        debs.iter()
            .find(|d| {
                d.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .ok_or_else(|| {
                anyhow!(
                    "no .deb of {}={} in {}",
                    p.name,
                    p.version,
                    debs_dir.display()
                )
            })
    };
    let scratch = parent.join(format!(".tmp-{dir_name}"));
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| {
            format!("cannot remove the stale scratch dir {}", scratch.display())
        })?;
    }
    log(&format!(
        "unpacking {release} {version} into {}",
        kernel.display()
    ));
    for p in &plan.image {
        unpack::extract(deb_of(p)?, &scratch.join("image"))?;
    }
    for p in &plan.headers {
        unpack::extract(deb_of(p)?, &scratch.join("headers"))?;
    }
    unpack::mend(&scratch.join("headers"))?;
    unpack::extract_source(deb_of(&plan.source)?, &scratch.join("source"))?;
    let manifest: String = std::iter::once(format!("{LAYOUT}\n"))
        .chain(
            plan.all()
                .map(|p| format!("{}={} {}\n", p.name, p.version, p.suite)),
        )
        .collect();
    fs::write(scratch.join(".complete"), manifest)
        .with_context(|| format!("cannot write {}", scratch.join(".complete").display()))?;
    if kernel.exists() {
        fs::remove_dir_all(&kernel)
            .with_context(|| format!("cannot remove the incomplete {}", kernel.display()))?;
    }
    fs::rename(&scratch, &kernel).with_context(|| {
        format!(
            "cannot rename {} to {}",
            scratch.display(),
            kernel.display()
        )
    })?;
    // The .debs are unpacked; keeping them would double the cache (230 MB per 6.1 kernel).
    for p in plan.all() {
        if let Ok(d) = deb_of(p) {
            let _ = fs::remove_file(d);
        }
    }
    log(&format!(
        "{release} {version}: {:.1} MB downloaded, ready in {:.0} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ));
    Ok((kernel, bytes))
}

/// The vmlinux symbols of `release` at `version` from its `linux-image-R-dbg` package, made once
/// under `kernel` (see `symbols`). Returns the file and the bytes downloaded.
fn dbg_symbols(
    base: &Path,
    apt: &Apt,
    index: &[(String, Vec<Stanza>)],
    release: &str,
    version: &str,
    kernel: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<(PathBuf, u64)> {
    let done = kernel.join(format!("vmlinux-{release}.syms"));
    if done.is_file() {
        return Ok((done, 0));
    }
    let dir_name = kernel
        .file_name()
        .map_or_else(|| "kernel".into(), |n| n.to_string_lossy().into_owned());
    let _lock = lock::Lock::exclusive(&kernel.with_file_name(format!("{dir_name}.symbols.lock")))?;
    if done.is_file() {
        return Ok((done, 0));
    }
    let name = format!("linux-image-{release}-dbg");
    let size = index
        .iter()
        .flat_map(|(_, st)| st)
        .find(|x| x.package() == name && x.version() == version)
        .map(|x| x.size())
        .ok_or_else(|| {
            anyhow!(
                "{release}: Debian's System.map is a placeholder and {name}={version}, which holds the \
                 symbols, is not in the archive's index; give the symbols yourself with a `source = ...` \
                 target and `symbols = \"<captured /proc/kallsyms>\"`"
            )
        })?;
    log(&format!(
        "{release}: reading the symbols from {name} ({:.0} MB, once)",
        size as f64 / 1e6
    ));
    let debs = base.join("debs");
    let (files, bytes) = apt.download(&[(name.clone(), version.to_string(), size)], &debs, log)?;
    let deb = files
        .first()
        .ok_or_else(|| anyhow!("apt-get download of {name}={version} left no .deb"))?;
    let out = symbols::from_dbg_package(kernel, release, deb);
    let _ = fs::remove_file(deb);
    Ok((out?, bytes))
}

fn first_existing(paths: &[PathBuf]) -> Option<PathBuf> {
    paths.iter().find(|p| p.exists()).cloned()
}

fn find_source_tree(dir: &Path) -> Result<PathBuf> {
    fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("Makefile").is_file())
        .with_context(|| {
            format!(
                "{} holds no unpacked source tree; remove its parent dir to unpack again",
                dir.display()
            )
        })
}

/// Debian's System.map is one line, `ffffffffffffffff B The real System.map is in the
/// linux-image-<version>-dbg package` (83 bytes in 6.1.0-57, 92 in 7.2.13), not a symbol table.
fn is_placeholder_map(path: &Path) -> bool {
    match fs::read(path) {
        Ok(b) => {
            b.len() < 4096
                && (b.windows(19).any(|w| w == b"The real System.map")
                    || b.iter().filter(|&&c| c == b'\n').count() < 2)
        }
        Err(_) => true,
    }
}

/// CONFIG_CC_VERSION_TEXT of a kernel config: `gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0`.
pub fn cc_version_text(config: &str) -> Option<String> {
    config.lines().find_map(|l| {
        let v = l.trim().strip_prefix("CONFIG_CC_VERSION_TEXT=")?;
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        let v = v.replace("\\\"", "\"").replace("\\\\", "\\");
        (!v.trim().is_empty()).then(|| v.trim().to_string())
    })
}

/// The versions of `package` in the private index of `suites`, newest first, each with its suite
/// and the names it depends on; e.g. `linux-image-amd64` in bookworm-security names the newest
/// 6.1 ABI there.
pub fn package_versions(
    cache: &Path,
    package: &str,
    suites: &Suites,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<(String, String, Vec<String>)>> {
    let apt = Apt::open(&cache.join("debian").join("apt"), &suites.0, log)?;
    let mut out: Vec<(String, String, Vec<String>)> = apt
        .index()?
        .iter()
        .flat_map(|(suite, st)| {
            st.iter().filter(|s| s.package() == package).map(move |s| {
                let deps = s.depends().into_iter().flatten().map(|d| d.name).collect();
                (suite.clone(), s.version().to_string(), deps)
            })
        })
        .collect();
    out.sort_by(|a, b| compare_versions(&b.1, &a.1));
    Ok(out)
}

/// One kernel the archive has: its release, package version and suite.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Available {
    /// `uname -r`: `6.12.118+deb13-amd64`.
    pub kernel_release: String,
    /// The package version of its headers.
    pub version: String,
    /// The suite that has it.
    pub suite: String,
}

/// Every kernel release of `flavour` (`amd64`, `cloud-amd64`, `rt-amd64`) the suites have: each
/// `linux-headers-<release>` package, newest first within a series.
pub fn available(
    cache: &Path,
    suites: &Suites,
    flavour: &str,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<Available>> {
    let apt = Apt::open(&cache.join("debian").join("apt"), &suites.0, log)?;
    let suffix = format!("-{flavour}");
    let mut out = Vec::new();
    for (suite, stanzas) in apt.index()? {
        for s in &stanzas {
            let Some(release) = s.package().strip_prefix("linux-headers-") else {
                continue;
            };
            // `6.12.118+deb13-amd64` but not `6.12-amd64` (a metapackage) nor `...-cloud-amd64`.
            let Some(base) = release.strip_suffix(&suffix) else {
                continue;
            };
            let numeric = base.split(['-', '+']).next().unwrap_or("");
            if numeric.split('.').count() < 3 && !base.contains('-') {
                continue;
            }
            if base.ends_with("-cloud") || base.ends_with("-rt") || base.ends_with("-common") {
                continue;
            }
            out.push(Available {
                kernel_release: release.to_string(),
                version: s.version().to_string(),
                suite: suite.clone(),
            });
        }
    }
    out.sort_by(|a, b| compare_versions(&b.version, &a.version));
    out.dedup_by(|a, b| a.kernel_release == b.kernel_release && a.version == b.version);
    Ok(out)
}

/// An flock(2) on a file, released when dropped (also when the process dies, so an interrupted
/// run never leaves a stale lock).
pub(crate) use crate::release::lock;

#[cfg(test)]
mod tests {
    use super::*;

    fn stanzas(text: &str) -> Vec<Stanza> {
        apt::parse_stanzas(text)
    }

    #[test]
    fn cc_text() {
        let c = "# comment\nCONFIG_CC_VERSION_TEXT=\"gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0\"\nCONFIG_CC_IS_GCC=y\n";
        assert_eq!(
            cc_version_text(c).as_deref(),
            Some("gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0")
        );
        assert_eq!(cc_version_text("CONFIG_CC_VERSION_TEXT=\"\"\n"), None);
        assert_eq!(cc_version_text("nothing"), None);
        assert_eq!(
            cc_version_text("CONFIG_CC_VERSION_TEXT=\"a \\\"b\\\"\""),
            Some("a \"b\"".into())
        );
    }

    #[test]
    fn plans_split_and_monolithic_images() {
        let sid = stanzas(
            "Package: linux-image-7.2.13+deb14-amd64\nVersion: 7.2.13-1\nSize: 1892\nDepends: dracut | initramfs-tools (>= 0.120+deb8u2), linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1), linux-modules-7.2.13+deb14-amd64 (= 7.2.13-1)\n\n\
             Package: linux-base-7.2.13+deb14-amd64\nVersion: 7.2.13-1\nSize: 5\n\n\
             Package: linux-binary-7.2.13+deb14-amd64\nVersion: 7.2.13-1\nSize: 6\n\n\
             Package: linux-binary-unsigned-7.2.13+deb14-amd64\nVersion: 7.2.13-1\nSize: 7\n\n\
             Package: linux-modules-7.2.13+deb14-amd64\nVersion: 7.2.13-1\nSize: 8\n\n\
             Package: linux-headers-7.2.13+deb14-amd64\nVersion: 7.2.13-1\nDepends: gcc-16-for-host, linux-base (>= 4.12~), linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), linux-headers-7.2.13+deb14-common (= 7.2.13-1), linux-kbuild-7.2.13+deb14\n\n\
             Package: linux-headers-7.2.13+deb14-common\nVersion: 7.2.13-1\n\n\
             Package: linux-kbuild-7.2.13+deb14\nVersion: 7.2.13-1\n\n\
             Package: linux-source-7.2\nVersion: 7.2.13-1\n",
        );
        let index = vec![("sid".to_string(), sid)];
        let p = plan(&index, "7.2.13+deb14-amd64", "7.2.13-1", "sid").unwrap();
        let names: Vec<&str> = p.image.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linux-base-7.2.13+deb14-amd64",
                "linux-binary-unsigned-7.2.13+deb14-amd64",
                "linux-modules-7.2.13+deb14-amd64"
            ]
        );
        let names: Vec<&str> = p.headers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linux-headers-7.2.13+deb14-amd64",
                "linux-headers-7.2.13+deb14-common",
                "linux-kbuild-7.2.13+deb14"
            ]
        );
        assert_eq!(p.source.name, "linux-source-7.2");

        // bookworm: the kbuild package is one per series, at several versions; the headers'
        // `>=` must not pick the newer one.
        let bw = stanzas(
            "Package: linux-image-6.1.0-57-amd64-unsigned\nVersion: 6.1.192-3\n\n\
             Package: linux-headers-6.1.0-57-amd64\nVersion: 6.1.192-3\nDepends: linux-headers-6.1.0-57-common (= 6.1.192-3), linux-kbuild-6.1 (>= 6.1.192-3), linux-compiler-gcc-12-x86\n\n\
             Package: linux-headers-6.1.0-57-common\nVersion: 6.1.192-3\n\n\
             Package: linux-kbuild-6.1\nVersion: 6.1.192-3\n\n\
             Package: linux-kbuild-6.1\nVersion: 6.1.199-1\n\n\
             Package: linux-source-6.1\nVersion: 6.1.192-3\n",
        );
        let index = vec![
            ("bookworm".to_string(), vec![]),
            ("bookworm-security".to_string(), bw),
        ];
        let p = plan(&index, "6.1.0-57-amd64", "6.1.192-3", "bookworm-security").unwrap();
        assert_eq!(p.image.len(), 1);
        assert!(p
            .all()
            .all(|x| x.version == "6.1.192-3" && x.suite == "bookworm-security"));
        assert_eq!(p.headers[2].name, "linux-kbuild-6.1");

        // A source at another version is an error naming it.
        let bad = stanzas("Package: linux-image-6.1.0-57-amd64-unsigned\nVersion: 6.1.192-3\n\nPackage: linux-headers-6.1.0-57-amd64\nVersion: 6.1.192-3\nDepends: linux-kbuild-6.1\n\nPackage: linux-kbuild-6.1\nVersion: 6.1.192-3\n\nPackage: linux-source-6.1\nVersion: 6.1.192-2\n");
        let e = plan(
            &[("bookworm".into(), bad)],
            "6.1.0-57-amd64",
            "6.1.192-3",
            "bookworm",
        )
        .unwrap_err();
        assert!(
            format!("{e}").contains("linux-source-6.1 at version 6.1.192-3"),
            "{e}"
        );
    }

    #[test]
    fn a_superseded_kbuild_is_replaced_by_the_next_revision_of_its_upstream_version() {
        // bookworm-security on 2026-12-02: the headers of -55 (6.1.192-1) are listed, but the
        // series' kbuild only at 6.1.192-3 and, in bookworm, at 6.1.176-1.
        let bw = stanzas(
            "Package: linux-image-6.1.0-55-amd64-unsigned\nVersion: 6.1.192-1\n\n\
             Package: linux-headers-6.1.0-55-amd64\nVersion: 6.1.192-1\nDepends: linux-headers-6.1.0-55-common (= 6.1.192-1), linux-kbuild-6.1 (>= 6.1.192-1)\n\n\
             Package: linux-headers-6.1.0-55-common\nVersion: 6.1.192-1\n\n\
             Package: linux-kbuild-6.1\nVersion: 6.1.199-1\n\n\
             Package: linux-kbuild-6.1\nVersion: 6.1.192-3\nSize: 9\n\n\
             Package: linux-kbuild-6.1\nVersion: 6.1.192-2\nSize: 8\n\n\
             Package: linux-source-6.1\nVersion: 6.1.192-1\n",
        );
        let old = stanzas("Package: linux-kbuild-6.1\nVersion: 6.1.176-1\n");
        let index = vec![
            ("bookworm".to_string(), old),
            ("bookworm-security".to_string(), bw),
        ];
        let p = plan(&index, "6.1.0-55-amd64", "6.1.192-1", "bookworm-security").unwrap();
        let kbuild = p
            .headers
            .iter()
            .find(|x| x.name == "linux-kbuild-6.1")
            .unwrap();
        assert_eq!((kbuild.version.as_str(), kbuild.size), ("6.1.192-2", 8));
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(p.notes[0].contains("6.1.192-2"), "{:?}", p.notes);
        // Everything else stays at the kernel's version: only the kbuild tools may move.
        assert!(p
            .all()
            .filter(|x| x.name != "linux-kbuild-6.1")
            .all(|x| x.version == "6.1.192-1"));

        // Another upstream version is never taken: the index has only 6.1.199-1 and 6.1.176-1.
        let bw = stanzas(
            "Package: linux-image-6.1.0-55-amd64-unsigned\nVersion: 6.1.192-1\n\n\
             Package: linux-headers-6.1.0-55-amd64\nVersion: 6.1.192-1\nDepends: linux-kbuild-6.1 (>= 6.1.192-1)\n\n\
             Package: linux-kbuild-6.1\nVersion: 6.1.199-1\n\n\
             Package: linux-source-6.1\nVersion: 6.1.192-1\n",
        );
        let e = plan(
            &[("bookworm-security".into(), bw)],
            "6.1.0-55-amd64",
            "6.1.192-1",
            "bookworm-security",
        )
        .unwrap_err();
        assert!(
            format!("{e}").contains("linux-kbuild-6.1 at version 6.1.192-1"),
            "{e}"
        );
    }

    #[test]
    fn placeholder_map() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("System.map");
        fs::write(
            &p,
            "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n",
        )
        .unwrap();
        assert!(is_placeholder_map(&p));
        fs::write(
            &p,
            "ffffffff81000000 T _text\nffffffff81000010 T startup_64\n",
        )
        .unwrap();
        assert!(!is_placeholder_map(&p));
    }

    #[test]
    fn bad_release_is_refused_before_any_network() {
        let t = tempfile::tempdir().unwrap();
        for r in ["", "../x", "a/b", "-rf"] {
            let e = resolve(t.path(), r, &Suites::default(), &mut |_| {}).unwrap_err();
            assert!(matches!(e, DebianError::Other(_)), "{r}");
        }
        assert!(!t.path().join("debian").exists());
    }
}
