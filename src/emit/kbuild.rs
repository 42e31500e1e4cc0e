//! The kbuild link of a module: the runtime core (`kmod-template`), the function table and the
//! prebuilt output objects -> `<name>.ko`, linked by the target's own kbuild so that vermagic,
//! modversions and the module layout are the target kernel's. Invariant: kbuild compiles only the
//! core; every other object is linked exactly as it was given (with, where the target's objtool
//! needs it, an object of objtool annotations, `objtool.rs`), and a link objtool warned about is
//! an error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use super::objtool;
use super::tables;
use crate::contract::abi;
use crate::contract::spec::{ModuleSpec, ReplaceMode, SetField};
use crate::kernel::livepatch_api::ReplaceField;
use crate::progress::{self, Progress};

/// What goes into one module.
#[derive(Debug, Clone, Copy)]
pub struct KmodInput<'a> {
    /// Prebuilt output objects, linked as they are.
    pub objects: &'a [PathBuf],
    /// The function table object written by `tables::write_tables`.
    pub tables: &'a Path,
    /// The module's name, replace mode and states, as resolved against the target.
    pub spec: &'a ModuleSpec,
}

/// Object name of the function table in the module's build dir.
pub const TABLES_OBJECT: &str = "klp_tables.o";

/// Object name of the objtool annotations ([`objtool::write_notes`]) in the module's build dir.
pub const NOTES_OBJECT: &str = "klp_objtool.o";

/// Lines of make's output shown in an error.
const OUTPUT_TAIL: usize = 40;

