//! The release file (`release.toml`): TOML in, a checked [`Release`] out. Invariant: every field
//! is checked here, before anything is fetched or built, and every error names the file, the line
//! and what to write instead; relative paths are resolved against the file's directory.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::contract::spec::StateSpec;
use crate::sign::KeySource;

/// The suites a `debian = ...` target is looked up in when the file names none.
pub const DEFAULT_SUITES: &[&str] = &[
    "bookworm",
    "bookworm-security",
    "trixie",
    "trixie-security",
    "sid",
];

/// A release: one set of fixes for many kernels.
#[derive(Debug, Clone)]
pub struct Release {
    /// The release file, absolute.
    pub file: PathBuf,
    /// `name`: the module is `livepatch-<name>-<version>`, normalised.
    pub name: String,
    /// `version`.
    pub version: String,
    /// The module's name as its file is named (`livepatch-acme-2026.12.1` ->
    /// `livepatch-acme-2026_12_1`: characters a module name cannot hold become `_`); the kernel
    /// names it with `-` as `_` too.
    pub module: String,
    /// `previous`: the previous release's output directory.
    pub previous: Option<PathBuf>,
    /// Replace mode, as on the command line.
    pub replace_set: Option<u32>,
    /// Other sets superseded.
    pub supersedes: Vec<u32>,
    /// A stacked hotfix (kernels with `bool replace`).
    pub no_replace: bool,
    /// States declared, `ID[:VERSION]`.
    pub states: Vec<StateSpec>,
    /// Fix ids the previous release carried that this one may drop.
    pub allow_drop: Vec<String>,
    /// Suites searched for `debian` targets.
    pub suites: Vec<String>,
    /// `compiler-launcher`: ccache, sccache, distcc, or `none`.
    pub compiler_launcher: Option<String>,
    /// The fixes, in order (applied in this order).
    pub fixes: Vec<FixSpec>,
    /// The targets, in file order.
    pub targets: Vec<TargetSpec>,
    /// `[sign]`: every target's module is signed with this key and certificate.
    pub sign: Option<SignSpec>,
}

/// `[sign]`: the key and certificate each target's build signs its module with (through that
/// target's own sign-file and hash).
#[derive(Debug, Clone)]
pub struct SignSpec {
    /// `key`: a PEM file (absolute) or a PKCS#11 URI.
    pub key: KeySource,
    /// `cert`: the X.509 certificate (absolute).
    pub cert: PathBuf,
}

/// One fix: an identity across releases and its patches.
#[derive(Debug, Clone)]
pub struct FixSpec {
    /// `id`: stable across releases; other content under the same id is a revision.
    pub id: String,
    /// Its patches, absolute, in order.
    pub patches: Vec<PathBuf>,
    /// `[[fix.backport]]`: other patches for the kernels whose release matches, first match
    /// wins (a fix whose hunk does not apply to a newer kernel, rewritten for it).
    pub backports: Vec<Backport>,
}

/// Patches of a fix for some kernels.
#[derive(Debug, Clone)]
pub struct Backport {
    /// Glob patterns on the kernel release (`7.*`, `6.12.*+deb13-amd64`).
    pub kernels: Vec<glob::Pattern>,
    /// The patches, absolute, in order.
    pub patches: Vec<PathBuf>,
}

impl FixSpec {
    /// The patches for kernel `release` (or the target's name when its release is not known):
    /// the first backport whose pattern matches, else `patches`.
    pub fn patches_for(&self, release: &str) -> &[PathBuf] {
        self.backports
            .iter()
            .find(|b| b.kernels.iter().any(|k| k.matches(release)))
            .map_or(&self.patches, |b| &b.patches)
    }

    /// The fix as one kernel sees it: its patches for `release`, no backports.
    pub fn for_kernel(&self, release: &str) -> FixSpec {
        FixSpec {
            id: self.id.clone(),
            patches: self.patches_for(release).to_vec(),
            backports: vec![],
        }
    }

    /// Every patch of the fix: its own, then each backport's.
    pub fn all_patches(&self) -> impl Iterator<Item = &PathBuf> {
        self.patches
            .iter()
            .chain(self.backports.iter().flat_map(|b| b.patches.iter()))
    }
}

