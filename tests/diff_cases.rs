//! Fixture tests of the diff stage and the output-object cloner: kernel idioms in small C files,
//! compiled at test time by gcc with the kernel's code-generation flags, diffed by
//! [`klp_build::diff::run`] and cloned by [`klp_build::emit::out_object::extract`]. Needs gcc, not a
//! kernel tree (the `6.1+objtool` flag set also needs the kernel lab's objtool). Invariant: each case asserts what its directives say and nothing passes trivially.
//!
//! # Cases
//!
//! A case is a folder `testdata/cases/<name>/` holding either `case.c`, compiled twice (the
//! original as is, the patched variant with `-DPATCHED`), or a pair `orig.c` and `patched.c`
//! when the variants must differ in physical lines (`__LINE__` counts lines that `#ifdef` skips).
//! Cases include no headers: they declare the few kernel functions and variables they use.
//! Objects are cached under `target/tmp/diff-cases/<case>/<flag set>/`, keyed by a hash of the
//! compiler, the flags and every file of the compiler's depfile; they are never committed.
//!
//! # Flag sets
//!
//! The flags are a kernel's code-generation flags, each set copied from a real kbuild command
//! line (see [`FlagSet`]): `6.1` is `testdata/cases/kernel-cflags` (Debian 6.1's distro build:
//! -O2, retpolines, return thunks, SLS, stack protector, -g), `6.12` is
//! `testdata/cases/kernel-cflags-6.12` (the lab's built 6.12 reference tree: IBT's endbr64,
//! -Os, 16-byte function alignment, no debug info). `6.1+objtool` is `6.1` followed by the
//! objtool run kbuild makes on each 6.1 object (`testdata/cases/kernel-objtool-6.1`, the lab's
//! `linux-headers-6.1` objtool): ORC tables, return and retpoline sites and static-call sites
//! as a real 6.1 object has them; it needs the kernel lab (skipped without it, failed under
//! `CI=true`); 6.12 with IBT runs objtool at the links only, so its objects have none of those.
//! `clang` is `testdata/cases/kernel-cflags-clang` (Debian 6.1's source and config built with
//! Debian 12's clang 14, `CC=clang`): clang's string labels (`.L.str`), static locals named
//! `<function>.<name>`, switch tables in anonymous `.rodata.cst*` constants, and no `.isra`,
//! `.constprop`, `.part` or `.cold` clones; cases whose directives name gcc's clones or numbered
//! statics are not compiled with it. It needs clang (skipped without it, failed under `CI=true`;
//! `.ci/run` installs it).
//! `6.1+gz` is `6.1` with `-gz=zlib`, what kbuild adds for `CONFIG_DEBUG_INFO_COMPRESSED`: every
//! `.debug_*` section `SHF_COMPRESSED`. Compression must change nothing of the diff, so its golden
//! report is the `6.1` one (`report.txt`), and the case fails when gcc wrote no compressed section.
//! A case is compiled with `6.1` unless a `//#Flags: <set> [<set>..]` line names its sets; with
//! several sets it is compiled, diffed and checked once per set against the same directives, and
//! a failure names the set. Sets are chosen per case rather than every case run with every set:
//! `-Os` makes other inlining and cloning choices (no `.cold` or `.part` clones where `-O2` has
//! them) and some idioms have another layout on newer kernels (alternatives, exports), so a case
//! names the sets its idiom has the same shape in. The flag files are checked against their
//! kbuild commands by the lab tests at the end of this file.
//!
//! # Directives
//!
//! Comment lines starting with `//#` in `case.c` (in `patched.c` for a pair):
//!
//! - `//#Expect: <key> <symbol>`: the report has a finding with this key whose location names
//!   the symbol (`func.changed foo`, `data.resized table`, `func.no-ftrace bar`).
//! - `//#Expect: none`: the report is empty and no function changed or was added (alone).
//! - `//#ExpectNot: <key> <symbol>`: no such finding.
//! - `//#ExpectError: <regex>`: a refusal of the diff stage, or an error of the cloner, matches
//!   the regex; it is matched against `<key> <location>: <message>`, `(clone) ` before a
//!   cloner's. An object the diff stage will not read at all fails with `(diff) <error>`; a case
//!   expecting that has only `ExpectError` lines.
//! - `//#Extern: <name>`: the output object refers to `name` as an undefined symbol (left to the
//!   resolve stage: the kernel's own function or variable).
//! - `//#Included: <name>`: the output object defines `name` (a function or variable it carries).
//! - `//#Entries: <section> <n>`: the output object's special section (`__jump_table`,
//!   `__ex_table`, `.altinstructions`, ...) holds `n` entries, sized as the diff stage reads them
//!   ([`klp_build::diff::special::layout`]); `0` when the section must not be there.
//! - `//#Flags: <set> [<set>..]`: the flag sets the case is compiled with (`6.1`, `6.1+objtool`,
//!   `6.12`, `clang`, `6.1+gz`; see above).
//! - `//#Rule: <symbol> <rule>`: the correlation funnel paired the patched symbol with its original
//!   by this rule (`exact`, `suffix`, `scope`, `content`, `position`), or `none` when it left it
//!   unpaired.
//! - `//#Explain: <function>`: the golden report also holds `klp-build diff --explain <function>`
//!   (the explanation, or the error that names the function).
//!
//! # Golden reports
//!
//! Each case folder holds its golden report per flag set: `report.txt` for `6.1`,
//! `report-<set>.txt` for the others. It is the diff's text report (object named `<case>.o`, no
//! absolute paths) followed by the explanations the case asks for. A case whose report differs
//! fails with both texts; after reading the difference, `KLP_BLESS=1 cargo test --test
//! diff_cases` rewrites the files (and writes those of new cases).
//!
//! Beyond the directives, each case checks that every `func.changed` and `func.added` finding is
//! expected, that every refusal matches an `ExpectError`, and that a case has at least one
//! `Expect` or `ExpectError` line. Warnings (`func.removed`, `correlate.position`) are only checked
//! when a directive names them.