/// Writes the module's build dir `dir` (core, headers, config header, Kbuild, objects), runs
/// `make -C <kbuild_dir> M=<dir> <make_vars> modules` and returns the path of `<name>.ko` in `dir`.
/// `make_vars` are the target's toolchain variables ([`crate::kernel::Kernel::toolchain`]): the
/// headers of Debian's 6.12 were configured with `CC=x86_64-linux-gnu-gcc-12`, and objtool checks
/// the module with the compiler's view of it. make's command line goes to `progress`.
pub fn link_module(
    kbuild_dir: &Path,
    dir: &Path,
    input: &KmodInput,
    jobs: usize,
    make_vars: &[String],
    progress: &mut dyn Progress,
) -> anyhow::Result<PathBuf> {
    crate::contract::spec::check_module_name(&input.spec.name)?;
    if !kbuild_dir.join("Makefile").is_file() {
        bail!(
            "{}: no Makefile; the kbuild dir is the target kernel's build dir or its headers \
             (Debian: /usr/src/linux-headers-<release>, from the linux-headers package)",
            kbuild_dir.display()
        );
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the module build dir {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;

    for (file, text) in kmod_template::CORE_FILES {
        write(&dir.join(file), text)?;
    }
    write(&dir.join(abi::CONFIG_HEADER), &config_header(input.spec)?)?;
    let spec_bytes = tables::spec_object(input.spec)?;
    write_bytes(&dir.join(abi::SPEC_OBJECT), &spec_bytes)?;
    place_object(&dir.join(abi::SPEC_OBJECT), &dir, abi::SPEC_OBJECT)?;

    let mut objects = vec![TABLES_OBJECT.to_string(), abi::SPEC_OBJECT.to_string()];
    place_object(input.tables, &dir, TABLES_OBJECT)?;
    let objtool_at_link = objtool::runs_at_link(kbuild_dir);
    let notes = dir.join(NOTES_OBJECT);
    if objtool_at_link && objtool::write_notes(kbuild_dir, input.tables, input.objects, &notes)? {
        place_object(&notes, &dir, NOTES_OBJECT)?;
        objects.push(NOTES_OBJECT.to_string());
    }
    let reserved = kmod_template::reserved_objects(&input.spec.name);
    for (i, obj) in input.objects.iter().enumerate() {
        let name = object_name(obj, i, &objects, &reserved)?;
        if objtool_at_link {
            let placed = dir.join(&name);
            objtool::write_for_link(obj, &placed)?;
            place_object(&placed, &dir, &name)?;
        } else {
            place_object(obj, &dir, &name)?;
        }
        objects.push(name);
    }
    let objects: Vec<&str> = objects.iter().map(String::as_str).collect();
    write(
        &dir.join("Kbuild"),
        &kmod_template::kbuild(&input.spec.name, &objects),
    )?;

    make(kbuild_dir, &dir, jobs, make_vars, progress)?;
    let ko = dir.join(format!("{}.ko", input.spec.name));
    if !ko.is_file() {
        bail!(
            "make -C {} M={} modules succeeded but left no {}",
            kbuild_dir.display(),
            dir.display(),
            ko.display()
        );
    }
    Ok(ko)
}

/// The generated `klp_build_config.h`: the only per-module C. It says which fields of the
/// target's `struct klp_patch` the core sets (the values are in `klp_spec.o`) and carries the
/// module's `klp_build_*` modinfo keys.
pub fn config_header(spec: &ModuleSpec) -> anyhow::Result<String> {
    spec.check()?;
    let mode = match &spec.replace {
        ReplaceMode::Atomic => abi::MODE_ATOMIC,
        ReplaceMode::Stacked => abi::MODE_STACKED,
        ReplaceMode::Set {
            field: SetField::ReplaceSet,
            ..
        } => abi::MODE_REPLACE_SET,
        ReplaceMode::Set {
            field: SetField::Provides,
            ..
        } => abi::MODE_PROVIDES,
    };
    // `supersedes` is only filled on the reference layout (`const unsigned int *supersedes;
    // unsigned int nr_supersedes;`); the renamed series' `obsoletes` has no known layout yet.
    let has_supersedes = spec.api.replace == ReplaceField::ReplaceSet
        && spec.api.supersedes_field == Some("supersedes");
    let mut s = String::new();
    let _ = writeln!(
        s,
        "/* Generated by klp-build for module {}; see klp_build_abi.h. */",
        spec.name
    );
    let _ = writeln!(s, "#define {} {mode}", abi::CONFIG_REPLACE_MODE);
    let _ = writeln!(
        s,
        "#define {} {}",
        abi::CONFIG_HAS_SUPERSEDES,
        u8::from(has_supersedes)
    );
    let _ = writeln!(
        s,
        "#define {} {}",
        abi::CONFIG_HAS_STATES,
        u8::from(spec.api.states)
    );
    let _ = writeln!(
        s,
        "#define {} {}",
        abi::CONFIG_KERNEL_API,
        c_string(&spec.api.describe())
    );
    for (key, value) in spec.modinfo() {
        let _ = writeln!(s, "MODULE_INFO({key}, {});", c_string(&value));
    }
    Ok(s)
}

/// `text` as a C string literal; only printable ASCII passes unescaped.
fn c_string(text: &str) -> String {
    let mut s = String::from("\"");
    for b in text.bytes() {
        match b {
            b'"' | b'\\' => {
                s.push('\\');
                s.push(b as char);
            }
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\{b:03o}");
            }
        }
    }
    s.push('"');
    s
}

/// The file name of the `index`th prebuilt object in the build dir: its own name when that is a
/// single make word not taken yet, else the name prefixed with its index (two output objects can
/// both be `cmdline.o`, from different directories).
fn object_name(
    obj: &Path,
    index: usize,
    taken: &[String],
    reserved: &[String],
) -> anyhow::Result<String> {
    let base = obj
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.ends_with(".o") && n.len() > 2)
        .with_context(|| {
            format!(
                "{}: a prebuilt module object must be a file named <something>.o",
                obj.display()
            )
        })?;
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let free = |n: &String| !taken.contains(n) && !reserved.contains(n);
    if free(&clean) {
        return Ok(clean);
    }
    let prefixed = format!("{index}-{clean}");
    if free(&prefixed) {
        return Ok(prefixed);
    }
    bail!(
        "{}: cannot give it a free name in the module build dir (tried {clean} and {prefixed})",
        obj.display()
    )
}

/// Copies `src` into `dir` as `name`, with the `.<name>.cmd` file modpost wants.
fn place_object(src: &Path, dir: &Path, name: &str) -> anyhow::Result<()> {
    let dst = dir.join(name);
    // The caller may have written the object into the build dir already (emit writes
    // klp_tables.o there): copying a file onto itself would truncate it.
    let same = src.canonicalize().ok().is_some_and(|s| s == dst);
    if !same {
        std::fs::copy(src, &dst)
            .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    }
    // With CONFIG_MODVERSIONS, modpost reads `.<obj>.cmd` of every object of the module for the
    // `#SYMVER` CRCs of the symbols it exports (mod_set_crcs() in scripts/mod/modpost.c) and fails
    // the build when one is missing. Prebuilt objects export nothing: a comment line suffices,
    // and it is also valid make, since kbuild includes the .cmd files of its targets.
    write(
        &dir.join(format!(".{name}.cmd")),
        &format!("# {name}: prebuilt by klp-build, exports no symbols\n"),
    )
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    write_bytes(path, text.as_bytes())
}

