//! The compiler launcher of a release's builds (ccache, sccache, distcc). Input: the launcher
//! asked for (or the one found), the compiler a target's config names. Output: a directory to put
//! first on the target build's `PATH`, holding one script named like that compiler, which runs
//! `LAUNCHER COMPILER "$@"`; after the build, the launcher's per-target statistics. Invariant:
//! the compiler kbuild sees keeps its name (`CC=x86_64-linux-gnu-gcc-14`), so the tree's
//! recorded toolchain and `CONFIG_CC_VERSION_TEXT` still match and nothing is reconfigured; a
//! second release that adds one fix compiles only that fix's files, the rest are cache hits.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

/// A launcher in use.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The program (`ccache`, `sccache`, `distcc`), as found on `PATH` or as named.
    pub program: String,
}

/// What the launcher did for one target's build.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CacheStats {
    /// The launcher.
    pub launcher: String,
    /// Compiles answered from the cache.
    pub hits: usize,
    /// Compiles of the kernel tree's files that ran the compiler, as the tree names them.
    pub compiled: Vec<String>,
    /// Compiles of the module link's own files (the C core, `<module>.mod.c`) that ran the
    /// compiler.
    pub module_link: Vec<String>,
}

impl Launcher {
    /// The launcher asked for (`none` for none), else ccache when it is installed.
    pub fn choose(requested: Option<&str>) -> anyhow::Result<Option<Launcher>> {
        match requested {
            Some("none") => Ok(None),
            Some(p) => {
                if p.is_empty() || p.contains(char::is_whitespace) {
                    anyhow::bail!(
                        "--compiler-launcher {p:?}: give one program (ccache, sccache, distcc) or `none`"
                    );
                }
                if !on_path(p) && !Path::new(p).is_file() {
                    anyhow::bail!(
                        "--compiler-launcher {p}: not found on PATH; install it (apt-get install {p}) or give `none`"
                    );
                }
                Ok(Some(Launcher { program: p.into() }))
            }
            None => Ok(on_path("ccache").then(|| Launcher {
                program: "ccache".into(),
            })),
        }
    }

    /// The directory of the wrappers for the compilers `names` (program names: the one the
    /// config's `CONFIG_CC_VERSION_TEXT` names, and the `CC` a prepared tree recorded, which
    /// kbuild runs and which may be plain `gcc`), made under `cache` once.
    pub fn wrapper_dir(&self, cache: &Path, names: &[String]) -> anyhow::Result<PathBuf> {
        let launcher = Path::new(&self.program)
            .file_name()
            .map_or_else(|| "launcher".into(), |n| n.to_string_lossy().into_owned());
        let mut names: Vec<&String> = names.iter().collect();
        names.sort();
        names.dedup();
        let key: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        let dir = cache.join("launcher").join(launcher).join(key.join("+"));
        for cc in names {
            self.write_wrapper(&dir, cc)?;
        }
        Ok(dir)
    }