mod kobj;
mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use klp_build::contract::KlpObject;
use klp_build::diff::special::Special;
use klp_build::diff::{self, Finding, ObjectDiff};
use klp_build::elf::{read_file, Out};
use klp_build::emit::out_object::{self, OutObject};
use klp_build::keys::Key;
use regex::Regex;
use sha2::{Digest, Sha256};

/// One test function per case folder, and the list of folders that have one.
macro_rules! cases {
    ($( $(#[$attr:meta])* $test:ident => $dir:literal, )*) => {
        $(
            #[test]
            $(#[$attr])*
            fn $test() {
                run_case($dir);
            }
        )*
        /// Every case folder with a test function.
        const CASES: &[&str] = &[$($dir),*];
    };
}

cases! {
    string_literal => "string-literal",
    string_shift => "string-shift",
    constant => "constant",
    syscall_alias => "syscall-alias",
    clang_static_local_names => "clang-static-local-names",
    call_added => "call-added",
    static_helper_changed => "static-helper-changed",
    static_helper_inlined => "static-helper-inlined",
    func_added => "func-added",
    removed_function => "removed-function",
    line_shift_without_line_directive => "line-shift-without-line-directive",
    line_shift_with_line_directive => "line-shift-with-line-directive",
    static_data_changed_fail => "static-data-changed-fail",
    global_array_grows_fail => "global-array-grows-fail",
    init_function_fail => "init-function-fail",
    notrace_fail => "notrace-fail",
    static_local_same_name => "static-local-same-name",
    static_local_renumbered => "static-local-renumbered",
    func_name_shift => "func-name-shift",
    printk_once => "printk-once",
    cold_part => "cold-part",
    comment_only => "comment-only",
    constprop_clone => "constprop-clone",
    isra_clone => "isra-clone",
    function_pointer_table => "function-pointer-table",
    new_global_variable => "new-global-variable",
    unchanged_statics_stay_external => "unchanged-statics-stay-external",
    // Kernel idioms, objects without #line and the 6.12 flags (issue 8).
    jump_label => "jump-label",
    static_call => "static-call",
    static_call_6_12 => "static-call-6.12",
    static_cpu_has => "static-cpu-has",
    static_cpu_has_6_12 => "static-cpu-has-6.12",
    ex_table_user_access => "ex-table-user-access",
    cold_part_hot_change => "cold-part-hot-change",
    init_name_in_text => "init-name-in-text",
    init_section_normal_name_fail => "init-section-normal-name-fail",
    notrace_unchanged => "notrace-unchanged",
    warn_once_data_once => "warn-once-data-once",
    special_static_func_name => "special-static-func-name",
    ratelimit_state => "ratelimit-state",
    lockdep_key => "lockdep-key",
    dyndbg_descriptor => "dyndbg-descriptor",
    warned_once => "warned-once",
    cswtch_switch_table => "cswtch-switch-table",
    static_local_keeps_value => "static-local-keeps-value",
    new_static_data => "new-static-data",
    global_initializer_changed_fail => "global-initializer-changed-fail",
    static_array_shrinks_fail => "static-array-shrinks-fail",
    bug_table_warn => "bug-table-warn",
    helper_uninlined => "helper-uninlined",
    part_clone => "part-clone",
    ops_table_changed_fail => "ops-table-changed-fail",
    string_literal_rodata_str => "string-literal-rodata-str",
    percpu_data => "percpu-data",
    ksymtab_export => "ksymtab-export",
    export_symbol_6_12 => "export-symbol-6.12",
    tracepoint_user => "tracepoint-user",
    warn_line_shift_without_line_directive => "warn-line-shift-without-line-directive",
    warn_line_shift_with_line_directive => "warn-line-shift-with-line-directive",
    line_shift_and_real_change => "line-shift-and-real-change",
    warn_only_line_shift => "warn-only-line-shift",
    printk_line_only_shift => "printk-line-only-shift",
    anonymous_data_ref_fail => "anonymous-data-ref-fail",
    ibt_address_taken => "ibt-address-taken",
    new_function_ibt => "new-function-ibt",
    altinstr_overrun_fail => "altinstr-overrun-fail",
    // Objects of other kernels: each table's layout learned per object (issue 14).
    paravirt_unpadded_last_entry => "paravirt-unpadded-last-entry",
    altinstr_13_byte => "altinstr-13-byte",
    altinstr_undefined_replacement => "altinstr-undefined-replacement",
    debug_info_compressed => "debug-info-compressed",
    paravirt_cut_entry_fail => "paravirt-cut-entry-fail",
    paravirt_cut_entry_unused => "paravirt-cut-entry-unused",
    smp_locks_atomic => "smp-locks-atomic",
    paravirt_call_site => "paravirt-call-site",
    objtool_orc_return_sites => "objtool-orc-return-sites",
    // The correlation funnel, func.line-only and --explain (issue 8).
    correlate_suffix => "correlate-suffix",
    correlate_position => "correlate-position",
    correlate_gate => "correlate-gate",
    line_only_warn => "line-only-warn",
    line_only_bug => "line-only-bug",
    warn_flags_changed => "warn-flags-changed",
    immediate_not_a_line => "immediate-not-a-line",
    explain => "explain",
    line_only_func_line => "line-only-func-line",
    correlate_content => "correlate-content",
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases")
}

/// A kernel's code-generation flags a case is compiled with (`//#Flags:`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FlagSet {
    /// `kernel-cflags`: Debian 6.1's distro kernel, from `fs/proc/.cmdline.o.cmd` of the lab tree.
    Debian61,
    /// `kernel-cflags`, then objtool with `kernel-objtool-6.1`, as kbuild builds each 6.1 object.
    Debian61Objtool,
    /// `kernel-cflags-6.12`: the lab's built 6.12 reference tree (`lab/refkernel.sh`).
    Ref612,
    /// `kernel-cflags-clang`: Debian 6.1's source and config built with clang 14 (`CC=clang`).
    Clang61,
    /// `kernel-cflags` and `-gz=zlib`, what kbuild adds with `CONFIG_DEBUG_INFO_COMPRESSED`:
    /// compressed `.debug_*` sections (`SHF_COMPRESSED`).
    Debian61Gz,
}

impl FlagSet {
    const ALL: [FlagSet; 5] = [
        FlagSet::Debian61,
        FlagSet::Debian61Objtool,
        FlagSet::Ref612,
        FlagSet::Clang61,
        FlagSet::Debian61Gz,
    ];

    fn name(self) -> &'static str {
        match self {
            FlagSet::Debian61 => "6.1",
            FlagSet::Debian61Objtool => "6.1+objtool",
            FlagSet::Ref612 => "6.12",
            FlagSet::Clang61 => "clang",
            FlagSet::Debian61Gz => "6.1+gz",
        }
    }

    /// The compiler the set's flags are for.
    fn compiler(self) -> &'static str {
        match self {
            FlagSet::Clang61 => "clang",
            _ => "gcc",
        }
    }

    fn file(self) -> &'static str {
        match self {
            FlagSet::Debian61 | FlagSet::Debian61Objtool | FlagSet::Debian61Gz => "kernel-cflags",
            FlagSet::Ref612 => "kernel-cflags-6.12",
            FlagSet::Clang61 => "kernel-cflags-clang",
        }
    }
}

