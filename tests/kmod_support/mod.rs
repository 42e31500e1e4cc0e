//! Shared by the `kmod_*` tests: finds a kbuild dir (the lab's, else installed Debian headers),
//! compiles small C files into module objects with its flags, and describes the hand-made
//! `cmdline_proc_show` livepatch those tests build.
#![allow(dead_code)]
// Also included by `support` in the test crates that have both: one file, one rule.
#[allow(clippy::duplicate_mod)]
#[path = "../ci_env/mod.rs"]
mod ci_env;

use std::path::{Path, PathBuf};
use std::process::Command;

use klp_build::contract::spec::ModuleSpec;
use klp_build::emit::kbuild::{link_module, KmodInput, TABLES_OBJECT};
use klp_build::emit::tables::{write_tables, FuncEntry};
use klp_build::kernel::livepatch_api::LivepatchApi;
use klp_build::progress::Quiet;

/// The replacement of `cmdline_proc_show` (fs/proc/cmdline.c, static there: livepatch finds
/// the old function by name, so its binding does not matter).
pub const CMDLINE_NEW: &str = "klp_build_new_cmdline_proc_show";
/// What `/proc/cmdline` shows while the patch is enabled.
pub const CMDLINE_PATCHED: &str = "patched";

/// Sources of the prebuilt objects: the replacement, and a user of every `klp-build.h` helper
/// (linked, never called: it proves the header compiles with the kernel's flags and that its
/// klp_shadow_* calls resolve against the kernel's exports at modpost).
pub const CMDLINE_OBJECTS: &[(&str, &str)] = &[
    (
        "cmdline_new.c",
        r#"#include <linux/seq_file.h>

int klp_build_new_cmdline_proc_show(struct seq_file *m, void *v);

int klp_build_new_cmdline_proc_show(struct seq_file *m, void *v)
{
	seq_puts(m, "patched\n");
	return 0;
}
"#,
    ),
    (
        "shadow_use.c",
        r#"#include "klp-build.h"

#define SHADOW_ID 0x4b4c5001

struct extra { int count; };

int klp_build_shadow_use(void *obj);

int klp_build_shadow_use(void *obj)
{
	struct extra *e = klp_build_shadow_get_or_alloc(obj, SHADOW_ID, struct extra, GFP_KERNEL);
	int count;

	if (!e)
		return -ENOMEM;
	e->count++;
	count = klp_build_shadow_get(obj, SHADOW_ID, struct extra)->count;
	klp_build_shadow_free(obj, SHADOW_ID);
	klp_build_shadow_free_all(SHADOW_ID);
	return count;
}
"#,
    ),
];

/// The function table entry of the hand-made patch.
pub fn cmdline_entry() -> FuncEntry {
    FuncEntry {
        objname: None,
        old_name: "cmdline_proc_show".into(),
        new_symbol: CMDLINE_NEW.into(),
        sympos: 0,
    }
}

/// The kbuild dir to link against: `LAB_KBUILD` of the lab's `lab.env` (lab/setup.sh), else
/// the newest installed `/usr/src/linux-headers-*-amd64`. `None` (after saying why) when there
/// is none; under CI=true that is a failure.
pub fn kbuild_dir(test: &str) -> Option<PathBuf> {
    let lab = std::env::var_os("KLP_LAB_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
            Some(cache.join("klp-build-lab"))
        });
    let from_lab = lab
        .and_then(|l| std::fs::read_to_string(l.join("lab.env")).ok())
        .and_then(|env| {
            env.lines()
                .find_map(|l| l.strip_prefix("LAB_KBUILD="))
                .map(|v| PathBuf::from(v.trim()))
        });
    let mut installed: Vec<PathBuf> = std::fs::read_dir("/usr/src")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.starts_with("linux-headers-") && n.ends_with("-amd64")
        })
        .collect();
    installed.sort();
    let found = from_lab
        .into_iter()
        .chain(installed.into_iter().rev())
        .find(|p| p.join("Module.symvers").is_file());
    if found.is_none() {
        let why = "no kbuild dir: neither the lab's LAB_KBUILD nor /usr/src/linux-headers-*-amd64 \
                   with Module.symvers (run lab/setup.sh, or apt-get install linux-headers-amd64)";
        ci_env::skip(test, why);
    }
    found
}

/// The release the kbuild dir builds modules for (vermagic's first word): `UTS_RELEASE`.
pub fn release(kbuild: &Path) -> String {
    let h = kbuild.join("include/generated/utsrelease.h");
    let text = std::fs::read_to_string(&h).unwrap_or_else(|e| panic!("{}: {e}", h.display()));
    let rel = text
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("{}: no UTS_RELEASE string", h.display()));
    rel.to_string()
}

