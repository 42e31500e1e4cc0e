//! A private apt state under the cache: in, the suites to search and the machine's mirrors; out,
//! the `linux-*` stanzas of each suite's Packages index and downloaded `.deb` files. Invariant: the
//! system's apt and dpkg state (`/etc/apt`, `/var/lib/apt`, `/var/lib/dpkg`) is never written;
//! every apt command runs with `Dir::State`, `Dir::Cache`, the source list and the dpkg status
//! pointed into the cache dir.

use super::lock::Lock;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// The Debian archive keyring of the host. On Debian 12 (debian-archive-keyring 2023.3) it
/// verifies bookworm, trixie and sid's InRelease files (checked on 2026-12-02), so no newer
/// keyring is fetched.
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// Lists older than this are fetched again: Debian's security suites move several times a week,
/// and a kernel published an hour ago must be found.
const MAX_LIST_AGE: Duration = Duration::from_secs(4 * 3600);

/// One paragraph of a Debian control file (a Packages stanza): fields in order, continuation
/// lines joined with '\n'.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza {
    fields: Vec<(String, String)>,
}

impl Stanza {
    /// The value of a field; names compare case-insensitively as in deb-control(5).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn package(&self) -> &str {
        self.get("Package").unwrap_or("")
    }
    pub fn version(&self) -> &str {
        self.get("Version").unwrap_or("")
    }
    pub fn size(&self) -> u64 {
        self.get("Size").and_then(|s| s.parse().ok()).unwrap_or(0)
    }
    /// The `Depends` field, parsed.
    pub fn depends(&self) -> Vec<Vec<Dep>> {
        self.get("Depends").map(parse_depends).unwrap_or_default()
    }
}

/// Splits a Packages file (or any deb822 text) into stanzas. Malformed lines are skipped, never
/// fatal: a mirror's index is external data.
pub fn parse_stanzas(text: &str) -> Vec<Stanza> {
    let mut out = Vec::new();
    let mut cur = Stanza::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.fields.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some((_, v)) = cur.fields.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':').filter(|(k, _)| !k.trim().is_empty()) {
            cur.fields
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !cur.fields.is_empty() {
        out.push(cur);
    }
    out
}

/// One alternative of a dependency: `linux-kbuild-6.1 (>= 6.1.192-3)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    /// `(relation, version)`, e.g. `("=", "6.1.192-3")`.
    pub rel: Option<(String, String)>,
}