/// The words of a flags file, one or more a line, `#` comments.
fn words_of(file: &str) -> Vec<String> {
    let path = cases_dir().join(file);
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace().map(str::to_string))
        .collect()
}

/// The compiler flags of `set`.
fn kernel_cflags(set: FlagSet) -> &'static [String] {
    static DEBIAN_61: OnceLock<Vec<String>> = OnceLock::new();
    static REF_612: OnceLock<Vec<String>> = OnceLock::new();
    static CLANG_61: OnceLock<Vec<String>> = OnceLock::new();
    static DEBIAN_61_GZ: OnceLock<Vec<String>> = OnceLock::new();
    let flags = match set {
        FlagSet::Debian61 | FlagSet::Debian61Objtool => &DEBIAN_61,
        FlagSet::Ref612 => &REF_612,
        FlagSet::Clang61 => &CLANG_61,
        FlagSet::Debian61Gz => &DEBIAN_61_GZ,
    };
    flags.get_or_init(|| {
        let mut words = words_of(set.file());
        if set == FlagSet::Debian61Gz {
            words.push("-gz=zlib".into());
        }
        words
    })
}

/// objtool's arguments for the 6.1 objects.
fn objtool_args() -> &'static [String] {
    static ARGS: OnceLock<Vec<String>> = OnceLock::new();
    ARGS.get_or_init(|| words_of("kernel-objtool-6.1"))
}

/// The lab's 6.1 objtool and the hash of its binary (part of the cache key), or `None` when the
/// lab is missing (printed by `support::lab`; a panic under `CI=true`).
fn objtool() -> Option<&'static (PathBuf, String)> {
    static OBJTOOL: OnceLock<Option<(PathBuf, String)>> = OnceLock::new();
    OBJTOOL
        .get_or_init(|| {
            let lab = support::lab("diff cases with the 6.1+objtool flag set")?;
            let bin = lab.kbuild.join("tools/objtool/objtool");
            let bytes = fs::read(&bin).unwrap_or_else(|e| {
                panic!(
                    "reading {}: {e}; the lab's linux-headers-6.1 package has objtool there",
                    bin.display()
                )
            });
            Some((bin, format!("{:x}", Sha256::digest(bytes))))
        })
        .as_ref()
}

/// The flag sets a case names in its `//#Flags:` lines; `6.1` when it names none.
fn flag_sets(file: &Path) -> Vec<FlagSet> {
    let text =
        fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let mut sets = Vec::new();
    for line in text.lines() {
        let Some(arg) = line.trim_start().strip_prefix("//#Flags:") else {
            continue;
        };
        for name in arg.split_whitespace() {
            let set = FlagSet::ALL
                .into_iter()
                .find(|s| s.name() == name)
                .unwrap_or_else(|| {
                    panic!(
                        "{}: unknown flag set {name:?} (known: 6.1, 6.1+objtool, 6.12, clang, 6.1+gz)",
                        file.display()
                    )
                });
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
    }
    if sets.is_empty() {
        sets.push(FlagSet::Debian61);
    }
    sets
}

/// `gcc --version`, part of every object's cache key.
fn gcc_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let out = Command::new("gcc")
            .arg("--version")
            .output()
            .unwrap_or_else(|e| {
                panic!("running gcc: {e}; the diff fixtures need gcc (apt-get install gcc)")
            });
        assert!(out.status.success(), "gcc --version failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
}

/// `clang --version`, or `None` when clang is missing: the `clang` flag set is skipped then,
/// saying why, except under `CI=true`, which fails (`.ci/run` installs clang).
fn clang_version() -> Option<&'static str> {
    static VERSION: OnceLock<Option<String>> = OnceLock::new();
    VERSION
        .get_or_init(|| match Command::new("clang").arg("--version").output() {
            Ok(out) if out.status.success() => {
                Some(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            other => {
                let why = format!(
                    "the clang flag set needs clang (apt-get install clang): {:?}",
                    other.map(|o| o.status)
                );
                support::ci_env::skip("diff cases with the clang flag set", &why);
                None
            }
        })
        .as_deref()
}

/// The version text of the compiler of `set`, part of the object's cache key.
fn compiler_version(set: FlagSet) -> &'static str {
    match set {
        FlagSet::Clang61 => clang_version().unwrap_or(""),
        _ => gcc_version(),
    }
}

/// Which side of the patch an object is built from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Orig,
    Patched,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Orig => "orig",
            Side::Patched => "patched",
        }
    }
}