fn write_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    // Unchanged files keep their mtime, so a second build of the same module relinks nothing.
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Name of make's log (stdout and stderr interleaved) in the module's build dir.
pub const LOG_FILE: &str = "kbuild.log";

fn make(
    kbuild_dir: &Path,
    dir: &Path,
    jobs: usize,
    make_vars: &[String],
    progress: &mut dyn Progress,
) -> anyhow::Result<()> {
    let log_path = dir.join(LOG_FILE);
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut make_vars = make_vars.to_vec();
    if let Some(var) = single_threaded_pahole(dir, &make_vars)? {
        make_vars.retain(|v| !v.starts_with("PAHOLE="));
        make_vars.push(var);
    }
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(kbuild_dir)
        .arg(format!("M={}", dir.display()))
        .arg(format!("-j{}", jobs.max(1)))
        .args(&make_vars)
        .arg(format!(
            "KCFLAGS={}",
            prefix_maps(kbuild_dir, dir).join(" ")
        ))
        .arg("modules");
    // One file for both streams keeps modpost's error next to the step that printed it.
    cmd.stdout(
        log.try_clone()
            .with_context(|| format!("opening {}", log_path.display()))?,
    )
    .stderr(log);
    // A make or jobserver of the caller (klp-build run from a Makefile) must not leak into the
    // module build: its flags and job slots belong to another build.
    for var in [
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
        "MAKEOVERRIDES",
        "KBUILD_EXTMOD",
        "KCFLAGS",
        "O",
    ] {
        cmd.env_remove(var);
    }
    // Stopped with its compilers on Ctrl-C or SIGTERM, like the tree build's make.
    progress.command(&progress::command_line(&cmd));
    let status = crate::rebuild::run_make(&mut cmd, "while linking the module")?;
    let text = String::from_utf8_lossy(&std::fs::read(&log_path).unwrap_or_default()).into_owned();
    if status.success() {
        return check_objtool(&text, kbuild_dir, dir, &log_path);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(OUTPUT_TAIL)..].join("\n");
    let hint = if text.contains("modpost") && text.contains("undefined!") {
        "An object of the module uses a symbol that neither the module nor the kernel's exports \
         (Module.symvers of the kbuild dir) define: a non-exported kernel symbol must be reached \
         through a klp relocation, and a replacement function must be a global of an object."
    } else {
        "The kbuild dir must be the target kernel's build dir or headers, prepared (scripts/ and \
         Module.symvers present), with its compiler on PATH."
    };
    bail!(
        "linking the module with kbuild failed ({status}): make -C {} M={} modules\n{tail}\n{hint}\n\
         Full log: {}",
        kbuild_dir.display(),
        dir.display(),
        log_path.display()
    )
}

