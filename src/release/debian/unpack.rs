//! Unpacking `.deb` files privately and mending the headers: in, downloaded packages and a scratch
//! dir; out, a tree laid out like `/` for those packages whose links and Makefile includes stay
//! inside it. Invariant: nothing outside the given dir is written, and no path in the tree points
//! at the host's `/usr/src` or `/usr/lib` (where another kernel's headers may be installed).

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// `dpkg-deb -x deb into`: the package's files, without running its scripts or touching dpkg's
/// database.
pub fn extract(deb: &Path, into: &Path) -> Result<()> {
    fs::create_dir_all(into).with_context(|| format!("cannot create {}", into.display()))?;
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(into)
        .output()
        .context("cannot run dpkg-deb (package dpkg)")?;
    if !out.status.success() {
        bail!(
            "dpkg-deb -x {} {} failed: {}\nThe file may be truncated; delete it and run again",
            deb.display(),
            into.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Unpacks `linux-source-X`'s `usr/src/linux-source-X.tar.xz` into `into`, returning the tree
/// (the dir holding `Makefile`). The package holds only the tarball; the tree is what a rebuild
/// needs.
pub fn extract_source(deb: &Path, into: &Path) -> Result<PathBuf> {
    let pkg = into.join(".pkg");
    extract(deb, &pkg)?;
    let src = pkg.join("usr/src");
    let tarball = fs::read_dir(&src)
        .with_context(|| format!("{} has no usr/src", deb.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("linux-source-") && n.contains(".tar"))
        })
        .with_context(|| format!("{} holds no usr/src/linux-source-*.tar.*", deb.display()))?;
    let out = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(into)
        .output()
        .context("cannot run tar")?;
    if !out.status.success() {
        bail!(
            "tar -xf {} failed: {}",
            tarball.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::remove_dir_all(&pkg).with_context(|| format!("cannot remove {}", pkg.display()))?;
    let tree = fs::read_dir(into)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("Makefile").is_file())
        .with_context(|| {
            format!(
                "{} unpacked no dir with a Makefile into {}",
                tarball.display(),
                into.display()
            )
        })?;
    Ok(tree)
}

/// Makes the unpacked headers usable where they are. Debian's `linux-headers-R/Makefile` is one
/// line, `include /usr/src/linux-headers-ABI-common/Makefile`, and `lib/modules/R/build` is an
/// absolute link to `/usr/src/linux-headers-R`: both would reach the host's installed headers (or
/// nothing). Every absolute link whose target exists in `root` becomes relative; every Makefile
/// include of `/usr/src/...` or `/usr/lib/...` becomes a path relative to the Makefile itself, so
/// the tree may be renamed or moved afterwards. Returns the number of mended things.
pub fn mend(root: &Path) -> Result<usize> {
    let mut mended = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let entry = entry?;
            let path = entry.path();
            let ft = entry.file_type()?;
            if ft.is_symlink() {
                let target = fs::read_link(&path)?;
                if target.is_absolute() {
                    let inside = root.join(target.strip_prefix("/").unwrap_or(&target));
                    if inside.exists() || fs::symlink_metadata(&inside).is_ok() {
                        let rel = relative(path.parent().unwrap_or(root), &inside, root);
                        fs::remove_file(&path)?;
                        std::os::unix::fs::symlink(&rel, &path).with_context(|| {
                            format!("cannot relink {} -> {}", path.display(), rel.display())
                        })?;
                        mended += 1;
                    }
                }
            } else if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file()
                && path.file_name().is_some_and(|n| n == "Makefile")
                && path
                    .parent()
                    .and_then(|p| p.parent())
                    .is_some_and(|p| p.ends_with("usr/src"))
            {
                mended += mend_makefile(root, &path)?;
            }
        }
    }
    Ok(mended)
}

/// The variable a mended Makefile defines first: the absolute dir of the Makefile itself, read
/// while make parses its first line (later `$(MAKEFILE_LIST)` names other files).
const HERE_VAR: &str = "klp_build_here";

/// Rewrites the absolute `/usr/src/...` and `/usr/lib/...` paths of a headers dir's top Makefile
/// to paths relative to the Makefile. Debian's 6.1 and 6.12 Makefile is one line, `include
/// /usr/src/linux-headers-ABI-common/Makefile`; 7.2's adds
/// `KBUILD_OUTPUT=/usr/src/linux-headers-R`, which the common Makefile checks with `realpath`
/// ("specified kernel directory ... does not exist"). A path is rewritten only when it exists in
/// the private root.
fn mend_makefile(root: &Path, makefile: &Path) -> Result<usize> {
    let text = fs::read_to_string(makefile)
        .with_context(|| format!("cannot read {}", makefile.display()))?;
    if text.starts_with(HERE_VAR) {
        return Ok(0);
    }
    let here = makefile.parent().unwrap_or(root);
    let re = regex::Regex::new(r"/usr/(?:src|lib)/[A-Za-z0-9._+~/-]+").context("path pattern")?;
    let mut n = 0;
    let out = re.replace_all(&text, |c: &regex::Captures| {
        let path = &c[0];
        let inside = root.join(path.trim_start_matches('/'));
        if fs::symlink_metadata(&inside).is_ok() {
            n += 1;
            format!("$({HERE_VAR})/{}", relative(here, &inside, root).display())
        } else {
            path.to_string()
        }
    });
    if n > 0 {
        let mended = format!("{HERE_VAR} := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))\n{out}");
        fs::write(makefile, mended)
            .with_context(|| format!("cannot write {}", makefile.display()))?;
    }
    Ok(n)
}

/// The relative path from dir `from` to `to`, both inside `root` (lexically; links inside are
/// resolved by the kernel when followed).
fn relative(from: &Path, to: &Path, root: &Path) -> PathBuf {
    let comps = |p: &Path| -> Vec<std::ffi::OsString> {
        p.strip_prefix(root)
            .unwrap_or(p)
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_os_string()),
                _ => None,
            })
            .collect()
    };
    let (f, t) = (comps(from), comps(to));
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c);
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mends_links_and_include() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let hdr = root.join("usr/src/linux-headers-6.1.0-57-amd64");
        let common = root.join("usr/src/linux-headers-6.1.0-57-common");
        let kb = root.join("usr/lib/linux-kbuild-6.1/scripts");
        for d in [&hdr, &common, &kb, &root.join("lib/modules/6.1.0-57-amd64")] {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(common.join("Makefile"), "all:\n").unwrap();
        fs::write(
            hdr.join("Makefile"),
            "KBUILD_OUTPUT=/usr/src/linux-headers-6.1.0-57-amd64\ninclude /usr/src/linux-headers-6.1.0-57-common/Makefile\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("/usr/lib/linux-kbuild-6.1/scripts", hdr.join("scripts"))
            .unwrap();
        std::os::unix::fs::symlink(
            "/usr/src/linux-headers-6.1.0-57-amd64",
            root.join("lib/modules/6.1.0-57-amd64/build"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/nowhere", hdr.join("dangling")).unwrap();
        assert_eq!(mend(root).unwrap(), 4);
        assert_eq!(
            fs::read_link(hdr.join("scripts")).unwrap(),
            Path::new("../../lib/linux-kbuild-6.1/scripts")
        );
        assert!(hdr.join("scripts").is_dir());
        assert!(root
            .join("lib/modules/6.1.0-57-amd64/build/Makefile")
            .is_file());
        assert_eq!(
            fs::read_link(hdr.join("dangling")).unwrap(),
            Path::new("/nowhere")
        );
        assert_eq!(
            fs::read_to_string(hdr.join("Makefile")).unwrap(),
            "klp_build_here := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))\nKBUILD_OUTPUT=$(klp_build_here)/.\ninclude $(klp_build_here)/../linux-headers-6.1.0-57-common/Makefile\n"
        );
        // Idempotent.
        assert_eq!(mend(root).unwrap(), 0);
    }
}