/// One kernel to build for.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    /// The line of its `[[target]]` table, for messages.
    pub line: usize,
    /// Where its inputs come from.
    pub kind: TargetKind,
}

/// Where a target's inputs come from.
#[derive(Debug, Clone)]
pub enum TargetKind {
    /// A Debian kernel release (`uname -r`), fetched from the archive.
    Debian(String),
    /// Explicit inputs, as the build command takes them.
    Tree {
        /// A name for the target (its output directory when the release is not known up front).
        name: String,
        /// `source`.
        source: PathBuf,
        /// `symbols`.
        symbols: Option<PathBuf>,
        /// `kbuild`.
        kbuild: Option<PathBuf>,
        /// `config`.
        config: Option<PathBuf>,
        /// `modules`.
        modules: Option<PathBuf>,
    },
}

impl TargetSpec {
    /// How the target is named on the command line (`--target`) and in messages: the Debian
    /// kernel release or the tree's `name`.
    pub fn key(&self) -> &str {
        match &self.kind {
            TargetKind::Debian(r) => r,
            TargetKind::Tree { name, .. } => name,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRelease {
    name: Spanned<String>,
    version: Spanned<String>,
    previous: Option<Spanned<String>>,
    replace_set: Option<Spanned<u32>>,
    #[serde(default)]
    supersedes: Vec<u32>,
    #[serde(default)]
    no_replace: bool,
    #[serde(default)]
    states: Vec<Spanned<String>>,
    #[serde(default)]
    allow_drop: Vec<Spanned<String>>,
    suites: Option<Spanned<Vec<String>>>,
    compiler_launcher: Option<String>,
    #[serde(default)]
    fix: Vec<Spanned<RawFix>>,
    #[serde(default)]
    target: Vec<Spanned<RawTarget>>,
    sign: Option<Spanned<RawSign>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSign {
    key: Spanned<String>,
    cert: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFix {
    id: Spanned<String>,
    patches: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    backport: Vec<Spanned<RawBackport>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackport {
    kernels: Spanned<Vec<Spanned<String>>>,
    patches: Spanned<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    debian: Option<Spanned<String>>,
    name: Option<Spanned<String>>,
    source: Option<Spanned<String>>,
    symbols: Option<Spanned<String>>,
    kbuild: Option<Spanned<String>>,
    config: Option<Spanned<String>>,
    modules: Option<Spanned<String>>,
}

/// A release file's text with its name, for located messages.
struct Located<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<String>,
}

impl Located<'_> {
    fn line_of(&self, span: &Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn error(&mut self, span: &Range<usize>, message: impl std::fmt::Display) {
        let line = self.line_of(span);
        self.errors
            .push(format!("{}:{line}: {message}", self.file.display()));
    }
}

/// The largest release file read: a release of a thousand fixes and targets is far below it, and
/// a file given by mistake (an image, /dev/zero) is refused before it is read whole.
const MAX_FILE: u64 = 4 << 20;

/// Reads and checks `path`.
pub fn read(path: &Path) -> anyhow::Result<Release> {
    let meta = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("release file {}: {e}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!(
            "release file {}: not a regular file; give the path of a release.toml",
            path.display()
        );
    }
    if meta.len() > MAX_FILE {
        anyhow::bail!(
            "release file {}: {} bytes, more than the {} a release file may have; is it the right file?",
            path.display(),
            meta.len(),
            MAX_FILE
        );
    }
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("release file {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "release file {}: not UTF-8 text (byte {}); TOML files are UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let file = std::path::absolute(path)
        .map_err(|e| anyhow::anyhow!("release file {}: {e}", path.display()))?;
    parse(&file, &text)
}

/// Parses and checks the text of the release file `file` (absolute).
pub fn parse(file: &Path, text: &str) -> anyhow::Result<Release> {
    let raw: RawRelease = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(String::new(), |s| {
            let l = Located {
                file,
                text,
                errors: vec![],
            };
            format!(":{}", l.line_of(&s))
        });
        anyhow::anyhow!(
            "{}{line}: {}\n  see docs/release.md for the release file's fields",
            file.display(),
            e.message()
        )
    })?;
    let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut l = Located {
        file,
        text,
        errors: vec![],
    };
    let (name, version, module) = identity(&mut l, &raw);
    let previous = raw.previous.as_ref().map(|p| dir.join(p.get_ref()));
    if raw.no_replace && (raw.replace_set.is_some() || !raw.supersedes.is_empty()) {
        let span = raw
            .replace_set
            .as_ref()
            .map_or(raw.name.span(), Spanned::span);
        l.error(
            &span,
            "no-replace = true with replace-set or supersedes: a stacked hotfix replaces nothing; \
             drop one of them",
        );
    }
    let mut states = Vec::new();
    for s in &raw.states {
        match s.get_ref().parse::<StateSpec>() {
            Ok(st) => states.push(st),
            Err(e) => l.error(&s.span(), format!("states: {e}")),
        }
    }
    let suites = suites(&mut l, raw.suites.as_ref());
    let (fixes, ids) = fixes(&mut l, &dir, &raw.fix);
    let mut allow_drop = Vec::new();
    for a in &raw.allow_drop {
        if ids.contains(a.get_ref()) {
            l.error(
                &a.span(),
                format!(
                    "allow-drop = {:?}: this release carries that fix, so it drops nothing",
                    a.get_ref()
                ),
            );
        }
        allow_drop.push(a.get_ref().clone());
    }

    let targets = targets(&mut l, &dir, &raw.target);
    let sign = raw
        .sign
        .as_ref()
        .map(|s| sign_spec(&mut l, &dir, s.get_ref()));
    if !l.errors.is_empty() {
        anyhow::bail!(
            "{} problem(s) in the release file:\n  {}",
            l.errors.len(),
            l.errors.join("\n  ")
        );
    }
    Ok(Release {
        file: file.to_path_buf(),
        name,
        version,
        module,
        previous,
        replace_set: raw.replace_set.map(Spanned::into_inner),
        supersedes: raw.supersedes,
        no_replace: raw.no_replace,
        states,
        allow_drop,
        suites,
        compiler_launcher: raw.compiler_launcher,
        fixes,
        targets,
        sign,
    })
}

/// `name` and `version`, checked, and the module name they make.
fn identity(l: &mut Located<'_>, raw: &RawRelease) -> (String, String, String) {
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        l.error(
            &raw.name.span(),
            format!(
                "name = {:?}: a module name part of letters, digits, '-', '_' or '.', such as \"acme\"",
                raw.name.get_ref()
            ),
        );
    }
    let version = raw.version.get_ref().trim().to_string();
    if version.is_empty()
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
    {
        l.error(
            &raw.version.span(),
            format!(
                "version = {:?}: letters, digits, '.', '-', '_' or '+', such as \"2026.12.1\"",
                raw.version.get_ref()
            ),
        );
    }
    let module = crate::contract::spec::module_name_of(&format!("livepatch-{name}-{version}"));
    if module.len() > crate::contract::spec::MODULE_NAME_MAX {
        l.error(
            &raw.name.span(),
            format!(
                "the module name livepatch-{name}-{version} is {} characters; the kernel allows 55 \
                 (with its .ko suffix and NUL): shorten name or version",
                module.len()
            ),
        );
    }
    (name, version, module)
}

/// `suites`: the file's, checked, or the defaults.
fn suites(l: &mut Located<'_>, raw: Option<&Spanned<Vec<String>>>) -> Vec<String> {
    match raw {
        Some(s) if s.get_ref().is_empty() => {
            l.error(
                &s.span(),
                "suites = []: name at least one Debian suite, such as \"trixie\"",
            );
            vec![]
        }
        Some(s) => {
            for suite in s.get_ref() {
                if suite.is_empty()
                    || !suite
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    l.error(
                        &s.span(),
                        format!("suites: {suite:?} is not a Debian suite name, such as \"trixie-security\""),
                    );
                }
            }
            s.get_ref().clone()
        }
        None => DEFAULT_SUITES.iter().map(|s| s.to_string()).collect(),
    }
}

/// The `[[fix]]` entries, checked, with the set of their ids.
fn fixes(
    l: &mut Located<'_>,
    dir: &Path,
    raw: &[Spanned<RawFix>],
) -> (Vec<FixSpec>, BTreeSet<String>) {
    let mut fixes = Vec::new();
    let mut ids = BTreeSet::new();
    if raw.is_empty() {
        l.errors.push(format!(
            "{}: no [[fix]]: a release needs at least one, e.g.\n  [[fix]]\n  id = \"CVE-2026-1001\"\n  patches = [\"fixes/cve-2026-1001.patch\"]",
            l.file.display()
        ));
    }
    for f in raw {
        let f_span = f.span();
        let f = f.get_ref();
        let id = f.id.get_ref().clone();
        if !valid_id(&id) {
            l.error(
                &f.id.span(),
                format!(
                    "id = {id:?}: letters, digits, '.', '-', '_' or '+' and no more than 64, such as \"CVE-2026-1001\""
                ),
            );
        } else if !ids.insert(id.clone()) {
            l.error(
                &f.id.span(),
                format!("id = {id:?} names a second fix; ids are unique in a release"),
            );
        }
        let patches = patch_list(l, dir, &id, &f.patches);
        let mut backports = Vec::new();
        for b in &f.backport {
            let b = b.get_ref();
            if b.kernels.get_ref().is_empty() {
                l.error(
                    &b.kernels.span(),
                    format!("fix {id:?}: backport kernels = []: name the kernel releases it is for, e.g. [\"7.*\"]"),
                );
            }
            let mut kernels = Vec::new();
            for k in b.kernels.get_ref() {
                match glob::Pattern::new(k.get_ref()) {
                    Ok(p) => kernels.push(p),
                    Err(e) => l.error(
                        &k.span(),
                        format!(
                            "fix {id:?}: backport kernels: {:?} is not a pattern ({e})",
                            k.get_ref()
                        ),
                    ),
                }
            }
            let patches = patch_list(l, dir, &id, &b.patches);
            backports.push(Backport { kernels, patches });
        }
        let _ = f_span;
        fixes.push(FixSpec {
            id,
            patches,
            backports,
        });
    }
    (fixes, ids)
}

/// The `[[target]]` entries, checked: each a Debian release or a tree with its inputs.
fn targets(l: &mut Located<'_>, dir: &Path, raw: &[Spanned<RawTarget>]) -> Vec<TargetSpec> {
    let mut targets = Vec::new();
    let mut keys = BTreeSet::new();
    if raw.is_empty() {
        l.errors.push(format!(
            "{}: no [[target]]: name at least one kernel, e.g.\n  [[target]]\n  debian = \"6.1.0-57-amd64\"",
            l.file.display()
        ));
    }
    for t in raw {
        let span = t.span();
        let line = l.line_of(&span);
        let t = t.get_ref();
        let kind = match (&t.debian, &t.source) {
            (Some(d), None) => {
                let others = [&t.name, &t.symbols, &t.kbuild, &t.config, &t.modules];
                if others.iter().any(|o| o.is_some()) {
                    l.error(
                        &span,
                        "a debian target takes its inputs from Debian's packages: remove name, \
                         symbols, kbuild, config and modules, or use source = ... instead of debian",
                    );
                }
                let r = d.get_ref().trim().to_string();
                if !valid_debian_release(&r) {
                    l.error(
                        &d.span(),
                        format!(
                            "debian = {r:?}: a Debian kernel release as `uname -r` prints it, such as \
                             \"6.1.0-57-amd64\" or \"6.12.118+deb13-amd64\""
                        ),
                    );
                }
                TargetKind::Debian(r)
            }
            (None, Some(src)) => {
                let name = match &t.name {
                    Some(n) if valid_id(n.get_ref()) => n.get_ref().clone(),
                    Some(n) => {
                        l.error(
                            &n.span(),
                            format!(
                                "name = {:?}: letters, digits, '.', '-', '_' or '+'",
                                n.get_ref()
                            ),
                        );
                        String::new()
                    }
                    None => {
                        l.error(
                            &span,
                            "a target with source = ... needs name = \"...\" (its directory in the output)",
                        );
                        String::new()
                    }
                };
                let mut path = |v: &Option<Spanned<String>>, field: &str, dir_expected: bool| {
                    let v = v.as_ref()?;
                    let p = dir.join(v.get_ref());
                    match std::fs::metadata(&p) {
                        Ok(m) if m.is_dir() == dir_expected => {}
                        Ok(_) => l.error(
                            &v.span(),
                            format!(
                                "{field} = {:?}: {} is not a {}",
                                v.get_ref(),
                                p.display(),
                                if dir_expected {
                                    "directory"
                                } else {
                                    "regular file"
                                }
                            ),
                        ),
                        Err(e) => l.error(
                            &v.span(),
                            format!(
                                "{field} = {:?}: {}: {e}; paths are relative to the release file",
                                v.get_ref(),
                                p.display()
                            ),
                        ),
                    }
                    Some(p)
                };
                TargetKind::Tree {
                    name,
                    source: path(&Some(src.clone()), "source", true).unwrap_or_default(),
                    symbols: path(&t.symbols, "symbols", false),
                    kbuild: path(&t.kbuild, "kbuild", true),
                    config: path(&t.config, "config", false),
                    modules: path(&t.modules, "modules", true),
                }
            }
            (Some(_), Some(_)) => {
                l.error(
                    &span,
                    "a target has either debian = \"<release>\" or source = \"<tree>\", not both",
                );
                continue;
            }
            (None, None) => {
                l.error(
                    &span,
                    "a target needs debian = \"<kernel release>\" or source = \"<tree>\" (with name = ...)",
                );
                continue;
            }
        };
        let target = TargetSpec { line, kind };
        if !keys.insert(target.key().to_string()) {
            l.error(&span, format!("target {:?} is named twice", target.key()));
        }
        targets.push(target);
    }
    targets
}

/// `[sign]`: `key` a PKCS#11 URI or a file, `cert` a file, paths relative to the release file;
/// each file must exist (what it holds is checked before the first fetch, by `release build`).
fn sign_spec(l: &mut Located, dir: &Path, raw: &RawSign) -> SignSpec {
    let key = KeySource::parse(std::ffi::OsStr::new(raw.key.get_ref()), Some(dir));
    let mut file = |v: &Spanned<String>, p: &Path, field: &str, what: &str| {
        match std::fs::metadata(p)
    {
        Ok(m) if m.is_file() => {}
        Ok(_) => l.error(
            &v.span(),
            format!("[sign] {field} = {:?}: {} is not a regular file; give {what}", v.get_ref(), p.display()),
        ),
        Err(e) => l.error(
            &v.span(),
            format!(
                "[sign] {field} = {:?}: {}: {e}; give {what} (paths are relative to the release file)",
                v.get_ref(),
                p.display()
            ),
        ),
    }
    };
    if let KeySource::File(p) = &key {
        file(
            &raw.key,
            p,
            "key",
            "the module signing key as a PEM file, or a PKCS#11 URI (\"pkcs11:...\")",
        );
    }
    let cert = dir.join(raw.cert.get_ref());
    file(
        &raw.cert,
        &cert,
        "cert",
        "the X.509 certificate of the key (PEM or DER)",
    );
    SignSpec { key, cert }
}

/// A `patches = [...]` list of fix `id`, checked: each an existing regular file.
fn patch_list(
    l: &mut Located,
    dir: &Path,
    id: &str,
    list: &Spanned<Vec<Spanned<String>>>,
) -> Vec<PathBuf> {
    if list.get_ref().is_empty() {
        l.error(
            &list.span(),
            format!("fix {id:?}: patches = []: name its patch files"),
        );
    }
    let mut patches = Vec::new();
    for p in list.get_ref() {
        let path = dir.join(p.get_ref());
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => patches.push(path),
            Ok(_) => l.error(
                &p.span(),
                format!("fix {id:?}: {} is not a regular file", path.display()),
            ),
            Err(e) => l.error(
                &p.span(),
                format!(
                    "fix {id:?}: patch {}: {e}; paths are relative to the release file",
                    path.display()
                ),
            ),
        }
    }
    patches
}