    fn write_wrapper(&self, dir: &Path, cc: &str) -> anyhow::Result<()> {
        let script = dir.join(cc);
        // The wrapper takes its directory off PATH before the launcher looks the compiler up,
        // or ccache would find the wrapper again and recurse.
        let text = format!(
            "#!/bin/sh\n# klp-build: run {cc} through {launcher} (see src/release/launcher.rs).\n\
             PATH=$(printf '%s' \"$PATH\" | sed 's|^{dir}:||')\nexport PATH\nexec {launcher} {cc} \"$@\"\n",
            launcher = self.program,
            dir = dir.display()
        );
        if std::fs::read_to_string(&script).ok().as_deref() != Some(text.as_str()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let tmp = dir.join(format!(".{cc}.{}", std::process::id()));
            std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("chmod {}", tmp.display()))?;
            std::fs::rename(&tmp, &script)
                .with_context(|| format!("writing {}", script.display()))?;
        }
        Ok(())
    }

    /// The environment of a target's build: the wrapper first on `PATH`, and for ccache its
    /// cache under klp-build's (unless the user chose one) and a per-target stats log.
    pub fn env(&self, cache: &Path, wrapper: &Path, stats_log: &Path) -> Vec<(String, String)> {
        let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
        let mut env = vec![("PATH".to_string(), format!("{}:{path}", wrapper.display()))];
        if self.is_ccache() {
            if std::env::var_os("CCACHE_DIR").is_none() {
                env.push((
                    "CCACHE_DIR".into(),
                    cache.join("ccache").display().to_string(),
                ));
            }
            env.push(("CCACHE_STATSLOG".into(), stats_log.display().to_string()));
        }
        env
    }

    fn is_ccache(&self) -> bool {
        Path::new(&self.program).file_name() == Some(std::ffi::OsStr::new("ccache"))
    }

    /// The statistics of one build from its stats log (ccache only; other launchers report
    /// nothing per build). `tree` is the target's kernel tree: a compiled file is the tree's
    /// when it lies in it, else it is the module link's own. ccache logs the file as the
    /// compiler was given it, so the rule takes both spellings: kbuild before 6.13 compiles an
    /// external module's files by absolute path from the tree, and 6.13 and later (which run
    /// `M=` builds in the module's directory) by a path relative to that directory.
    pub fn stats(&self, stats_log: &Path, tree: &Path) -> CacheStats {
        let mut s = CacheStats {
            launcher: self.program.clone(),
            ..CacheStats::default()
        };
        let Ok(text) = std::fs::read_to_string(stats_log) else {
            return s;
        };
        // ccache's stats log: `# <input file>` then the counters that compile bumped.
        let mut file = String::new();
        for l in text.lines() {
            if let Some(f) = l.strip_prefix("# ") {
                file = f.trim().to_string();
            } else if l.ends_with("cache_hit") && file != "/dev/null" {
                s.hits += 1;
            } else if l == "cache_miss" && file != "/dev/null" {
                // (/dev/null: kbuild's compiler probes, `$(CC) -x c /dev/null`.)
                if in_tree(tree, &file) {
                    s.compiled.push(file.clone());
                } else {
                    s.module_link.push(file.clone());
                }
            }
        }
        s
    }
}

/// Whether `file`, as a compile named it, is one of `tree`'s files: an absolute path under the
/// tree, or a relative one that exists there (kbuild compiles the tree's files from its top).
fn in_tree(tree: &Path, file: &str) -> bool {
    let f = Path::new(file);
    if f.is_absolute() {
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        canon(f).starts_with(canon(tree))
    } else {
        tree.join(f).is_file()
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ccache stats log as kbuild before and after 6.13 leaves it: the tree's files relative to
    /// its top, the module's files absolute (6.1) or relative to the module's directory (7.2).
    #[test]
    fn tree_files_and_the_module_links_own_are_told_apart_in_both_spellings() {
        let d = tempfile::tempdir().unwrap();
        let tree = d.path().join("linux");
        let module = d.path().join("work/module");
        std::fs::create_dir_all(tree.join("fs/proc")).unwrap();
        std::fs::create_dir_all(&module).unwrap();
        std::fs::write(tree.join("fs/proc/version.c"), "").unwrap();
        std::fs::write(tree.join("fs/proc/softirqs.c"), "").unwrap();
        std::fs::write(module.join("klp_build_core.c"), "").unwrap();
        let log = d.path().join("stats.log");
        std::fs::write(
            &log,
            format!(
                "# /dev/null\ncache_miss\n# fs/proc/version.c\ncache_miss\n\
                 # fs/proc/softirqs.c\ndirect_cache_hit\n# {core}\ncache_miss\n\
                 # klp_build_core.c\ncache_miss\n# livepatch-x.mod.c\ncache_miss\n\
                 # {abs_tree}\ncache_miss\n",
                core = module.join("klp_build_core.c").display(),
                abs_tree = tree.join("fs/proc/softirqs.c").display(),
            ),
        )
        .unwrap();
        let l = Launcher {
            program: "ccache".into(),
        };
        let s = l.stats(&log, &tree);
        assert_eq!(s.hits, 1);
        assert_eq!(
            s.compiled,
            vec![
                "fs/proc/version.c".to_string(),
                tree.join("fs/proc/softirqs.c").display().to_string()
            ]
        );
        assert_eq!(
            s.module_link,
            vec![
                module.join("klp_build_core.c").display().to_string(),
                "klp_build_core.c".to_string(),
                "livepatch-x.mod.c".to_string()
            ]
        );
    }
}