/// The source and extra flags of one side of a case.
fn source_of(dir: &Path, side: Side) -> (PathBuf, Vec<&'static str>) {
    let single = dir.join("case.c");
    if single.exists() {
        let defines = if side == Side::Patched {
            vec!["-DPATCHED"]
        } else {
            vec![]
        };
        return (single, defines);
    }
    let pair = dir.join(format!("{}.c", side.name()));
    assert!(
        pair.exists(),
        "{}: a case needs case.c, or orig.c and patched.c",
        dir.display()
    );
    (pair, vec![])
}

/// The files a depfile (`target: a.c b.h \`) lists.
fn depfile_inputs(d: &Path) -> Option<Vec<PathBuf>> {
    let text = fs::read_to_string(d).ok()?;
    let (_, deps) = text.split_once(": ")?;
    Some(
        deps.split_whitespace()
            .filter(|t| *t != "\\")
            .map(PathBuf::from)
            .collect(),
    )
}

/// The cache key of an object: compiler, flags, side, and the contents of its inputs.
fn inputs_hash(set: FlagSet, side: Side, defines: &[&str], inputs: &[PathBuf]) -> Option<String> {
    let mut h = Sha256::new();
    h.update(compiler_version(set));
    for f in kernel_cflags(set)
        .iter()
        .map(String::as_str)
        .chain(defines.iter().copied())
    {
        h.update(f);
        h.update([0]);
    }
    h.update(side.name());
    if set == FlagSet::Debian61Objtool {
        h.update(objtool().map_or("", |(_, hash)| hash.as_str()));
        for a in objtool_args() {
            h.update(a);
            h.update([0]);
        }
    }
    for p in inputs {
        h.update(p.to_string_lossy().as_bytes());
        h.update(fs::read(p).ok()?);
    }
    Some(format!("{:x}", h.finalize()))
}