/// Parses a `Depends` value into its AND-list of OR-groups. Architecture qualifiers (`:any`) and
/// restriction lists (`[amd64]`, `<!nocheck>`) are dropped: only names and versions matter here.
pub fn parse_depends(value: &str) -> Vec<Vec<Dep>> {
    value
        .split(',')
        .map(|group| {
            group
                .split('|')
                .filter_map(|alt| {
                    let alt = alt.trim();
                    let (name_part, rest) = match alt
                        .find(|c: char| c == '(' || c == '[' || c == '<' || c.is_whitespace())
                    {
                        Some(i) => (&alt[..i], &alt[i..]),
                        None => (alt, ""),
                    };
                    let name = name_part.split(':').next().unwrap_or("").trim();
                    if name.is_empty() {
                        return None;
                    }
                    let rel = rest.find('(').and_then(|open| {
                        let inner = &rest[open + 1..];
                        let close = inner.find(')')?;
                        let inner = inner[..close].trim();
                        let op_end = inner
                            .find(|c: char| !matches!(c, '<' | '>' | '='))
                            .unwrap_or(inner.len());
                        let (op, ver) = inner.split_at(op_end);
                        Some((op.trim().to_string(), ver.trim().to_string()))
                    });
                    Some(Dep {
                        name: name.to_string(),
                        rel,
                    })
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

/// Compares two Debian versions as dpkg does (epoch, upstream, revision; `~` sorts before
/// everything, letters before non-letters). `6.12.117-1~deb12u1 < 6.12.117-1`.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rfind('-') {
            Some(i) => (epoch, &rest[..i], &rest[i + 1..]),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(a: &str, b: &str) -> std::cmp::Ordering {
        let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
        while !a.is_empty() || !b.is_empty() {
            // Non-digit prefix, character by character.
            loop {
                let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
                let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
                if ca.is_none() && cb.is_none() {
                    break;
                }
                let (oa, ob) = (order(ca), order(cb));
                if oa != ob {
                    return oa.cmp(&ob);
                }
                if ca.is_some() {
                    a = &a[1..];
                }
                if cb.is_some() {
                    b = &b[1..];
                }
            }
            let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
            let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let na = std::str::from_utf8(&a[..da])
                .unwrap_or("0")
                .trim_start_matches('0');
            let nb = std::str::from_utf8(&b[..db])
                .unwrap_or("0")
                .trim_start_matches('0');
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
            a = &a[da..];
            b = &b[db..];
        }
        std::cmp::Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua, ub))
        .then_with(|| part(ra, rb))
}

/// The machine's mirrors: the URI serving the main archive (bookworm, trixie, sid) and the one
/// serving the security archive (`*-security`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirrors {
    pub main: String,
    pub security: String,
}

impl Default for Mirrors {
    fn default() -> Self {
        Mirrors {
            main: "http://deb.debian.org/debian".into(),
            security: "http://deb.debian.org/debian-security".into(),
        }
    }
}

impl Mirrors {
    /// The mirrors this machine's apt uses, from `/etc/apt/sources.list.d/*.sources` (deb822) and
    /// `/etc/apt/sources.list` (one-line). A mirror not configured falls back to deb.debian.org.
    pub fn of_host() -> Mirrors {
        let mut texts = Vec::new();
        if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
            let mut paths: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                if let Ok(t) = fs::read_to_string(&p) {
                    let deb822 = p.extension().is_some_and(|e| e == "sources");
                    texts.push((deb822, t));
                }
            }
        }
        if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
            texts.push((false, t));
        }
        let mut m = Mirrors {
            main: String::new(),
            security: String::new(),
        };
        for (deb822, t) in &texts {
            let entries = if *deb822 {
                parse_deb822_sources(t)
            } else {
                parse_one_line_sources(t)
            };
            m.absorb(&entries);
        }
        let d = Mirrors::default();
        if m.main.is_empty() {
            m.main = d.main;
        }
        if m.security.is_empty() {
            m.security = d.security;
        }
        m
    }

    fn absorb(&mut self, entries: &[SourceEntry]) {
        for e in entries {
            if !e.types.iter().any(|t| t == "deb") {
                continue;
            }
            let security = e
                .suites
                .iter()
                .any(|s| s.ends_with("-security") || s.ends_with("/updates"));
            let slot = if security {
                &mut self.security
            } else {
                &mut self.main
            };
            if slot.is_empty() {
                if let Some(u) = e.uris.first() {
                    *slot = u.trim_end_matches('/').to_string();
                }
            }
        }
    }

    /// The URI serving `suite`.
    pub fn for_suite(&self, suite: &str) -> &str {
        if suite.ends_with("-security") {
            &self.security
        } else {
            &self.main
        }
    }
}

/// One source entry of apt's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceEntry {
    pub types: Vec<String>,
    pub uris: Vec<String>,
    pub suites: Vec<String>,
}