/// A fix id or target name: safe as a file name, a modinfo value and a JSON key.
fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
}

/// A kernel release as a directory of the output may be named: `uname -r`'s characters, no path
/// separator, not hidden.
pub fn valid_kernel_release(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-+._~".contains(c))
}

/// `6.1.0-57-amd64`, `6.12.118+deb13-amd64`, `7.2.13+deb14-amd64`: digits and dots, then a
/// flavour part; no path characters (it names a directory of the output).
pub fn valid_debian_release(s: &str) -> bool {
    let mut parts = s.splitn(2, ['-', '+']);
    let numeric = parts.next().unwrap_or("");
    numeric.split('.').count() >= 2
        && numeric
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        && parts.next().is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-+.~".contains(c))
        })
        && s.len() <= 64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("fixes")).unwrap();
        std::fs::write(d.path().join("fixes/a.patch"), "x").unwrap();
        let f = d.path().join("release.toml");
        (d, f)
    }

    #[test]
    fn a_whole_file_reads_with_relative_paths_resolved() {
        let (d, f) = fixture();
        let r = parse(
            &f,
            "name = \"acme\"\nversion = \"2026.12.1\"\nprevious = \"../old\"\nreplace-set = 2\n\
             [[fix]]\nid = \"CVE-1\"\npatches = [\"fixes/a.patch\"]\n\
             [[target]]\ndebian = \"6.1.0-57-amd64\"\n",
        )
        .unwrap();
        assert_eq!(r.module, "livepatch-acme-2026_12_1");
        assert_eq!(r.previous, Some(d.path().join("../old")));
        assert_eq!(r.replace_set, Some(2));
        assert_eq!(r.fixes[0].patches, vec![d.path().join("fixes/a.patch")]);
        assert_eq!(r.targets[0].key(), "6.1.0-57-amd64");
        assert_eq!(r.targets[0].line, 8);
        assert_eq!(r.suites.len(), DEFAULT_SUITES.len());
    }

    #[test]
    fn sign_paths_are_relative_to_the_file_and_must_exist() {
        let (d, f) = fixture();
        std::fs::write(d.path().join("fixes/key.pem"), "k").unwrap();
        std::fs::write(d.path().join("fixes/cert.pem"), "c").unwrap();
        let head = "name = \"acme\"\nversion = \"1\"\n[[fix]]\nid = \"a\"\npatches = [\"fixes/a.patch\"]\n\
                    [[target]]\ndebian = \"6.1.0-57-amd64\"\n";
        let r = parse(
            &f,
            &format!("{head}[sign]\nkey = \"fixes/key.pem\"\ncert = \"fixes/cert.pem\"\n"),
        )
        .unwrap();
        let s = r.sign.unwrap();
        assert_eq!(s.key, KeySource::File(d.path().join("fixes/key.pem")));
        assert_eq!(s.cert, d.path().join("fixes/cert.pem"));
        let r = parse(
            &f,
            &format!(
                "{head}[sign]\nkey = \"pkcs11:token=hsm;object=mod\"\ncert = \"fixes/cert.pem\"\n"
            ),
        )
        .unwrap();
        assert_eq!(
            r.sign.unwrap().key,
            KeySource::Pkcs11("pkcs11:token=hsm;object=mod".into())
        );
        let e = parse(
            &f,
            &format!("{head}[sign]\nkey = \"nokey.pem\"\ncert = \"fixes\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("release.toml:9: [sign] key = \"nokey.pem\""),
            "{e}"
        );
        assert!(e.contains("PEM file, or a PKCS#11 URI"), "{e}");
        assert!(
            e.contains("release.toml:10: [sign] cert = \"fixes\"")
                && e.contains("not a regular file"),
            "{e}"
        );
        let e = parse(&f, &format!("{head}[sign]\nkey = \"fixes/key.pem\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cert"), "{e}");
    }

    #[test]
    fn every_problem_is_named_with_its_line() {
        let (_d, f) = fixture();
        let e = parse(
            &f,
            "name = \"acme\"\nversion = \"1\"\n\
             [[fix]]\nid = \"a b\"\npatches = [\"fixes/missing.patch\"]\n\
             [[target]]\ndebian = \"../etc\"\n\
             [[target]]\nsource = \"/\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("release.toml:4: id = \"a b\""), "{e}");
        assert!(e.contains("release.toml:5: fix \"a b\": patch"), "{e}");
        assert!(e.contains("release.toml:7: debian = \"../etc\""), "{e}");
        assert!(e.contains("needs name = "), "{e}");
        assert!(e.starts_with("4 problem(s)"), "{e}");
    }

    #[test]
    fn an_unknown_field_names_its_line_and_the_doc() {
        let (_d, f) = fixture();
        let e = parse(&f, "name = \"a\"\nversion = \"1\"\nreplace_set = 2\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("release.toml:3: unknown field `replace_set`"),
            "{e}"
        );
        assert!(e.contains("docs/release.md"), "{e}");
    }

    #[test]
    fn debian_releases_of_every_suite_are_valid_and_paths_are_not() {
        for ok in [
            "6.1.0-57-amd64",
            "6.12.118+deb13-amd64",
            "7.2.13+deb14-amd64",
            "6.1.0-57-cloud-amd64",
        ] {
            assert!(valid_debian_release(ok), "{ok}");
        }
        for bad in [
            "",
            "6",
            "../x",
            "6.1.0/x",
            "6.1",
            "a.b-c",
            "6.1.0-57-amd64\n",
        ] {
            assert!(!valid_debian_release(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_backport_replaces_the_patches_for_the_kernels_it_names() {
        let (d, f) = fixture();
        std::fs::write(d.path().join("fixes/b.patch"), "y").unwrap();
        let r = parse(
            &f,
            "name = \"a\"\nversion = \"1\"\n[[fix]]\nid = \"x\"\npatches = [\"fixes/a.patch\"]\n\
             [[fix.backport]]\nkernels = [\"7.*\", \"6.12.*+deb13-amd64\"]\npatches = [\"fixes/b.patch\"]\n\
             [[target]]\ndebian = \"6.1.0-1-amd64\"\n",
        )
        .unwrap();
        let fix = &r.fixes[0];
        assert_eq!(
            fix.patches_for("6.1.0-57-amd64"),
            [d.path().join("fixes/a.patch")]
        );
        assert_eq!(
            fix.patches_for("7.2.13+deb14-amd64"),
            [d.path().join("fixes/b.patch")]
        );
        assert_eq!(
            fix.patches_for("6.12.118+deb13-amd64"),
            [d.path().join("fixes/b.patch")]
        );
        assert_eq!(
            fix.patches_for("6.12.117+deb12-amd64"),
            [d.path().join("fixes/a.patch")]
        );
        assert_eq!(fix.all_patches().count(), 2);
        let e = parse(
            &f,
            "name = \"a\"\nversion = \"1\"\n[[fix]]\nid = \"x\"\npatches = [\"fixes/a.patch\"]\n\
             [[fix.backport]]\nkernels = [\"[\"]\npatches = []\n[[target]]\ndebian = \"6.1.0-1-amd64\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("release.toml:7: fix \"x\": backport kernels: \"[\" is not a pattern"),
            "{e}"
        );
        assert!(e.contains("release.toml:8: fix \"x\": patches = []"), "{e}");
    }

    #[test]
    fn a_stacked_hotfix_with_a_replace_set_is_refused() {
        let (_d, f) = fixture();
        let e = parse(
            &f,
            "name = \"a\"\nversion = \"1\"\nno-replace = true\nreplace-set = 2\n\
             [[fix]]\nid = \"x\"\npatches = [\"fixes/a.patch\"]\n[[target]]\ndebian = \"6.1.0-1-amd64\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("release.toml:4: no-replace = true with replace-set"),
            "{e}"
        );
    }
}