/// Compiles one side of a case (or reuses the cached object) and returns the object's path.
fn compile(case: &str, set: FlagSet, side: Side) -> PathBuf {
    let dir = cases_dir().join(case);
    let (src, defines) = source_of(&dir, side);
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("diff-cases")
        .join(case)
        .join(set.name());
    fs::create_dir_all(&cache).expect("creating the object cache");
    let stem = cache.join(side.name());
    let (obj, dep, key) = (
        stem.with_extension("o"),
        stem.with_extension("d"),
        stem.with_extension("hash"),
    );
    let previous_inputs = depfile_inputs(&dep).unwrap_or_else(|| vec![src.clone()]);
    if let Some(h) = inputs_hash(set, side, &defines, &previous_inputs) {
        if obj.exists() && fs::read_to_string(&key).ok().as_deref() == Some(h.as_str()) {
            return obj;
        }
    }

    // Unique names, then renames: the CLI test compiles some cases at the same time as their own tests.
    let tmp = tempfile::Builder::new()
        .prefix(side.name())
        .tempdir_in(&cache)
        .expect("temp dir in the object cache");
    let (tobj, tdep) = (tmp.path().join("x.o"), tmp.path().join("x.d"));
    let out = Command::new(set.compiler())
        .args(kernel_cflags(set))
        .args(&defines)
        .arg("-MD")
        .arg("-MF")
        .arg(&tdep)
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&tobj)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", set.compiler()));
    assert!(
        out.status.success(),
        "{} failed on {} ({}):\n{}",
        set.compiler(),
        src.display(),
        side.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    if set == FlagSet::Debian61Objtool {
        // run_case_with made sure the lab is there before compiling.
        let (bin, _) = objtool().expect("objtool of the lab");
        let out = Command::new(bin)
            .args(objtool_args())
            .arg(&tobj)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
        assert!(
            out.status.success(),
            "objtool failed on {} ({}):\n{}",
            src.display(),
            side.name(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let inputs = depfile_inputs(&tdep).expect("gcc wrote a depfile");
    let h = inputs_hash(set, side, &defines, &inputs).expect("inputs readable");
    fs::rename(&tobj, &obj).expect("caching the object");
    fs::rename(&tdep, &dep).expect("caching the depfile");
    let tkey = tmp.path().join("x.hash");
    fs::write(&tkey, h).expect("writing the cache key");
    fs::rename(&tkey, &key).expect("caching the key");
    obj
}

/// Whether the object at `path` has a section with `SHF_COMPRESSED` (read with `object`, not
/// with klp-build's reader, which decompresses them).
fn has_compressed_sections(path: &Path) -> bool {
    use object::read::elf::{FileHeader, SectionHeader};
    let data = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let header = object::elf::FileHeader64::<object::LittleEndian>::parse(&*data).expect("ELF64");
    let endian = header.endian().expect("endianness");
    let sections = header.sections(endian, &*data).expect("section table");
    sections
        .iter()
        .any(|sh| sh.sh_flags(endian) & u64::from(object::elf::SHF_COMPRESSED) != 0)
}

/// A directive of a case.
#[derive(Debug)]
enum Directive {
    Expect { key: String, sym: String },
    ExpectNone,
    ExpectNot { key: String, sym: String },
    ExpectError(Regex),
    Extern(String),
    Included(String),
    Entries { section: String, count: u64 },
    Explain(String),
    Rule { sym: String, rule: String },
}

fn parse_directives(file: &Path) -> Vec<Directive> {
    let text =
        fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    let mut v = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(d) = line.trim_start().strip_prefix("//#") else {
            continue;
        };
        let at = || format!("{}:{}", file.display(), n + 1);
        let (name, arg) = d
            .split_once(':')
            .unwrap_or_else(|| panic!("{}: directive without ':': {line}", at()));
        if name == "Flags" {
            continue; // read by flag_sets
        }
        let arg = arg.trim();
        let key_sym = || {
            let (k, s) = arg
                .split_once(char::is_whitespace)
                .unwrap_or_else(|| panic!("{}: expected `<key> <symbol>`: {line}", at()));
            (k.to_string(), s.trim().to_string())
        };
        // A key as the report spells it (an old spelling is taken too); a misspelt one fails.
        let finding_key = || {
            let (k, s) = key_sym();
            let key = Key::parse(&k)
                .unwrap_or_else(|| panic!("{}: no finding has the key {k} (docs/errors.md)", at()));
            (key.as_str().to_string(), s)
        };
        v.push(match name {
            "Expect" if arg == "none" => Directive::ExpectNone,
            "Expect" => {
                let (key, sym) = finding_key();
                Directive::Expect { key, sym }
            }
            "ExpectNot" => {
                let (key, sym) = finding_key();
                Directive::ExpectNot { key, sym }
            }
            "ExpectError" => Directive::ExpectError(
                Regex::new(arg).unwrap_or_else(|e| panic!("{}: bad regex: {e}", at())),
            ),
            "Extern" => Directive::Extern(arg.to_string()),
            "Included" => Directive::Included(arg.to_string()),
            "Entries" => {
                let (section, n) = key_sym();
                let count = n
                    .parse()
                    .unwrap_or_else(|e| panic!("{}: bad entry count {n:?}: {e}", at()));
                Directive::Entries { section, count }
            }
            "Explain" => Directive::Explain(arg.to_string()),
            "Rule" => {
                let (sym, rule) = key_sym();
                Directive::Rule { sym, rule }
            }
            _ => panic!("{}: unknown directive {name:?}", at()),
        });
    }
    v
}

/// The symbol a finding's location names: `foo` in `x.o: foo` and in
/// `x.o: foo+0x0 (.text.foo+0x0)`.
fn located_symbol(location: &str) -> &str {
    let rest = location.split_once(": ").map_or(location, |(_, r)| r);
    rest.split(['+', ' ']).next().unwrap_or(rest)
}

fn has_finding(findings: &[Finding], key: &str, sym: &str) -> bool {
    findings
        .iter()
        .any(|f| f.key == key && located_symbol(&f.location) == sym)
}

fn line_of(f: &Finding) -> String {
    format!("{} {}: {}", f.key, f.location, f.message)
}

/// The output object's symbols, for failure messages.
fn dump_out(out: &OutObject) -> String {
    let mut s = String::new();
    for (_, sym) in out.elf.live_symbols() {
        if sym.name.is_empty() || sym.is_section() {
            continue;
        }
        let state = if sym.is_undef() { "UND" } else { "def" };
        let _ = writeln!(s, "  {state} {}", sym.name);
    }
    s
}

/// Runs one case with each of its flag sets; fails with every set's failures.
fn run_case(name: &str) {
    let dir = cases_dir().join(name);
    let directive_file = if dir.join("case.c").exists() {
        dir.join("case.c")
    } else {
        dir.join("patched.c")
    };
    let directives = parse_directives(&directive_file);
    let failed: Vec<String> = flag_sets(&directive_file)
        .into_iter()
        .filter_map(|set| run_case_with(name, set, &directive_file, &directives))
        .collect();
    if !failed.is_empty() {
        panic!("{}", failed.join("\n"));
    }
}

/// Compiles, diffs and clones one case with one flag set, then checks its directives; returns
/// what failed, with the report.
fn run_case_with(
    name: &str,
    set: FlagSet,
    directive_file: &Path,
    directives: &[Directive],
) -> Option<String> {
    if (set == FlagSet::Debian61Objtool && objtool().is_none())
        || (set == FlagSet::Clang61 && clang_version().is_none())
    {
        return None; // skipped, with the reason printed
    }
    let orig = compile(name, set, Side::Orig);
    let patched = compile(name, set, Side::Patched);
    if set == FlagSet::Debian61Gz {
        for obj in [&orig, &patched] {
            if !has_compressed_sections(obj) {
                return Some(format!(
                    "case {name}, flags 6.1+gz: {} has no SHF_COMPRESSED section; gcc's -gz=zlib \
                     did not compress, so the case tests nothing",
                    obj.display()
                ));
            }
        }
    }

    let object = PathBuf::from(format!("{name}.o"));
    let d: ObjectDiff = match diff::run(&object, KlpObject::Vmlinux, &orig, &patched) {
        Ok(d) => d,
        // An object the diff stage refuses to read (a special section of another kernel's
        // layout) has no report: the case passes when it expects that error and nothing else.
        Err(e) => {
            let error = format!("(diff) {e:#}");
            let expected = directives
                .iter()
                .any(|x| matches!(x, Directive::ExpectError(re) if re.is_match(&error)));
            let only_errors = directives
                .iter()
                .all(|x| matches!(x, Directive::ExpectError(_)));
            return (!(expected && only_errors && name.ends_with("-fail")))
                .then(|| format!("case {name}, flags {}: diff failed: {error}", set.name()));
        }
    };
    let findings = d.findings();
    let mut errors: Vec<String> = d.refusals.iter().map(line_of).collect();
    let out = if d.refusals.is_empty() && !d.is_empty() {
        match out_object::extract(&d, "0") {
            Ok(out) => Some(out),
            Err(fs) => {
                errors.extend(fs.iter().map(|f| format!("(clone) {}", line_of(f))));
                None
            }
        }
    } else {
        None
    };

    let mut failures = check(name, directives, &d, &findings, &errors, out.as_ref());
    failures.extend(golden(
        &cases_dir().join(name),
        set,
        &golden_report(&d, directives),
    ));
    if let Some(out) = &out {
        failures.extend(labels_through_function_symbols(out));
        // The output object must be writable and read back as an object.
        let tmp = tempfile::tempdir().expect("temp dir");
        let path = tmp.path().join(&object);
        match out.elf.write_to(&path) {
            Ok(()) => {
                if let Err(e) = read_file::<Out>(&path) {
                    failures.push(format!("output object does not read back: {e}"));
                }
            }
            Err(e) => failures.push(format!("output object cannot be written: {e}")),
        }
    }
    if failures.is_empty() {
        return None;
    }
    let mut msg = format!(
        "case {name}, flags {} ({}):\n",
        set.name(),
        directive_file.display()
    );
    for f in &failures {
        let _ = writeln!(msg, "  - {f}");
    }
    let _ = writeln!(msg, "report:\n```\n{d}```");
    for e in &errors {
        let _ = writeln!(msg, "error: {e}");
    }
    if let Some(out) = &out {
        let _ = write!(msg, "output object symbols:\n{}", dump_out(out));
    }
    Some(msg)
}

/// Code relocations of the output object that reach a place inside a function through that
/// function's symbol (`meminfo_show+0x2a`) rather than its section (`.text.meminfo_show+0x2a`),
/// as the assembler writes a jump to a label. objtool (6.12's, at the module link of a kernel with
/// IBT) takes any jump through a function symbol for a sibling call: the `jmp t_no` of a
/// `static_cpu_has()` replacement in `.altinstr_replacement`, or a jump into a `.cold` part,
/// written so, fails the module link with "sibling call from callable instruction with modified
/// stack frame". A call or jump to a function's start keeps its symbol.
fn labels_through_function_symbols(out: &OutObject) -> Vec<String> {
    use klp_build::diff::reloc_target::{addend_bias, is_pc_relative, InsnEnds};
    use klp_build::elf::Content;
    let o = &out.elf;
    let mut bad = Vec::new();
    for (_, s) in o.live_sections() {
        let Content::Relocs { target, relocs } = &s.content else {
            continue;
        };
        let code = o.section(*target);
        if !code.is_text() {
            continue;
        }
        let ends = InsnEnds::decode(o.data(*target), 0);
        for r in relocs {
            let sym = o.symbol(r.sym);
            if !sym.is_func() || sym.is_undef() || !is_pc_relative(r.r_type) {
                continue;
            }
            let dest = r.r_addend + addend_bias(o, *target, r, Some(&ends));
            if dest != 0 {
                bad.push(format!(
                    "{}+{:#x} reaches {}{dest:+#x} through the function's symbol; objtool reads a \
                     jump so as a sibling call: it must name the section, as the assembler does",
                    code.name, r.r_offset, sym.name
                ));
            }
        }
    }
    bad
}

/// The number of entries of special section `name` in the output object; 0 when it has none.
fn entries_of(out: &OutObject, name: &str) -> Result<u64, String> {
    let Some(sec) = out.elf.section_by_name(name) else {
        return Ok(0);
    };
    let size = match diff::special::layout(&out.elf, sec)? {
        Some(Special::Entries { size } | Special::Alternatives { size }) => size,
        Some(Special::OrcIp) => 4,
        other => return Err(format!("not a table of entries ({other:?})")),
    };
    Ok(out.elf.section_size(sec) / size)
}

/// The golden report of a case: the diff's report and the explanations its directives ask for.
fn golden_report(d: &ObjectDiff, directives: &[Directive]) -> String {
    let mut s = d.to_string();
    for x in directives {
        if let Directive::Explain(func) = x {
            let _ = writeln!(s, "\n--explain {func}:");
            match diff::explain::explain(d, func) {
                Ok(e) => s.push_str(&e.to_string()),
                Err(e) => {
                    let _ = writeln!(s, "error: {e}");
                }
            }
        }
    }
    s
}

/// Compares `report` with the case's golden report for flag set `set` (rewrites it under
/// `KLP_BLESS=1`); returns the failure, with both texts, when they differ.
fn golden(dir: &Path, set: FlagSet, report: &str) -> Option<String> {
    let path = match set {
        // Compressed debug sections change nothing of the diff: one golden report for both.
        FlagSet::Debian61 | FlagSet::Debian61Gz => dir.join("report.txt"),
        _ => dir.join(format!("report-{}.txt", set.name())),
    };
    if std::env::var_os("KLP_BLESS").is_some_and(|v| v == "1") {
        fs::write(&path, report).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return None;
    }
    let want = match fs::read_to_string(&path) {
        Ok(w) => w,
        Err(e) => {
            return Some(format!(
                "no golden report {} ({e}); read the report below and write it with KLP_BLESS=1",
                path.display()
            ))
        }
    };
    (want != report).then(|| {
        format!(
            "the report differs from {}; if the difference is right, rewrite it with KLP_BLESS=1\n\
             expected:\n```\n{want}```\ngot:\n```\n{report}```",
            path.display()
        )
    })
}

/// Every check of a case; returns what failed.
fn check(
    name: &str,
    directives: &[Directive],
    d: &ObjectDiff,
    findings: &[Finding],
    errors: &[String],
    out: Option<&OutObject>,
) -> Vec<String> {
    let mut failures = Vec::new();
    let expects_error = directives
        .iter()
        .any(|x| matches!(x, Directive::ExpectError(_)));
    if !directives.iter().any(|x| {
        matches!(
            x,
            Directive::Expect { .. } | Directive::ExpectNone | Directive::ExpectError(_)
        )
    }) {
        failures.push("the case has no Expect or ExpectError line, so it asserts nothing".into());
    }
    if name.ends_with("-fail") != expects_error {
        failures
            .push("a case has ExpectError lines exactly when its name ends in -fail".to_string());
    }

    let mut expected: BTreeSet<(&str, &str)> = BTreeSet::new();
    for x in directives {
        match x {
            Directive::Expect { key, sym } => {
                expected.insert((key, sym));
                if !has_finding(findings, key, sym) {
                    failures.push(format!("expected {key} {sym}, not in the report"));
                }
            }
            Directive::ExpectNone => {
                if directives.len() != 1 {
                    failures.push("`Expect: none` goes alone".into());
                }
                if !findings.is_empty() || !d.is_empty() || !errors.is_empty() {
                    failures.push("expected an empty report".into());
                }
            }
            Directive::ExpectNot { key, sym } => {
                if has_finding(findings, key, sym) {
                    failures.push(format!("unexpected {key} {sym}"));
                }
            }
            Directive::ExpectError(re) => {
                if !errors.iter().any(|e| re.is_match(e)) {
                    failures.push(format!("no refusal matches /{re}/"));
                }
            }
            Directive::Extern(n) => match out {
                None => failures.push(format!("Extern {n}: no output object")),
                Some(o) => {
                    if !o.externs.iter().any(|e| &e.name == n) {
                        failures.push(format!("{n} is not an extern of the output object"));
                    }
                }
            },
            Directive::Included(n) => match out {
                None => failures.push(format!("Included {n}: no output object")),
                Some(o) => {
                    let defined = o
                        .elf
                        .live_symbols()
                        .any(|(_, s)| &s.name == n && !s.is_undef() && !s.is_section());
                    if !defined {
                        failures.push(format!("{n} is not defined in the output object"));
                    }
                }
            },
            Directive::Entries { section, count } => match out {
                None => failures.push(format!("Entries {section}: no output object")),
                Some(o) => match entries_of(o, section) {
                    Ok(n) if n == *count => {}
                    Ok(n) => failures.push(format!(
                        "{section} of the output object holds {n} entries, not {count}"
                    )),
                    Err(e) => failures.push(format!("{section} of the output object: {e}")),
                },
            },
            Directive::Explain(_) => {}
            Directive::Rule { sym, rule } => {
                let got = d
                    .patched
                    .symbol_by_name(sym)
                    .map(|p| d.twins.rule(p).map_or("none", |r| r.name()));
                if got != Some(rule.as_str()) {
                    failures.push(format!(
                        "{sym} correlated by {}, expected {rule}",
                        got.unwrap_or("(no such symbol in the patched object)")
                    ));
                }
            }
        }
    }

    // Over-reporting is a failure too: a function reported without cause gets patched for nothing.
    for f in findings {
        if matches!(f.key.as_str(), "func.changed" | "func.added")
            && !expected.contains(&(f.key.as_str(), located_symbol(&f.location)))
        {
            failures.push(format!("unexpected finding: {}", line_of(f)));
        }
    }
    for e in errors {
        let matched = directives.iter().any(|x| match x {
            Directive::ExpectError(re) => re.is_match(e),
            _ => false,
        });
        if !matched {
            failures.push(format!("unexpected refusal: {e}"));
        }
    }
    failures
}

#[test]
fn every_case_folder_has_a_test() {
    let mut on_disk: Vec<String> = fs::read_dir(cases_dir())
        .expect("reading testdata/cases")
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CASES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "every folder of testdata/cases needs a line in cases! of tests/diff_cases.rs, and the reverse"
    );
}

/// Keeps `kernel-cflags` honest: every flag in it (but the `-Werror=` ones that only keep cases
/// well-formed) is on the real kbuild command line of fs/proc/cmdline.o, compiled in the lab's
/// tree with klp-build's flags; and every argument of `kernel-objtool-6.1` is on the objtool
/// command kbuild ran on that object. Skipped without the lab, failed under `CI=true`.
#[test]
fn kernel_cflags_come_from_a_kbuild_command() {
    let Some(lab) = support::lab("kernel_cflags_come_from_a_kbuild_command") else {
        return;
    };
    kobj::prepared(lab);
    let cmd = kobj::kernel_object_cmd(&lab.src, &lab.dir, "fs/proc/cmdline.o");
    let text = fs::read_to_string(&cmd).expect("reading the .cmd file");
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("cmd_fs/proc/cmdline.o :="),
        "{}: not kbuild's command of cmdline.o: {first}",
        cmd.display()
    );
    let real: BTreeSet<&str> = first.split_whitespace().collect();
    let missing: Vec<&String> = kernel_cflags(FlagSet::Debian61)
        .iter()
        .filter(|f| !f.starts_with("-Werror=") && !real.contains(f.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "flags of testdata/cases/kernel-cflags not in {}: {missing:?}",
        cmd.display()
    );

    // The objtool run that follows the compile in the same command.
    let objtool_cmd = first
        .split(';')
        .find_map(|part| {
            let words: Vec<&str> = part.split_whitespace().collect();
            let at = words.iter().position(|w| w.ends_with("objtool"))?;
            Some(words[at + 1..].to_vec())
        })
        .unwrap_or_else(|| panic!("{}: no objtool command", cmd.display()));
    let missing: Vec<&String> = objtool_args()
        .iter()
        .filter(|a| !objtool_cmd.contains(&a.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "arguments of testdata/cases/kernel-objtool-6.1 not in the objtool command of {} ({objtool_cmd:?}): {missing:?}",
        cmd.display()
    );
}

/// Keeps `kernel-cflags-6.12` honest: every flag in it (but the `-Werror=` ones, and klp-build's
/// own `-ffunction-sections -fdata-sections`, which the tree was built without) is on the kbuild
/// command line of fs/proc/cmdline.o in the lab's built 6.12 reference tree. Skipped without that
/// tree, failed under `CI=true`.
#[test]
fn kernel_cflags_6_12_come_from_the_reference_tree() {
    let Some(kernel) =
        support::refkernel::ref_kernel("kernel_cflags_6_12_come_from_the_reference_tree")
    else {
        return;
    };
    let cmd = kernel.tree.join("fs/proc/.cmdline.o.cmd");
    let text = fs::read_to_string(&cmd)
        .unwrap_or_else(|e| panic!("reading {}: {e}; rebuild the reference tree", cmd.display()));
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("savedcmd_fs/proc/cmdline.o :="),
        "{}: not kbuild's command of cmdline.o: {first}",
        cmd.display()
    );
    let real: BTreeSet<&str> = first.split_whitespace().collect();
    let klp_build_kcflags = ["-ffunction-sections", "-fdata-sections"];
    let missing: Vec<&String> = kernel_cflags(FlagSet::Ref612)
        .iter()
        .filter(|f| {
            !f.starts_with("-Werror=")
                && !klp_build_kcflags.contains(&f.as_str())
                && !real.contains(f.as_str())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "flags of testdata/cases/kernel-cflags-6.12 not in {}: {missing:?}",
        cmd.display()
    );
}

fn klp_build() -> Command {
    Command::new(env!("CARGO_BIN_EXE_klp-build"))
}

/// `klp-build diff` exits 3 when nothing changed, and writes an output object with the changed
/// function (and its global alias for the function table) when something did.
#[test]
fn cli_diff_exit_codes_and_output_object() {
    let (o, p) = (
        compile("comment-only", FlagSet::Debian61, Side::Orig),
        compile("comment-only", FlagSet::Debian61, Side::Patched),
    );
    let r = klp_build().arg("diff").arg(&o).arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "no functional change: {stderr}");
    assert!(stderr.contains("no functional change"), "{stderr}");

    let (o, p) = (
        compile("string-literal", FlagSet::Debian61, Side::Orig),
        compile("string-literal", FlagSet::Debian61, Side::Patched),
    );
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.o");
    let r = klp_build()
        .arg("diff")
        .arg(&o)
        .arg(&p)
        .arg("-o")
        .arg(&out)
        .args(["--report", "json"])
        .output()
        .unwrap();
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&r.stdout).expect("--report json prints JSON");
    let keys: Vec<(&str, &str)> = report
        .as_array()
        .expect("a list of findings")
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap_or_default(),
                located_symbol(f["location"].as_str().unwrap_or_default()),
            )
        })
        .collect();
    assert_eq!(keys, [("func.changed", "show_limit")]);

    let readelf = Command::new("readelf")
        .arg("-sW")
        .arg(&out)
        .output()
        .expect("running readelf (binutils)");
    assert!(readelf.status.success());
    let syms = String::from_utf8_lossy(&readelf.stdout);
    let defined_func = |name: &str| {
        syms.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() == 8 && f[3] == "FUNC" && f[6] != "UND" && f[7] == name
        })
    };
    assert!(
        defined_func("show_limit"),
        "readelf -s {}:\n{syms}",
        out.display()
    );
    assert!(
        defined_func("__klp_new.0.show_limit"),
        "readelf -s {}:\n{syms}",
        out.display()
    );
    assert!(
        !defined_func("show_other"),
        "readelf -s {}:\n{syms}",
        out.display()
    );
}