/// `PAHOLE=<wrapper>` for the module link: the wrapper runs the target's pahole without `-j`.
/// kbuild passes `-j` to pahole 1.22 and later when it makes a module's `.BTF`
/// (CONFIG_DEBUG_INFO_BTF_MODULES, Debian's 6.12), and pahole's threads then emit the types in
/// a different order from run to run (before `--btf_features=reproducible_build`, which Debian
/// 12's pahole 1.24 lacks): the same release built twice gave modules that differed in `.BTF`
/// only. `None` when the target builds without pahole.
fn single_threaded_pahole(dir: &Path, make_vars: &[String]) -> anyhow::Result<Option<String>> {
    let pahole = make_vars
        .iter()
        .find_map(|v| v.strip_prefix("PAHOLE="))
        .unwrap_or("pahole")
        .to_string();
    if pahole.starts_with("/nonexistent/") {
        return Ok(None);
    }
    let wrapper = dir.join("klp_build_pahole");
    let text = format!(
        "#!/bin/sh\n# klp-build: {pahole} without -j, for reproducible module BTF (src/emit/kbuild.rs).\n\
         n=$#\nwhile [ \"$n\" -gt 0 ]; do a=$1; shift; n=$((n - 1))\n  case $a in -j|-j[0-9]*) ;; *) set -- \"$@\" \"$a\" ;; esac\ndone\n\
         exec {pahole} \"$@\"\n"
    );
    std::fs::write(&wrapper, text).with_context(|| format!("writing {}", wrapper.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", wrapper.display()))?;
    Ok(Some(format!("PAHOLE={}", wrapper.display())))
}

/// `-ffile-prefix-map` flags that take the build's own paths out of the module (its debug info
/// names every source file): the module's build dir becomes `.`, and a kbuild dir unpacked under
/// a private root (`<root>/usr/src/linux-headers-R`, as a release unpacks Debian's headers)
/// becomes the `/usr/src/...` it is on the target. So the same fixes give the same module bytes
/// from any work dir or cache: a release's CI jobs on separate machines agree with one machine.
fn prefix_maps(kbuild_dir: &Path, dir: &Path) -> Vec<String> {
    let mut maps = vec![format!("-ffile-prefix-map={}=.", dir.display())];
    if let Ok(k) = kbuild_dir.canonicalize() {
        let k = k.to_string_lossy().into_owned();
        if let Some(at) = k.find("/usr/src/").filter(|at| *at > 0) {
            maps.push(format!("-ffile-prefix-map={}/usr/src/=/usr/src/", &k[..at]));
        }
    }
    maps
}

/// objtool's warnings at the module link are errors: kbuild goes on after them, but each is a
/// check of the kernel's own that the module fails (an unreliable ORC stack through a function, a
/// missed return thunk, a jump label it could not patch), and the module would load with it.
fn check_objtool(log: &str, kbuild_dir: &Path, dir: &Path, log_path: &Path) -> anyhow::Result<()> {
    let found = objtool::findings(log);
    if found.is_empty() {
        return Ok(());
    }
    bail!(
        "objtool rejected the module's objects at the kbuild link (make -C {} M={} modules):\n  \
         {}\nThe target checks every module with objtool; a module it warns about keeps the \
         defect it names (a function without ORC makes the livepatch transition wait on every \
         task sleeping in it). This is a defect of klp-build for the construct named: keep the \
         work dir (--keep-tmp) and report it with {}.",
        kbuild_dir.display(),
        dir.display(),
        found.join("\n  "),
        log_path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::spec::StateSpec;
    use crate::kernel::livepatch_api::LivepatchApi;

    #[test]
    fn object_names_stay_unique_and_avoid_the_core() {
        let reserved = kmod_template::reserved_objects("livepatch-fix").to_vec();
        let mut taken = vec![TABLES_OBJECT.to_string()];
        for (i, p) in [
            "a/cmdline.o",
            "b/cmdline.o",
            "klp_build_core.o",
            "livepatch-fix.o",
            "x y.o",
        ]
        .iter()
        .enumerate()
        {
            let n = object_name(Path::new(p), i, &taken, &reserved).unwrap();
            taken.push(n);
        }
        assert_eq!(
            taken,
            [
                "klp_tables.o",
                "cmdline.o",
                "1-cmdline.o",
                "2-klp_build_core.o",
                "3-livepatch-fix.o",
                "x_y.o"
            ]
        );
        assert!(object_name(Path::new("foo.c"), 0, &taken, &reserved).is_err());
    }

    fn spec(replace: ReplaceMode, api: LivepatchApi, states: Vec<StateSpec>) -> ModuleSpec {
        ModuleSpec {
            name: "livepatch-t".into(),
            replace,
            states,
            api,
        }
    }

    fn api(replace: ReplaceField, list: Option<&'static str>) -> LivepatchApi {
        LivepatchApi::with_replace(replace, list)
    }

    #[test]
    fn config_header_defines_the_mode_and_modinfo() {
        let bool_api = api(ReplaceField::Bool, None);
        let states = vec![
            StateSpec { id: 7, version: 2 },
            StateSpec { id: 9, version: 0 },
        ];
        let atomic = config_header(&spec(ReplaceMode::Atomic, bool_api.clone(), states)).unwrap();
        for line in [
            "#define KLP_BUILD_REPLACE_MODE 1\n",
            "#define KLP_BUILD_HAS_SUPERSEDES 0\n",
            "#define KLP_BUILD_HAS_STATES 1\n",
            "#define KLP_BUILD_KERNEL_API \"`bool replace` (atomic replace of every patch, or stacking)\"\n",
            "MODULE_INFO(klp_build_replace, \"atomic\");\n",
            "MODULE_INFO(klp_build_states, \"7:2,9:0\");\n",
        ] {
            assert!(atomic.contains(line), "{line} not in:\n{atomic}");
        }
        assert!(!atomic.contains("klp_build_replace_set"), "{atomic}");
        let stacked = config_header(&spec(ReplaceMode::Stacked, bool_api, vec![])).unwrap();
        assert!(
            stacked.contains("#define KLP_BUILD_REPLACE_MODE 0\n"),
            "{stacked}"
        );
        assert!(stacked.contains("MODULE_INFO(klp_build_replace, \"stacked\");"));
        assert!(!stacked.contains("klp_build_states"), "{stacked}");

        let set = ReplaceMode::Set {
            field: SetField::ReplaceSet,
            set: 2,
            supersedes: vec![1, 3],
        };
        let h = config_header(&spec(
            set,
            api(ReplaceField::ReplaceSet, Some("supersedes")),
            vec![],
        ))
        .unwrap();
        for line in [
            "#define KLP_BUILD_REPLACE_MODE 2\n",
            "#define KLP_BUILD_HAS_SUPERSEDES 1\n",
            "MODULE_INFO(klp_build_replace, \"set\");\n",
            "MODULE_INFO(klp_build_replace_set, \"2\");\n",
            "MODULE_INFO(klp_build_supersedes, \"1,3\");\n",
        ] {
            assert!(h.contains(line), "{line} not in:\n{h}");
        }
        let provides = ReplaceMode::Set {
            field: SetField::Provides,
            set: 4,
            supersedes: vec![],
        };
        let h = config_header(&spec(
            provides,
            api(ReplaceField::Provides, Some("obsoletes")),
            vec![],
        ))
        .unwrap();
        assert!(h.contains("#define KLP_BUILD_REPLACE_MODE 3\n"), "{h}");
        assert!(h.contains("#define KLP_BUILD_HAS_SUPERSEDES 0\n"), "{h}");
    }

    #[test]
    fn config_header_refuses_what_the_target_cannot_carry() {
        let err = |s: ModuleSpec| format!("{:#}", config_header(&s).unwrap_err());
        let set = ReplaceMode::Set {
            field: SetField::ReplaceSet,
            set: 2,
            supersedes: vec![],
        };
        let e = err(spec(set, api(ReplaceField::Bool, None), vec![]));
        assert!(
            e.contains("does not fit") && e.contains("bool replace"),
            "{e}"
        );
        let mut no_states = api(ReplaceField::Bool, None);
        no_states.states = false;
        let e = err(spec(
            ReplaceMode::Atomic,
            no_states,
            vec![StateSpec { id: 1, version: 1 }],
        ));
        assert!(e.contains("no `states`"), "{e}");
        let e = err(spec(
            ReplaceMode::Atomic,
            api(ReplaceField::Bool, None),
            vec![StateSpec { id: 0, version: 1 }],
        ));
        assert!(e.contains("state id 0"), "{e}");
    }

    #[test]
    fn an_objtool_warning_fails_the_link_naming_the_place() {
        let dir = Path::new("/w/5-kmod");
        let log_path = dir.join(LOG_FILE);
        let clean = "  LD [M]  /w/5-kmod/livepatch-x.o\n  MODPOST /w/5-kmod/Module.symvers\n";
        assert!(check_objtool(clean, Path::new("/k"), dir, &log_path).is_ok());
        let warned = format!(
            "{clean}/w/5-kmod/livepatch-x.o: warning: objtool: __jump_table+0x8: can't find key reloc\n"
        );
        let e = format!(
            "{:#}",
            check_objtool(&warned, Path::new("/k"), dir, &log_path).unwrap_err()
        );
        assert!(
            e.contains("__jump_table+0x8: can't find key reloc") && e.contains("kbuild.log"),
            "{e}"
        );
    }

    #[test]
    fn c_strings_escape_quotes_and_control_bytes() {
        assert_eq!(c_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\012\"");
    }
}