/// Parses deb822 `.sources` text (`Types:`, `URIs:`, `Suites:`); `Enabled: no` entries are skipped.
pub fn parse_deb822_sources(text: &str) -> Vec<SourceEntry> {
    let words = |s: Option<&str>| -> Vec<String> {
        s.unwrap_or("")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    parse_stanzas(text)
        .into_iter()
        .filter(|s| {
            !s.get("Enabled")
                .is_some_and(|v| v.eq_ignore_ascii_case("no"))
        })
        .map(|s| SourceEntry {
            types: words(s.get("Types")),
            uris: words(s.get("URIs")),
            suites: words(s.get("Suites")),
        })
        .filter(|e| !e.uris.is_empty())
        .collect()
}

/// Parses one-line `sources.list` text: `deb [options] URI SUITE COMPONENT...`.
pub fn parse_one_line_sources(text: &str) -> Vec<SourceEntry> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some((ty, mut rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if ty != "deb" && ty != "deb-src" {
            continue;
        }
        rest = rest.trim_start();
        if rest.starts_with('[') {
            match rest.find(']') {
                Some(i) => rest = rest[i + 1..].trim_start(),
                None => continue,
            }
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(SourceEntry {
            types: vec![ty.to_string()],
            uris: vec![uri.to_string()],
            suites: vec![suite.to_string()],
        });
    }
    out
}

/// The private apt state dir and the options that confine apt to it.
pub struct Apt {
    dir: PathBuf,
    suites: Vec<String>,
    mirrors: Mirrors,
}

impl Apt {
    /// Sets up `dir` (created if missing) for `suites` and refreshes its lists when they are older
    /// than a few hours or the suites changed. Concurrent callers serialise on `dir/lock`.
    pub fn open(dir: &Path, suites: &[String], log: &mut dyn FnMut(&str)) -> Result<Apt> {
        for sub in [
            "lists/partial",
            "cache/archives/partial",
            "etc/sources.list.d",
            "etc/preferences.d",
            "index",
        ] {
            fs::create_dir_all(dir.join(sub)).with_context(|| {
                format!(
                    "cannot create the private apt dir {}",
                    dir.join(sub).display()
                )
            })?;
        }
        let apt = Apt {
            dir: dir.to_path_buf(),
            suites: suites.to_vec(),
            mirrors: Mirrors::of_host(),
        };
        let _lock = Lock::exclusive(&dir.join("lock"))?;
        let status = dir.join("status");
        if !status.exists() {
            fs::write(&status, b"")
                .with_context(|| format!("cannot create {}", status.display()))?;
        }
        let list = apt.sources_list();
        let list_path = dir.join("etc/sources.list");
        let changed = fs::read_to_string(&list_path).ok().as_deref() != Some(list.as_str());
        let stamp = dir.join("index/.updated");
        let stale = match fs::metadata(&stamp).and_then(|m| m.modified()) {
            Ok(t) => SystemTime::now()
                .duration_since(t)
                .map_or(true, |age| age > MAX_LIST_AGE),
            Err(_) => true,
        };
        if changed || stale {
            write_atomic(&list_path, list.as_bytes())?;
            let _ = fs::remove_file(&stamp);
            log(&format!(
                "apt: updating the private lists of {} ({})",
                suites.join(" "),
                dir.display()
            ));
            let out = apt.run_retrying("apt-get", &["update"], None, "update the package lists")?;
            // apt-get update exits 0 when a suite's signature fails or a suite is missing (it
            // only warns); a kernel resolved from half the suites would be silently wrong.
            let text = String::from_utf8_lossy(&out);
            if let Some(line) = text.lines().find(|l| {
                l.starts_with("W:")
                    && (l.contains("NO_PUBKEY")
                        || l.contains("is not signed")
                        || l.contains("Failed to fetch")
                        || l.contains("does not have a Release file"))
            }) {
                bail!("apt-get update of the private lists in {} failed: {line}\nThe suite named there is missing or not verifiable with {KEYRING}; remove it from the suites or update debian-archive-keyring", dir.display());
            }
            apt.write_index()?;
            fs::write(&stamp, b"").with_context(|| format!("cannot write {}", stamp.display()))?;
        }
        Ok(apt)
    }

    pub fn mirrors(&self) -> &Mirrors {
        &self.mirrors
    }

    fn sources_list(&self) -> String {
        let mut s = String::from(
            "# written by klp-build: the private apt state of Debian kernel targets\n",
        );
        for suite in &self.suites {
            s.push_str(&format!(
                "deb [signed-by={KEYRING}] {} {suite} main\n",
                self.mirrors.for_suite(suite)
            ));
        }
        s
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        [
            format!("Dir::State={d}"),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::State::status={d}/status"),
            format!("Dir::Etc::SourceList={d}/etc/sources.list"),
            format!("Dir::Etc::SourceParts={d}/etc/sources.list.d"),
            format!("Dir::Etc::Preferences={d}/etc/preferences"),
            format!("Dir::Etc::PreferencesParts={d}/etc/preferences.d"),
            format!("Dir::Cache={d}/cache"),
            "APT::Architecture=amd64".into(),
            "APT::Architectures=amd64".into(),
            "Debug::NoLocking=1".into(),
            "Acquire::Languages=none".into(),
            // The host's appstream config (50appstream) would fetch 20 MB of DEP-11 metadata.
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false".into(),
            "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false".into(),
            // Downloads land in the cache dir, which the _apt user may not be able to write.
            "APT::Sandbox::User=root".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
    }

    /// Runs an apt program with the private options, three tries with backoff; returns stdout
    /// and stderr together.
    fn run_retrying(
        &self,
        program: &str,
        args: &[&str],
        cwd: Option<&Path>,
        what: &str,
    ) -> Result<Vec<u8>> {
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(2u64 << attempt));
            }
            let mut cmd = Command::new(program);
            cmd.args(self.options())
                .args(args)
                .env("LC_ALL", "C")
                .env("DEBIAN_FRONTEND", "noninteractive");
            if let Some(c) = cwd {
                cmd.current_dir(c);
            }
            let out = cmd
                .output()
                .with_context(|| format!("cannot run {program} (is apt installed?)"))?;
            let mut all = out.stdout;
            all.extend_from_slice(&out.stderr);
            if out.status.success() {
                return Ok(all);
            }
            last = String::from_utf8_lossy(&all)
                .lines()
                .rev()
                .take(6)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
        }
        bail!(
            "`{program} {}` failed 3 times trying to {what} (private apt state {}):\n{last}\nCheck the network access to {} and {}",
            args.join(" "),
            self.dir.display(),
            self.mirrors.main,
            self.mirrors.security
        )
    }

    /// Writes `index/<suite>`: the `linux-*` stanzas of the suite's Packages (decompressed by
    /// apt-helper, whatever compression the host's apt keeps lists in). A kernel lookup then
    /// reads a few MB instead of 250.
    fn write_index(&self) -> Result<()> {
        let out = self.run_retrying(
            "apt-get",
            &[
                "indextargets",
                "--format",
                "$(RELEASE)\t$(FILENAME)",
                "Identifier: Packages",
            ],
            None,
            "list the downloaded indexes",
        )?;
        let text = String::from_utf8_lossy(&out);
        let mut per_suite: BTreeMap<String, String> = BTreeMap::new();
        for line in text.lines() {
            let Some((suite, file)) = line.split_once('\t') else {
                continue;
            };
            if !Path::new(file).exists() {
                continue;
            }
            let cat = Command::new("/usr/lib/apt/apt-helper")
                .args(["cat-file", file])
                .output()
                .with_context(|| format!("cannot run /usr/lib/apt/apt-helper cat-file {file}"))?;
            if !cat.status.success() {
                bail!(
                    "apt-helper cannot read the index {file}: {}",
                    String::from_utf8_lossy(&cat.stderr).trim()
                );
            }
            let body = per_suite.entry(suite.to_string()).or_default();
            for para in String::from_utf8_lossy(&cat.stdout).split("\n\n") {
                if para.starts_with("Package: linux-") {
                    body.push_str(para.trim_end());
                    body.push_str("\n\n");
                }
            }
        }
        for suite in &self.suites {
            let body = per_suite.get(suite).map(String::as_str).unwrap_or("");
            write_atomic(&self.dir.join("index").join(suite), body.as_bytes())?;
        }
        Ok(())
    }

    /// The `linux-*` stanzas per suite, in the order of the suites.
    pub fn index(&self) -> Result<Vec<(String, Vec<Stanza>)>> {
        self.suites
            .iter()
            .map(|s| {
                let p = self.dir.join("index").join(s);
                let text = fs::read_to_string(&p).with_context(|| {
                    format!(
                        "the private index {} is missing; remove {} to fetch the lists again",
                        p.display(),
                        self.dir.join("index/.updated").display()
                    )
                })?;
                Ok((s.clone(), parse_stanzas(&text)))
            })
            .collect()
    }

    /// Downloads `pkgs` (name, version, size) into `dest`, skipping files already there at the
    /// expected size. Returns the bytes fetched. A download goes to `dest/partial` first so an
    /// interrupted one never looks complete.
    pub fn download(
        &self,
        pkgs: &[(String, String, u64)],
        dest: &Path,
        log: &mut dyn FnMut(&str),
    ) -> Result<(Vec<PathBuf>, u64)> {
        let partial = dest.join("partial");
        fs::create_dir_all(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let _lock = Lock::exclusive(&dest.join("lock"))?;
        let mut files = Vec::new();
        let mut missing = Vec::new();
        for (name, ver, size) in pkgs {
            match find_deb(dest, name, ver) {
                Some(p) if fs::metadata(&p).map(|m| m.len()).ok() == Some(*size) || *size == 0 => {
                    files.push(p)
                }
                _ => missing.push((name, ver, size)),
            }
        }
        if missing.is_empty() {
            return Ok((files, 0));
        }
        let total: u64 = missing.iter().map(|(_, _, s)| **s).sum();
        log(&format!(
            "apt: downloading {} ({:.1} MB)",
            missing
                .iter()
                .map(|(n, v, _)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            total as f64 / 1e6
        ));
        for entry in fs::read_dir(&partial).into_iter().flatten().flatten() {
            let _ = fs::remove_file(entry.path());
        }
        let args: Vec<String> = missing.iter().map(|(n, v, _)| format!("{n}={v}")).collect();
        let mut argv: Vec<&str> = vec!["download"];
        argv.extend(args.iter().map(String::as_str));
        self.run_retrying(
            "apt-get",
            &argv,
            Some(&partial),
            &format!("download {}", args.join(" ")),
        )?;
        let mut bytes = 0;
        for (name, ver, _) in missing {
            let got = find_deb(&partial, name, ver).ok_or_else(|| {
                anyhow!(
                    "apt-get download of {name}={ver} left no .deb in {}",
                    partial.display()
                )
            })?;
            let file_name = got
                .file_name()
                .ok_or_else(|| anyhow!("bad path {}", got.display()))?;
            let to = dest.join(file_name);
            bytes += fs::metadata(&got).map(|m| m.len()).unwrap_or(0);
            fs::rename(&got, &to)
                .with_context(|| format!("cannot move {} to {}", got.display(), to.display()))?;
            files.push(to);
        }
        Ok((files, bytes))
    }
}

/// The `.deb` apt-get download wrote for `name` at `ver`: `name_ver_arch.deb`, the epoch's colon
/// written as `%3a`.
fn find_deb(dir: &Path, name: &str, ver: &str) -> Option<PathBuf> {
    let prefix = format!("{name}_{}_", ver.replace(':', "%3a"));
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
}

/// Writes a file by rename, so readers never see half of it.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, data).with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn stanzas_and_depends() {
        let text = "Package: linux-headers-6.1.0-57-amd64\nSource: linux\nVersion: 6.1.192-3\nDepends: linux-headers-6.1.0-57-common (= 6.1.192-3), linux-kbuild-6.1 (>= 6.1.192-3), linux-compiler-gcc-12-x86\nDescription: headers\n continued line\n\nPackage: linux-image-6.12.118+deb13-amd64\nDepends: linux-image-6.12.118+deb13-amd64 (= 6.12.118-1) | linux-image-6.12.118+deb13-amd64-unsigned (= 6.12.118-1), gcc-14:amd64 [amd64]\n";
        let s = parse_stanzas(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].package(), "linux-headers-6.1.0-57-amd64");
        assert_eq!(s[0].get("description"), Some("headers\ncontinued line"));
        let d = s[0].depends();
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[0][0],
            Dep {
                name: "linux-headers-6.1.0-57-common".into(),
                rel: Some(("=".into(), "6.1.192-3".into()))
            }
        );
        assert_eq!(d[1][0].rel, Some((">=".into(), "6.1.192-3".into())));
        assert_eq!(
            d[2][0],
            Dep {
                name: "linux-compiler-gcc-12-x86".into(),
                rel: None
            }
        );
        let d = s[1].depends();
        assert_eq!(d[0].len(), 2);
        assert_eq!(d[0][1].name, "linux-image-6.12.118+deb13-amd64-unsigned");
        assert_eq!(
            d[1][0],
            Dep {
                name: "gcc-14".into(),
                rel: None
            }
        );
        // Garbage never panics.
        assert!(parse_depends(", | (= ,(>>").iter().all(|g| !g.is_empty()));
        assert!(parse_stanzas(":\n\n \n:::").is_empty());
    }

    #[test]
    fn versions_compare_as_dpkg() {
        assert_eq!(
            compare_versions("6.1.192-3", "6.1.192-2"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("6.1.192-3", "6.1.76-1"), Ordering::Greater);
        assert_eq!(
            compare_versions("6.12.117-1~deb12u1", "6.12.117-1"),
            Ordering::Less
        );
        assert_eq!(compare_versions("1:1.0", "2.0"), Ordering::Greater);
        assert_eq!(compare_versions("1.0a", "1.0+"), Ordering::Less);
        assert_eq!(compare_versions("7.2.13-1", "7.2.13-1"), Ordering::Equal);
        assert_eq!(compare_versions("", "x:--"), compare_versions("", "x:--"));
    }

    #[test]
    fn sources_files() {
        let deb822 = "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security/\nSuites: bookworm-security\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://off.example/\nSuites: sid\n";
        let e = parse_deb822_sources(deb822);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].suites, vec!["bookworm", "bookworm-updates"]);
        let mut m = Mirrors {
            main: String::new(),
            security: String::new(),
        };
        m.absorb(&e);
        assert_eq!(m.main, "http://deb.debian.org/debian");
        assert_eq!(m.security, "http://mirror.example/debian-security");
        assert_eq!(
            m.for_suite("trixie-security"),
            "http://mirror.example/debian-security"
        );
        assert_eq!(m.for_suite("sid"), "http://deb.debian.org/debian");

        let one = "deb [arch=amd64 signed-by=/x.gpg] http://ftp.example/debian bookworm main # c\n# deb http://no/ x\ndeb-src http://src/ bookworm main\ndeb http://sec.example/ bookworm-security main\ndeb\n";
        let e = parse_one_line_sources(one);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].uris, vec!["http://ftp.example/debian"]);
        let mut m = Mirrors {
            main: String::new(),
            security: String::new(),
        };
        m.absorb(&e);
        assert_eq!(m.main, "http://ftp.example/debian");
        assert_eq!(m.security, "http://sec.example");
    }
}