/// Compiles `sources` as module objects in `dir` with kbuild single targets (the kernel's flags,
/// objtool included), `klp-build.h` on their include path; returns the `.o` paths.
pub fn compile_objects(kbuild: &Path, dir: &Path, sources: &[(&str, &str)]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join(kmod_template::KLP_BUILD_H_NAME),
        kmod_template::KLP_BUILD_H,
    )
    .unwrap();
    let objects: Vec<String> = sources.iter().map(|(c, _)| c.replace(".c", ".o")).collect();
    for (name, text) in sources {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::write(
        dir.join("Kbuild"),
        format!("obj-m := {}\n", objects.join(" ")),
    )
    .unwrap();
    let out = Command::new("make")
        .arg("-C")
        .arg(kbuild)
        .arg(format!("M={}", dir.display()))
        .args(&objects)
        .env_remove("MAKEFLAGS")
        .output()
        .expect("run make");
    assert!(
        out.status.success(),
        "make -C {} M={} {objects:?}:\n{}{}",
        kbuild.display(),
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    objects.iter().map(|o| dir.join(o)).collect()
}

/// The source tree of a kbuild dir: the dir itself, or for Debian's split headers
/// (`linux-headers-<release>` holds a one-line Makefile `include <common>/Makefile`) the common
/// dir, which has `include/linux/`.
pub fn source_dir(kbuild: &Path) -> PathBuf {
    std::fs::read_to_string(kbuild.join("Makefile"))
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                let inc = l.strip_prefix("include ")?.trim();
                Some(Path::new(inc.strip_suffix("/Makefile")?).to_path_buf())
            })
        })
        .filter(|d| d.join("include/linux").is_dir())
        .unwrap_or_else(|| kbuild.to_path_buf())
}

/// The livepatch API of the kernel `kbuild` builds for, read from its `livepatch.h`.
pub fn livepatch_api(kbuild: &Path) -> LivepatchApi {
    LivepatchApi::detect(kbuild, &source_dir(kbuild), None).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The declarations of the reference replace-set kernel's `struct klp_patch`
/// (replace-set.md), in place of `bool replace;`.
pub const REPLACE_SET_FIELDS: &str =
    "unsigned int replace_set;\n\tconst unsigned int *supersedes;\n\tunsigned int nr_supersedes;";

/// A kbuild dir that is `kbuild` (Debian's split headers: the arch dir and the common dir it
/// includes) with `bool replace;` of `include/linux/livepatch.h` replaced by `fields`, made in
/// `dir`: every file a symlink to the real headers except the two Makefiles (kbuild takes the
/// source tree from the real path of the Makefile it runs) and the edited `livepatch.h`. The
/// kernel's own header then compiles the runtime core against those fields.
pub fn headers_with_livepatch_fields(kbuild: &Path, dir: &Path, fields: &str) -> PathBuf {
    let src = source_dir(kbuild);
    std::fs::create_dir_all(dir).unwrap();
    let (arch_copy, src_copy) = (dir.join("arch-headers"), dir.join("common-headers"));
    let link_copy = |from: &Path, to: &Path| {
        let from = from.canonicalize().unwrap();
        let out = Command::new("cp")
            .arg("-as")
            .arg(format!("{}/.", from.display()))
            .arg(to)
            .output()
            .expect("run cp");
        assert!(
            out.status.success(),
            "cp -as {} {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let real_file = |path: &Path, text: &str| {
        let _ = std::fs::remove_file(path);
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    };
    link_copy(&src, &src_copy);
    let makefile = std::fs::read_to_string(src.join("Makefile")).unwrap();
    real_file(&src_copy.join("Makefile"), &makefile);
    let header = src.join("include/linux/livepatch.h");
    let text = std::fs::read_to_string(&header).unwrap();
    assert_eq!(
        text.matches("\tbool replace;").count(),
        1,
        "{}: expected one `bool replace;` to replace",
        header.display()
    );
    real_file(
        &src_copy.join("include/linux/livepatch.h"),
        &text.replace("\tbool replace;", &format!("\t{fields}")),
    );
    if src.canonicalize().ok() == kbuild.canonicalize().ok() {
        return src_copy;
    }
    link_copy(kbuild, &arch_copy);
    real_file(
        &arch_copy.join("Makefile"),
        &format!("include {}/Makefile\n", src_copy.display()),
    );
    arch_copy
}

/// Links `spec`'s module from `objects` and a function table of `entries` in `tmp/<name>`, with
/// the target's kbuild at `kbuild`; returns the `.ko`.
pub fn link(
    kbuild: &Path,
    tmp: &Path,
    spec: &ModuleSpec,
    objects: &[PathBuf],
    entries: &[FuncEntry],
) -> PathBuf {
    let dir = tmp.join(&spec.name);
    std::fs::create_dir_all(&dir).unwrap();
    let tables = dir.join(TABLES_OBJECT);
    write_tables(entries, &tables).unwrap();
    let input = KmodInput {
        spec,
        objects,
        tables: &tables,
    };
    link_module(kbuild, &dir, &input, 2, &[], &mut Quiet).unwrap_or_else(|e| panic!("{e:#}"))
}