/// `klp-build diff --explain FUNC`: the first differing instruction of each side, decoded, in text
/// and JSON; an error naming FUNC when it did not change or is in neither object; and a diff whose
/// only differences are line values ends as no functional change (exit 3), saying so.
#[test]
fn cli_diff_explain_and_line_only() {
    let (o, p) = (
        compile("immediate-not-a-line", FlagSet::Debian61, Side::Orig),
        compile("immediate-not-a-line", FlagSet::Debian61, Side::Patched),
    );
    let r = klp_build()
        .arg("diff")
        .arg(&o)
        .arg(&p)
        .args(["--explain", "clear_buf"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        stdout.contains("clear_buf changed [correlated: exact]"),
        "{stdout}"
    );
    assert!(stdout.contains("mov $0x10,%edx"), "{stdout}");
    assert!(stdout.contains("mov $0x20,%edx"), "{stdout}");

    let r = klp_build()
        .arg("diff")
        .arg(&o)
        .arg(&p)
        .args(["--explain", "clear_buf", "--report", "json"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0));
    let e: serde_json::Value =
        serde_json::from_slice(&r.stdout).expect("--report json prints JSON");
    assert_eq!(e["function"], "clear_buf");
    assert_eq!(e["rule"], "exact");
    assert_eq!(e["verdict"], "changed");
    assert_eq!(e["instructions"]["orig"]["asm"], "mov $0x10,%edx");
    assert_eq!(e["instructions"]["patched"]["asm"], "mov $0x20,%edx");
    assert_eq!(e["instructions"]["patched"]["offset"], 6);

    for (func, says) in [
        (
            "no_such_function",
            "no_such_function: no function of that name",
        ),
        ("use_buf", "use_buf: no function of that name"),
    ] {
        let r = klp_build()
            .arg("diff")
            .arg(&o)
            .arg(&p)
            .args(["--explain", func])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    let (o, p) = (
        compile("explain", FlagSet::Debian61, Side::Orig),
        compile("explain", FlagSet::Debian61, Side::Patched),
    );
    let r = klp_build()
        .arg("diff")
        .arg(&o)
        .arg(&p)
        .args(["--explain", "show_name"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("show_name did not change"), "{stderr}");

    let (o, p) = (
        compile("line-only-warn", FlagSet::Debian61, Side::Orig),
        compile("line-only-warn", FlagSet::Debian61, Side::Patched),
    );
    let r = klp_build().arg("diff").arg(&o).arg(&p).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr),
    );
    assert_eq!(r.status.code(), Some(3), "{stdout}{stderr}");
    assert!(stdout.contains("func.line-only"), "{stdout}");
    assert!(
        stderr.contains("no functional change (only __LINE__ values differ)"),
        "{stderr}"
    );
}
